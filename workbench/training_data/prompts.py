"""The two prompt helpers the verbatim and TS-Guessing tests share: the perturbed control prompt
(adjacent words swapped, seeded) and the prompt conditioned on the BOS (or EOS) token.

They sit below both tests, which import them at their tops (verbatim borrowed ``with_prefix``
from ts_guessing while ts_guessing imported ``perturb`` from verbatim: a circle).

>>> import numpy as np
>>> perturb("one two three four five six", np.random.default_rng(0))
'one two four three five six'
"""
from __future__ import annotations

import numpy as np

from workbench.errors import InvalidInputError
from workbench.scoring.tokenize import prefix_token_id


def perturb(prompt: str, rng: np.random.Generator, every: int = 3) -> str:
    """``prompt`` with every ``every``-th pair of adjacent words swapped, from a seeded start."""
    words = prompt.split(" ")
    if len(words) < 2:
        return prompt
    start = int(rng.integers(0, min(every, len(words) - 1)))
    for i in range(start, len(words) - 1, every):
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def with_prefix(tok, prompt: str) -> str:
    """The prompt conditioned on the BOS (or EOS) token, as the scoring engine and the testbed's
    fine-tuning condition a text, where the tokenizer does not add it itself: a memorised item is
    recalled from the context it was seen in."""
    try:
        pid = prefix_token_id(tok)
    except InvalidInputError:   # neither BOS nor EOS: the prompt as it is
        return prompt
    ids = tok(prompt)["input_ids"]
    if ids and ids[0] == pid:
        return prompt
    return tok.decode([pid]) + prompt

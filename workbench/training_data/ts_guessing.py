"""TS-Guessing for multiple-choice data (Deng et al. 2023, "Investigating data contamination in
modern benchmarks for large language models"), in a completion form that base models answer.

A WRONG option of a multiple-choice item cannot be inferred from knowledge: it is whatever the
benchmark's authors wrote. A model that reproduces a masked wrong option exactly has most likely
seen the item. Each item (question, options, gold index) is rendered as :func:`render` writes it
("Question: ...", one "A. option" line per option, "Answer: B"); one wrong option is picked per
item (seeded) and the prompt is the rendering up to that option's label, so the question and the
options before it are shown and the model must write the option itself. The prompt starts with
the BOS (or EOS) token where the tokenizer does not add one, as the scoring engine scores a text. Greedy generation, a few
tokens more than the option has; the first line of the completion is compared with the option
after normalising (lower case, punctuation and extra white space removed): **exact match**.

Deng et al. ask an instruction-following model to fill a ``[MASK]`` among all the options; the
completion form here works on base models too and needs no instruction following, at the price of
not showing the options after the masked one.

``statistic`` is the exact-match rate (Deng et al.'s measure): a model that never saw the items
has next to no chance of writing an arbitrary wrong option exactly, so a rate well above zero is
the evidence, best read beside the same rate of a model known clean (the testbed's original).

The control: the same prompt with the question perturbed (every third pair of adjacent words
swapped, seeded, as the verbatim test's control), the options and the masked position unchanged.
The p-value is an exact one-sided McNemar test (binomial on the discordant items) that the exact
prompts are answered exactly more often than the perturbed ones. It separates recall of the exact
item from guessing; a model that memorised the items robustly also recalls them from the perturbed
question, so a large p does not mean clean (the testbed's tiny model does exactly that): read it
with the rate. (Shuffling the options is no good control: a later position shows more of a
memorised option set, which helps the shuffled prompts.)

>>> render({"question": "2 + 2 =", "choices": ["3", "4", "5"], "answer": 1})
'Question: 2 + 2 =\\nA. 3\\nB. 4\\nC. 5\\nAnswer: B'
>>> normalise("  The Car, again! ")
'the car again'
"""
from __future__ import annotations

import string

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.errors import InvalidInputError
from workbench.scoring.api import generate
from workbench.tasks.spec import load_task
from workbench.training_data.prompts import perturb, with_prefix

EXTRA_TOKENS = 3
LETTERS = string.ascii_uppercase


def render(item: dict, upto: int | None = None) -> str:
    """The item as text; with ``upto``, cut just after the label of option ``upto`` (the prompt)."""
    lines = [f"Question: {item['question']}"]
    for j, c in enumerate(item["choices"]):
        if j == upto:
            lines.append(f"{LETTERS[j]}.")
            return "\n".join(lines)
        lines.append(f"{LETTERS[j]}. {c}")
    return "\n".join(lines + [f"Answer: {LETTERS[item['answer']]}"])


def normalise(s: str) -> str:
    s = s.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(s.split())


def mc_items(data, task_data=None) -> list[dict]:
    """Multiple-choice items ``{question, choices, answer}`` from a DataFrame or list of dicts with
    those keys (``answer``: the gold index), or a multiple-choice task name or spec."""
    if isinstance(data, pd.DataFrame):
        data = data.to_dict("records")
    elif isinstance(data, str) or type(data).__name__ == "Task" or (isinstance(data, dict)):
        t = load_task(data, **({"data": task_data} if task_data is not None else {}))
        if t.kind != "multiple_choice":
            raise InvalidInputError(f"the ts_guessing test needs multiple-choice items; task {t.name!r} is {t.kind}")
        data = [{"question": it["context"], "choices": list(it["choices"]), "answer": int(it["target"])}
                for it in t.all_items]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise InvalidInputError("the ts_guessing test needs multiple-choice items: a DataFrame or a list of dicts with "
                                "'question', 'choices' (a list of option texts) and 'answer' (the gold index), or a "
                                f"multiple-choice task name; got {type(data).__name__}")
    out = []
    for i, d in enumerate(data):
        missing = {"question", "choices", "answer"} - set(d)
        if missing:
            raise InvalidInputError(f"ts_guessing item {i} lacks {sorted(missing)}; each item needs 'question', "
                                    "'choices' and 'answer' (the gold index)")
        choices = [str(c) for c in d["choices"]]
        a = d["answer"]
        if not isinstance(a, (int, np.integer)) or not 0 <= a < len(choices):
            raise InvalidInputError(f"ts_guessing item {i}: 'answer' must be the gold option's index (0 to "
                                    f"{len(choices) - 1}), got {a!r}")
        out.append({"question": str(d["question"]), "choices": choices, "answer": int(a)})
    return out


def ts_guessing(model, items: list[dict], *, seed: int = 0, cache: bool = True, progress=None) -> tuple[dict, pd.DataFrame]:
    """(summary row, per-item frame) of the TS-Guessing test (see the module doc). Items with fewer
    than 2 wrong options are skipped (with one wrong option, it is the complement of the answer)."""
    rng = np.random.default_rng(seed)
    rows, prompts, perturbed = [], [], []
    for i, it in enumerate(items):
        wrong = [j for j in range(len(it["choices"])) if j != it["answer"]]
        if len(wrong) < 2:
            continue
        j = int(rng.choice(wrong))
        pert = dict(it, question=perturb(it["question"], rng))
        prompts.append(render(it, upto=j))
        perturbed.append(render(pert, upto=j))
        rows.append({"item": i, "masked": it["choices"][j], "masked_index": j})
    if not rows:
        raise InvalidInputError("the ts_guessing test needs items with at least 3 options (2 wrong ones); none has")
    n_new = max(len(model.tokenizer(" " + r["masked"], add_special_tokens=False)["input_ids"]) for r in rows)
    gen = generate(model, [with_prefix(model.tokenizer, q) for q in prompts + perturbed], max_new_tokens=n_new + EXTRA_TOKENS, cache=cache, progress=progress)
    outs = gen.completion.tolist()
    for k, r in enumerate(rows):
        a, b = outs[k], outs[len(rows) + k]
        first = lambda s: s.strip().split("\n")[0]  # noqa: E731  the option line the model wrote
        r.update(prompt=prompts[k], completion=a, perturbed_prompt=perturbed[k], perturbed_completion=b,
                 exact=normalise(first(a)) == normalise(r["masked"]),
                 exact_perturbed=normalise(first(b)) == normalise(r["masked"]))
    df = pd.DataFrame(rows)
    wins = int((df.exact & ~df.exact_perturbed).sum())
    losses = int((~df.exact & df.exact_perturbed).sum())
    p = float(sps.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0
    row = {"test": "ts_guessing", "statistic": float(df.exact.mean()), "p_value": p,
           "n": len(df), "exact_rate": float(df.exact.mean()), "exact_rate_perturbed": float(df.exact_perturbed.mean()),
           "n_skipped": len(items) - len(df)}
    return row, df


"""BBQ items as minimal pairs for the mechanistic audit.

A BBQ item (context, question, three answers) becomes two sentences that share the prompt
(:func:`workbench.probes.bbq.prompt`) and differ only in the answer:

- a = prompt + " " + the *biased* answer (the stereotyped group for a negative question, the
  other group for a non-negative one, as the probe scores it);
- b = prompt + " " + the *other group's* answer (never the "unknown" one).

Patching needs a corrupted run of the same length: the prompt with the two group mentions
swapped (e.g. "grandson" <-> "grandfather"), read out by
``LogprobDiff(" " + biased, " " + other)`` after the prompt. Head ablation measures the same
metric on the clean prompt. The group mentions are found from the answers: the words the two
answers do not share (``"The Jewish one"`` / ``"The Muslim one"`` -> ``Jewish`` / ``Muslim``), or
failing that the longest run of those words that occurs, as whole words, in the context
(``"The man with the wheelchair"`` -> ``wheelchair``). Items where either group cannot be found,
or where the swap leaves the prompt unchanged, raise :class:`SkipItem` with the reason; the audit
also skips, with the reason, items whose swapped prompt has another number of tokens (patching
needs aligned positions). On a seeded sample of 2,000 items of the shared BBQ data, both groups
were found in 99.4% and SmolLM2's tokenizer kept the length in 95.5%.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.attribution.pairs import SkipItem
from workbench.inspect import LogprobDiff
from workbench.probes.bbq import prompt

# words a group mention never starts or ends with (so "with the wheelchair" is not matched by "with")
_EDGE_WORDS = {"the", "a", "an", "who", "whom", "is", "was", "are", "were", "with", "of", "and", "or", "to",
               "in", "on", "at", "for", "from", "that", "this", "his", "her", "their", "one", "ones", "has",
               "had", "who's"}
_WORD = r"[\w-]"       # hyphens belong to words ("84-year-old" is one mention); "grandson's" holds "grandson"


def answer_sides(row) -> tuple[int, int]:
    """Indices (0..2) of the biased answer and of the other group's answer of a scored BBQ row."""
    groups = [k for k in range(3) if k != int(row["unknown_idx"])]
    target = int(row["target_idx"])
    other = next(k for k in groups if k != target)
    return (target, other) if row["question_polarity"] == "neg" else (other, target)


def _find(text: str, phrase: str):
    """Whole-word, case-insensitive occurrences of ``phrase`` in ``text`` (a list of matches)."""
    return list(re.finditer(rf"(?<!{_WORD}){re.escape(phrase)}(?!{_WORD})", text, flags=re.IGNORECASE))


def _mention(answer: str, other: str, context: str) -> str:
    """The words of ``answer`` that name its group in ``context``; SkipItem if there are none."""
    a, b = answer.split(), other.split()
    i = 0
    while i < min(len(a), len(b)) and a[i].lower() == b[i].lower():
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[-1 - j].lower() == b[-1 - j].lower():
        j += 1
    words = a[i:len(a) - j]
    for n in range(len(words), 0, -1):               # longest run first
        for s in range(len(words) - n + 1):
            run = words[s:s + n]
            if run[0].lower() in _EDGE_WORDS or run[-1].lower() in _EDGE_WORDS:
                continue
            phrase = " ".join(run).strip(".,;:!?")
            if phrase and _find(context, phrase):
                return phrase
    raise SkipItem(f"cannot find the group of answer {answer!r} in the context")


def swap_groups(row) -> tuple[dict, tuple[str, str]]:
    """The row with the two groups' mentions swapped in its context and question, and the two
    mentions (biased answer's, other answer's). Raises SkipItem when the groups cannot be found
    in the context, overlap, or the swap changes nothing."""
    biased, other = answer_sides(row)
    ans_b, ans_o = row[f"ans{biased}"], row[f"ans{other}"]
    g_b = _mention(ans_b, ans_o, row["context"])
    g_o = _mention(ans_o, ans_b, row["context"])
    if g_b.lower() == g_o.lower():
        raise SkipItem(f"the two answers name the same words {g_b!r}")
    # one pass, longer alternative first, so "84-year-old" is never read as "old"; the mentions are
    # written as the answers spell them (mid-sentence case), capitalised at the start of a sentence
    swap = {g_b.lower(): g_o, g_o.lower(): g_b}
    pattern = re.compile(rf"(?<!{_WORD})(?:{'|'.join(re.escape(g) for g in sorted(swap, key=len, reverse=True))})"
                         rf"(?!{_WORD})", flags=re.IGNORECASE)

    def repl(m):
        new = swap[m.group(0).lower()]
        before = m.string[:m.start()].rstrip()
        return new[:1].upper() + new[1:] if not before or before[-1] in ".!?\n" else new

    out = dict(row)
    out["context"] = pattern.sub(repl, row["context"])
    out["question"] = pattern.sub(repl, row["question"])
    if out["context"] == row["context"]:
        raise SkipItem("swapping the two groups leaves the context unchanged")
    return out, (g_b, g_o)


@dataclass(frozen=True)
class BBQAnswers:
    """Pair adapter for BBQ (see the module docstring)."""

    col_a: str = "sent_biased"
    col_b: str = "sent_other"
    category: str = "category"
    sides: tuple = ("biased answer", "other group's answer")
    headline: str | None = "s_amb"
    context_col: str | None = "prompt"

    def prepare(self, items: pd.DataFrame) -> pd.DataFrame:
        out = items.copy()
        sides = [answer_sides(r) for _, r in items.iterrows()]
        out["answer_biased"] = [r[f"ans{b}"] for (_, r), (b, _) in zip(items.iterrows(), sides)]
        out["answer_other"] = [r[f"ans{o}"] for (_, r), (_, o) in zip(items.iterrows(), sides)]
        prompts = [prompt(r) for _, r in items.iterrows()]
        out["prompt"] = prompts
        out[self.col_a] = [p + " " + a for p, a in zip(prompts, out["answer_biased"])]
        out[self.col_b] = [p + " " + a for p, a in zip(prompts, out["answer_other"])]
        return out

    def _metric(self, row):
        return LogprobDiff(" " + row["answer_biased"], " " + row["answer_other"])

    def patch_run(self, row):
        swapped, _ = swap_groups(row)
        return prompt(row), prompt(swapped), self._metric(row)

    def ablation_run(self, row):
        return prompt(row), self._metric(row)

    def probe_diff(self, items: pd.DataFrame, options: dict):
        """The probe's own score(biased) - score(other) (summed log-probabilities), or None."""
        if options.get("aggregate", "sum") != "sum" or "score_ans0" not in items:
            return None
        scores = items[["score_ans0", "score_ans1", "score_ans2"]].to_numpy(float)
        sides = np.array([answer_sides(r) for _, r in items.iterrows()])
        rows = np.arange(len(items))
        return scores[rows, sides[:, 0]] - scores[rows, sides[:, 1]]

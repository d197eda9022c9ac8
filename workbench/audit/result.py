"""What ``wb.audit`` returns: the card and the files, with the tables a reader asks for first."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.audit.deployment import flip_frame
from workbench.audit.findings import headline, holm, reading
from workbench.units.result import result_items

FINDING_COLUMNS = ["probe", "metric", "model_a", "model_b", "a", "b", "difference", "ci_low", "ci_high", "p_value",
                   "p_adjusted", "n", "detectable", "reading"]


def findings_frame(entries: list[dict]) -> pd.DataFrame:
    """The headline findings as numbers: one row per (probe or task, pair), ``difference = a - b``
    with its 95% interval, the paired test's p and the Holm-adjusted p across every row."""
    adjusted = holm([e["diff"]["p_value"] for e in entries])
    rows = [{"probe": e["name"], "metric": e["metric"], "model_a": e["model_a"], "model_b": e["model_b"],
             "a": e["a"]["value"], "b": e["b"]["value"], "difference": e["diff"]["value"],
             "ci_low": e["diff"]["ci_low"], "ci_high": e["diff"]["ci_high"], "p_value": e["diff"]["p_value"],
             "p_adjusted": p, "n": e["n"], "detectable": e.get("mde"), "reading": reading(e, p)}
            for e, p in zip(entries, adjusted)]
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


AGREEMENT_COLUMNS = ["model_a", "model_b", "n_texts", "n_tokens", "verdict", "reason", "next_token_kl", "top1_agreement",
                     "max_abs_logprob_diff", "resid_rel_error_max", "tokenization", "chat_prompt"]


@dataclass
class Audit:
    """An audit's outcome. ``findings()``: the headline table as numbers; ``headline()``: as the
    report shows it; ``deployment()``: flips between the specs that are one model run two ways; ``agreement()``:
    how far each such pair's computations are apart;
    ``plan``: the sample-size plan (with ``detect``); ``card``: the
    :class:`~workbench.audit.card.AuditCard`; ``paths``: the files written."""

    spec: object
    card: object = None
    plan: pd.DataFrame | None = None
    out: Path | None = None
    store: Path | None = None
    cells: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    def findings(self) -> pd.DataFrame:
        return findings_frame(self.card.data.get("findings") or []) if self.card else findings_frame([])

    def headline(self) -> pd.DataFrame:
        return headline(self.card.data.get("findings") or []) if self.card else pd.DataFrame()

    def deployment(self) -> pd.DataFrame:
        return flip_frame(self.card.data.get("deployment") or [] if self.card else [])

    def agreement(self) -> pd.DataFrame:
        """Per deployment pair, how far the deployed computation is from the reference's on neutral
        sentences (:mod:`workbench.audit.agreement`): verdict, next_token_kl, top1_agreement,
        max_abs_logprob_diff, resid_rel_error_max, tokenization, chat_prompt."""
        rows = (self.card.data.get("agreement") or []) if self.card else []
        return pd.DataFrame([{k: v for k, v in r.items() if k != "layers"} for r in rows],
                            columns=AGREEMENT_COLUMNS if not rows else None)

    def overview(self) -> pd.DataFrame:
        """Models x probes: each model's value of each probe's metric with its interval."""
        rows = (self.card.data.get("overview") or []) if self.card else []
        return pd.DataFrame(rows)

    def result(self, model: str, unit: str):
        """A (model, probe or task) cell's result, as rebuilt from the store (``unit``: ``"blimp"``,
        ``"crows_pairs"`` or ``"probe:crows_pairs"``)."""
        for key in ((model, unit), (model, f"probe:{unit}")):
            if key in self.cells:
                return self.cells[key]["result"]
        raise KeyError(f"no result for {model!r} on {unit!r}; cells: {sorted(self.cells)}")

    def items(self, model: str, unit: str) -> pd.DataFrame:
        return result_items(self.result(model, unit))

    def _repr_html_(self) -> str:
        if self.card is None:
            return self.plan.to_html() if self.plan is not None else "<p>(no audit ran)</p>"
        return self.card.to_html()

    def __repr__(self) -> str:
        n = len(self.card.data.get("findings") or []) if self.card else 0
        return f"Audit({len(self.spec.models)} models, {n} findings, out={str(self.out)!r})"

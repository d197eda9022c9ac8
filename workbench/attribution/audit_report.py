"""The report of :func:`workbench.mechanistic_audit`: tables for every step and one figure."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.results import Result
from workbench.provenance import model_name


@dataclass
class MechanisticAudit(Result):
    """``frame`` (``.to_frame()``): the bias metrics with bootstrap CIs per condition (before and
    under each intervention) on the held-out items: condition, metric, category, value, ci_low,
    ci_high, n.

    Step tables: ``decomposition`` (per item, exact split of LL(a) - LL(b)),
    ``decomposition_summary`` (means with CIs), ``patching_positions`` (layer x role, mean
    normalised effect), ``patching_heads`` (layer x head), ``head_effects`` (per item and head),
    ``heads`` (the heads ablated), ``steering`` (the vector's description), ``comparisons``
    (paired tests of each intervention against before, from :func:`workbench.compare`),
    ``capability`` (perplexity on neutral text per condition, with CIs on the change),
    ``skipped`` (items a step could not use: item, item_id, reason, step).
    """

    decomposition: pd.DataFrame = field(default_factory=pd.DataFrame)
    decomposition_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    patching_positions: pd.DataFrame = field(default_factory=pd.DataFrame)
    patching_heads: pd.DataFrame = field(default_factory=pd.DataFrame)
    head_effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    heads: list = field(default_factory=list)
    steering: dict = field(default_factory=dict)
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    capability: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> pd.DataFrame:
        """One row per (intervention, metric) overall: value before and after, the paired
        difference (after - before) with its CI and p-value, and the perplexity change."""
        if self.comparisons.empty:
            return self.frame[self.frame.category == "all"].reset_index(drop=True)
        c = self.comparisons[self.comparisons.category == "all"]
        out = c[["condition", "metric", "value_b", "value_a", "diff", "ci_low", "ci_high", "p_value", "n"]].rename(
            columns={"value_b": "before", "value_a": "after", "diff": "change"})
        if not self.capability.empty:
            ppl = self.capability.set_index("condition")
            out["ppl_before"] = float(ppl.loc["before", "ppl"])
            out["ppl_after"] = out.condition.map(ppl["ppl"])
            out["ppl_change_ci"] = out.condition.map(
                lambda k: f"[{ppl.loc[k, 'ppl_change_ci_low']:.3g}, {ppl.loc[k, 'ppl_change_ci_high']:.3g}]")
        return out.reset_index(drop=True)

    def plot(self, fig=None):
        """Four panels: the LL-difference split, patching by layer, head effects, and the bias
        metric per condition with CIs. Returns the Figure."""
        import matplotlib.pyplot as plt
        fig = fig or plt.figure(figsize=(13, 8))
        axes = fig.subplots(2, 2)
        d = self.decomposition_summary
        if not d.empty:
            ax = axes[0, 0]
            ax.bar(d.part, d.value, yerr=[d.value - d.ci_low, d.ci_high - d.value], capsize=3, color="#777")
            ax.axhline(0, color="black", lw=0.5)
            a, b = self.provenance.get("sides", ("stereotyped", "other"))
            ax.set(title=f"1. LL({a}) - LL({b}): where it comes from", ylabel="mean nats per pair")
            ax.tick_params(axis="x", labelsize=8)
        p = self.patching_positions
        if not p.empty:
            ax = axes[0, 1]
            for role, g in p.groupby("role"):
                ax.plot(g.layer, g.normalized, marker="o", ms=3, label=role)
            ax.set(title="2. patching clean -> corrupted (resid_pre)", xlabel="layer", ylabel="normalised effect")
            ax.legend(fontsize=8)
        h = self.head_effects
        if not h.empty:
            ax = axes[1, 0]
            grid = h.groupby(["layer", "head"])["effect"].mean().unstack()
            lim = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
            im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="RdBu", vmin=-lim, vmax=lim)
            ax.set(title="2. zero-ablating one head: change in the pair's LL gap", xlabel="head", ylabel="layer")
            ax.set_yticks(range(grid.shape[0]), [str(x) for x in grid.index])   # only the layers searched
            ax.set_xticks(range(grid.shape[1]), [str(x) for x in grid.columns])
            fig.colorbar(im, ax=ax)
        f = self.frame[self.frame.category == "all"]
        if not f.empty:
            ax = axes[1, 1]
            metric = self.provenance.get("headline_metric") or f.metric.iloc[0]
            g = f[f.metric == metric]
            ax.errorbar(range(len(g)), g.value, yerr=[g.value - g.ci_low, g.ci_high - g.value], fmt="o", capsize=4)
            ax.set_xticks(range(len(g)), g.condition)
            ax.set(title=f"4. {metric} on held-out items (95% CI)", ylabel=metric)
        fig.suptitle(f"mechanistic audit: {self.provenance.get('probe')} on {model_name(self.provenance)}")
        fig.tight_layout()
        return fig

    def _repr_html_(self) -> str:
        parts = [f"<h4>Mechanistic audit: {self.provenance.get('probe')} on {model_name(self.provenance)}</h4>",
                 "<b>Before / after (held-out items)</b>", self.summary()._repr_html_(),
                 "<b>1. Split of the log-likelihood difference</b>", self.decomposition_summary._repr_html_(),
                 f"<b>3. Interventions</b>: heads ablated {self.heads}; steering {self.steering}"]
        return "".join(parts)

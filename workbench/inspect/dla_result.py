"""The result of direct logit attribution on either backend: direct_logit_attribution (hooks,
:mod:`workbench.inspect.dla`) and graph_dla (llama.cpp's graph, :mod:`workbench.inspect.graph_dla`)
both build it, and ``dla`` sends a model on llama.cpp on to ``graph_dla``, so it sits below both.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from workbench.display import show_token
from workbench.errors import InvalidInputError
from workbench.results import Result

# rows of the coarse decomposition (the sum of these is the logit difference); "head" and
# "attn_bias" rows refine "attn" (per layer, heads + attn_bias = attn)
BLOCK_COMPONENTS = ("embed", "pos_embed", "attn", "mlp", "final_norm_bias", "unembed_bias")


@dataclass
class DLAResult(Result):
    """``frame``: component, layer, head, contribution (logit units, float).

    components: ``embed`` (GPT-2: token embedding only, and ``pos_embed`` its position
    embedding), ``attn`` and ``mlp`` per layer, ``head`` per layer and head, ``attn_bias`` per
    layer (the output projection's bias, where it has one), ``final_norm_bias`` (LayerNorm's
    beta) and ``unembed_bias``. ``blocks()`` (every row but head/attn_bias) sums to ``total``;
    in each layer the head rows plus attn_bias sum to the attn row.

    ``total``: the real logit (difference) of the clean run; ``error``: reconstructed sum minus
    ``total``.
    """

    total: float = 0.0
    error: float = 0.0

    def blocks(self) -> pd.DataFrame:
        return self.frame[self.frame["component"].isin(BLOCK_COMPONENTS)].reset_index(drop=True)

    def heads(self) -> pd.DataFrame:
        return self.frame[self.frame["component"] == "head"].reset_index(drop=True)

    def summary(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` largest contributions by size, at the finest level (heads instead of whole
        attention blocks), with their share of the total."""
        fine = self.frame[self.frame["component"] != "attn"]
        top = fine.reindex(fine["contribution"].abs().sort_values(ascending=False).index).head(k)
        top = top.assign(share=top["contribution"] / self.total if self.total else float("nan"))
        return top.reset_index(drop=True)

    def plot(self, ax=None, level: str = "blocks"):
        """Bar chart of the contributions: ``level="blocks"`` (embed, attn/MLP per layer) or
        ``"heads"`` (a layer x head heat map with a colour bar)."""
        import matplotlib.pyplot as plt
        prov = self.provenance
        what = prov.get("quantity", "logit")
        if prov.get("target") is not None:  # the tokens as every plot shows them (␣ for a space)
            what = f"logit[{show_token(prov['target'])}]" + (
                f" - logit[{show_token(prov['baseline'])}]" if prov.get("baseline") is not None else "")
        if level == "heads":
            grid = self.heads().pivot(index="layer", columns="head", values="contribution")
            if ax is None:
                _, ax = plt.subplots(figsize=(1.5 + 0.45 * grid.shape[1], 1.2 + 0.35 * grid.shape[0]))
            lim = float(grid.abs().to_numpy().max()) or 1.0
            im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="RdBu", vmin=-lim, vmax=lim)
            ax.set(xlabel="head", ylabel="layer", title=f"direct logit attribution per head: {what}")
            ax.figure.colorbar(im, ax=ax, label="contribution (logits)")
            return ax
        if level != "blocks":
            raise InvalidInputError(f"level must be 'blocks' or 'heads', got {level!r}")
        b = self.blocks()
        labels = [c if pd.isna(layer) else f"{c} {int(layer)}" for c, layer in zip(b["component"], b["layer"])]
        if ax is None:
            _, ax = plt.subplots(figsize=(max(5.0, 0.3 * len(b)), 3.5))
        ax.bar(range(len(b)), b["contribution"], color=["tab:red" if v < 0 else "tab:blue" for v in b["contribution"]])
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(b)), labels, rotation=90, fontsize=8)
        ax.set(ylabel="contribution (logits)", title=f"direct logit attribution: {what} = {self.total:.3g}")
        return ax

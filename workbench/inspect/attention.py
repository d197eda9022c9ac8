"""Attention patterns per layer and head, as a tidy frame and heatmaps."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from workbench.display import show_token
from workbench.errors import InvalidInputError
from workbench.inspect.capture import capture
from workbench.results import Result
from workbench.provenance import record


@dataclass
class AttentionResult(Result):
    """``patterns[layer]``: tensor [heads, query, key] for the text; ``frame``: one row per
    (layer, head, query, key) with the tokens and the weight; ``notes`` says whether the
    attention implementation had to be switched to eager."""

    patterns: dict = None
    tokens: list = None
    notes: list = None

    def pattern(self, layer: int, head: int) -> torch.Tensor:
        return self.patterns[layer][head]

    def summary(self) -> pd.DataFrame:
        """Per layer and head: mean entropy of the rows, and how much weight goes to the first
        token (an "attention sink") and to the previous token."""
        rows = []
        for layer, p in self.patterns.items():
            ent = -(p.clamp_min(1e-12).log() * p).sum(-1).mean(-1)
            first = p[:, :, 0].mean(-1)
            prev = torch.diagonal(p, offset=-1, dim1=1, dim2=2).mean(-1) if p.shape[-1] > 1 else torch.zeros(p.shape[0])
            for h in range(p.shape[0]):
                rows.append(dict(layer=layer, head=h, entropy=float(ent[h]), to_first=float(first[h]), to_previous=float(prev[h])))
        return pd.DataFrame(rows)

    def plot(self, layer: int = 0, head: int | None = None, ax=None):
        """Heatmap of one head (or, with ``head=None``, a grid of all heads of ``layer``)."""
        import matplotlib.pyplot as plt
        p = self.patterns[layer]
        heads = range(p.shape[0]) if head is None else [head]
        if ax is None:
            cols = min(4, len(heads))
            rows = -(-len(heads) // cols)
            fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
            axes = axes.ravel()
        else:
            axes, fig = [ax], ax.figure
        labels = [show_token(t)[:10] for t in self.tokens]
        im = None
        for a, h in zip(axes, heads):
            im = a.imshow(p[h].numpy(), vmin=0, vmax=1, cmap="Blues")
            a.set_title(f"L{layer} H{h}", fontsize=11)
            a.set_xticks(range(len(labels)), labels, rotation=90, fontsize=9)
            a.set_yticks(range(len(labels)), labels, fontsize=9)
            a.set(xlabel="key", ylabel="query")
        for a in list(axes)[len(heads):]:
            a.axis("off")
        fig.tight_layout()
        fig.colorbar(im, ax=list(axes[:len(heads)]), label="attention weight (0..1)")
        return fig


def attention(model, text: str, layers=None) -> AttentionResult:
    """Attention probabilities of every head in ``layers`` (default all) for one text.

    Fused attention kernels (sdpa/flash) do not expose the probabilities, so the model runs with
    eager attention for this call when needed (``notes`` say so; restored after).

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> res = attention(tiny_model("gpt2"), "The cat sat")
    >>> float(res.pattern(0, 0).sum(-1)[0])  # each query's weights sum to 1
    1.0
    """
    if not isinstance(text, str) or not text:
        raise InvalidInputError("text must be a non-empty string")
    cache = capture(model, [text], sites=["attn_pattern"], layers=layers)
    tokens = cache.str_tokens[0]
    patterns = {layer: cache["attn_pattern", layer][0].float() for layer in cache.layers("attn_pattern")}
    rows = []
    for layer, p in patterns.items():
        H, Q, K = p.shape
        hh, qq, kk = torch.meshgrid(torch.arange(H), torch.arange(Q), torch.arange(K), indexing="ij")
        rows.append(pd.DataFrame({"layer": layer, "head": hh.ravel().numpy(), "query_pos": qq.ravel().numpy(),
                                  "key_pos": kk.ravel().numpy(), "weight": p.ravel().numpy()}))
    frame = pd.concat(rows, ignore_index=True)
    frame["query_token"] = [tokens[i] for i in frame["query_pos"]]
    frame["key_token"] = [tokens[i] for i in frame["key_pos"]]
    return AttentionResult(frame, {**record(model), "state_id": model.state_id, "text": text},
                           patterns=patterns, tokens=tokens, notes=cache.notes)

"""Representation similarity between the layers of two models: linear CKA (Kornblith et al. 2019)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from workbench.errors import InvalidInputError
from workbench.inspect.capture import capture
from workbench.results import Result


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same n examples: x [n, d1], y [n, d2]."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    num = (y.T @ x).norm() ** 2
    den = (x.T @ x).norm() * (y.T @ y).norm()
    return float(num / den) if den > 0 else float("nan")


@dataclass
class CKAResult(Result):
    """``frame``: layer_a, layer_b, cka (1 = same representation up to rotation and scale)."""

    def summary(self) -> pd.DataFrame:
        """For each layer of model A, the most similar layer of model B."""
        f = self.frame
        return f.loc[f.groupby("layer_a")["cka"].idxmax()].reset_index(drop=True)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        grid = self.frame.pivot(index="layer_a", columns="layer_b", values="cka")
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4))
        im = ax.imshow(grid.to_numpy(), origin="lower", vmin=0, vmax=1, cmap="magma", aspect="auto")
        ax.set(xlabel=f"layer of {self.provenance.get('model_b')}", ylabel=f"layer of {self.provenance.get('model_a')}",
               title=f"linear CKA of {self.provenance.get('site')} ({self.provenance.get('pooling')})")
        ax.figure.colorbar(im, ax=ax)
        return ax


def _reps(model, texts, site, pooling):
    cache = capture(model, texts, sites=[site], progress=False)
    mask = cache.attention_mask.bool()
    out = {}
    for layer in cache.layers(site):
        x = cache[site, layer].float()
        if pooling == "mean":
            m = mask[..., None].float()
            out[layer] = (x * m).sum(1) / m.sum(1)
        elif pooling == "last":
            out[layer] = x[torch.arange(len(x)), mask.sum(1) - 1]
        else:
            out[layer] = x[mask]
    return out, cache.tokens[mask]


def cka(model_a, model_b, texts, site: str = "resid_post", pooling: str = "mean") -> CKAResult:
    """Linear CKA between every layer of ``model_a`` and every layer of ``model_b`` on ``texts``.

    ``pooling``: "mean" (each text = mean over its real tokens; works across tokenizers, e.g.
    SmolLM2 vs Gemma 3), "last" (last real token), or "tokens" (every token is an example; needs
    both models to tokenise the texts identically, e.g. a base model and its instruct version).
    Pass the same model twice for a model's self-similarity.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> m = tiny_model("llama")
    >>> res = cka(m, m, ["The cat sat.", "A dog ran home.", "Paris is big.", "One two three."])
    >>> round(float(res.to_frame().query("layer_a == layer_b")["cka"].min()), 6)
    1.0
    """
    if pooling not in ("mean", "last", "tokens"):
        raise InvalidInputError(f"pooling must be 'mean', 'last' or 'tokens', got {pooling!r}")
    if isinstance(texts, str) or len(texts) < 2:
        raise InvalidInputError("cka needs a list of at least 2 texts (more is better: CKA compares the "
                                "similarity structure across examples)")
    ra, ta = _reps(model_a, list(texts), site, pooling)
    rb, tb = _reps(model_b, list(texts), site, pooling)
    if pooling == "tokens" and not torch.equal(ta, tb):
        raise InvalidInputError("pooling='tokens' needs both models to tokenise the texts identically; they do not. "
                                "Use pooling='mean' or 'last'.")
    rows = [dict(layer_a=la, layer_b=lb, cka=linear_cka(xa, xb)) for la, xa in ra.items() for lb, xb in rb.items()]
    return CKAResult(pd.DataFrame(rows), {"model_a": model_a.name, "model_b": model_b.name, "site": site,
                                          "pooling": pooling, "n_texts": len(texts),
                                          "state_ids": [model_a.state_id, model_b.state_id]})

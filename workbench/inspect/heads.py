"""Head types: previous-token, first-token (attention sink), duplicate-token and induction
scores for every attention head, from attention patterns on repeated random token sequences.

Each input is ``[BOS] r_1 .. r_n r_1 .. r_n`` with ``r`` random tokens (seeded; special tokens
never drawn; BOS only if the tokenizer has one). A score is an average attention weight, so it
lies in [0, 1]:

* ``previous_token``: from each token to the one just before it (every query after the first);
* ``first_token``: from each token to position 0 (every query after the first); a head that
  parks its attention there is an "attention sink";
* ``duplicate_token``: from each token of the second copy to its earlier occurrence;
* ``induction``: from each token of the second copy to the token *after* its earlier
  occurrence, the stripe at offset ``1 - n`` of the pattern, as TransformerLens / ARENA define
  the induction score (here restricted to the second copy's queries, where it is defined).

A head that spreads its attention evenly scores about ``1 / (query position + 1)`` on each, so
small numbers mean "not this type", and an induction head scores near 1.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd
import torch

from workbench.inspect.capture import capture
from workbench.inspect.sites import adapter
from workbench.results import Result
from workbench.validate import Int, checked
from workbench.models.checks import check_model
from workbench.provenance import record

KINDS = ("previous_token", "first_token", "duplicate_token", "induction")


@dataclass
class HeadScoresResult(Result):
    """``frame``: layer, head, kind, score (one row per head and kind)."""

    def top(self, kind: str = "induction", k: int = 5) -> pd.DataFrame:
        """The ``k`` heads with the highest ``kind`` score."""
        f = self.frame[self.frame["kind"] == kind]
        return f.sort_values("score", ascending=False).head(k).reset_index(drop=True)

    def summary(self, k: int = 3) -> pd.DataFrame:
        """The top ``k`` heads of each kind."""
        return pd.concat([self.top(kind, k) for kind in KINDS], ignore_index=True)

    def plot(self, axes=None):
        """One layer x head heat map per kind, each with a colour bar (scores in [0, 1])."""
        import matplotlib.pyplot as plt
        ad_layers = int(self.frame["layer"].max()) + 1
        n_heads = int(self.frame["head"].max()) + 1
        if axes is None:
            w, h = 1.6 + 0.3 * n_heads, 1.2 + 0.22 * ad_layers
            fig, axes = plt.subplots(1, len(KINDS), figsize=(len(KINDS) * w, h), squeeze=False)
            axes = axes[0]
        for ax, kind in zip(axes, KINDS):
            grid = self.frame[self.frame["kind"] == kind].pivot(index="layer", columns="head", values="score")
            im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
            ax.set(title=kind.replace("_", " "), xlabel="head", ylabel="layer")
            ax.figure.colorbar(im, ax=ax, label="score")
        axes[0].figure.tight_layout()
        return axes[0].figure


def random_repeated_tokens(model, seq_len: int, n_seqs: int, seed: int) -> torch.Tensor:
    """``[n_seqs, (1) + 2*seq_len]`` ids: random non-special tokens repeated once, after BOS if the
    tokenizer has one."""
    tok = model.tokenizer
    special = set(tok.all_special_ids)
    pool = torch.tensor([i for i in range(len(tok)) if i not in special])
    g = torch.Generator().manual_seed(seed)
    r = pool[torch.randint(len(pool), (n_seqs, seq_len), generator=g)]
    ids = torch.cat([r, r], dim=1)
    if tok.bos_token_id is not None:
        ids = torch.cat([torch.full((n_seqs, 1), tok.bos_token_id), ids], dim=1)
    return ids


@checked(seq_len=Int(min=2), n_seqs=Int(min=1), seed=Int(min=0), batch_size=Int(min=1))
def head_scores(model, seq_len: int = 40, n_seqs: int = 8, seed: int = 0, layers=None,
                batch_size: int = 8) -> HeadScoresResult:
    """Previous-token, first-token, duplicate-token and induction scores of every head (see the
    module docstring for the definitions), on ``n_seqs`` random sequences of ``seq_len`` tokens
    each shown twice (seeded by ``seed``).

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> res = head_scores(tiny_model("llama"), seq_len=10, n_seqs=2)
    >>> res.to_frame().columns.tolist(), len(res.to_frame())  # 2 layers x 4 heads x 4 kinds
    (['layer', 'head', 'kind', 'score'], 32)
    """
    check_model(model, ("causal",), "head_scores")
    ad = adapter(model)
    ids = random_repeated_tokens(model, seq_len, n_seqs, seed)
    p = ids.shape[1] - 2 * seq_len  # 1 with a BOS, else 0
    window = getattr(ad.config, "sliding_window", None)
    notes = []
    if isinstance(window, int) and seq_len >= window:
        notes.append(f"seq_len={seq_len} is not below the sliding window ({window} tokens) of {model.name}: "
                     "sliding-window layers cannot see the first copy, so their duplicate-token and induction "
                     "scores are 0 by construction; use a smaller seq_len")
        warnings.warn(notes[-1], stacklevel=3)
    cache = capture(model, {"input_ids": ids}, sites=["attn_pattern"], layers=layers, batch_size=batch_size,
                    progress=False)
    rows = []
    for layer in cache.layers("attn_pattern"):
        A = cache["attn_pattern", layer].double()          # [b, heads, query, key]
        scores = {
            "previous_token": A.diagonal(-1, -2, -1),
            "first_token": A[..., 1:, 0],
            "duplicate_token": A.diagonal(-seq_len, -2, -1)[..., p:],
            "induction": A.diagonal(1 - seq_len, -2, -1)[..., p + 1:],
        }
        for kind in KINDS:
            per_head = scores[kind].mean(dim=(0, 2))
            rows += [{"layer": layer, "head": h, "kind": kind, "score": float(s)} for h, s in enumerate(per_head)]
    prov = {**record(model), "fingerprint": model.fingerprint_id, "state_id": model.state_id,
            "architecture": ad.arch, "seq_len": seq_len, "n_seqs": n_seqs, "seed": seed, "bos": bool(p),
            "inputs": "random non-special tokens, repeated once" + (", after BOS" if p else ""),
            "notes": notes + list(cache.notes)}
    return HeadScoresResult(pd.DataFrame(rows, columns=["layer", "head", "kind", "score"]), prov)

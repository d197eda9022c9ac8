"""The object :func:`workbench.capture` returns, and the memory estimate made before capturing."""
from __future__ import annotations

import pandas as pd
import torch

from workbench.display import TokenFrame, show_tokens
from workbench.errors import DoesNotFitError, InvalidInputError
from workbench.provenance import model_name


class ActivationCache:
    """Captured activations, indexed ``cache[site, layer]`` (``cache["logits"]`` for sites
    without layers). Tensors live on the CPU.

    Layout: ``[batch, seq, ...]`` in input order (``attn_pattern``: ``[batch, heads, seq, seq]``).
    Sequences are **right-padded** to the longest one (left-padded in generation mode, where
    ``tokens`` holds prompt + generated tokens and activations cover every position that was
    fed to the model, i.e. all but the last token). Padded positions hold zeros (in generation
    mode: the model's activations for the pad tokens); ``attention_mask``
    says which positions are real. With ``positions=...`` the seq axis holds only those
    positions, listed per row in ``positions`` (``[batch, n_positions]`` token indices).

    Memory: outside generation, the layers of one site are views of one block (``stack(site)``
    copies them out). A tensor kept after the cache is dropped keeps its site's block alive;
    ``.clone()`` it to keep that layer alone.

    Tokens: ``str_tokens`` holds each text's real tokens as the tokenizer spells them (``Ġcat``,
    ``▁cat``: data that round-trips through the tokenizer); ``tokens_text`` and ``token_frame()``
    show them as every table of the package does (:func:`workbench.display.show_token`: ``␣``
    for a space, ``↵`` for a newline).

    Example
    -------
    >>> import workbench as wb
    >>> from workbench.testing import tiny_model
    >>> cache = wb.capture(tiny_model("llama"), ["The cat sat", "A dog"], sites=["resid_post"])
    >>> cache["resid_post", 1].shape[:2] == cache.tokens.shape
    True
    """

    def __init__(self, data: dict, tokens: torch.Tensor, attention_mask: torch.Tensor, str_tokens: list,
                 positions: torch.Tensor | None = None, notes: list | None = None, provenance: dict | None = None):
        self.data = data
        self.tokens = tokens
        self.attention_mask = attention_mask
        self.str_tokens = str_tokens
        self.positions = positions
        self.notes = notes or []
        self.provenance = provenance or {}

    def _key(self, key):
        if isinstance(key, str):
            key = (key, None)
        if not (isinstance(key, tuple) and len(key) == 2):
            raise InvalidInputError(f"index a cache with cache[site, layer] or cache[site], got {key!r}")
        site, layer = key
        if layer is not None and layer < 0:
            layer += self.provenance.get("n_layers", 0)
        return site, layer

    def __getitem__(self, key) -> torch.Tensor:
        k = self._key(key)
        if k not in self.data:
            raise KeyError(f"{key!r} was not captured; this cache holds {sorted(self.keys(), key=str)}. "
                           "Capture again with that site/layer.")
        return self.data[k]

    def __contains__(self, key) -> bool:
        return self._key(key) in self.data

    def keys(self):
        return list(self.data)

    @property
    def tokens_text(self) -> list[list[str]]:
        """Each text's real tokens in display form (``␣cat``, ``↵``; never ``Ġcat``), one list per
        text, in the order of ``str_tokens``.

        >>> import workbench as wb
        >>> from workbench.testing import tiny_model
        >>> cache = wb.capture(tiny_model("gpt2"), ["The cat sat"], sites=["resid_post"], layers=[0])
        >>> cache.str_tokens[0], cache.tokens_text[0]
        (['The', 'Ġc', 'at', 'Ġs', 'at'], ['The', '␣c', 'at', '␣s', 'at'])
        """
        return [show_tokens(row) for row in self.str_tokens]

    def token_frame(self) -> TokenFrame:
        """One row per real token: ``text`` (its index in the input), ``position``, ``id`` and
        ``token``. The ``token`` column keeps the tokenizer's pieces; the table displays them as
        text (a :class:`workbench.display.TokenFrame`).

        >>> import workbench as wb
        >>> from workbench.testing import tiny_model
        >>> cache = wb.capture(tiny_model("gpt2"), ["The cat", "A dog"], sites=["resid_post"], layers=[0])
        >>> cache.token_frame()
           text  position   id token
        0     0         0  277   The
        1     0         1  264    ␣c
        2     0         2  272    at
        3     1         0   34     A
        4     1         1  367  ␣dog
        """
        rows = []
        for text, (pieces, ids, mask) in enumerate(zip(self.str_tokens, self.tokens, self.attention_mask)):
            real = [int(i) for i, m in zip(ids, mask) if m]  # str_tokens lists the real tokens only, in order
            real_positions = [p for p, m in enumerate(mask) if m]
            rows += [dict(text=text, position=p, id=i, token=t) for p, i, t in zip(real_positions, real, pieces)]
        return TokenFrame(rows, columns=["text", "position", "id", "token"])

    @property
    def sites(self) -> list[str]:
        return sorted({s for s, _ in self.data})

    def layers(self, site: str) -> list[int]:
        return sorted(layer for s, layer in self.data if s == site and layer is not None)

    def stack(self, site: str) -> torch.Tensor:
        """All captured layers of ``site`` as one tensor ``[n_layers, ...]`` (in layer order)."""
        return torch.stack([self.data[(site, layer)] for layer in self.layers(site)])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.data.values())

    def _real(self, t: torch.Tensor) -> torch.Tensor:
        """Which [batch, seq] entries of ``t`` are real tokens (not padding)."""
        if self.positions is None and tuple(self.attention_mask.shape) == tuple(t.shape[:2]):
            return self.attention_mask.bool()
        return torch.ones(t.shape[:2], dtype=torch.bool)

    def _mean_norm(self, t: torch.Tensor) -> float:
        """Mean L2 norm per real token of one captured tensor."""
        return float(t.float().reshape(t.shape[0], t.shape[1], -1).norm(dim=-1)[self._real(t)].mean())

    def to_frame(self) -> pd.DataFrame:
        """One row per captured tensor: site, layer, shape, dtype, megabytes, mean L2 norm per
        real token (padding left out; NaN for attention patterns)."""
        rows = []
        for (site, layer), t in self.data.items():
            norm = self._mean_norm(t) if site != "attn_pattern" else float("nan")
            rows.append(dict(site=site, layer=layer, shape=tuple(t.shape), dtype=str(t.dtype).replace("torch.", ""),
                             mb=t.numel() * t.element_size() / 2**20, mean_norm=norm))
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """One row per site: layers captured, megabytes, and the mean norm at the first and last
        captured layer (how the activations grow through the model)."""
        frame = self.to_frame()
        if frame.empty:
            return pd.DataFrame(columns=["site", "n_layers", "mb", "mean_norm_first", "mean_norm_last"])
        frame = frame.assign(order=frame.layer.fillna(-1)).sort_values(["site", "order"])
        return frame.groupby("site", sort=True).agg(
            n_layers=("layer", "count"), mb=("mb", "sum"), mean_norm_first=("mean_norm", "first"),
            mean_norm_last=("mean_norm", "last")).reset_index()

    def plot(self, site: str = "resid_post", ax=None):
        """Mean norm of ``site`` per layer (real tokens only)."""
        import matplotlib.pyplot as plt

        layers = self.layers(site)
        if not layers:
            raise KeyError(f"no layers of {site!r} captured; this cache holds {self.sites}")
        norms = [self._mean_norm(self.data[(site, layer)]) for layer in layers]
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        ax.plot(layers, norms, marker="o")
        ax.set(xlabel="layer", ylabel=f"mean ‖{site}‖", title=f"{model_name(self.provenance)} {site} norm")
        return ax

    def __repr__(self):
        return (f"ActivationCache({len(self.data)} tensors, {self.nbytes / 2**20:.1f} MiB, "
                f"batch={tuple(self.tokens.shape)}, sites={self.sites})")


def estimate_bytes(ad, keys, n_seqs: int, seq_len: int, n_positions: int | None, dtype_bytes: int,
                   batch_size: int, needs_eager: bool, model_bytes_per_el: int = 4) -> dict:
    """Bytes the capture will store (``stored``) and the transient peak of one batch's forward
    (``forward``: logits, MLP and, under eager attention, the score matrices)."""
    P = n_positions if n_positions is not None else seq_len
    stored = 0
    for site, _ in keys:
        if site == "attn_pattern":
            stored += n_seqs * ad.n_heads * P * seq_len * dtype_bytes
        else:
            stored += n_seqs * P * ad.site_width(site) * dtype_bytes
    b = min(batch_size, n_seqs)
    fwd = b * seq_len * (ad.vocab + 6 * ad.d_model + 3 * ad.d_mlp) * model_bytes_per_el
    if needs_eager:
        fwd += 2 * b * ad.n_heads * seq_len * seq_len * model_bytes_per_el
    return {"stored": int(stored), "forward": int(fwd)}


def check_fits(estimate: dict, max_memory: int | None, what_to_narrow: str):
    """Refuse (:class:`DoesNotFitError`) when the estimate exceeds ``max_memory`` bytes
    (default: 90% of the memory available now)."""
    if max_memory is None:
        import psutil
        max_memory = int(0.9 * psutil.virtual_memory().available)
    need = estimate["stored"] + estimate["forward"]
    if need > max_memory:
        raise DoesNotFitError(
            f"capture would need about {need / 2**30:.2f} GiB ({estimate['stored'] / 2**30:.2f} GiB stored + "
            f"{estimate['forward'] / 2**30:.2f} GiB for one batch's forward pass) but {max_memory / 2**30:.2f} GiB "
            f"is available. Narrow it: {what_to_narrow}")
    return need

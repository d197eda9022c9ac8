"""Logit lens: read each layer's residual stream through the model's own final norm and head."""
from __future__ import annotations

import numbers

import pandas as pd
import torch

from workbench.display import show_token
from workbench.errors import InvalidInputError
from workbench.inspect.capture import capture, encode
from workbench.inspect.sites import on_graph_backend, site_adapter
from workbench.validate import Int, check_token_id, checked
from workbench.provenance import record
from workbench.results import ResultFrame


def _target_ids(model, targets) -> list[tuple[str, int]]:
    """Each target string -> its first token id (with a note in the frame if it has more)."""
    tokenizer = model.tokenizer
    out = []
    for t in targets:
        if isinstance(t, numbers.Integral) and not isinstance(t, bool):
            t = check_token_id(model, t, "target id")
            out.append((tokenizer.convert_ids_to_tokens(t), t))
            continue
        if not isinstance(t, str) or not t:
            raise InvalidInputError(f"targets must be non-empty strings or token ids, got {t!r}")
        ids = encode(tokenizer, t, add_special_tokens=False)
        out.append((t, int(ids[0])))
    return out


@checked(k=Int(min=1))
def logit_lens(model, text: str, targets=None, k: int = 5, layers=None, positions=None) -> pd.DataFrame:
    """Per layer and position: the top-``k`` next tokens and the rank/probability of targets.

    Each layer's ``resid_post`` goes through the model's final norm and LM head (Gemma's logit
    soft-capping included; masked LMs: their MLM head), so the last layer reproduces the model's
    own prediction (on ``backend="llama.cpp"``: the GGUF's final norm and output matrix,
    de-quantised to float32 once, so the last layer matches llama.cpp's logits up to its
    kernels' rounding). ``targets``: strings (their first token is used) or token ids; by default the
    target of a position is the token that actually comes next in ``text`` (none at the end; for
    masked LMs the token at the position itself).

    Returns a DataFrame with one row per (layer, position, target): layer, position, token (the
    input token there), top_tokens, top_probs (lists of k), target, target_id, rank (0 = top),
    prob: a :class:`LensFrame` (a DataFrame with the result shape: ``.summary()`` per layer,
    ``.plot()`` the heatmap of :func:`plot_logit_lens`, ``.provenance`` the model and options).

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> df = logit_lens(tiny_model("llama"), "The cat sat on the", targets=[" mat"], k=3)
    >>> sorted(df.layer.unique().tolist()), df.columns[:4].tolist()
    ([0, 1], ['layer', 'position', 'token', 'top_tokens'])
    """
    if not isinstance(text, str) or not text:
        raise InvalidInputError("text must be a non-empty string")
    ad = site_adapter(model)  # llama.cpp: the GGUF's own final norm and output matrix
    tok = model.tokenizer
    if k > ad.vocab:
        raise InvalidInputError(f"k={k} is more than the {ad.vocab} tokens of {model.name}'s vocabulary")
    # targets before the capture: a bad one is refused before any work
    if isinstance(targets, (str, numbers.Integral)):
        targets = [targets]  # one target, not its characters
    given = _target_ids(model, targets) if targets is not None else None
    cache = capture(model, [text], sites=["resid_post"], layers=layers, positions=positions)
    ids = cache.tokens[0]
    pos = cache.positions[0].tolist() if cache.positions is not None else list(range(len(ids)))
    rows = []
    with torch.inference_mode():
        for layer in cache.layers("resid_post"):
            h = cache["resid_post", layer][0].to(model.device, model.dtype)
            probs = ad.unembed(h).float().softmax(-1).cpu()
            topp, topi = probs.topk(k, dim=-1)
            for j, p in enumerate(pos):
                tops = tok.convert_ids_to_tokens(topi[j].tolist())
                base = dict(layer=layer, position=p, token=tok.convert_ids_to_tokens(int(ids[p])),
                            top_tokens=tops, top_probs=[round(float(x), 6) for x in topp[j]])
                if given is None and model.kind != "causal":  # a masked LM predicts the token at p itself
                    nxt = [(tok.convert_ids_to_tokens(int(ids[p])), int(ids[p]))]
                elif given is None:
                    nxt = [(tok.convert_ids_to_tokens(int(ids[p + 1])), int(ids[p + 1]))] if p + 1 < len(ids) else [(None, None)]
                else:
                    nxt = given
                for name, tid in nxt:
                    if tid is None:
                        rows.append({**base, "target": None, "target_id": None, "rank": None, "prob": None})
                        continue
                    pr = probs[j, tid]
                    rows.append({**base, "target": name, "target_id": tid,
                                 "rank": int((probs[j] > pr).sum()), "prob": float(pr)})
    df = LensFrame(rows)
    df.attrs["provenance"] = {**record(model), "state_id": model.state_id, "text": text, "k": k,
                              "targets": None if targets is None else list(map(str, targets)),
                              "readout": "final norm + LM head applied to resid_post of each layer" + (
                                  " (the GGUF's own, de-quantised to float32)" if on_graph_backend(model) else "")}
    return df


class LensFrame(ResultFrame):
    """What :func:`logit_lens` returns: its rows, plus ``.summary()`` (per layer: the targets'
    mean probability, median rank and share ranked first) and ``.plot()`` (the heatmap)."""

    def summary(self) -> pd.DataFrame:
        """layer, n (positions with a target), mean_prob, median_rank, top1 (share of rank 0)."""
        df = pd.DataFrame(self).dropna(subset=["target_id"])
        if df.empty:
            return pd.DataFrame(columns=["layer", "n", "mean_prob", "median_rank", "top1"])
        rank = df["rank"].astype(float)
        return (df.assign(rank=rank, top1=(rank == 0).astype(float), prob=df["prob"].astype(float))
                .groupby("layer").agg(n=("prob", "size"), mean_prob=("prob", "mean"), median_rank=("rank", "median"),
                                      top1=("top1", "mean")).reset_index())

    def default_plot(self, ax=None, **kwargs):
        return plot_logit_lens(self, ax=ax, **kwargs)


def plot_logit_lens(frame: pd.DataFrame, value: str = "prob", target=None, ax=None):
    """Heatmap layer x position of a lens frame's ``prob`` (or ``rank``) for one target
    (default: the first; for the default next-token targets, each position's own next token),
    annotated with the layer's top-1 token."""
    import matplotlib.pyplot as plt
    df = frame
    if df["target"].notna().any() and target is None and df.attrs.get("provenance", {}).get("targets"):
        target = df["target"].dropna().iloc[0]
    if target is not None:
        df = df[df["target"] == target]
    grid = df.pivot_table(index="layer", columns="position", values=value, aggfunc="first")
    top1 = df.drop_duplicates(["layer", "position"]).pivot(index="layer", columns="position", values="top_tokens")
    if ax is None:
        _, ax = plt.subplots(figsize=(1 + 0.9 * grid.shape[1], 0.5 + 0.35 * grid.shape[0]))
    im = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", origin="lower", cmap="viridis" if value == "prob" else "viridis_r")
    for i, layer in enumerate(grid.index):
        for j, p in enumerate(grid.columns):
            ax.text(j, i, show_token(top1.loc[layer, p][0])[:8], ha="center", va="center", fontsize=8, color="w")
    tokens = df.drop_duplicates("position").set_index("position")["token"]
    ax.set_xticks(range(grid.shape[1]), [show_token(tokens.get(p, p)) for p in grid.columns], rotation=60, fontsize=9)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set(xlabel="position (input token)", ylabel="layer",
           title=f"logit lens: {value} of {show_token(target) if target is not None else 'next token'}")
    ax.figure.colorbar(im, ax=ax, label=value)
    return ax

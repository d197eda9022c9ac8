"""Activation patching: run the corrupted prompt with one clean activation put back, and see
how much of the clean behaviour returns."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from workbench.display import show_token
from workbench.errors import InvalidInputError
from workbench.inspect.capture import capture, resolve_sites
from workbench.inspect.hooks import add_edit_hook
from workbench.inspect.metrics import as_metric, baseline, run_groups
from workbench.inspect.sites import adapter
from workbench.results import Result
from workbench.validate import BOOL, Int, checked
from workbench.provenance import record


@dataclass
class PatchingResult(Result):
    """``frame``: one row per (layer, position) or (layer, head): ``value`` (metric after
    patching) and ``normalized`` = (value - corrupted) / (clean - corrupted): 1 means the patch
    restores the clean behaviour fully, 0 not at all."""

    def summary(self) -> pd.DataFrame:
        key = "position" if "position" in self.frame else "head"
        return self.frame.sort_values("normalized", key=abs, ascending=False).head(10)[["layer", key, "normalized", "value"]]

    def plot(self, ax=None, value: str = "normalized"):
        import matplotlib.pyplot as plt
        by_pos = "position" in self.frame
        col = "position" if by_pos else "head"
        grid = self.frame.pivot(index="layer", columns=col, values=value)
        if ax is None:
            _, ax = plt.subplots(figsize=(1.5 + 0.6 * grid.shape[1], 1 + 0.25 * grid.shape[0]))
        lim = float(abs(grid.to_numpy()).max()) or 1.0
        im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="RdBu", vmin=-lim, vmax=lim)
        if by_pos:
            labels = self.frame.drop_duplicates("position").set_index("position")["token"]
            ax.set_xticks(range(grid.shape[1]), [show_token(labels[p]) for p in grid.columns], rotation=60, fontsize=9)
        ax.set(xlabel=col, ylabel="layer", title=f"patching {self.provenance.get('site')} ({value})")
        ax.figure.colorbar(im, ax=ax, label=value)
        return ax


@checked(max_rows=Int(min=1), progress=BOOL)
def patch(model, clean: str, corrupted: str, metric, by: str = "layer_position", site: str = "resid_pre",
          layers=None, max_rows: int = 64, progress: bool = True) -> PatchingResult:
    """Clean-to-corrupted activation patching.

    ``by="layer_position"``: for each layer and prompt position, the corrupted run gets the clean
    ``site`` activation (resid_pre, resid_post, attn_out or mlp_out) at that one position.
    ``by="head"``: for each layer and head, the corrupted run gets the clean output of that head
    (site ``z``) at every position. ``metric``: a :class:`~workbench.inspect.metrics.Metric`, a
    continuation, or a (good, bad) pair. Clean and corrupted prompts must have the same number of
    tokens (so positions correspond). Runs several patches per forward pass (at most ``max_rows``
    sequences); a progress bar counts layers.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> res = patch(tiny_model("llama"), "The doctor said that he", "The nurse said that he", (" was", " is"))
    >>> res.to_frame().columns[:4].tolist()
    ['layer', 'position', 'token', 'corrupted_token']
    """
    metric = as_metric(metric)
    if by not in ("layer_position", "head"):
        raise InvalidInputError(f"by must be 'layer_position' or 'head', got {by!r}")
    if by == "head":
        site = "z"
    elif site not in ("resid_pre", "resid_post", "attn_out", "mlp_out"):
        raise InvalidInputError(f"position patching works on resid_pre, resid_post, attn_out or mlp_out, got {site!r}")
    cu, xu = metric.unit(model, clean), metric.unit(model, corrupted)
    if cu.prompt_len != xu.prompt_len or cu.input_ids.shape != xu.input_ids.shape:
        raise InvalidInputError(
            f"clean and corrupted prompts tokenise to {cu.prompt_len} and {xu.prompt_len} tokens; patching needs "
            "them aligned: change words that tokenise to the same number of tokens")
    keys = resolve_sites(model, [site], layers)
    cache = capture(model, {"input_ids": cu.input_ids, "attention_mask": cu.attention_mask},
                    sites=[site], layers=[k[1] for k in keys], batch_size=len(cu.input_ids), progress=False)
    m_clean, m_corr = baseline(model, metric, cu), baseline(model, metric, xu)
    P = cu.prompt_len
    tok = model.tokenizer.convert_ids_to_tokens
    rows = []
    from tqdm.auto import tqdm
    for _, layer in tqdm(keys, desc="patching", unit="layer", disable=not progress or len(keys) < 4):
        src = cache[site, layer].to(model.device, model.dtype)   # [R, S, ...]
        n = P if by == "layer_position" else adapter(model).n_heads

        def install(groups, layer=layer, src=src):
            def edit(x):
                x = x.clone().unflatten(0, (len(groups), -1))    # [G, R, S, ...]
                g = torch.arange(len(groups), device=x.device)
                idx = torch.tensor(list(groups), device=x.device)
                if by == "layer_position":                       # group g patches position groups[g]
                    x[g, :, idx] = src[:, idx].transpose(0, 1)
                else:                                            # group g patches head groups[g]
                    x[g, :, :, idx] = src[:, :, idx].permute(2, 0, 1, 3)
                return x.flatten(0, 1)
            return [add_edit_hook(model, site, layer, edit)]

        values = run_groups(model, metric, xu, n, install, {"kind": "patching", "site": site, "layer": layer},
                            max_rows=max_rows)
        for i, v in enumerate(values.tolist()):
            row = dict(layer=layer, value=v)
            if by == "layer_position":
                row.update(position=i, token=tok(int(cu.input_ids[0, i])), corrupted_token=tok(int(xu.input_ids[0, i])))
            else:
                row.update(head=i)
            rows.append(row)
    frame = pd.DataFrame(rows)
    denom = m_clean - m_corr
    frame["normalized"] = (frame["value"] - m_corr) / denom if denom != 0 else float("nan")
    cols = ["layer", "position", "token", "corrupted_token"] if by == "layer_position" else ["layer", "head"]
    frame = frame[cols + ["value", "normalized"]]
    return PatchingResult(frame, {**record(model), "state_id": model.state_id, "clean": clean, "corrupted": corrupted,
                                  "metric": metric.describe(), "metric_clean": m_clean, "metric_corrupted": m_corr,
                                  "site": site, "by": by})

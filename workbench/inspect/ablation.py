"""Ablation: remove a component (heads, neurons, attention/MLP blocks, whole layers) and measure
the change in a metric. Zero, mean and resample ablation."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pandas as pd
import torch

from workbench.errors import InvalidInputError
from workbench.inspect.capture import capture
from workbench.inspect.hooks import add_edit_hook, intervention
from workbench.inspect.metrics import as_metric, baseline, run_groups
from workbench.inspect.sites import adapter
from workbench.results import Result
from workbench.validate import BOOL, Int, checked
from workbench.inspect.sites import check_head
from workbench.provenance import record

COMPONENTS = {"head": ("z",), "neuron": ("mlp_hidden",), "attn": ("attn_out",), "mlp": ("mlp_out",),
              "layer": ("attn_out", "mlp_out")}
METHODS = ("zero", "mean", "resample")


@dataclass
class AblationResult(Result):
    """``frame``: component, layer, unit (head/neuron index; None for blocks), method,
    metric_clean, metric_ablated, effect (= ablated - clean)."""

    def summary(self) -> pd.DataFrame:
        return self.frame.reindex(self.frame["effect"].abs().sort_values(ascending=False).index).head(10)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        f = self.frame
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        if f["unit"].notna().any() and f["component"].iloc[0] == "head":
            grid = f.pivot(index="layer", columns="unit", values="effect")
            lim = float(grid.abs().to_numpy().max()) or 1.0
            im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="RdBu", vmin=-lim, vmax=lim)
            ax.set(xlabel="head", ylabel="layer")
            ax.figure.colorbar(im, ax=ax, label="effect on metric")
        else:
            labels = [f"L{r.layer}" + ("" if pd.isna(r.unit) else f".{int(r.unit)}") for r in f.itertuples()]
            ax.bar(labels, f["effect"])
            ax.set(ylabel="effect on metric")
            ax.tick_params(axis="x", rotation=90, labelsize=7)
        ax.set_title(f"{f['method'].iloc[0]} ablation of {f['component'].iloc[0]}s: {self.provenance.get('metric')}")
        return ax


def _units(ad, component, layers, units):
    layers = list(range(ad.n_layers)) if layers is None else [ad.check_layer(l) for l in ([layers] if isinstance(layers, int) else layers)]
    if component in ("attn", "mlp", "layer"):
        return [(layer, None) for layer in layers]
    if units is not None:
        out = []
        for u in units:
            layer, i = u if isinstance(u, tuple) else (None, u)
            for l in ([ad.check_layer(layer)] if layer is not None else layers):
                out.append((l, int(i)))
        size = ad.n_heads if component == "head" else ad.d_mlp
        bad = [u for u in out if not 0 <= u[1] < size]
        if bad:
            raise InvalidInputError(f"{component} indices {bad[:3]} out of range (this model has {size} per layer)")
        return out
    if component == "neuron":
        raise InvalidInputError(f"neuron ablation needs units=[(layer, neuron), ...] or neuron indices with layers=; "
                                f"ablating all {ad.d_mlp} neurons of every layer one by one is rarely what you want")
    return [(layer, h) for layer in layers for h in range(ad.n_heads)]


def _replacements(model, sites, layers, method, reference, seq_len, n_samples, seed):
    """Per (site, layer): the tensor that replaces the activation, one per sample.
    zero: 0; mean: mean over the reference texts' real tokens; resample: for each position, the
    activation at a random real token of a random reference text."""
    if method == "zero":
        return {(s, l): [0.0] for s in sites for l in layers}, 1
    if not reference:
        raise InvalidInputError(f"{method} ablation needs reference=[texts] to take activations from "
                                "(e.g. other prompts of the same task)")
    cache = capture(model, reference, sites=list(sites), layers=sorted(set(layers)), progress=False)
    mask = cache.attention_mask.bool()
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for s in sites:
        for l in set(layers):
            acts = cache[s, l][mask]                       # [n_real_tokens, ...]
            if method == "mean":
                out[(s, l)] = [acts.mean(0).to(model.device, model.dtype)]
            else:
                out[(s, l)] = [acts[torch.randint(len(acts), (seq_len,), generator=gen)].to(model.device, model.dtype)
                               for _ in range(n_samples)]
    return out, (1 if method == "mean" else n_samples)


@checked(n_samples=Int(min=1), seed=Int(min=0), max_rows=Int(min=1), progress=BOOL)
def ablate(model, prompt: str, metric, component: str = "head", method: str = "zero", layers=None, units=None,
           reference=None, n_samples: int = 4, seed: int = 0, max_rows: int = 64, progress: bool = True) -> AblationResult:
    """Ablate each unit of ``component`` in turn and report the metric's change.

    ``component``: "head" (one attention head's output, all positions), "neuron" (one MLP neuron;
    give ``units=[(layer, i), ...]``), "attn"/"mlp" (the block's whole output at a layer) or
    "layer" (both). ``method``: "zero", "mean" (the mean activation over ``reference`` texts) or
    "resample" (activations of random tokens from ``reference``, averaged over ``n_samples``
    draws, seeded). ``metric``: a Metric, a continuation, or a (good, bad) pair.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> res = ablate(tiny_model("gpt2"), "The doctor said that", (" he", " she"), component="head")
    >>> len(res.to_frame())  # 2 layers x 4 heads
    8
    """
    if component not in COMPONENTS:
        raise InvalidInputError(f"component must be one of {list(COMPONENTS)}, got {component!r}")
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    metric = as_metric(metric)
    ad = adapter(model)
    unit = metric.unit(model, prompt)
    todo = _units(ad, component, layers, units)
    sites = COMPONENTS[component]
    for s in sites:
        ad.hook_point(s, todo[0][0])  # unsupported sites fail here, before any work
    repl, n_draws = _replacements(model, sites, [l for l, _ in todo], method, reference, unit.input_ids.shape[1],
                                  n_samples, seed)
    clean = baseline(model, metric, unit)

    def install_for(draw):
        def install(groups):
            plan = {}                                          # (site, layer) -> [(g_local, unit index)]
            for g_local, g in enumerate(groups):
                layer, u = todo[g]
                for s in sites:
                    plan.setdefault((s, layer), []).append((g_local, u))
            handles = []
            for (s, layer), targets in plan.items():
                r = repl[(s, layer)][draw]

                def edit(x, targets=targets, r=r, s=s):
                    # x: [G, R, S, ...]; r: 0.0, a per-token mean, or [S, ...] resampled tokens
                    x = x.clone().unflatten(0, (len(groups), -1))
                    for g_local, u in targets:
                        if u is None:
                            x[g_local] = r
                        else:
                            x[g_local, :, :, u] = r if not torch.is_tensor(r) else r[..., u, :] if s == "z" else r[..., u]
                    return x.flatten(0, 1)
                handles.append(add_edit_hook(model, s, layer, edit))
            return handles
        return install

    desc = {"kind": "ablation", "component": component, "method": method}
    vals = torch.stack([run_groups(model, metric, unit, len(todo), install_for(d), desc, max_rows, progress) for d in range(n_draws)]).mean(0)
    frame = pd.DataFrame({"component": component, "layer": [l for l, _ in todo], "unit": [u for _, u in todo],
                          "method": method, "metric_clean": clean, "metric_ablated": vals.tolist()})
    frame["effect"] = frame["metric_ablated"] - frame["metric_clean"]
    return AblationResult(frame, {**record(model), "state_id": model.state_id, "prompt": prompt,
                                  "metric": metric.describe(), "component": component, "method": method,
                                  "reference": list(reference) if reference else None, "n_draws": n_draws, "seed": seed})


@contextlib.contextmanager
def ablated_heads(model, heads, method: str = "zero"):
    """Keep ``heads`` ([(layer, head)]) zero-ablated (their output ``z`` set to 0 at every position)
    while the block runs, registered in ``model.interventions`` so scores are never cached across it.
    Unlike :func:`ablate`, which measures one component at a time, this keeps a set of heads
    removed for whatever runs inside (a whole probe, say).

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> m = tiny_model("llama")
    >>> with ablated_heads(m, [(0, 1), (1, 0)]) as desc:
    ...     desc["heads"]
    [[0, 1], [1, 0]]
    """
    if method != "zero":
        raise InvalidInputError(f"ablated_heads keeps only zero ablation active, got method={method!r}; for mean "
                                "or resample ablation of one component at a time use workbench.inspect.ablate")
    if isinstance(heads, (str, bytes)) or not hasattr(heads, "__iter__"):
        raise InvalidInputError(f"heads must be a list of (layer, head) pairs, got {heads!r}")
    pairs = []
    for h in heads:
        if not (isinstance(h, (tuple, list)) and len(h) == 2):
            raise InvalidInputError(f"heads must be a list of (layer, head) pairs; {h!r} is not one")
        pairs.append(check_head(model, *h))  # every index checked before any hook goes in
    by_layer = {}
    for layer, head in pairs:
        by_layer.setdefault(layer, []).append(head)
    handles = []

    def make(hs):
        def edit(z):                       # z: [batch, seq, heads, head_dim]
            z = z.clone()
            z[:, :, hs] = 0
            return z
        return edit
    try:
        for layer, hs in by_layer.items():
            handles.append(add_edit_hook(model, "z", layer, make(hs)))
    except Exception:
        for h in handles:
            h.remove()
        raise
    desc = {"kind": "ablation", "component": "head", "method": method,
            "heads": sorted([l, h] for l, h in pairs)}
    with intervention(model, desc, handles):
        yield desc

"""Sanity checks shown beside every attribution.

* Completeness: attributions that are complete by construction (integrated gradients, Shapley
  values) sum to ``logp(target | prompt) - logp(target | all features ablated)``. The gap says how
  far the numbers are from that (for integrated gradients it shrinks with ``n_steps``). Feature
  ablation is not complete (each token is removed alone), so its gap is reported but not judged.
* Randomised model (Adebayo et al., 2018, "Sanity checks for saliency maps"): the same method on a
  copy of the model whose weights are re-drawn at random. An attribution that barely changes
  (high rank correlation) is explaining the input, not the model.
"""
from __future__ import annotations

import copy
import weakref

import numpy as np
import pandas as pd
import torch

from workbench.attribution.inputs import Problem, target_logprob
from workbench.models.model import input_device

# Heuristic thresholds, stated in the report so a reader can disagree with them.
COMPLETENESS_RTOL = 0.05        # |gap| <= 5% of |delta| (+ 1e-3 absolute)
RANDOM_RHO_MAX = 0.5            # rank correlation with the randomised model's attributions

_RANDOM_COPIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def randomized_copy(hf, seed: int = 0):
    """A deep copy of ``hf`` with every parameter tensor re-drawn from a normal distribution with
    that tensor's own mean and standard deviation (so scales, e.g. of norms, stay plausible), and
    without any hooks the original carries (steering, ablation).
    Cached per model and seed: the copy costs the model's memory once, not per call."""
    per_model = _RANDOM_COPIES.setdefault(hf, {})
    if seed not in per_model:
        rnd = copy.deepcopy(hf)
        for module in rnd.modules():   # a copy made under steering/ablation must not inherit its hooks
            for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                          "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called"):
                getattr(module, hooks, {}).clear()
            # transformers installs its output-capturing hooks once per model and marks it: the
            # mark must go with the hooks, or hidden states (which LLaVA's vision tower feeds its
            # projector from) are never recorded on the copy
            module.__dict__.pop("_output_capturing_hooks_installed", None)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in rnd.parameters():   # tied weights appear once, and stay tied
                src = p.detach().float()
                std = float(src.std()) if p.numel() > 1 else 0.0
                new = torch.randn(p.shape, generator=gen) * std + float(src.mean())
                p.copy_(new.to(p.dtype))
        rnd.eval()
        per_model[seed] = rnd
    return per_model[seed]


def endpoint_logprobs(hf, problem: Problem) -> tuple[float, float]:
    """Target log-probability with the prompt as given, and with every feature ablated."""
    device = input_device(hf)
    rows = torch.stack([problem.ids, problem.baseline_ids()]).to(device)
    with torch.no_grad():
        lp = target_logprob(hf, problem, rows)
    return float(lp[0]), float(lp[1])


def sanity_frame(method: str, attribution: np.ndarray, lp_input: float, lp_baseline: float,
                 random_attribution: np.ndarray | None) -> pd.DataFrame:
    """One row per check: check, value, reference, ok, note."""
    delta = lp_input - lp_baseline
    total = float(np.sum(attribution))
    gap = total - delta
    complete = method in ("integrated_gradients", "shapley_sampling")
    rows = [{
        "check": "completeness", "value": total, "reference": delta,
        "ok": bool(abs(gap) <= COMPLETENESS_RTOL * abs(delta) + 1e-3) if complete else None,
        "note": (f"sum of attributions vs logp(target|prompt) - logp(target|all ablated); gap {gap:+.4g}"
                 + ("" if complete else "; feature ablation is not complete by construction, not judged")
                 + ("; integrated gradients has not converged: raise n_steps (the path from the baseline "
                    "may be rough) or try another baseline" if method == "integrated_gradients"
                    and abs(gap) > COMPLETENESS_RTOL * abs(delta) + 1e-3 else "")),
    }]
    if random_attribution is not None:
        if len(attribution) > 1 and np.ptp(attribution) > 0 and np.ptp(random_attribution) > 0:
            from scipy.stats import spearmanr
            rho = float(spearmanr(attribution, random_attribution).statistic)
        else:
            rho = float("nan")
        rows.append({
            "check": "randomised model", "value": rho, "reference": RANDOM_RHO_MAX,
            "ok": None if np.isnan(rho) else bool(rho < RANDOM_RHO_MAX),
            "note": "Spearman rank correlation with the attributions of a weight-randomised copy; "
                    f"should be low (< {RANDOM_RHO_MAX}, heuristic)",
        })
    return pd.DataFrame(rows)

"""The attribution methods, run by captum on a batched objective.

captum 0.9's ``LLMAttribution`` evaluates one perturbation per forward pass (its forward
functions build a batch of one), and ``LLMGradientAttribution`` runs integrated gradients once per
target token without an attention mask and for causal LMs only. So the workbench uses captum's
core ``FeatureAblation``, ``ShapleyValueSampling`` and ``LayerIntegratedGradients`` on the same
objective for every method: the target's total log-probability for a batch of token-id rows
(:func:`workbench.attribution.inputs.target_logprob`). Perturbations are evaluated
``batch_size`` at a time, which is what makes ablation on a 20-token prompt take seconds.
"""
from __future__ import annotations

import torch

from workbench.attribution.inputs import Problem, target_logprob
from workbench.models.model import input_device

METHODS = ("feature_ablation", "shapley_sampling", "integrated_gradients")
ALIASES = {"shapley": "shapley_sampling", "shapley_value_sampling": "shapley_sampling",
           "ig": "integrated_gradients", "layer_integrated_gradients": "integrated_gradients",
           "ablation": "feature_ablation"}


def _on_features(hf, problem: Problem):
    """Objective over the feature tokens only: [k, n] ids -> [k] target log-probabilities."""
    full = problem.ids.to(input_device(hf))
    feats = problem.features.to(full.device)

    def forward(free_ids: torch.Tensor) -> torch.Tensor:
        rows = full.expand(free_ids.shape[0], -1).clone()
        rows[:, feats] = free_ids.to(full.dtype)
        return target_logprob(hf, problem, rows)
    return forward


def run_method(hf, problem: Problem, method: str, batch_size: int, n_samples: int = 25,
               n_steps: int = 64, seed: int = 0, progress: bool = False) -> dict:
    """Attributions of the target log-probability to each feature token.

    Returns ``{"attribution": Tensor[n], "n_evals": int, "convergence_delta": float|None}``.
    """
    from captum.attr import FeatureAblation, LayerIntegratedGradients, ShapleyValueSampling

    device = input_device(hf)
    if method in ("feature_ablation", "shapley_sampling"):
        forward = _on_features(hf, problem)
        x = problem.ids[problem.features].unsqueeze(0).to(device)
        n = x.shape[1]
        with torch.no_grad():
            if method == "feature_ablation":
                attr = FeatureAblation(forward).attribute(
                    x, baselines=problem.baseline_id, perturbations_per_eval=batch_size,
                    show_progress=progress)
                n_evals = n + 1
            else:
                # captum draws the permutations from torch's global generator: seed it, restore it
                state = torch.random.get_rng_state()
                torch.manual_seed(seed)
                try:
                    attr = ShapleyValueSampling(forward).attribute(
                        x, baselines=problem.baseline_id, n_samples=n_samples,
                        perturbations_per_eval=batch_size, show_progress=progress)
                finally:
                    torch.random.set_rng_state(state)
                n_evals = n_samples * n + 1
        return {"attribution": attr[0].float().cpu(), "n_evals": n_evals, "convergence_delta": None}
    if method == "integrated_gradients":
        def forward(ids):
            return target_logprob(hf, problem, ids)
        lig = LayerIntegratedGradients(forward, hf.get_input_embeddings())
        x = problem.ids.unsqueeze(0).to(device)
        base = problem.baseline_ids().unsqueeze(0).to(device)
        with torch.enable_grad():
            attr, delta = lig.attribute(x, baselines=base, n_steps=n_steps, internal_batch_size=batch_size,
                                        return_convergence_delta=True)
        # sum over the embedding dimension (as the IG authors do); non-features are exactly 0
        per_position = attr[0].sum(-1).detach().float().cpu()
        return {"attribution": per_position[problem.features], "n_evals": 2 * n_steps + 2,
                "convergence_delta": float(delta.sum())}
    raise ValueError(f"unknown method {method!r}")

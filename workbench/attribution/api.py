"""``wb.attribute``: which prompt tokens make a target continuation likely, with sanity checks."""
from __future__ import annotations

import time

import pandas as pd
import torch

from workbench.attribution.inputs import build_problem
from workbench.attribution.methods import ALIASES, METHODS, run_method
from workbench.attribution.result import AttributionFrame
from workbench.attribution.sanity import endpoint_logprobs, randomized_copy, sanity_frame
from workbench.errors import InvalidInputError
from workbench.models.checks import check_model
from workbench.provenance import record
from workbench.validate import BOOL, Int, Optional, checked


def _run(hf, problems, method, opts):
    """Attributions (and end-point log-probabilities) of the target, or of target minus contrast.
    All three methods are linear in the attributed function (Shapley sampling too, as both runs
    use the same seeded permutations), so the contrast's attribution is the difference."""
    outs = [run_method(hf, p, method, **opts) for p in problems]
    ends = [endpoint_logprobs(hf, p) for p in problems]
    sign = [1.0, -1.0][:len(problems)]
    attr = sum(s * o["attribution"].numpy().astype(float) for s, o in zip(sign, outs))
    deltas = [o["convergence_delta"] for o in outs]
    delta = None if deltas[0] is None else sum(s * d for s, d in zip(sign, deltas))
    lp_input = sum(s * e[0] for s, e in zip(sign, ends))
    lp_base = sum(s * e[1] for s, e in zip(sign, ends))
    return attr, delta, sum(o["n_evals"] for o in outs), lp_input, lp_base


@checked(batch_size=Optional(Int(min=1)), n_samples=Int(min=1), n_steps=Int(min=1), random_check=BOOL,
         seed=Int(min=0), progress=BOOL)
def attribute(model, prompt: str, target: str, method: str = "feature_ablation", *, contrast: str | None = None,
              baseline=None,
              batch_size: int | None = None, n_samples: int = 25, n_steps: int = 64,
              random_check: bool = True, seed: int = 0, progress: bool = False) -> AttributionFrame:
    """Attribute the log-probability of ``target`` to the tokens of ``prompt``.

    Parameters
    ----------
    model : workbench.Model
        A causal LM (``target`` continues ``prompt``) or a masked LM (``prompt`` contains the mask
        token once and ``target`` is the word it hides).
    method : {"feature_ablation", "shapley_sampling", "integrated_gradients"}
        Feature ablation replaces one token at a time by ``baseline``; Shapley value sampling
        averages each token's marginal effect over ``n_samples`` random orders; integrated
        gradients integrates gradients on the token embeddings from the baseline tokens'
        embeddings to the prompt's, in ``n_steps`` steps (layer integrated gradients).
    contrast : str, optional
        Attribute ``log p(target) - log p(contrast)`` instead (why " he" rather than " she"):
        the difference of the two attributions, exact for all three methods by linearity.
    baseline : int or str, optional
        The token an ablated token becomes (id, or a one-token string). Default: the mask token
        for masked LMs, else the pad token, else EOS. Attributions depend on it: say which you used.
    batch_size : int, optional
        Perturbed inputs per forward pass (default: about 2,048 tokens a batch).
    random_check : bool
        Also attribute on a weight-randomised copy of the model (held in memory once per model)
        and report the rank correlation. Doubles the time.

    Returns
    -------
    AttributionFrame
        A ``pandas.DataFrame``, one row per attributed prompt token: ``position, token, token_id,
        attribution`` (nats of the target's log-probability; ``attribution_random`` when the
        randomised check ran). It renders as highlighted text in JupyterLab; ``.summary()`` gives
        the sanity checks, ``.plot()`` a bar chart, ``.save_html(path)`` an offline page, and
        ``.attrs`` the method, model fingerprint and options.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> df = attribute(tiny_model("gpt2"), "The doctor said that", " she", random_check=False)
    >>> list(df.columns[:4])
    ['position', 'token', 'token_id', 'attribution']
    """
    method = ALIASES.get(method, method)
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; choose one of {METHODS}")
    check_model(model, ("causal", "masked"), "attribute", needs="hooks")
    if random_check and any(p.device.type == "meta" for p in model.hf.parameters()):
        raise InvalidInputError(f"{model.name} is split with part of its weights offloaded to disk, so the "
                                "randomised-model check (a full re-drawn copy in memory) cannot be built; pass "
                                "random_check=False, or load the model whole to run that check")

    problem = build_problem(model, prompt, target, baseline)
    problems = [problem]
    if contrast is not None:
        other = build_problem(model, prompt, contrast, baseline)
        if not torch.equal(other.ids[other.features], problem.ids[problem.features]):
            raise InvalidInputError(f"target {target!r} and contrast {contrast!r} change how the prompt is "
                                    "tokenised, so their attributions cannot be subtracted token by token")
        if torch.equal(other.target_ids, problem.target_ids):
            raise InvalidInputError("contrast is tokenised exactly like target: the difference is always 0")
        problems.append(other)
    batch = batch_size or max(1, min(128, 2048 // len(problem.ids)))
    opts = dict(batch_size=batch, n_samples=n_samples, n_steps=n_steps, seed=seed, progress=progress)

    t0 = time.perf_counter()
    attr, conv_delta, n_evals, lp_input, lp_base = _run(model.hf, problems, method, opts)
    elapsed = time.perf_counter() - t0

    frame = pd.DataFrame({
        "position": problem.features.numpy(),
        "token": problem.tokens,
        "token_id": problem.ids[problem.features].numpy(),
        "attribution": attr,
    })
    random_attr, elapsed_random = None, None
    if random_check:
        t1 = time.perf_counter()
        rnd = randomized_copy(model.hf, seed=seed)
        random_attr = _run(rnd, problems, method, opts)[0]
        elapsed_random = time.perf_counter() - t1
        frame["attribution_random"] = random_attr
    sanity = sanity_frame(method, attr, lp_input, lp_base, random_attr)

    result = AttributionFrame(frame)
    tok = model.tokenizer
    feature_index = {int(p): i for i, p in enumerate(problem.features)}
    target_pos = set(problem.read_at.tolist()) if model.kind == "masked" else set()
    sequence = []
    for pos, tid in enumerate(problem.ids.tolist()):
        if model.kind == "causal" and pos >= len(problem.ids) - len(problem.target_ids):
            continue                                  # the target is shown once, at the end
        if pos in target_pos:
            if pos == min(target_pos):
                sequence.append((f"[{target}]", "target", -1))
            continue
        role = "feature" if pos in feature_index else "special"
        sequence.append((tok.decode([tid]), role, feature_index.get(pos, -1)))
    if model.kind == "causal":
        sequence.append((target, "target", -1))
    result.attrs = {
        "method": method, **record(model), "fingerprint_id": model.fingerprint_id,
        "state_id": model.state_id, "interventions": list(model.interventions),
        "prompt": prompt, "target": target, "contrast": contrast,
        "target_tokens": [tok.decode([int(t)]) for t in problem.target_ids],
        "baseline_token": tok.decode([problem.baseline_id]), "baseline_id": problem.baseline_id,
        "logprob_target": lp_input, "logprob_baseline": lp_base,
        "convergence_delta": conv_delta, "n_forward_rows": n_evals, "batch_size": batch,
        "n_samples": n_samples if method == "shapley_sampling" else None,
        "n_steps": n_steps if method == "integrated_gradients" else None, "seed": seed,
        "time_s": elapsed, "time_random_s": elapsed_random,
        "sanity": sanity.to_dict("records"), "sequence": sequence,
    }
    # the provenance record every result carries (the keys above stay for existing readers)
    result.attrs["provenance"] = record(model, options={
        "method": method, "prompt": prompt, "target": target, "contrast": contrast, "seed": seed,
        "n_samples": result.attrs["n_samples"], "n_steps": result.attrs["n_steps"]})
    return result

"""Direct logit attribution: split a next-token logit (or a logit difference) at the last
position into what each part of the residual stream contributes through the unembedding.

The residual stream at the last position is a sum: the embedding (GPT-2: token + position
embedding), each layer's attention output (= each head's output through the output projection,
plus the projection's bias) and each layer's MLP output. The final norm is not linear, so its
scale (the ``1/std`` of LayerNorm, the ``1/rms`` of RMSNorm) is **frozen at its value on the clean
run**; with the scale fixed the norm is affine and the logit is a sum of one term per component,
plus constant terms for the norm's bias and the unembedding's bias. That sum equals the model's
real logit (difference) up to float rounding, which the result reports (``error``).

Gemma 3 also normalises each attention output before adding it (``post_attention_layernorm``);
its heads are split through that norm with its scale frozen the same way.
"""
from __future__ import annotations

import numbers
import warnings

import pandas as pd
import torch

from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.inspect.capture import capture, encode
from workbench.inspect.dla_result import BLOCK_COMPONENTS, DLAResult
from workbench.inspect.graph_dla import graph_dla
from workbench.inspect.sites import adapter, on_graph_backend
from workbench.models.checks import check_model
from workbench.provenance import record
from workbench.validate import check_token_id

def _token(model, t, name: str) -> int:
    """A string or a token id -> the id whose logit is split. A string of several tokens gives
    its first token (as the logit lens does: that is the logit the model puts on starting it),
    with a warning naming the pieces, since the rest of the string is then not compared."""
    if isinstance(t, numbers.Integral) and not isinstance(t, bool):
        return check_token_id(model, t, name)
    if not isinstance(t, str) or not t:
        raise InvalidInputError(f"{name} must be a non-empty string or a token id, got {t!r}")
    ids = encode(model.tokenizer, t, add_special_tokens=False)
    if len(ids) > 1:
        pieces = model.tokenizer.convert_ids_to_tokens(ids)
        warnings.warn(f"{name} {t!r} is {len(ids)} tokens {pieces} for {model.name}; its first token "
                      f"{pieces[0]!r} is used. Give a one-token string (mind the leading space) or a token id "
                      "to choose it yourself", stacklevel=3)
    return int(ids[0])


def frozen_norm(norm, x: torch.Tensor):
    """The affine map ``c -> A(c) + bias`` that ``norm`` (a LayerNorm or RMSNorm, Llama or Gemma
    style) is on ``x`` with its scale frozen at ``x`` (float64, 1-D). Each form is checked against
    the module's own output, so an unknown norm is refused rather than decomposed wrongly."""
    x64 = x.double()
    with torch.inference_mode():
        p = next(norm.parameters())
        real = norm(x.to(p.device, p.dtype)[None]).double().cpu()[0]
    w = norm.weight.detach().double().cpu() if getattr(norm, "weight", None) is not None else torch.ones_like(x64)
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-5)))
    candidates = []
    if isinstance(norm, torch.nn.LayerNorm):
        b = norm.bias.detach().double().cpu() if norm.bias is not None else torch.zeros_like(x64)
        scale = 1 / (x64.var(unbiased=False) + eps).sqrt()
        candidates.append(("LayerNorm", lambda c: (c - c.mean(-1, keepdim=True)) * scale * w, b))
    else:
        scale = 1 / ((x64 ** 2).mean() + eps).sqrt()
        zero = torch.zeros_like(x64)
        candidates += [("RMSNorm (x * w)", lambda c: c * scale * w, zero),
                       ("RMSNorm (x * (1 + w), Gemma)", lambda c: c * scale * (1 + w), zero)]
    tol = max(1e-3, 4 * torch.finfo(p.dtype).eps)  # the module rounds to its own dtype (bfloat16: ~1e-2)
    for name, fn, bias in candidates:
        if torch.allclose(fn(x64) + bias, real, rtol=tol, atol=tol * 0.1 * float(real.abs().max() + 1)):
            return fn, bias, name
    raise WrongModelKindError(f"the norm {type(norm).__name__} is neither a LayerNorm nor an RMSNorm of a form the "
                              "workbench knows (its output did not match), so the logit cannot be split through it")


def direct_logit_attribution(model, prompt: str, target=" he", baseline=" she") -> DLAResult:
    """Decompose the logit of ``target`` (minus that of ``baseline``; ``baseline=None`` for the
    plain logit) at the last position of ``prompt`` into per-component contributions.

    The final norm's scale is frozen at its value on the clean run (see the module docstring):
    the contributions then sum to the real logit difference up to float rounding (``.error``).
    ``target``/``baseline``: one-token strings (mind the leading space) or token ids. The prompt
    is tokenised as :func:`workbench.capture` does (the tokenizer's own special tokens). Models
    with a final logit soft-cap (Gemma 2 style) are decomposed before the cap (provenance says so).

    Works on the causal families of :mod:`workbench.inspect.sites` (GPT-2, Llama/Mistral/Qwen2/
    Gemma, Gemma 3, GPT-NeoX, Phi); masked and encoder models are refused. On
    ``backend="llama.cpp"`` the activations come from llama.cpp's graph and the weights from the
    GGUF (:mod:`workbench.inspect.graph_dla`).

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> res = direct_logit_attribution(tiny_model("gpt2"), "The doctor said that", " he", " car")
    >>> res.to_frame().columns.tolist()
    ['component', 'layer', 'head', 'contribution']
    >>> bool(abs(res.blocks()["contribution"].sum() - res.total) < 1e-6)
    True
    """
    if getattr(model, "kind", None) not in (None, "causal"):
        raise WrongModelKindError(f"direct_logit_attribution splits a causal LM's next-token logit; {model.name} is "
                                  f"a {model.kind} model. Load a causal model (e.g. smollm2-135m-instruct)")
    check_model(model, ("causal",), "direct_logit_attribution")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInputError("prompt must be a non-empty string")
    t_id = _token(model, target, "target")
    b_id = None if baseline is None else _token(model, baseline, "baseline")
    if b_id is not None and b_id == t_id:
        raise InvalidInputError(f"target and baseline are the same token ({t_id}): their difference is 0; "
                                "give two different tokens or baseline=None for the plain logit")
    if on_graph_backend(model):  # llama.cpp: its graph's activations and the GGUF's weights
        return graph_dla(model, prompt, t_id, b_id)
    ad = adapter(model)
    L = ad.n_layers
    cache = capture(model, [prompt], sites=["embed", "resid_pre", "attn_out", "mlp_out", "z", "resid_post", "logits"],
                    positions="last", progress=False)

    def last(site, layer=None):
        return cache[site, layer][0, 0].double()

    head = model.hf.get_output_embeddings()
    W = head.weight.detach().double().cpu()
    u = W[t_id] - (W[b_id] if b_id is not None else 0)
    hb = getattr(head, "bias", None)
    hb = None if hb is None else hb.detach().double().cpu()
    unembed_bias = 0.0 if hb is None else float(hb[t_id] - (hb[b_id] if b_id is not None else 0))
    final = ad.module(ad.hook_point("final_norm").module)
    A, norm_bias, norm_kind = frozen_norm(final, last("resid_post", L - 1))

    def through(c):  # contribution of a residual-stream vector through the frozen norm and unembedding
        return float(A(c) @ u)

    rows = []

    def add(component, layer, h, value):
        rows.append({"component": component, "layer": layer, "head": h, "contribution": value})

    emb = last("resid_pre", 0)
    if ad.family.positions_after_embed:  # the position embedding is added inside the model, after the embed site
        add("embed", None, None, through(last("embed")))
        add("pos_embed", None, None, through(emb - last("embed")))
    else:
        add("embed", None, None, through(emb))
    max_gap = 0.0
    for layer in range(L):
        attn = last("attn_out", layer)
        add("attn", layer, None, through(attn))
        heads, bias, has_bias = _head_outputs(model, ad, layer, cache["z", layer][0, 0])
        if ad.family.attn_out_normed:  # heads -> o_proj output -> post-attention RMSNorm (scale frozen)
            post = ad.module(ad.hook_point("attn_out", layer).module)
            P, _, _ = frozen_norm(post, heads.sum(0) + bias)
            heads, bias = torch.stack([P(h) for h in heads]), P(bias)
        for h in range(len(heads)):
            add("head", layer, h, through(heads[h]))
        if has_bias:  # reported wherever the projection has a bias parameter, even one of zeros
            add("attn_bias", layer, None, through(bias))
        max_gap = max(max_gap, float((heads.sum(0) + bias - attn).abs().max()))
        add("mlp", layer, None, through(last("mlp_out", layer)))
    if getattr(final, "bias", None) is not None:
        add("final_norm_bias", None, None, float(norm_bias @ u))
    if hb is not None:
        add("unembed_bias", None, None, unembed_bias)
    frame = pd.DataFrame(rows, columns=["component", "layer", "head", "contribution"])
    frame["layer"] = frame["layer"].astype("Int64")
    frame["head"] = frame["head"].astype("Int64")
    logits = last("logits")
    cap = getattr(ad.config, "final_logit_softcapping", None)
    if cap:  # undo the soft-cap: the decomposition is of the logits before it
        logits = torch.atanh((logits / cap).clamp(-1 + 1e-12, 1 - 1e-12)) * cap
    total = float(logits[t_id] - (logits[b_id] if b_id is not None else 0))
    recon = float(frame[frame["component"].isin(BLOCK_COMPONENTS)]["contribution"].sum())
    tok = model.tokenizer.convert_ids_to_tokens
    quantity = f"logit[{tok(t_id)!r}]" + (f" - logit[{tok(b_id)!r}]" if b_id is not None else "")
    prov = {**record(model), "fingerprint": model.fingerprint_id, "state_id": model.state_id,
            "architecture": ad.arch, "prompt": prompt, "target": tok(t_id), "target_id": t_id,
            "baseline": None if b_id is None else tok(b_id), "baseline_id": b_id, "quantity": quantity,
            "position": "last token of the prompt", "final_norm": f"{type(final).__name__} as {norm_kind}, "
            "scale frozen at the clean run", "heads_vs_attn_max_abs_gap": max_gap,
            "logit_softcap": cap or None}
    return DLAResult(frame, prov, total=total, error=recon - total)


def _head_outputs(model, ad, layer: int, z: torch.Tensor):
    """Each head's output through the layer's output projection (``[n_heads, d]``, float64), and
    the projection's bias (zeros if none) and whether it has one: the projection applied to z with the other heads
    zeroed, minus the projection of zeros. Works for Linear and GPT-2's Conv1D alike."""
    proj = ad.module(ad.hook_point("z", layer).module)
    p = next(proj.parameters())
    H, dh = z.shape
    masked = torch.zeros(H + 1, H, dh, dtype=p.dtype, device=p.device)  # row H: all zeros -> the bias
    for h in range(H):
        masked[h, h] = z[h]
    with torch.inference_mode():
        out = proj(masked.flatten(1)).double().cpu()
    bias = out[H]
    return out[:H] - bias, bias, getattr(proj, "bias", None) is not None

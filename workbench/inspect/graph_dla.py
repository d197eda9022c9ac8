"""Direct logit attribution on the llama.cpp backend: the decomposition of
:mod:`workbench.inspect.dla` with the activations captured from llama.cpp's compute graph and
the weights it needs (final norm, output matrix, each layer's attention output projection,
Gemma 3's post-attention norm) read from the GGUF and de-quantised to float32, one layer at a
time for the projections (nothing of their size is kept).

The final norm's scale is frozen at its value on the captured residual stream and checked
against llama.cpp's own ``result_norm`` (a norm of another form is refused, as on the Hugging
Face backend). ``total`` is llama.cpp's own logit (difference); on a quantised GGUF its output
matrix product rounds the activations to 8 bits, which ``error`` shows.
"""
from __future__ import annotations

import pandas as pd
import torch

from workbench.backends.llamacpp_gguf import gguf_number, gguf_tensor, unembedding
from workbench.errors import WrongModelKindError
from workbench.inspect.capture import capture
from workbench.inspect.dla_result import BLOCK_COMPONENTS, DLAResult
from workbench.inspect.sites import site_adapter
from workbench.provenance import record


def graph_dla(model, prompt: str, t_id: int, b_id: int | None):
    ad = site_adapter(model)
    backend, L = model.backend, ad.n_layers
    cache = capture(model, [prompt], sites=["embed", "attn_out", "mlp_out", "z", "resid_post", "final_norm", "logits"],
                    positions="last", progress=False)

    def last(site, layer=None):
        return cache[site, layer][0, 0].double()

    w = unembedding(backend)
    W = w["output"]
    u = (W[t_id] - (W[b_id] if b_id is not None else 0)).double()
    x = last("resid_post", L - 1)
    scale = 1 / torch.sqrt((x ** 2).mean() + w["eps"])
    g = scale * w["norm"].double() * u  # through(c) = c . g: the frozen final norm, then the unembedding
    normed = x * scale * w["norm"].double()
    real = last("final_norm")
    if not torch.allclose(normed, real, rtol=1e-3, atol=1e-3 * float(real.abs().max() + 1)):
        raise WrongModelKindError(f"the GGUF's final norm (RMSNorm with output_norm.weight, eps={w['eps']:g}) does not "
                                  "reproduce llama.cpp's result_norm on this prompt, so the logit cannot be split "
                                  "through it; use backend='hf'")
    arch = ad.graph_arch
    eps = gguf_number(backend, f"{arch}.attention.layer_norm_rms_epsilon")
    rows, max_gap = [], 0.0

    def add(component, layer, h, value):
        rows.append({"component": component, "layer": layer, "head": h, "contribution": float(value)})

    add("embed", None, None, last("embed") @ g)
    H, dh = ad.n_heads, ad.head_dim
    for layer in range(L):
        attn = last("attn_out", layer)
        add("attn", layer, None, attn @ g)
        W_O = torch.from_numpy(gguf_tensor(backend, f"blk.{layer}.attn_output.weight")).double()  # [d, H*dh]
        z = last("z", layer).reshape(H * dh)
        heads = torch.stack([W_O[:, h * dh:(h + 1) * dh] @ z[h * dh:(h + 1) * dh] for h in range(H)])
        b = gguf_tensor(backend, f"blk.{layer}.attn_output.bias")
        bias = torch.zeros(ad.d_model, dtype=torch.float64) if b is None else torch.from_numpy(b).double()
        if ad.family.attn_out_normed:  # Gemma 3: heads -> o_proj output -> post-attention RMSNorm, scale frozen
            o = heads.sum(0) + bias
            post = torch.from_numpy(gguf_tensor(backend, f"blk.{layer}.post_attention_norm.weight")).double()
            s = post / torch.sqrt((o ** 2).mean() + eps)
            heads, bias = heads * s, bias * s
        for h in range(H):
            add("head", layer, h, heads[h] @ g)
        if b is not None:
            add("attn_bias", layer, None, bias @ g)
        max_gap = max(max_gap, float((heads.sum(0) + bias - attn).abs().max()))
        add("mlp", layer, None, last("mlp_out", layer) @ g)
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
            "position": "last token of the prompt",
            "final_norm": f"the GGUF's RMSNorm (output_norm.weight, eps={w['eps']:g}), scale frozen at the captured run",
            "weights": "final norm, output matrix and attention output projections read from the GGUF, de-quantised "
                       "to float32; activations from llama.cpp's compute graph",
            "heads_vs_attn_max_abs_gap": max_gap, "logit_softcap": cap or None}
    return DLAResult(frame, prov, total=total, error=recon - total)


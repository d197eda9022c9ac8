"""``wb.inspect.verify(model)``: show that reading activations does not change the model, and
that the sites mean what they say. An audit prints this report next to its numbers.

What is compared (on a few short texts of different lengths, one padded batch; at the real,
non-padding positions, since capture stores zeros at padding):

* ``logits`` with read hooks on every available site (except attn_pattern) vs the plain forward:
  **bit-identical** (``torch.equal``), as hooks only copy;
* ``resid_pre`` of layer L vs ``output_hidden_states[L]``, and ``resid_post`` of layer L vs
  ``hidden_states[L+1]`` for all but the last layer: bit-identical;
* the last layer: ``final_norm`` vs ``hidden_states[-1]`` (decoders, where HF applies the final
  norm to the last hidden state) or ``resid_post`` vs ``hidden_states[-1]`` (encoders): bit-identical;
* decomposition: ``resid_mid == resid_pre + attn_out`` and ``resid_post == resid_mid + mlp_out``
  (pre-norm decoders; parallel blocks: ``resid_post == resid_pre + attn_out + mlp_out``), float tolerance;
* logit lens of the last layer (final norm + head applied by the workbench) vs the logits: float tolerance;
* attn_pattern (eager attention): rows sum to 1, the eager logits match the default
  implementation's within tolerance, and the implementation is restored afterwards.
"""
from __future__ import annotations

import warnings

import pandas as pd
import torch

from workbench.inspect.capture import capture, tokenize
from workbench.inspect.sites import adapter
from workbench.inspect.verify_result import VerifyResult, check_row as _row
from workbench.provenance import record
from workbench.validate import Real, checked
# a module, not its names: importing vision.capture first runs this package's __init__, which
# reaches this module while vision.capture is still half read
from workbench.vision import capture as vision_capture

DEFAULT_TEXTS = ["The doctor said that she would arrive soon.", "Paris is the capital of France.", "A cat."]


@checked(tol=Real(ge=0))
def verify(model, texts=None, tol: float = 1e-4) -> VerifyResult:
    """Check capture fidelity on ``model`` (see module docstring); returns a :class:`VerifyResult`.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> res = verify(tiny_model("gpt2"))
    >>> res.ok, list(res.report.columns)[:3]
    (True, ['check', 'site', 'layer'])
    """
    if getattr(model, "kind", None) == "vision-language":  # with images: workbench.vision.capture
        return vision_capture.verify_vision(model, tol=tol)
    ad = adapter(model)
    texts = texts or DEFAULT_TEXTS
    enc = tokenize(model, texts)
    mask = enc["attention_mask"].bool()
    n = len(texts)
    with torch.inference_mode():
        plain = model.hf(**{k: v.to(model.device) for k, v in enc.items()}, output_hidden_states=True)
    hs = [h.cpu() for h in plain.hidden_states]
    sites = [s for s in ad.available() if s != "attn_pattern"]
    cache = capture(model, enc, sites=sites, batch_size=n)
    rows = []
    if "logits" in sites:
        rows.append(_row("logits with hooks == plain logits", "logits", None, cache["logits"][mask], plain.logits.cpu()[mask], 0))
    L = ad.n_layers
    for layer in range(L):
        rows.append(_row("resid_pre == hidden_states[L]", "resid_pre", layer, cache["resid_pre", layer][mask], hs[layer][mask], 0))
    for layer in range(L - 1):
        rows.append(_row("resid_post == hidden_states[L+1]", "resid_post", layer, cache["resid_post", layer][mask], hs[layer + 1][mask], 0))
    if "final_norm" in sites:
        rows.append(_row("final_norm(resid_post[last]) == hidden_states[-1]", "final_norm", None, cache["final_norm"][mask], hs[-1][mask], 0))
    else:
        rows.append(_row("resid_post[last] == hidden_states[-1]", "resid_post", L - 1, cache["resid_post", L - 1][mask], hs[-1][mask], 0))
    pre_norm = ad.family.pre_norm
    for layer in range(L if pre_norm else 0):
        m = mask[..., None]
        if "resid_mid" in sites:
            rows.append(_row("resid_mid == resid_pre + attn_out", "resid_mid", layer,
                             cache["resid_mid", layer] * m, (cache["resid_pre", layer] + cache["attn_out", layer]) * m, tol))
            rows.append(_row("resid_post == resid_mid + mlp_out", "resid_post", layer,
                             cache["resid_post", layer] * m, (cache["resid_mid", layer] + cache["mlp_out", layer]) * m, tol))
        else:
            rows.append(_row("resid_post == resid_pre + attn_out + mlp_out", "resid_post", layer, cache["resid_post", layer] * m,
                             (cache["resid_pre", layer] + cache["attn_out", layer] + cache["mlp_out", layer]) * m, tol))
    if "logits" in sites:
        with torch.inference_mode():
            lens = ad.unembed(cache["resid_post", L - 1].to(model.device, model.dtype)).cpu()
        rows.append(_row("logit lens of last layer == logits", "logits", L - 1, lens[mask], plain.logits.cpu()[mask], tol))
    plain_logits = plain.logits.cpu() if getattr(plain, "logits", None) is not None else None
    rows += _check_attention(model, enc, plain_logits, mask, tol)
    frame = pd.DataFrame(rows)
    return VerifyResult(frame, {**record(model), "state_id": model.state_id, "architecture": ad.arch,
                                "texts": list(texts), "tolerance": tol}, ok=bool(frame["ok"].all()))


def _check_attention(model, enc, plain_logits, mask, tol):
    hf = model.hf
    before = hf.config._attn_implementation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = capture(model, enc, sites=["attn_pattern", "logits"] if adapter(model).has_lm_head else ["attn_pattern"],
                    batch_size=len(mask))
    rows = []
    for layer in c.layers("attn_pattern"):
        p = c["attn_pattern", layer]
        sums = p.sum(-1)[mask[:, None, :].expand_as(p[..., 0])]
        rows.append(_row("attn_pattern rows sum to 1", "attn_pattern", layer, sums, torch.ones_like(sums), tol))
    if ("logits", None) in c and plain_logits is not None:
        rows.append(_row("eager-attention logits ~= default logits", "logits", None, c["logits"][mask], plain_logits[mask], tol))
    rows.append(dict(check=f"attention implementation restored ({before})", site="attn_pattern", layer=None,
                     max_abs_diff=0.0, tolerance=0.0, ok=hf.config._attn_implementation == before))
    return rows

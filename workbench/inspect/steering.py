"""Steering: add a direction to the residual stream at one layer while scoring or generating.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("llama")
>>> v = wb.inspect.steering_vector(m, ["He is a doctor."], ["She is a doctor."], layer=1)
>>> with wb.inspect.steer(m, v, strength=4.0):
...     len(m.interventions)      # scoring caches see the intervention through model.state_id
1
>>> len(m.interventions)
0
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

import torch

from workbench.backends.base import require
from workbench.errors import InvalidInputError
from workbench.inspect.capture import capture
from workbench.inspect.hooks import add_edit_hook, intervention
from workbench.inspect.sites import on_graph_backend, site_adapter
from workbench.validate import Real, check_finite, checked


@dataclass
class SteeringVector:
    """A direction in the residual stream at ``site``/``layer`` (difference of means of two
    contrast sets), with the statistics to judge it: the norm of the difference and of the
    activations it is added to."""

    direction: torch.Tensor
    layer: int
    site: str = "resid_post"
    mean_norm: float = float("nan")
    n_positive: int = 0
    n_negative: int = 0

    @property
    def norm(self) -> float:
        return float(self.direction.norm())

    def sha(self) -> str:
        return hashlib.sha256(self.direction.float().cpu().numpy().tobytes()).hexdigest()[:12]

    def __repr__(self):
        return (f"SteeringVector(site={self.site!r}, layer={self.layer}, norm={self.norm:.3f}, "
                f"mean activation norm={self.mean_norm:.3f}, n={self.n_positive}+{self.n_negative})")


def _mean_activation(model, texts, site, layer):
    cache = capture(model, texts, sites=[site], layers=[layer], progress=False)
    x = cache[site, layer].float()
    m = cache.attention_mask[..., None].float()
    per_text = (x * m).sum(1) / m.sum(1)                   # mean over each text's real tokens
    return per_text.mean(0), float(x[cache.attention_mask.bool()].norm(dim=-1).mean())


def steering_vector(model, positive, negative, layer: int, site: str = "resid_post") -> SteeringVector:
    """mean(activation | positive) - mean(activation | negative) at ``site``/``layer``; each text
    contributes the mean over its real tokens (e.g. positive = stereotyped sentences,
    negative = their anti-stereotyped counterparts)."""
    for name, texts in (("positive", positive), ("negative", negative)):
        if isinstance(texts, str) or not texts:
            raise InvalidInputError(f"{name} must be a non-empty list of texts")
    if site not in ("resid_pre", "resid_post", "attn_out", "mlp_out"):
        raise InvalidInputError(f"steer the residual stream or a block output (resid_pre, resid_post, attn_out, "
                                f"mlp_out), got {site!r}")
    layer = site_adapter(model).check_layer(layer)
    pos, n1 = _mean_activation(model, list(positive), site, layer)
    neg, n2 = _mean_activation(model, list(negative), site, layer)
    return SteeringVector(pos - neg, layer, site, (n1 + n2) / 2, len(positive), len(negative))


@contextlib.contextmanager
@checked(strength=Real())
def steer(model, vector, strength: float = 1.0, layer: int | None = None, site: str | None = None):
    """Add ``strength * vector`` to ``site`` at ``layer`` at every position for the block.

    The hook sits on ``model.hf``, so anything run inside (``wb.loglikelihood``, ``wb.generate``,
    ``wb.capture``, a plain ``model.hf(...)``) is steered; it is registered in
    ``model.interventions`` (so cached scores are not reused) and removed on exit, even after an
    error. ``vector``: a :class:`SteeringVector` (carries its layer and site) or a tensor [d_model]
    (then give ``layer``; site defaults to resid_post).

    On ``backend="llama.cpp"`` the vector is a llama.cpp control vector (float32, added to
    ``resid_post`` of the layer, :mod:`workbench.backends.llamacpp_steer`), so a vector found on
    the Hugging Face model steers the deployed GGUF: scoring, generation and capture inside the
    block are steered there too. It steers resid_post at layers >= 1 (resid_pre at >= 2) only.
    """
    if isinstance(vector, SteeringVector):
        layer = vector.layer if layer is None else layer
        site = site or vector.site
        direction, sha = vector.direction, vector.sha()
    else:
        if layer is None:
            raise InvalidInputError("steering with a plain tensor needs layer=")
        try:
            direction = torch.as_tensor(vector)
        except (TypeError, ValueError, RuntimeError) as e:
            raise InvalidInputError(f"vector must be a SteeringVector or a tensor of shape [d_model], got "
                                    f"{type(vector).__name__} ({e})") from None
        if not direction.is_floating_point():
            direction = direction.float()
        site = site or "resid_post"
        sha = hashlib.sha256(direction.float().cpu().numpy().tobytes()).hexdigest()[:12]
    ad = site_adapter(model)
    if direction.shape != (ad.d_model,):
        raise InvalidInputError(f"direction must have shape ({ad.d_model},) for {model.name}, got {tuple(direction.shape)}")
    check_finite("the steering direction", direction)  # a NaN would silently turn every score into NaN
    layer = ad.check_layer(layer)
    desc = {"kind": "steering", "site": site, "layer": layer, "strength": float(strength), "direction_sha256": sha}
    if on_graph_backend(model):  # llama.cpp: a control vector instead of a hook
        require(model, "steer", "wb.inspect.steer")
        delta = float(strength) * direction.detach().float().cpu().numpy()
        with model.backend.control_vector(model, site, layer, delta), intervention(model, desc, []):
            yield desc
        return
    delta = (float(strength) * direction).to(model.device, model.dtype)
    handle = add_edit_hook(model, site, layer, lambda x: x + delta)
    with intervention(model, desc, [handle]):
        yield desc

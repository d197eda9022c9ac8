"""Steering on the llama.cpp backend: llama.cpp's control vectors (``llama_set_adapter_cvec``)
add a vector to ``l_out`` of a layer, the residual stream leaving it (``resid_post``), at every
position of every decode, in float32. That is what :func:`workbench.inspect.steer` does on the
Hugging Face backend with a hook, so a vector found on one backend steers the other.

The vector is set on the backend's scoring context at once and on every context the backend
makes while the block is open (a larger scoring context, a capture context), and taken off on
exit, even after an error. Nested blocks add up per layer. llama.cpp has no control vector for
layer 0 (its first control tensor is layer 1's).
"""
from __future__ import annotations

import contextlib

import numpy as np

from workbench.errors import BackendCapabilityError, InvalidInputError


def cvec_layer(backend, site: str, layer: int, n_layers: int) -> int:
    """The control-vector layer that adds to ``site`` at ``layer`` (resid_post L -> L,
    resid_pre L -> L - 1); a clear error where llama.cpp has none."""
    if site not in ("resid_post", "resid_pre"):
        raise BackendCapabilityError(
            f"the {backend.name!r} backend steers the residual stream only (llama.cpp's control vectors add to "
            f"resid_post of a layer, i.e. resid_pre of the next), not {site!r}; steer resid_post/resid_pre, or load "
            "the model with backend='hf' to steer any editable site")
    target = layer if site == "resid_post" else layer - 1
    if target < 1:
        raise BackendCapabilityError(
            f"llama.cpp has no control vector for layer 0 (its first control tensor is layer 1's), so {site} at "
            f"layer {layer} cannot be steered on the {backend.name!r} backend; steer resid_post at a layer in "
            f"1..{n_layers - 1} (resid_pre in 2..{n_layers - 1}), or load the model with backend='hf'")
    return target


@contextlib.contextmanager
def control_vector(backend, layer: int, vector):
    """Add ``vector`` (float, [n_embd], finite) to ``resid_post`` of ``layer`` (>= 1) for the block."""
    vec = np.asarray(vector, dtype=np.float32)
    n_embd = backend.engine.n_embd
    if vec.shape != (n_embd,) or not np.isfinite(vec).all():
        raise InvalidInputError(f"a control vector must be {n_embd} finite numbers, got shape {vec.shape}")
    if not 1 <= layer < backend.control.n_layers:
        raise BackendCapabilityError(f"llama.cpp has control vectors for layers 1..{backend.control.n_layers - 1} "
                                     f"only, not layer {layer}")
    contexts = [backend.engine.ctx]
    entry = backend.control.push(layer, vec, contexts)
    try:
        yield entry
    finally:
        backend.control.pop(entry, [backend.engine.ctx])  # the context may have been re-created meanwhile

"""Forward hooks on the unmodified Hugging Face modules: read a site, or replace its value.

Everything in :mod:`workbench.inspect` goes through these two functions, so there is one place
that knows how a site's tensor is found in a module's inputs/outputs.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from workbench.errors import UnsupportedSiteError
from workbench.inspect.sites import EDITABLE, HookPoint, adapter


def _raw(hp: HookPoint, args, kwargs, out=None) -> torch.Tensor:
    if hp.how == "in":
        return args[0] if args else kwargs["hidden_states"]
    if hp.how == "weights":
        if not isinstance(out, tuple) or len(out) < 2 or out[1] is None:
            raise RuntimeError("the attention module returned no weights: attn_pattern needs eager attention")
        return out[1]
    if hasattr(out, "logits"):
        return out.logits
    return out[0] if isinstance(out, tuple) else out


def add_read_hook(model, site: str, layer: int | None, fn: Callable[[torch.Tensor], None]):
    """Call ``fn(tensor)`` with the site's value (in its documented shape) on every forward.
    Returns the handle (``.remove()``)."""
    hp = adapter(model).hook_point(site, layer)
    mod = adapter(model).module(hp.module)
    view = hp.view or (lambda t: t)
    if hp.how == "in":
        return mod.register_forward_pre_hook(lambda m, a, kw: fn(view(_raw(hp, a, kw))), with_kwargs=True)
    return mod.register_forward_hook(lambda m, a, kw, o: fn(view(_raw(hp, a, kw, o))), with_kwargs=True)


def add_edit_hook(model, site: str, layer: int | None, fn: Callable[[torch.Tensor], torch.Tensor]):
    """Replace the site's value by ``fn(value)`` (same shape) on every forward; returns the handle.

    Only sites in :data:`~workbench.inspect.sites.EDITABLE` can be replaced: for the others
    (e.g. resid_mid, which the layer keeps in a local variable) a hook cannot change what the model uses.
    """
    ad = adapter(model)
    if site not in EDITABLE:
        raise UnsupportedSiteError(f"site {site!r} cannot be replaced by a hook (only read); editable sites "
                                   f"are {list(EDITABLE)}")
    hp = ad.hook_point(site, layer)
    mod = ad.module(hp.module)
    view = hp.view or (lambda t: t)
    unview = (lambda t: t.flatten(-2)) if hp.view is not None else (lambda t: t)

    if hp.how == "in":
        def pre(m, args, kwargs):
            new = unview(fn(view(_raw(hp, args, kwargs))))
            if args:
                return (new,) + tuple(args[1:]), kwargs
            return args, {**kwargs, "hidden_states": new}
        return mod.register_forward_pre_hook(pre, with_kwargs=True)

    def post(m, args, kwargs, out):
        new = unview(fn(view(_raw(hp, args, kwargs, out))))
        return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
    return mod.register_forward_hook(post, with_kwargs=True)


@contextlib.contextmanager
def hooks_removed_after(handles: list):
    """Remove every handle in ``handles`` on exit, even after an error or Ctrl-C."""
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()
        handles.clear()


def switch_note(prev: str) -> str:
    """What a result records when its call switched the attention implementation (its ``notes``)."""
    return (f"attention switched from {prev!r} to 'eager' to read attn_pattern, then restored (logits may differ "
            f"from the {prev!r} run by float rounding)")


@contextlib.contextmanager
def attention_implementation(model, impl: str = "eager", reason: str = "attn_pattern"):
    """Switch ``model.hf`` to ``impl`` attention for the block and restore it after.

    Yields the previous implementation if a switch happened, else ``None``. Fused kernels
    (sdpa, flash) never materialise the attention probabilities, so reading them needs eager.
    The switch is recorded, not warned about: the caller puts :func:`switch_note` in its result's
    ``notes`` (a warning would only say which kernel ran, with nothing for the user to do).
    """
    hf = getattr(model, "hf", model)
    prev = hf.config._attn_implementation
    if prev == impl:
        yield None
        return
    hf.set_attn_implementation(impl)
    try:
        yield prev
    finally:
        hf.set_attn_implementation(prev)


@contextlib.contextmanager
def intervention(model, description: dict, handles: list):
    """Keep ``handles`` installed and ``description`` in ``model.interventions`` for the block,
    so scoring caches (keyed on ``model.state_id``) never reuse scores computed without them."""
    interventions = getattr(model, "interventions", None)
    if interventions is not None:
        interventions.append(description)
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        if interventions is not None:
            for i, d in enumerate(interventions):
                if d is description:
                    del interventions[i]
                    break

"""``wb.capture``: read activations at named sites with hooks on the unmodified model.

:func:`capture` is the one door: texts go to :func:`~workbench.inspect.recording.capture_texts`,
``out=`` to :func:`~workbench.inspect.stream.capture_stream`, ``max_new_tokens=`` to
:func:`~workbench.inspect.generation.capture_generation`, images to
:mod:`workbench.vision.capture` and a model on llama.cpp to its compute graph
(:mod:`workbench.inspect.graph_capture`). What they share lives below them, in
:mod:`workbench.inspect.recording`; its names are also importable from here, as before.
"""
from __future__ import annotations

from workbench.engine.padding import tokenizer_state_kept
from workbench.errors import InvalidInputError
from workbench.inspect.generation import capture_generation
from workbench.inspect.graph_capture import capture_on_backend
from workbench.inspect.recording import (Recorder, SiteBlocks, capture_provenance, capture_texts,  # noqa: F401
                                         check_fits_window, encode, place, resolve_positions, resolve_sites,
                                         str_tokens, tokenize)
from workbench.inspect.sites import on_graph_backend
from workbench.inspect.stream import capture_stream
from workbench.validate import BOOL, Int, Optional, checked
# a module, not its names: importing vision.capture first runs this package's __init__, which
# reaches this module while vision.capture is still half read
from workbench.vision import capture as vision_capture


@checked(batch_size=Int(min=1), max_new_tokens=Optional(Int(min=1)), progress=Optional(BOOL))
def capture(model, inputs, sites=("resid_post",), layers=None, positions=None, dtype=None, batch_size: int = 8,
            max_new_tokens: int | None = None, out=None, shard_size: int | None = None, max_memory: int | None = None,
            progress: bool = True, images=None, vision_layers=None):
    """Capture activations at ``sites`` (names in :mod:`workbench.inspect.sites`, or ``"all"``).

    Parameters
    ----------
    inputs : text, list of texts, or a dict with ``input_ids``/``attention_mask``.
    layers : None (all), an int or a list of ints (negative from the end).
    positions : None (all), an int, a list of ints or ``"last"``; negative ones count back from each
        text's last real token. Only those positions are kept.
    dtype : store in this dtype (e.g. ``torch.float16``) to halve memory; default: the model's.
    max_new_tokens : generate greedily this many tokens (all prompts in one left-padded batch) and
        capture every forward pass of it.
    out : a folder: stream over ``inputs`` writing shards of ``shard_size`` texts there; returns a
        :class:`~workbench.inspect.stream.ShardedCache`. Re-running resumes at the first missing shard.
    shard_size : texts per shard; default (None): as many as store about 256 MiB (the memory a
        streaming capture holds at once), or the folder's own when resuming.
    max_memory : bytes allowed for the capture; default 90% of available RAM. Refused before running
        (:class:`~workbench.errors.DoesNotFitError`) if the estimate is larger.
    images, vision_layers : vision-language models: one list of PIL images per text, and the
        vision tower's layers for the ``vision.*`` sites (:mod:`workbench.vision.capture`).

    Example
    -------
    >>> import workbench as wb
    >>> from workbench.testing import tiny_model
    >>> m = tiny_model("gpt2")
    >>> cache = wb.capture(m, ["The cat sat on the mat"], sites=["resid_post", "logits"], positions="last")
    >>> cache["resid_post", 0].shape[1], cache["logits"].shape[-1] == len(m.tokenizer)
    (1, True)
    """
    if images is not None or vision_layers is not None:
        if out is not None or max_new_tokens is not None:
            raise InvalidInputError("out= and max_new_tokens= are not supported with images yet; capture the "
                                    "texts with their images in one call (or in parts) instead")
        return vision_capture.capture_images(model, inputs, images, sites=sites, layers=layers, positions=positions, dtype=dtype,
                              batch_size=batch_size, vision_layers=vision_layers)
    if on_graph_backend(model):  # llama.cpp: its compute graph, not hooks (a server: refused there)
        return capture_on_backend(model, inputs, sites, layers, positions, dtype, max_memory, progress,
                                  out=out, max_new_tokens=max_new_tokens)
    # out= and max_new_tokens= are kept for existing code; capture_stream and capture_generation
    # are the entry points with one return type each
    if out is not None:
        return capture_stream(model, inputs, out, sites=sites, layers=layers, positions=positions, dtype=dtype,
                              batch_size=batch_size, shard_size=shard_size, progress=progress)
    if max_new_tokens is not None:
        if positions is not None:
            raise InvalidInputError("positions= is not supported with max_new_tokens (positions grow while "
                                    "generating); capture all positions and index cache.tokens afterwards")
        return capture_generation(model, inputs, max_new_tokens, sites=sites, layers=layers, dtype=dtype,
                                  max_memory=max_memory)
    return capture_texts(model, inputs, sites, layers, positions, dtype, batch_size, max_memory, progress)


# former private names of helpers the streaming and generation captures share
_place, _provenance, _str_tokens, _backend_state_kept = place, capture_provenance, str_tokens, tokenizer_state_kept

"""Reading llama.cpp's compute graph while it runs (capture), and adding to its residual stream
(control vectors, for steering).

Capture uses the graph evaluation callback of llama.cpp's scheduler (``cb_eval`` in the context
parameters, the hook llama.cpp's own ``eval-callback`` and ``imatrix`` tools use): before each
node it is asked whether the node is wanted (``ask=True``); the graph is computed up to a wanted
node, and the callback gets it computed (``ask=False``). Only the wanted nodes are copied out
(``ggml_backend_tensor_get``, which reads host and device memory alike), one decode at a time,
and once the last wanted node of a decode is in, the callback stops the rest of the graph (the
layers after it, the output head), which a capture does not need.

Which node holds which site is declared per architecture by the family
(:class:`workbench.families.GraphSites`); :class:`workbench.inspect.sites.GraphAdapter` resolves
it for a loaded model and asks for the nodes by name. Capture runs in a context of its own (the callback is fixed when a context
is made, and a plain decode should not pay for it): made for the call and freed after it, with
the scoring context's settings, flash attention off only when ``attn_pattern`` is asked for
(flash attention never forms the attention probabilities).

Control vectors (``llama_set_adapter_cvec``) add a vector to ``l_out`` (``resid_post``) of
chosen layers of every context of the model while a steering block is open; llama.cpp has none
for layer 0.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from workbench.backends.llamacpp_lib import last_errors
from workbench.errors import BackendCapabilityError, UnsupportedSiteError, WorkbenchError

GGML_TYPE_F32, GGML_TYPE_F16 = 0, 1
_DTYPES = {GGML_TYPE_F32: np.float32, GGML_TYPE_F16: np.float16}


class _TensorHead(ctypes.Structure):
    """The leading fields of ``struct ggml_tensor`` (ggml.h): type, buffer, ne[4], nb[4], op.
    They have kept this layout since ggml's first release; the name is read through
    ``ggml_get_name``, not from the struct."""
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int)]


class Ggml:
    """The few functions of the ggml library (shipped with llama-cpp-python) reading a graph
    tensor needs."""

    def __init__(self, lib):
        import llama_cpp
        from llama_cpp._ctypes_extensions import load_shared_library
        folder = Path(llama_cpp.__file__).parent / "lib"
        try:
            so = load_shared_library("ggml-base", folder)
        except (FileNotFoundError, RuntimeError):  # older layouts: one libggml with everything
            so = load_shared_library("ggml", folder)
        for fn, res, args in (("ggml_get_name", ctypes.c_char_p, [ctypes.c_void_p]),
                              ("ggml_op_name", ctypes.c_char_p, [ctypes.c_int]),
                              ("ggml_nbytes", ctypes.c_size_t, [ctypes.c_void_p]),
                              ("ggml_is_contiguous", ctypes.c_bool, [ctypes.c_void_p]),
                              ("ggml_backend_tensor_get", None,
                               [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t])):
            f = getattr(so, fn)
            f.restype, f.argtypes = res, args
        self.so, self.lib = so, lib
        self._ops: dict[int, bytes] = {}

    def name(self, t: int) -> bytes:
        return self.so.ggml_get_name(t)

    def op(self, t: int) -> bytes:
        code = _TensorHead.from_address(t).op
        if code not in self._ops:
            self._ops[code] = self.so.ggml_op_name(code)
        return self._ops[code]

    def read(self, t: int) -> np.ndarray:
        """The tensor's data as an array shaped ``ne[3], ne[2], ne[1], ne[0]`` (its own type)."""
        head = _TensorHead.from_address(t)
        if head.type not in _DTYPES:
            raise WorkbenchError(f"graph tensor {self.name(t).decode()!r} is of ggml type {head.type}, not F32/F16: "
                                 "the workbench reads float tensors only")
        if not self.so.ggml_is_contiguous(t):
            raise WorkbenchError(f"graph tensor {self.name(t).decode()!r} is not contiguous in this llama.cpp build; "
                                 "its mapping in the family (workbench.families) should name a contiguous node")
        out = np.empty([head.ne[i] for i in (3, 2, 1, 0)], dtype=_DTYPES[head.type])
        if out.nbytes != self.so.ggml_nbytes(t):
            raise WorkbenchError(f"graph tensor {self.name(t).decode()!r}: {out.nbytes} bytes expected, "
                                 f"ggml says {self.so.ggml_nbytes(t)}")
        self.so.ggml_backend_tensor_get(t, out.ctypes.data, 0, out.nbytes)
        return out


_GGML: dict = {}


def ggml(lib) -> Ggml:
    """The ggml functions, loaded once; :class:`BackendCapabilityError` when this llama-cpp-python
    build cannot hand graph tensors to a callback (:func:`graph_support` says why)."""
    why = graph_support(lib)
    if why:
        raise BackendCapabilityError(why)
    return _GGML["ggml"]


def graph_support(lib) -> str | None:
    """None when this llama-cpp-python build can capture activations, else why it cannot."""
    fields = {f[0] for f in getattr(getattr(lib, "llama_context_params", None), "_fields_", [])}
    version = getattr(__import__("llama_cpp"), "__version__", "?")
    if "cb_eval" not in fields or not hasattr(lib, "ggml_backend_sched_eval_callback"):
        return (f"this llama-cpp-python build ({version}) has no graph evaluation callback (cb_eval in "
                "llama_context_params), so the 'llama.cpp' backend cannot capture activations with it; install "
                "the pinned version (pip install 'open-model-workbench[llamacpp]') or load the model with backend='hf'")
    if "ggml" in _GGML:
        return None
    try:
        _GGML["ggml"] = Ggml(lib)
    except (OSError, AttributeError, FileNotFoundError, RuntimeError) as e:
        return (f"this llama-cpp-python build ({version}) does not expose the ggml library functions capture needs "
                f"({e}); install the pinned version (pip install 'open-model-workbench[llamacpp]') or load the "
                "model with backend='hf'")
    return None


@dataclass
class Wanted:
    """A node to copy out: ``op`` (bytes, or None for the first node of its name) and ``sink``,
    which gets its data (:meth:`Ggml.read`)."""
    op: bytes | None
    sink: Callable[[np.ndarray], None]


class GraphReader:
    """The ``cb_eval`` callback: asks for the nodes of ``wanted`` (name -> :class:`Wanted`), the
    first matching node of each name per decode, and stops the graph once all are in. An error
    inside the callback (which must not raise into C) is kept and raised after the decode."""

    def __init__(self, lib, g: Ggml):
        self.g = g
        self.wanted: dict[bytes, Wanted] = {}
        self.pending: set = set()
        self.error: BaseException | None = None
        self.callback = lib.ggml_backend_sched_eval_callback(self._callback)  # keep: C holds the pointer

    def arm(self, wanted: dict) -> None:
        self.wanted, self.pending, self.error = wanted, set(wanted), None

    def missing(self) -> list[str]:
        """Names wanted in the last decode that the graph did not have."""
        return sorted(n.decode() for n in self.pending)

    def _callback(self, t, ask, _user_data):
        try:
            name = self.g.name(t)
            if ask:
                if name not in self.pending:
                    return False
                op = self.wanted[name].op
                return op is None or self.g.op(t) == op
            self.pending.discard(name)
            self.wanted[name].sink(self.g.read(t))
            return bool(self.pending)  # False: all in, the rest of the graph is not computed
        except BaseException as e:  # noqa: BLE001 (raised again after the decode)
            self.error = self.error or e
            return False


class CaptureContext:
    """A llama.cpp context on the backend's model with the graph callback set, freed on close.
    ``tokens`` per decode at most; ``n_outputs`` rows of logits at most. ``callback=False``
    makes the same context without it (the plain forward pass the capture benchmark times)."""

    def __init__(self, backend, n_ctx: int, tokens: int, n_outputs: int, flash_attention: bool,
                 callback: bool = True):
        eng = backend.engine
        self.lib, self.backend, self.tokens = eng.lib, backend, tokens
        self.reader = GraphReader(self.lib, ggml(self.lib))
        cp = self.lib.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, tokens, tokens, 1
        cp.n_threads = cp.n_threads_batch = eng.n_threads
        cp.n_outputs_max = n_outputs
        cp.no_perf = True
        if not flash_attention:
            cp.flash_attn_type = self.lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
            cp.swa_full = True  # a full-size cache for sliding-window layers too: KV cell i = position i
        if callback:
            cp.cb_eval = self.reader.callback
            cp.cb_eval_user_data = None
        self.ctx = self.lib.llama_init_from_model(eng.model, cp)
        if not self.ctx:
            raise WorkbenchError(f"llama.cpp could not create a capture context of {n_ctx} tokens: {last_errors()}")
        backend.control.apply(self.ctx)  # steering in force: captured under it, as on the HF backend

    def decode(self, tokens: list[int], start: int, flags: list[bool], wanted: dict) -> None:
        """Decode ``tokens`` (sequence 0, positions ``start...``) handing ``wanted`` to the callback;
        raises when the callback failed or the graph lacked a wanted node."""
        lib, n = self.lib, len(tokens)
        batch = lib.llama_batch_init(n, 0, 1)
        try:
            np.ctypeslib.as_array(batch.token, shape=(n,))[:] = tokens
            np.ctypeslib.as_array(batch.pos, shape=(n,))[:] = np.arange(start, start + n)
            np.ctypeslib.as_array(batch.n_seq_id, shape=(n,))[:] = 1
            np.ctypeslib.as_array(batch.logits, shape=(n,))[:] = np.asarray(flags, dtype=np.int8)
            for j in range(n):
                batch.seq_id[j][0] = 0
            batch.n_tokens = n
            self.reader.arm(wanted)
            rc = lib.llama_decode(self.ctx, batch)
        finally:
            lib.llama_batch_free(batch)
        if self.reader.error is not None:
            raise self.reader.error
        if rc != 0:
            raise WorkbenchError(f"llama_decode failed (code {rc}) while capturing: {last_errors()}")
        if self.reader.pending:
            raise UnsupportedSiteError(
                f"llama.cpp's graph of this model has no node named {self.reader.missing()} (the family's mapping, "
                "workbench.families, does not match this llama.cpp build); capture other sites or use backend='hf'")

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)

    def close(self) -> None:
        if self.ctx:
            self.lib.llama_free(self.ctx)
            self.ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ControlVectors:
    """The control vectors in force on a backend's contexts: layer -> summed direction (float32,
    [n_embd]). Nested steering blocks add up; every context the backend makes gets them
    (:meth:`apply`), and leaving a block takes its vector off again."""

    def __init__(self, lib, n_embd: int, n_layers: int):
        self.lib, self.n_embd, self.n_layers = lib, n_embd, n_layers
        self.active: list[tuple[int, np.ndarray]] = []

    def buffer(self) -> tuple[np.ndarray | None, int, int]:
        """(data from layer 1 on, first layer, last layer) as llama_set_adapter_cvec takes them."""
        if not self.active:
            return None, -1, -1
        data = np.zeros((self.n_layers - 1, self.n_embd), dtype=np.float32)
        for layer, vec in self.active:
            data[layer - 1] += vec
        layers = [layer for layer, _ in self.active]
        return data, min(layers), max(layers)

    def apply(self, ctx) -> None:
        """Set the vectors in force on a new context (nothing to do, and nothing done, when none
        is: a context starts without control vectors)."""
        if ctx and self.active:
            self._set(ctx)

    def _set(self, ctx) -> None:
        data, first, last = self.buffer()
        if data is None:
            rc = self.lib.llama_set_adapter_cvec(ctx, None, 0, self.n_embd, -1, -1)
        else:
            ptr = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            rc = self.lib.llama_set_adapter_cvec(ctx, ptr, data.size, self.n_embd, first, last)
        if rc != 0:
            raise WorkbenchError(f"llama.cpp refused the control vector: {last_errors()}")

    def push(self, layer: int, vector: np.ndarray, contexts) -> tuple:
        entry = (layer, np.ascontiguousarray(vector, dtype=np.float32))
        self.active.append(entry)
        try:
            self._refresh(contexts)
        except BaseException:
            self.pop(entry, contexts)
            raise
        return entry

    def pop(self, entry, contexts) -> None:
        self.active = [e for e in self.active if e is not entry]
        self._refresh(contexts)

    def _refresh(self, contexts) -> None:
        for ctx in contexts:
            if ctx:
                self._set(ctx)  # an empty set clears what a left block had set

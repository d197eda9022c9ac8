"""The llama.cpp backend: a GGUF file as it is deployed (quantised weights, llama.cpp's kernels,
memory-mapped), through ``llama-cpp-python``'s low-level binding of llama.cpp's C API.

    >>> import workbench as wb
    >>> m = wb.load_model("smollm2-135m-instruct", backend="llama.cpp")   # doctest: +SKIP
    >>> wb.loglikelihood(m, [("The capital of France is", " Paris")])    # doctest: +SKIP

What it answers (token ids in, numbers out; tokenisation, truncation rules, caching and result
frames stay above it, exactly as for the Hugging Face backend):

* ``token_logprobs`` / ``token_moments``: every request's context and continuation are decoded
  with logits requested at the scored positions only; log-sum-exp from float32 exponentials
  summed in float64 (within 1e-7 of a float64 log-softmax), read in place from llama.cpp's output
  buffer. Requests are packed several to one ``llama_decode`` as separate sequences of one unified
  KV cache (llama.cpp masks attention between sequences), which keeps its matrix kernels busy on
  short items. Inputs longer than the window lose context tokens from the left, like the HF engine.
* prefix sharing, as in the HF engine and with its grouping (:func:`workbench.engine.shared.group_shared`):
  requests whose tokens start alike (a multiple-choice question's choices) decode the common
  prefix once, in the group's first member; ``llama_memory_seq_cp`` gives its cells to the other
  members, which decode only their rest. ``share_contexts=False`` turns it off.
* ``generate``: llama.cpp's samplers, seeded (greedy by default).
* ``embed``: the last layer's hidden states (after the final norm, as ``base_model(...)[0]``),
  pooled above the engine's per-token output; other layers are not exposed by llama.cpp.

Numbers depend on how requests are batched: llama.cpp picks kernels by batch size (its CPU
flash attention rounds queries to float16 below 64 tokens per micro-batch, not above), and the
quantised kernels round activations to 8 bits, so a last-bit difference can flip a rounding
and grow through the layers. Measured on SmolLM2 (max |diff| per token, same requests scored
alone vs packed): 0.02-0.16 nats on the F16 re-quantisation, up to 0.4 (multiple choice) and 2.1
(CrowS-Pairs) nats on the shipped Q4_1. Prefix sharing changes the batching, so it moves numbers
by the same order, no more (``tests/test_backend_llamacpp.py``). A request's numbers depend on
the other requests of its call within these bounds.

Speed and memory (``benchmarks/backends.py``, one core): scoring many short requests is
compute-bound, and on an AVX-512 CPU torch's float32 matrix products keep up with llama.cpp's
quantised kernels on a 135M-270M model (Q4_1 has neither a repacked nor a llamafile kernel); the
benchmark prints the side-by-side table, with each backend's items/s as a multiple of float32's
(two runs on a shared machine: 0.7-1.7x). Its advantage is memory (a 70B Q4 file runs in ~40 GB) and token-by-token decoding.

Inspection: ``capture`` (the nodes of llama.cpp's compute graph that inspection asks for by name,
copied out through its evaluation callback, :mod:`workbench.backends.llamacpp_graph` and
:mod:`~workbench.backends.llamacpp_capture`; the GGUF's own weights for the logit lens and DLA,
:mod:`workbench.backends.llamacpp_gguf`) and ``steer`` (control vectors,
:mod:`workbench.backends.llamacpp_steer`). Which node holds which site is inspection's
(:class:`workbench.inspect.sites.GraphAdapter`). There are no in-process modules to hook, so what
needs ``hooks`` (patching, ablation, attribution) raises
:class:`~workbench.errors.BackendCapabilityError` naming the ``hf`` backend.

Why ``llama-cpp-python`` and not ``llama-cpp-py-sync``: the latter's prebuilt CPU wheels (every
release) link against glibc 2.38 despite their ``manylinux2014`` tag, so they cannot load on
Debian 12 (glibc 2.36) and the like; ``llama-cpp-python`` builds llama.cpp from source for the
machine it installs on (a C++ compiler and ~5-30 minutes, once) and exposes the same C API
(``llama_decode``, per-position ``llama_get_logits``, ``llama_model_quantize``) plus an
OpenAI-compatible server (:mod:`workbench.backends.openai` is tested against it).
"""
from __future__ import annotations

import ctypes
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import transformers as T
from tqdm.auto import tqdm

from workbench.backends import gguf_files, llamacpp_gguf
from workbench.backends.base import Backend
from workbench.backends.llamacpp_capture import capture_nodes
from workbench.backends.llamacpp_graph import ControlVectors
from workbench.backends.llamacpp_lib import (INSTALL, LOG as _LOG, N_BATCH, N_SEQ_MAX, OUTPUT_BYTES,  # noqa: F401
                                             ROUND_CELLS, binding as _binding, last_errors as _last_errors)
from workbench.backends.llamacpp_steer import control_vector, cvec_layer
from workbench.engine import shared
from workbench.engine.causal import max_length
from workbench.engine.prompts import prompt_text
from workbench.errors import (BackendCapabilityError, CorruptModelError, InvalidInputError, InvalidTypeError,
                              TokenizerMismatchError, WorkbenchError, WrongModelKindError)
from workbench.models.fingerprint import fingerprint_record, weights_hash
from workbench.models.loading import _load_tokenizer, detect_kind
from workbench.models.model import Model
from workbench.progress import show_progress

SOFTMAX_ELEMENTS = 1 << 21  # logits per log-softmax step (8 MB per float32 temporary)
_HF_ONLY = ("dtype", "device", "device_map", "max_memory", "offload_folder", "revision", "hub_cache_dir")


class _Piece(NamedTuple):
    """Tokens of one sequence to decode at positions ``start...``; ``owners`` has one entry per
    flagged token (in order): what its output row is for, handed back to the caller's consumer."""
    seq: int
    tokens: list
    start: int
    flags: list
    owners: list


class _Round(NamedTuple):
    """One filling of the KV cache: ``first`` is decoded, then ``copies`` (src, dst, n) give
    sequence dst the first n cells of src (a shared prefix), then ``second`` continues them."""
    first: list
    copies: list
    second: list
    cells: int
    n_seqs: int


class _Engine:
    """One llama.cpp model and context; the context is re-created larger when a request needs it."""

    def __init__(self, path: Path, n_threads: int, n_gpu_layers: int, n_ctx: int, limit: int):
        self.version, self.lib = _binding()
        lib = self.lib
        mp = lib.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        _LOG["errors"] = []
        self.model = lib.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise CorruptModelError(f"llama.cpp could not load {path}: {_last_errors()}. Is it a GGUF of an "
                                    "architecture this llama.cpp build supports?")
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(lib.llama_model_n_embd(self.model))
        self.n_threads, self.limit, self.ctx, self.n_ctx = n_threads, limit, None, 0
        # llama.cpp aborts (not an error code) when a context may return fewer rows than it holds sequences
        self.max_outputs = max(N_SEQ_MAX, min(N_BATCH, OUTPUT_BYTES // (4 * self.n_vocab)))
        self._embeddings = False
        self.on_new_context = None  # called with each new context (control vectors in force)
        # a recurrent state is not per-token cells: a shared prefix cannot be copied out of it
        self.can_share = not (lib.llama_model_is_recurrent(self.model) or lib.llama_model_is_hybrid(self.model))
        self.ensure(min(n_ctx, limit))

    def ensure(self, n_tokens: int) -> None:
        """A context holding at least ``n_tokens`` (a power of two, at most the model's window)."""
        if self.ctx is not None and n_tokens <= self.n_ctx:
            return
        size = max(N_BATCH, 1 << max(0, n_tokens - 1).bit_length())
        size = max(min(size, self.limit), n_tokens)
        lib = self.lib
        if self.ctx is not None:
            lib.llama_free(self.ctx)
            self.ctx = None
        cp = lib.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = size, N_BATCH, N_BATCH, N_SEQ_MAX
        cp.n_threads = cp.n_threads_batch = self.n_threads
        # a decode returns at most max_outputs rows of logits: the compute buffer is sized for
        # that, not for N_BATCH rows (512 x 262k floats = 512 MB for Gemma 3's vocabulary)
        cp.n_outputs_max = self.max_outputs
        cp.kv_unified = True  # the packed sequences share one cache of n_ctx cells
        cp.no_perf = True
        self.ctx = lib.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise WorkbenchError(f"llama.cpp could not create a context of {size} tokens: {_last_errors()}")
        self.n_ctx = size
        if self._embeddings:  # a new context starts with embeddings off: keep what was asked for
            lib.llama_set_embeddings(self.ctx, True)
        if self.on_new_context is not None:
            self.on_new_context(self.ctx)

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)

    def set_embeddings(self, on: bool) -> None:
        if on != self._embeddings:
            self.lib.llama_set_embeddings(self.ctx, on)
            self._embeddings = on

    def decode(self, seqs: list[tuple[int, list[int], int, list[bool]]], what: str = "logits") -> np.ndarray:
        """Decode ``(seq_id, tokens, first position, output flags)`` in one batch; returns the logits
        (or embeddings) of the flagged tokens, in batch order, as float32 [n_flagged, width].
        Logits are a view of llama.cpp's output buffer: valid until the next decode."""
        lib = self.lib
        n = sum(len(t) for _, t, _, _ in seqs)
        batch = lib.llama_batch_init(n, 0, 1)
        try:
            tok = np.ctypeslib.as_array(batch.token, shape=(n,))
            pos = np.ctypeslib.as_array(batch.pos, shape=(n,))
            nsq = np.ctypeslib.as_array(batch.n_seq_id, shape=(n,))
            out = np.ctypeslib.as_array(batch.logits, shape=(n,))
            k = 0
            for sid, tokens, start, flags in seqs:
                m = len(tokens)
                tok[k:k + m] = tokens
                pos[k:k + m] = np.arange(start, start + m)
                out[k:k + m] = np.asarray(flags, dtype=np.int8)
                for j in range(k, k + m):
                    batch.seq_id[j][0] = sid
                k += m
            nsq[:] = 1
            batch.n_tokens = n
            rc = lib.llama_decode(self.ctx, batch)
            if rc != 0:
                raise WorkbenchError(f"llama_decode failed (code {rc}): {_last_errors()}")
            n_out = int(np.count_nonzero(out))
            if what == "logits":
                # llama_get_logits puts the rows in batch order (llama.cpp reorders its output
                # buffer when ubatches were split by sequence): no copy of up to OUTPUT_BYTES
                ptr = lib.llama_get_logits(self.ctx)
                if not ptr:
                    raise WorkbenchError(f"llama.cpp returned no logits: {_last_errors()}")
                return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab)) if n_out else \
                    np.zeros((0, self.n_vocab), dtype=np.float32)
            # row by row through the batch index (*_ith): the contiguous llama_get_embeddings
            # buffer is not compacted to the flagged tokens (it gave token 0's row for any flag)
            flagged = np.flatnonzero(out)
            rows = np.empty((len(flagged), self.n_embd), dtype=np.float32)
            for r, j in enumerate(flagged):
                ptr = lib.llama_get_embeddings_ith(self.ctx, int(j))
                if not ptr:
                    raise WorkbenchError(f"llama.cpp returned no {what} for batch position {j}: {_last_errors()}")
                rows[r] = np.ctypeslib.as_array(ptr, shape=(self.n_embd,))
            return rows
        finally:
            lib.llama_batch_free(batch)

    def run(self, rounds: list[_Round], consume, what: str = "logits") -> None:
        """Decode each round on an empty cache; ``consume(rows, owners)`` gets every decode's
        flagged outputs with their owners, as soon as they arrive (so at most one decode's
        logits, ``OUTPUT_BYTES``, are held at a time)."""
        for rnd in rounds:
            self.ensure(rnd.cells)
            self.clear()
            self._run_pass(rnd.first, consume, what)
            if rnd.copies:
                mem = self.lib.llama_get_memory(self.ctx)
                for src, dst, n in rnd.copies:
                    self.lib.llama_memory_seq_cp(mem, src, dst, 0, n)
            self._run_pass(rnd.second, consume, what)

    def _run_pass(self, pieces: list[_Piece], consume, what: str) -> None:
        """Pieces cut into chunks of at most N_BATCH tokens (``max_outputs`` for embeddings) and
        ``max_outputs`` flagged ones (a long sequence continues its KV cache chunk by chunk),
        packed into decodes in order."""
        batch, owners, tokens, outputs = [], [], 0, 0
        # with embeddings on, llama.cpp outputs every token of a decode whatever the flags say, and
        # aborts the process past n_outputs_max: a decode then holds at most max_outputs tokens
        per_decode = N_BATCH if what == "logits" else min(N_BATCH, self.max_outputs)

        def flush():
            nonlocal batch, owners, tokens, outputs
            if batch:
                rows = self.decode(batch, what)
                if len(rows):
                    consume(rows, owners)
            batch, owners, tokens, outputs = [], [], 0, 0

        for p in pieces:
            start, done = 0, 0
            while start < len(p.tokens):
                end, flagged = start, 0
                while (end < len(p.tokens) and end - start < per_decode
                       and flagged + p.flags[end] <= self.max_outputs):
                    flagged += p.flags[end]
                    end += 1
                if batch and (tokens + end - start > per_decode or outputs + flagged > self.max_outputs):
                    flush()
                batch.append((p.seq, p.tokens[start:end], p.start + start, p.flags[start:end]))
                owners += p.owners[done:done + flagged]
                tokens, outputs = tokens + end - start, outputs + flagged
                start, done = end, done + flagged
        flush()

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            self.lib.llama_model_free(self.model)
            self.model = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass


def _pack(jobs: list[tuple[int, int, object]], build) -> list[_Round]:
    """Jobs ``(n_seqs, cells, key)`` packed into rounds of at most N_SEQ_MAX sequences and
    ROUND_CELLS cells (a larger job alone), largest first; ``build(key, first_seq)`` returns a
    job's (first pieces, copies, second pieces) with its sequences numbered from first_seq."""
    rounds, current, seqs, cells = [], [], 0, 0

    def close():
        if current:
            first, copies, second = [], [], []
            for key, s in current:
                f, c, r = build(key, s)
                first += f
                copies += c
                second += r
            rounds.append(_Round(first, copies, second, cells, seqs))

    for n_seqs, n_cells, key in sorted(jobs, key=lambda j: -j[1]):
        if current and (seqs + n_seqs > N_SEQ_MAX or cells + n_cells > ROUND_CELLS):
            close()
            current, seqs, cells = [], 0, 0
        current.append((key, seqs))
        seqs, cells = seqs + n_seqs, cells + n_cells
    close()
    return rounds


def _group_pieces(g, seq: int, full: list, n_cont: list, offset) -> tuple[list, list, list]:
    """A group of requests sharing ``g.n_prefix`` input tokens (:func:`workbench.engine.shared.group_shared`)
    as sequences ``seq...``: the lead (first member) runs whole, with outputs at its own scored
    positions and at the prefix positions any member scores (one row serves them all); its first
    n_prefix cells are copied to the other members, whose rest continues at position n_prefix."""
    n = g.n_prefix
    lead = g.members[0]
    first = {i: len(full[i]) - 1 - n_cont[i] for i in g.members}   # first scored input position
    flags, owners = [], []
    for p in range(len(full[lead]) - 1):
        who = [i for i in g.members if first[i] <= p] if p < n else ([lead] if first[lead] <= p else [])
        flags.append(bool(who))
        if who:
            owners.append([(offset[i] + p - first[i], full[i][p + 1]) for i in who])
    pieces, copies, rests = [_Piece(seq, full[lead][:-1], 0, flags, owners)], [], []
    for k, i in enumerate(g.members[1:], start=1):
        positions = range(n, len(full[i]) - 1)
        if positions:
            copies.append((seq, seq + k, n))
            rests.append(_Piece(seq + k, full[i][n:-1], n, [p >= first[i] for p in positions],
                                [[(offset[i] + p - first[i], full[i][p + 1])] for p in positions if p >= first[i]]))
    return pieces, copies, rests


def _row_stats(logits: np.ndarray, moments: bool):
    """Per row: log-sum-exp (float64), argmax, and with ``moments`` the mean and variance of
    log p under p. The exponentials are taken in float32 on ``logit - max`` and summed in
    float64: within 1e-7 of a float64 log-softmax (measured: ~1e-8 on a 262k vocabulary) at a
    third of its cost, which on Gemma's vocabulary was 15% of CrowS-Pairs' time."""
    n = logits.shape[0]
    lse, amax = np.empty(n), np.empty(n, dtype=np.int64)
    mean, var = (np.empty(n), np.empty(n)) if moments else (None, None)
    step = max(1, SOFTMAX_ELEMENTS // max(1, logits.shape[1]))
    buf = np.empty((min(step, n), logits.shape[1]), dtype=np.float32)
    for s in range(0, n, step):
        x = logits[s:s + step]
        m = x.max(axis=1)
        amax[s:s + len(x)] = x.argmax(axis=1)
        b = buf[:len(x)]
        np.subtract(x, m[:, None], out=b)
        np.exp(b, out=b)
        lse[s:s + len(x)] = m + np.log(b.sum(axis=1, dtype=np.float64))
        if moments:  # exact float64, as before (Min-K%++ only)
            y = x.astype(np.float64) - lse[s:s + len(x), None]
            p = np.exp(y)
            mu = (p * y).sum(axis=1)
            mean[s:s + len(x)] = mu
            var[s:s + len(x)] = (p * (y - mu[:, None]) ** 2).sum(axis=1)
    return lse, amax, mean, var


class LlamaCppBackend(Backend):
    """Answers token log-prob, generation and embedding requests with llama.cpp on a GGUF file."""

    name = "llama.cpp"
    capabilities = frozenset({"token_logprobs", "token_moments", "generate", "embed", "capture", "steer"})

    def __init__(self, gguf, config, n_threads: int | None = None, n_gpu_layers: int = 0,
                 n_ctx: int | None = None):
        self.gguf, self.config = gguf, config
        self.n_gpu_layers = int(n_gpu_layers)
        self.limit = max_length(self)  # the scoring window, as for every backend
        threads = n_threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
        self.engine = _Engine(gguf.path, int(threads or 1), self.n_gpu_layers, int(n_ctx or ROUND_CELLS), self.limit)
        self.n_params = int(self.engine.lib.llama_model_n_params(self.engine.model))
        self.file_type = _file_type(self.engine)
        lib = self.engine.lib
        self.control = ControlVectors(lib, self.engine.n_embd, int(lib.llama_model_n_layer(self.engine.model)))
        self.engine.on_new_context = self.control.apply

    def settings(self) -> dict:
        out = {"binding": "llama-cpp-python", "version": self.engine.version.__version__,
               "weights": self.file_type}
        if self.n_gpu_layers:  # GPU kernels give other numbers than the CPU ones
            out["n_gpu_layers"] = self.n_gpu_layers
        return out

    # -- inspection: raw nodes of the compute graph, the GGUF's unembedding, control vectors ------
    # (which node holds which site is inspection's: workbench.inspect.sites.GraphAdapter)
    def graph_shape(self):
        return llamacpp_gguf.graph_shape(self)

    def unembedding(self):
        return llamacpp_gguf.unembedding(self)

    def capture(self, model, rows, nodes, every_row, progress, reader):
        return capture_nodes(self, rows, nodes, every_row, progress, reader)

    def control_vector(self, model, site, layer, vector):
        return control_vector(self, cvec_layer(self, site, layer, self.control.n_layers), vector)

    # -- token log-probs ----------------------------------------------------------------------
    def score_tokens(self, model, requests, *, token_budget=None, progress=None, desc="scoring",
                     share_contexts=True, moments=False):
        limit = self.limit
        full = [list(ctx) + list(cont) for ctx, cont in requests]
        n_cont = [len(cont) for _, cont in requests]
        offset = np.concatenate([[0], np.cumsum(n_cont, dtype=np.int64)])  # each request's slice of the flat results
        # the HF engine's grouping by common token prefix; a recurrent state cannot be shared by copying cells
        if share_contexts and self.engine.can_share:
            groups, rest = shared.group_shared(requests, limit, N_SEQ_MAX)
        else:
            groups, rest = [], list(range(len(requests)))
        jobs = [(len(g.members), len(full[g.members[0]]) - 1 + sum(len(full[i]) - 1 - g.n_prefix for i in g.members[1:]), g)
                for g in groups]
        jobs += [(1, min(len(full[i]) - 1, limit), i) for i in rest]

        def build(key, seq):
            if isinstance(key, shared.Group):
                return _group_pieces(key, seq, full, n_cont, offset)
            i = key
            tokens, n = full[i][:-1][-limit:], n_cont[i]  # too long: context lost from the left
            owners = [[(offset[i] + k, t)] for k, t in enumerate(full[i][-n:])]
            return [_Piece(seq, tokens, 0, [False] * (len(tokens) - n) + [True] * n, owners)], [], []

        lp, greedy = np.empty(offset[-1]), np.zeros(offset[-1], dtype=bool)
        mean, var = (np.empty(offset[-1]), np.empty(offset[-1])) if moments else (None, None)

        def consume(rows, owners):
            lse, amax, mu, sd = _row_stats(rows, moments)
            r = np.array([k for k, own in enumerate(owners) for _ in own], dtype=np.int64)
            f = np.array([f for own in owners for f, _ in own], dtype=np.int64)
            t = np.array([t for own in owners for _, t in own], dtype=np.int64)
            lp[f] = rows[r, t] - lse[r]  # float64: the float32 logit is exact in it
            greedy[f] = amax[r] == t
            if moments:
                mean[f], var[f] = mu[r], sd[r]

        rounds = _pack(jobs, build)
        show = show_progress(progress, default=len(requests) > 64)
        with tqdm(total=len(requests), desc=desc, disable=not show, leave=False) as bar:
            for rnd in rounds:
                self.engine.run([rnd], consume)
                bar.update(rnd.n_seqs)
        results = []
        for i in range(len(requests)):
            sl = slice(offset[i], offset[i + 1])
            r = {"token_logprobs": lp[sl].tolist(), "greedy": greedy[sl].tolist()}
            if moments:
                r.update(logp_mean=mean[sl].tolist(), logp_var=var[sl].tolist())
            results.append(r)
        return results

    # -- generation ----------------------------------------------------------------------------
    def generate(self, model, prompts, *, max_new_tokens, seed, do_sample, temperature, top_p, top_k,
                 num_return_sequences, batch_size, chat, progress=None, system_prompt=None):
        tok, eng, lib = model.tokenizer, self.engine, self.engine.lib
        rows = []
        for start in range(0, len(prompts), batch_size):
            b = start // batch_size  # the seed of a batch is seed + its index, as the HF backend
            for k, prompt in enumerate(prompts[start:start + batch_size]):
                text = prompt_text(tok, prompt, chat, system_prompt)
                ids = tok(text, add_special_tokens=not chat)["input_ids"]
                for j in range(num_return_sequences):
                    sampler_seed = ((seed + b) * 1_000_003 + k * 7919 + j) % (1 << 32)
                    new = self._generate_one(ids, max_new_tokens, do_sample, temperature, top_p, top_k, sampler_seed)
                    if tok.eos_token_id in new:
                        new = new[:new.index(tok.eos_token_id)]
                    rows.append({"prompt": prompt, "sample": j,
                                 "completion": tok.decode(new, skip_special_tokens=True),
                                 "n_new_tokens": len(new), "seed": seed + b})
        return rows

    def _generate_one(self, ids, max_new_tokens, do_sample, temperature, top_p, top_k, sampler_seed):
        eng, lib = self.engine, self.engine.lib
        eng.ensure(len(ids) + max_new_tokens)
        eng.clear()
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        try:
            if do_sample:  # the order of transformers' logits warpers: temperature, top-k, top-p
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(float(temperature)))
                if top_k is not None:
                    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(int(top_k)))
                if top_p < 1.0:
                    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(float(top_p), 1))
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(sampler_seed))
            else:
                lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            # the prompt, in chunks; logits at its last token only
            for s in range(0, len(ids), N_BATCH):
                part = ids[s:s + N_BATCH]
                eng.decode([(0, part, s, [False] * (len(part) - 1) + [s + len(part) == len(ids)])])
            new, pos = [], len(ids)
            for _ in range(max_new_tokens):
                t = int(lib.llama_sampler_sample(chain, eng.ctx, -1))
                if lib.llama_vocab_is_eog(eng.vocab, t):
                    break
                new.append(t)
                if len(new) == max_new_tokens:
                    break
                eng.decode([(0, [t], pos, [True])])
                pos += 1
            return new
        finally:
            lib.llama_sampler_free(chain)

    # -- embeddings ----------------------------------------------------------------------------
    def embed(self, model, sentences, pooling, layer, normalize, batch_size, progress=None, max_tokens=None):
        n_layers = model.n_layers
        if layer not in (-1, n_layers):
            raise BackendCapabilityError(
                f"the 'llama.cpp' backend gives the last layer's hidden states only (layer=-1), not layer={layer}; "
                "load the model with backend='hf' for other layers")
        if pooling not in ("mean", "cls", "last"):
            raise InvalidInputError(f"pooling must be one of ('mean', 'cls', 'last'), got {pooling!r}")
        tok = model.tokenizer
        items = []
        for s in sentences:
            ids = tok(s)["input_ids"]
            ids = ids[:max_tokens] if max_tokens else ids
            flags = ([True] * len(ids) if pooling == "mean" else
                     [i == 0 for i in range(len(ids))] if pooling == "cls" else
                     [i == len(ids) - 1 for i in range(len(ids))])
            items.append((ids, flags))
        jobs = [(1, len(ids), i) for i, (ids, _) in enumerate(items)]
        build = lambda i, seq: ([_Piece(seq, items[i][0], 0, items[i][1], [i] * sum(items[i][1]))], [], [])
        sums, counts = np.zeros((len(items), self.engine.n_embd)), np.zeros(len(items))

        def consume(rows, owners):  # mean pooling over the chunks of a long sentence
            np.add.at(sums, owners, rows.astype(np.float64))
            np.add.at(counts, owners, 1)

        self.engine.set_embeddings(True)
        try:
            self.engine.run(_pack(jobs, build), consume, what="embeddings")
        finally:
            self.engine.set_embeddings(False)
        emb = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        if normalize:
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        return emb


VOCAB_TOLERANCE = 0.01  # share of ids whose token text may differ (with a warning) before a tokenizer is refused


def _token_text(text: str) -> str:
    """A token's text in one spelling: SentencePiece writes a space as '▁', which the GGUF keeps
    for most tokens but not for runs of spaces (Gemma 3: token 138 is '  ' in the GGUF, '▁▁' in
    transformers' tokenizer of the same file)."""
    return text.replace("\u2581", " ")


def check_vocabulary(engine: _Engine, tokenizer, where: str = "") -> None:
    """Every id the tokenizer gives must be the GGUF's token of the same text: llama.cpp takes the
    ids as they are, so another model's tokenizer would score other tokens without any error.
    All ids are compared (0.2 s for a 262k vocabulary). Measured on the embedded GGUFs with their
    own tokenizers: 0 differences once a space is spelled one way (:func:`_token_text`); with the
    other embedded model's tokenizer, 2 of 49,152 ids agree. A few differences (up to
    ``VOCAB_TOLERANCE`` of the ids: a converter's spelling of control tokens) are warned about;
    more are refused."""
    n = min(len(tokenizer), engine.n_vocab)
    ours = tokenizer.convert_ids_to_tokens(list(range(n)))
    get = engine.lib.llama_vocab_get_text
    differ = []
    for i, text in enumerate(ours):
        if text is None:  # an id the tokenizer never produces
            continue
        theirs = (get(engine.vocab, i) or b"").decode("utf-8", "replace")
        if _token_text(theirs) != _token_text(text):
            differ.append((i, text, theirs))
    if not differ:
        return
    examples = ", ".join(f"id {i}: {a!r} here, {b!r} in the GGUF" for i, a, b in differ[:3])
    if len(differ) > VOCAB_TOLERANCE * n:
        raise TokenizerMismatchError(
            f"the tokenizer{where} is not this GGUF's: {len(differ)} of its {n} token ids name other tokens in the "
            f"GGUF's vocabulary ({examples}), so its ids would score other tokens. Leave tokenizer=None (the GGUF's "
            "own tokenizer) or pass the tokenizer of the model this GGUF was converted from.")
    warnings.warn(f"the tokenizer{where} and the GGUF's vocabulary spell {len(differ)} of {n} tokens differently "
                  f"({examples}); texts that tokenise to those ids are scored with the GGUF's tokens",
                  UserWarning, stacklevel=3)


def _file_type(engine: _Engine) -> str:
    """The GGUF's weight type as llama.cpp names it (e.g. 'Q4_1', 'Q4_K - Medium')."""
    lib = engine.lib
    buf = ctypes.create_string_buffer(256)
    lib.llama_model_desc(engine.model, buf, 256)
    desc = buf.value.decode("utf-8", "replace")  # "<arch> <size> <ftype>"
    try:
        import gguf
        return gguf.LlamaFileType(int(lib.llama_model_ftype(engine.model))).name.replace("MOSTLY_", "")
    except (ValueError, AttributeError, ImportError):
        return desc


def load_llamacpp(spec, *, tokenizer=None, name: str | None = None, licence: str | None = None,
                  kind: str | None = None, n_threads: int | None = None, n_gpu_layers: int = 0,
                  n_ctx: int | None = None, **options):
    """The registry's loader for ``backend="llama.cpp"``: ``spec`` is an embedded GGUF alias, a
    ``.gguf`` path or a folder holding one. ``n_threads`` (default: the CPUs this process may run
    on, so ``taskset`` pins it), ``n_gpu_layers`` (layers on a GPU build's device), ``n_ctx``
    (initial context size; it grows on demand up to the model's window)."""
    hf_only = sorted(k for k in options if k in _HF_ONLY)
    if hf_only:
        raise InvalidInputError(f"{', '.join(hf_only)} apply to backend='hf' only: the llama.cpp backend runs the "
                                "GGUF's own (quantised) weights on llama.cpp's device; re-quantise the GGUF for "
                                "another precision (workbench.backends.quantize) or load with backend='hf'")
    if options:
        raise InvalidTypeError(f"load_model(backend='llama.cpp') got unknown options {sorted(options)}; it takes "
                               "tokenizer, name, licence, kind, n_threads, n_gpu_layers and n_ctx")
    _binding()  # a clear install message before any file work
    gguf = gguf_files.resolve(spec)
    header = gguf_files.header_folder(gguf)
    config = T.AutoConfig.from_pretrained(header)
    found = detect_kind(config)
    if (kind or found) != "causal":
        raise WrongModelKindError(f"the llama.cpp backend scores causal language models; this GGUF is a "
                                  f"{kind or found} model ({config.model_type}): load it with backend='hf'")
    where = f" from {tokenizer}" if isinstance(tokenizer, (str, os.PathLike)) else (
        " passed as tokenizer=" if tokenizer is not None else " read from the GGUF header")
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = _load_tokenizer(tokenizer or header, False)
    backend = LlamaCppBackend(gguf, config, n_threads=n_threads, n_gpu_layers=n_gpu_layers, n_ctx=n_ctx)
    if len(tokenizer) > backend.engine.n_vocab:
        raise TokenizerMismatchError(f"the tokenizer{where} has {len(tokenizer)} tokens but the GGUF's vocabulary has "
                                     f"{backend.engine.n_vocab}: it is not this model's tokenizer")
    check_vocabulary(backend.engine, tokenizer, where)
    meta = gguf_files.header_metadata(header)
    files = {gguf.file_name: gguf.sha256}  # the same weights hash as the HF route of this GGUF
    fp = fingerprint_record(weights_sha256=weights_hash(files), weight_files=files, tokenizer=tokenizer,
                            config=config, dtype=backend.file_type, device="gpu" if n_gpu_layers else "cpu",
                            licence=licence or gguf.licence or meta.get("general.license")
                            or "unknown (no licence in the GGUF header)",
                            source=gguf.source, loaded_from=str(gguf.path))
    return Model(hf=None, tokenizer=tokenizer, name=name or gguf.alias or Path(gguf.file_name).stem, kind="causal",
                 fingerprint=fp, licence=fp["licence"], source=gguf.source, backend=backend)

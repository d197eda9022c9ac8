"""What a backend is: the engine that answers a model's requests.

The workbench keeps everything that decides *what* is computed above the backends, once:
validation at the door, tokenisation conventions (BOS, the lm-eval whole-string split, chat
rendering), the result cache, truncation to the window, result frames and provenance. A backend
answers a few request kinds on token ids it is handed, like lm-evaluation-harness's
``loglikelihood`` / ``loglikelihood_rolling`` / ``generate_until``:

==========================  ==========================================================================
capability                  request
==========================  ==========================================================================
``token_logprobs``          per-token log-probs (and greedy flags) of continuation ids given context
                            ids: ``score_tokens``. Serves ``wb.loglikelihood``, ``wb.perplexity``
                            (rolling windows are built above the backend), ``token_stats``.
``token_moments``           the mean and variance of log p over the vocabulary at each scored
                            position, in the same pass (Min-K%++)
``masked_logprobs``         log-probs over the vocabulary at masked positions: ``masked_logprobs``
                            (pseudo-log-likelihood, fill-mask)
``generate``                seeded generation from prompt strings: ``generate``
``embed``                   pooled hidden states: ``embed``
``hooks``                   the unmodified in-process modules, for inspection (capture, lens,
                            attention, ablation, patching, steering, attribution, SAEs)
``capture``                 nodes of the model's compute graph by name, as raw arrays, while token
                            rows run (``graph_shape``/``unembedding``/``capture``: llama.cpp's
                            graph); inspection maps the sites onto the nodes (the family's
                            ``GraphSites``) for ``wb.capture``, the logit lens, direct logit
                            attribution, steering vectors
``steer``                   adding a vector to the residual stream (``control_vector``: llama.cpp's
                            control vectors): ``wb.inspect.steer``, ``steer_feature``
==========================  ==========================================================================

Asking a backend for what it cannot do raises :class:`~workbench.errors.BackendCapabilityError`
naming the registered backends that can (:func:`require`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from workbench.backends.registry import CAPABILITIES, backends_with  # noqa: F401  (CAPABILITIES kept here too)
from workbench.errors import BackendCapabilityError

# what each capability lets a user do, for error messages
_WHAT = {"token_logprobs": "log-likelihood scoring", "token_moments": "Min-K%++ token moments",
         "masked_logprobs": "masked-LM scoring", "generate": "generation", "embed": "embeddings",
         "hooks": "in-process hooks (patching, ablation, attribution, gradients, SAE splicing, any site edit)",
         "capture": "activation capture (wb.capture, logit lens, direct logit attribution)",
         "steer": "steering (adding a vector to the residual stream)"}


class GraphShape(NamedTuple):
    """What inspection needs to know of a compute graph to map the sites onto it (``capture``):
    ``arch``, the architecture its graph builder names (llama.cpp: the GGUF's
    ``general.architecture``, which picks the family's ``GraphSites``), and the model's sizes."""
    arch: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    vocab: int


class Backend:
    """Base class of every backend. A subclass sets ``name`` and ``capabilities`` and implements
    the request methods of its capabilities; the rest raise :class:`BackendCapabilityError`.

    ``settings()`` returns what changes the numbers a backend computes (precision, quantisation,
    server model, ...): it is part of the model's fingerprint, so results of two settings never
    share a cache entry or a stored cell.
    """

    name: str = "base"
    capabilities: frozenset = frozenset()

    def settings(self) -> dict:
        return {}

    def describe(self) -> dict:
        """The backend as provenance records it: name plus settings."""
        return {"name": self.name, **self.settings()}

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    # -- request kinds (token ids in, numbers out) --------------------------------------------
    def score_tokens(self, model, requests: list[tuple[list[int], list[int]]], *, token_budget: int,
                     progress=None, desc: str = "scoring", share_contexts: bool = True,
                     moments: bool = False) -> list[dict]:
        """For each (context ids, continuation ids): ``{"token_logprobs": [...], "greedy": [...]}``
        (plus ``logp_mean``/``logp_var`` with ``moments``). The context is never empty: the
        caller puts a BOS/EOS id there when the text starts the sequence. Inputs longer than the
        window lose context tokens from the left."""
        raise self._missing("token_logprobs")

    def masked_logprobs(self, model, seqs: list[list[int]], mask_at: list[int], *, token_budget: int,
                        progress=None, desc: str = "scoring masks"):
        """Log-softmax over the vocabulary at position ``mask_at[i]`` of ``seqs[i]`` (a tensor
        [n, vocab], float32, on the CPU)."""
        raise self._missing("masked_logprobs")

    def generate(self, model, prompts: list[str], **options) -> list[dict]:
        """One row per completion (see :func:`workbench.generate` for the options and columns)."""
        raise self._missing("generate")

    def embed(self, model, sentences: list[str], pooling: str, layer: int, normalize: bool, batch_size: int,
              progress=None, max_tokens: int | None = None):
        raise self._missing("embed")

    def graph_shape(self) -> GraphShape:
        """The :class:`GraphShape` of the model's compute graph (``capture``)."""
        raise self._missing("capture")

    def unembedding(self) -> dict:
        """The model's final RMSNorm weight ``norm``, its ``eps`` and its output matrix ``output``
        ([vocab, d_model]) as float32 tensors, for the logit lens (``capture``)."""
        raise self._missing("capture")

    def capture(self, model, rows, nodes, every_row: bool, progress, reader) -> list:
        """Run each row of token ids (a text) alone and hand the data of each graph node in
        ``nodes`` (:class:`~workbench.families.GraphTensor`, names with the layer filled in) to
        ``reader``, as computed: ``reader.begin(i, n_tokens)`` before row ``i``, then
        ``reader.take(name, start, n_tokens, array)`` for each node of each decode (tokens
        ``start...``), then ``reader.finish()``. ``every_row``: each token must be an output row
        (nodes the graph computes only for output rows); returns notes (``capture``). Which node
        is which site is inspection's (:class:`workbench.inspect.sites.GraphAdapter`)."""
        raise self._missing("capture")

    def control_vector(self, model, site: str, layer: int, vector) -> Any:
        """A context manager adding ``vector`` to ``site`` (the residual stream) at ``layer`` in
        every request while open (``steer``)."""
        raise self._missing("steer")

    def modules(self) -> Any:
        """The in-process module tree inspection hooks into (``hooks`` capability)."""
        raise self._missing("hooks")

    def _missing(self, capability: str) -> BackendCapabilityError:
        return BackendCapabilityError(capability_message(self.name, capability))

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({extra})"


def capability_message(backend: str, capability: str, caller: str | None = None) -> str:
    others = [b for b in backends_with(capability) if b != backend]
    where = (f"load the model with backend={others[0]!r} for it" + (f" (or one of {others[1:]})" if others[1:] else "")
             if others else "no registered backend can")
    asked = f" that {caller} needs" if caller else ""
    return f"the {backend!r} backend cannot do {_WHAT.get(capability, capability)} ({capability!r}){asked}; {where}."


def require(model, capability: str, caller: str | None = None) -> None:
    """Raise :class:`BackendCapabilityError` unless ``model``'s backend has ``capability``;
    ``caller`` names the function asking, for the message."""
    backend = getattr(model, "backend", None)
    if backend is not None and not backend.supports(capability):
        raise BackendCapabilityError(capability_message(backend.name, capability, caller))

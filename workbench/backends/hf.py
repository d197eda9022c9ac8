"""The Hugging Face backend: the unmodified ``transformers`` model, in process.

It is the reference backend: every capability, bit-for-bit what ``transformers`` computes (the
engine's batching and prefix sharing are tested equal to plain forward passes), and the only one
with ``hooks``, so all of inspection runs on it. Its engine lives in :mod:`workbench.scoring`
(``engine``/``shared`` for token log-probs, ``masked``, ``generation``, ``embedding``); this class
is the one door to it.

Its settings (dtype, device placement) are already fingerprinted as the model's ``dtype`` and
``device`` keys, so the fingerprint ids of Hugging Face models are the same as before backends
existed (see :func:`workbench.models.fingerprint.fingerprint_id`).
"""
from __future__ import annotations

from workbench.backends.base import CAPABILITIES, Backend
from workbench.engine.causal import score_token_requests
from workbench.engine.embedding import embed_rows
from workbench.engine.generation import generate_rows
from workbench.engine.masked import _masked_logprobs


class HFBackend(Backend):
    """Answers every request kind with the in-process ``transformers`` model ``hf``."""

    name = "hf"
    capabilities = frozenset(CAPABILITIES)

    def __init__(self, hf):
        self.hf = hf

    def settings(self) -> dict:
        param = next(self.hf.parameters())
        out = {"dtype": str(param.dtype).replace("torch.", "")}
        device_map = getattr(self.hf, "hf_device_map", None)
        if device_map:  # split over devices (accelerate): record where each part runs
            out["device_map"] = sorted({str(v) for v in device_map.values()})
        return out

    def score_tokens(self, model, requests, *, token_budget, progress=None, desc="scoring",
                     share_contexts=True, moments=False):
        return score_token_requests(model, requests, token_budget=token_budget, progress=progress, desc=desc,
                                    share_contexts=share_contexts, moments=moments)

    def masked_logprobs(self, model, seqs, mask_at, *, token_budget, progress=None, desc="scoring masks"):
        return _masked_logprobs(model, seqs, mask_at, token_budget, progress, desc)

    def generate(self, model, prompts, **options):
        return generate_rows(model, prompts, **options)

    def embed(self, model, sentences, pooling, layer, normalize, batch_size, progress=None, max_tokens=None):
        return embed_rows(model, sentences, pooling, layer, normalize, batch_size, progress, max_tokens=max_tokens)

    def modules(self):
        return self.hf


"""The :class:`Model` every workbench function takes: the unmodified Hugging Face objects plus
what an audit needs to know about them (kind, licence, fingerprint)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.backends.hf import HFBackend
from workbench.errors import InvalidInputError
from workbench.models.fingerprint import compute_fingerprint, fingerprint_id

KINDS = ("causal", "masked", "encoder", "vision-language")


def infer_kind(hf_model) -> str:
    """'causal' for *ForCausalLM/*LMHeadModel, 'masked' for *ForMaskedLM, 'vision-language' for
    a *ForConditionalGeneration with a vision tower, else 'encoder'."""
    name = type(hf_model).__name__
    if name.endswith("ForConditionalGeneration") and getattr(hf_model.config, "vision_config", None) is not None:
        return "vision-language"
    if name.endswith("ForCausalLM") or name.endswith("LMHeadModel"):
        return "causal"
    if name.endswith("ForMaskedLM"):
        return "masked"
    return "encoder"


def input_device(hf) -> torch.device:
    """Where a transformers model's inputs go: its first weights' device; for a model split with
    accelerate whose first weights are offloaded to disk (meta tensors until a forward pass reads
    them in), the first resident weights' device, else the CPU."""
    first = next(hf.parameters()).device
    if first.type != "meta":
        return first
    return next((p.device for p in hf.parameters() if p.device.type != "meta"), torch.device("cpu"))


@dataclass(eq=False)
class Model:
    """A loaded model: ``hf`` and ``tokenizer`` are the unmodified transformers objects.

    Build one with :func:`workbench.load_model` (files) or :meth:`Model.from_hf` (objects you
    already have in memory, e.g. a tiny random-initialised model in a test).

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> m = tiny_model("gpt2")
    >>> m.kind, len(m.fingerprint_id)
    ('causal', 12)
    """

    hf: Any
    tokenizer: Any
    name: str
    kind: str
    fingerprint: dict = field(repr=False)
    licence: str = "unknown"
    source: str = "in-memory"
    # Descriptions of interventions (steering, ablation hooks) active on ``hf`` right now. They
    # change outputs without changing weights, so result caches key on them too.
    interventions: list = field(default_factory=list, repr=False)
    # The engine that answers requests (workbench.backends); the Hugging Face backend on ``hf``
    # when not given. Other backends (llama.cpp, a server) have ``hf = None``.
    backend: Any = field(default=None, repr=False)
    # vision-language models: the transformers processor (image processor + tokenizer); see
    # workbench.vision.loading. None for text models.
    processor: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidInputError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.backend is None:
            self.backend = HFBackend(self.hf)
        if "backend" not in self.fingerprint:  # what computed the numbers is part of the fingerprint
            self.fingerprint["backend"] = self.backend.describe()

    @classmethod
    def from_hf(cls, hf, tokenizer, name: str | None = None, kind: str | None = None,
                licence: str = "unknown", source: str = "in-memory", weight_files=None,
                weight_hashes: dict | None = None, extra: dict | None = None) -> "Model":
        """Wrap transformers objects already in memory; the fingerprint hashes the tensors
        (or ``weight_files`` / known ``weight_hashes`` when given)."""
        hf.eval()
        name = name or getattr(hf.config, "_name_or_path", None) or type(hf).__name__
        fp = compute_fingerprint(hf, tokenizer, weight_files=weight_files, licence=licence, source=source,
                                 extra=extra, weight_hashes=weight_hashes)
        return cls(hf=hf, tokenizer=tokenizer, name=str(name), kind=kind or infer_kind(hf),
                   fingerprint=fp, licence=licence, source=source)

    @property
    def fingerprint_id(self) -> str:
        """Short (12 hex) id of the complete fingerprint: print this, store ``fingerprint``."""
        return fingerprint_id(self.fingerprint)

    @property
    def state_id(self) -> str:
        """``fingerprint_id`` plus active interventions: what a cached result must match."""
        if not self.interventions:
            return self.fingerprint_id
        import hashlib
        import json
        extra = hashlib.sha256(json.dumps(self.interventions, sort_keys=True, default=str).encode())
        return f"{self.fingerprint_id}+{extra.hexdigest()[:12]}"

    @property
    def config(self):
        """The transformers config (for other backends: the one read from the model's header)."""
        return self.hf.config if self.hf is not None else self.backend.config

    @property
    def architecture(self) -> str:
        return self.config.model_type

    @property
    def device(self) -> torch.device:
        if self.hf is None:
            return torch.device("cpu")  # where results arrive; the backend runs where it runs
        return input_device(self.hf)

    @property
    def dtype(self) -> torch.dtype:
        if self.hf is None:
            return torch.float32  # what other backends return their numbers in
        return next(self.hf.parameters()).dtype

    @property
    def n_layers(self) -> int:
        cfg = self.config
        cfg = getattr(cfg, "text_config", cfg)
        for attr in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
            if getattr(cfg, attr, None) is not None:
                return int(getattr(cfg, attr))
        raise AttributeError(f"cannot tell the number of layers of {self.architecture}")

    @property
    def n_params(self) -> int:
        if self.hf is None:
            return int(self.backend.n_params)
        return sum(p.numel() for p in self.hf.parameters())

    def __repr__(self) -> str:
        if self.backend.name != "hf":
            return (f"Model({self.name!r}, kind={self.kind}, arch={self.architecture}, backend={self.backend!r}, "
                    f"licence={self.licence!r}, fingerprint={self.fingerprint_id})")
        return (f"Model({self.name!r}, kind={self.kind}, arch={self.architecture}, "
                f"params={self.n_params/1e6:.1f}M, dtype={str(self.dtype).replace('torch.', '')}, "
                f"device={self.device}, licence={self.licence!r}, fingerprint={self.fingerprint_id})")

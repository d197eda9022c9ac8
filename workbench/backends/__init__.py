"""Backends: the engines that answer a model's requests (see :mod:`workbench.backends.base`).

``hf`` (the default, :mod:`workbench.backends.hf`) is the unmodified ``transformers`` model in
process. Add one with :func:`register_backend`; ``docs/architecture.md`` has the recipe.
"""
from workbench.backends.base import CAPABILITIES, Backend, require
from workbench.backends.hf import HFBackend
from workbench.backends.registry import (BackendEntry, backend_names, backends_with, get_backend,
                                         register_backend, unregister_backend)

register_backend("hf", "workbench.models.loading:load_model", CAPABILITIES,
                 description="the unmodified transformers model in process (reference; every capability)")
register_backend("llama.cpp", "workbench.backends.llamacpp:load_llamacpp",
                 ("token_logprobs", "token_moments", "generate", "embed", "capture", "steer"),
                 description="a GGUF file as deployed: quantised weights, llama.cpp kernels, memory-mapped",
                 install="pip install 'open-model-workbench[llamacpp]'")
register_backend("openai", "workbench.backends.openai:load_openai", ("token_logprobs", "generate"),
                 description="an OpenAI-compatible completions server (vLLM, SGLang, llama.cpp): prompt log-probs")

__all__ = ["CAPABILITIES", "Backend", "BackendEntry", "HFBackend", "backend_names", "backends_with",
           "get_backend", "register_backend", "require", "unregister_backend"]

"""The Hugging Face engine: how a transformers model answers the request kinds, fast and exact.

- :mod:`~workbench.engine.causal`: batched log-probabilities of token continuations (the hot
  path), token-budgeted batches, the output projection only at scored positions, Min-K%++ moments;
- :mod:`~workbench.engine.shared`: prefixes shared by several requests decoded once (KV cache);
- :mod:`~workbench.engine.masked`: pseudo-log-likelihood and fill-mask for masked LMs;
- :mod:`~workbench.engine.generation`, :mod:`~workbench.engine.embedding`: seeded generation and
  pooled embeddings; :mod:`~workbench.engine.padding`: padding conventions;
- :mod:`~workbench.engine.prompts`: the one rendering of a chat prompt.

The HF backend (:mod:`workbench.backends.hf`) is its door; the llama.cpp and server backends use
its batch planning and prompt rendering. It imports nothing above it: token ids in, numbers
out; tokenisation, truncation and caching live above the backends (:mod:`workbench.scoring`).
"""

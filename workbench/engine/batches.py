"""Batch planning: which requests run together, under a token budget.

Its own module, below :mod:`workbench.engine.causal` and :mod:`workbench.engine.shared`, because
both plan batches with it (the plain requests and the shared-prefix groups) and the causal path
calls into ``shared``.

>>> from workbench.engine.batches import plan_batches
>>> plan_batches([3, 10, 4, 9], token_budget=20)
[[1, 3], [2, 0]]
"""
from __future__ import annotations

DEFAULT_TOKEN_BUDGET = 8192
MAX_BATCH = 64
PAD_TOLERANCE = 0.85  # see plan_batches
MIN_BATCH_TOKENS = 64


def plan_batches(lengths: list[int], token_budget: int, max_batch: int = MAX_BATCH,
                 same_length: bool = False) -> list[list[int]]:
    """Indices grouped into batches, longest first, each padded size x rows <= token_budget.

    A batch also closes when the next sequence is much shorter than the batch's width (below
    ``PAD_TOLERANCE`` of it) once the batch holds ``MIN_BATCH_TOKENS`` real tokens: on a CPU a
    few dozen rows already keep the matrix products efficient, so padding is pure waste.
    ``same_length``: every batch holds one length only.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current, width, real = [], [], 0, 0
    for i in order:
        n = lengths[i]
        if current and (width * (len(current) + 1) > token_budget or len(current) >= max_batch
                        or (same_length and n != width)
                        or (n < PAD_TOLERANCE * width and real >= MIN_BATCH_TOKENS)):
            batches.append(current)
            current, width, real = [], 0, 0
        current.append(i)
        width, real = max(width, n), real + n
    if current:
        batches.append(current)
    return batches

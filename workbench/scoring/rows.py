"""What every request kind does the same way, for text (:mod:`workbench.scoring.api`) and images
(:mod:`workbench.vision.scoring`) alike: look the requests up in the result cache and compute
only the misses, then hand the rows back as a frame that carries its provenance.
"""
from __future__ import annotations

from workbench.provenance import record
from workbench.results import ScoreFrame
from workbench.scoring.cache import ScoreCache, request_key


def cached_rows(model, kind: str, options: dict, requests: list, compute, cache: bool) -> list:
    """Look every request up in the result cache; compute only the misses (in one batch)."""
    store = ScoreCache(enabled=cache)
    keys = [request_key(model.state_id, kind, options, r) for r in requests]
    found = store.get_many(sorted(set(keys)))
    first = {}  # key -> first request index with it: duplicates are computed once
    for i, k in enumerate(keys):
        if k not in found:
            first.setdefault(k, i)
    if first:
        computed = compute([requests[i] for i in first.values()])
        new = {k: row for k, row in zip(first, computed)}
        store.put_many(new)
        found.update(new)
    return [found[k] for k in keys]


def score_frame(rows: list[dict], model, options: dict) -> ScoreFrame:
    """The rows as a :class:`~workbench.results.ScoreFrame` whose ``attrs`` say which model (and
    state) scored them, with which options, and the provenance record."""
    df = ScoreFrame(rows)
    df.attrs["model"] = model.name
    df.attrs["fingerprint_id"] = model.fingerprint_id
    df.attrs["state_id"] = model.state_id
    df.attrs["scoring"] = options
    df.attrs["provenance"] = record(model, options=options)
    return df

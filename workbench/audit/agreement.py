"""The deployment section's measured agreement: for each pair of specs the audit reads as one
model run two ways, :func:`workbench.conformance` on neutral sentences compares the deployed
model with the reference at every scored token (next-token KL, top-1 agreement, the largest
log-probability difference), per layer where both backends can capture, and in the chat prompt
each renders; its verdict is one of conforms, degraded or silently wrong.

Why beside the flips: flips count decisions that changed on the audited items; agreement says how
far the computation moved on text that carries no bias question, so a pair with few flips and a
"degraded" verdict (or many flips and "conforms") is visible at once. Both models are loaded
together for it, once per pair; a pair that cannot be compared (a backend that returns no
prompt log-probabilities, memory) is a recorded skip.
"""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from workbench.audit.sections import skip
from workbench.errors import WorkbenchError
from workbench.inspect.conformance import conformance

NEUTRAL_TEXT = Path(__file__).resolve().parents[1] / "data" / "neutral_text.txt"
N_TEXTS = 16


def neutral_sentences(n: int = N_TEXTS) -> list[str]:
    """The first ``n`` sentences of the package's neutral text (no people, no social groups)."""
    lines = [line.strip() for line in NEUTRAL_TEXT.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")][:n]


def agreement_of(spec, deployment: list[dict], state: dict, say) -> list[dict]:
    """One entry per deployment pair: the conformance summary row of the deployed spec against
    the reference, and the per-layer relative error where it was captured."""
    pairs = list(dict.fromkeys((d["model_a"], d["model_b"]) for d in deployment))
    by_label = {m.label: m for m in spec.models}
    texts = neutral_sentences()
    entries = []
    for ref_label, other_label in pairs:
        models = []
        try:
            models = [by_label[ref_label].load(), by_label[other_label].load()]
            result = conformance(models, texts, progress=False)
        except WorkbenchError as err:
            skip(state, "agreement", f"{other_label} against {ref_label}", " ".join(str(err).split()), say)
            continue
        finally:
            del models
            gc.collect()
        row = result.summary().iloc[-1]
        layers = result.layers()
        entry = {"model_a": ref_label, "model_b": other_label, "n_texts": len(texts),
                 "n_tokens": int(result.frame.n_tokens.iloc[-1]) if "n_tokens" in result.frame else None,
                 "verdict": str(row["verdict"]), "reason": str(row.get("reason", "") or ""),
                 "next_token_kl": _num(row["next_token_kl"]), "top1_agreement": _num(row["top1_agreement"]),
                 "max_abs_logprob_diff": _num(row["max_abs_logprob_diff"]),
                 "resid_rel_error_max": _num(row["resid_rel_error_max"]),
                 "tokenization": str(row["tokenization"]), "chat_prompt": str(row["chat_prompt"]),
                 "layers": [{"layer": int(r.layer), "cosine": _num(r.cosine), "rel_error": _num(r.rel_error)}
                            for r in layers.itertuples()] if len(layers) else []}
        entries.append(entry)
        say.say(f"  agreement of {other_label} with {ref_label}: {entry['verdict']} (next-token KL "
                f"{_fmt(entry['next_token_kl'], '.2e')}, top-1 agreement {_fmt(entry['top1_agreement'], '.3f')})")
    return entries


def _num(v) -> float | None:
    v = None if v is None else float(v)
    return v if v is not None and np.isfinite(v) else None


def _fmt(v, spec: str) -> str:
    return "not available" if v is None else format(v, spec)

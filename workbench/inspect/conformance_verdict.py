"""The verdict of :func:`workbench.conformance`, and the checks it rests on besides the numbers:
the token ids each model's tokenizer makes and the chat prompt each renders.

A verdict is one of

* ``conforms``: the same network computing the same numbers up to float16-level rounding;
* ``degraded``: the same network, but quantisation (or a lower precision) moves its numbers
  beyond that; the reason gives each number past its bound;
* ``silently wrong``: results from it would be wrong without an error saying so: its tokenizer
  splits a text differently, its chat prompt differs, it gives no prompt log-probs, or its
  numbers are beyond what quantising one network does (another network, or a broken file).

Every bound is a field of :class:`Tolerance` (recorded in the result), and :func:`judge` reads
nothing but a summary row and the tolerance, so a verdict can be re-derived from the row it
sits in.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

VERDICTS = ("conforms", "degraded", "silently wrong")


@dataclass(frozen=True)
class Tolerance:
    """Bounds of the verdicts (nats for KL and log-probs).

    ``conform_*`` are float16-level rounding with headroom. Measured against the Hugging Face
    float32 copy (``benchmarks/conformance.py``, 6 texts, ~110 scored tokens): the GGUF at F32 and
    F16 through llama.cpp (float16 K/V cache and attention) give a mean next-token KL of 1e-6 to
    6e-6 nats, top-1 agreement 1.0 and at most 0.011 nats on a scored token, on SmolLM2-135M and
    Gemma 3 270M alike; ``conforms`` allows ~20x the KL and ~5x the log-prob. HF bfloat16 (8e-4 to
    2e-3 nats), Q8_0 (3e-3 to 6e-3) and Q4_K_M / the shipped Q4_1 (4e-3 to 0.07) land in
    ``degraded``. ``same_*`` bound what quantising one network does: two different networks
    sharing a tokenizer differ by nats per token, or (two random ones, both near uniform) by a
    small KL but hardly any common top-1.
    """

    conform_kl: float = 1e-4           # mean next-token KL(reference || model)
    conform_top1: float = 0.97         # share of positions with the same top-1 token
    conform_logprob: float = 0.05      # largest |log p difference| of a scored token
    same_kl: float = 0.5               # beyond: not the same network
    same_top1: float = 0.6

    def record(self) -> dict:
        return asdict(self)


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def judge(row: dict, tol: Tolerance) -> tuple[str, str]:
    """(verdict, reason) from one summary row: ``not_run``, ``scoring_error``, ``tokenization``,
    ``chat_prompt``, ``next_token_kl``, ``top1_agreement``, ``max_abs_logprob_diff`` (and
    ``llamacpp_renderer``, which adds a note to the reason, never changes the verdict)."""
    verdict, reason = _judge(row, tol)
    native = row.get("llamacpp_renderer")
    if isinstance(native, str) and native != "same":
        reason += (f"; note: llama.cpp's built-in chat renderer (llama-cli, llama-server without --jinja) sends "
                   f"another prompt than the template: {native}")
    return verdict, reason


def _judge(row: dict, tol: Tolerance) -> tuple[str, str]:
    wrong = []
    if isinstance(row.get("not_run"), str):
        wrong.append(row["not_run"])
    if row.get("scoring_error"):
        wrong.append(f"no prompt log-probs ({row['scoring_error']})")
    if row.get("tokenization", "same") != "same":
        wrong.append(f"its tokenizer splits differently: {row['tokenization']}")
    if row.get("chat_prompt", "same") not in ("same", "not compared"):
        wrong.append(f"its chat prompt differs: {row['chat_prompt']}")
    kl, top1, lp = row.get("next_token_kl"), row.get("top1_agreement"), row.get("max_abs_logprob_diff")
    if _finite(kl) and kl > tol.same_kl:
        wrong.append(f"not the reference network: next-token KL {kl:.3g} > {tol.same_kl:g} nats")
    if _finite(top1) and top1 < tol.same_top1:
        wrong.append(f"not the reference network: top-1 agreement {top1:.3f} < {tol.same_top1:g}")
    if wrong:
        return "silently wrong", "; ".join(wrong)
    if not _finite(top1) and not _finite(lp):
        return "silently wrong", "no number could be compared with the reference"
    past, within = [], []
    for name, value, bound, worse in (("next-token KL", kl, tol.conform_kl, lambda v, b: v > b),
                                      ("top-1 agreement", top1, tol.conform_top1, lambda v, b: v < b),
                                      ("max |log p diff|", lp, tol.conform_logprob, lambda v, b: v > b)):
        if not _finite(value):
            within.append(f"{name} not available")
        elif worse(value, bound):
            past.append(f"{name} {value:.3g} ({'>' if name != 'top-1 agreement' else '<'} {bound:g})")
        else:
            within.append(f"{name} {value:.3g}")
    if past:
        return "degraded", "; ".join(past) + (f" (within: {', '.join(within)})" if within else "")
    return "conforms", ", ".join(within) + " within the float16-level bounds"


# -- what the numbers do not show --------------------------------------------------------------

def first_difference(a: str, b: str) -> int | None:
    """Index of the first character where ``a`` and ``b`` differ (the shorter one's length if one
    is a prefix of the other), None if equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def describe_difference(ref: str, other: str) -> str:
    """'same', or where two rendered prompts first differ, with the text around it."""
    i = first_difference(ref, other)
    if i is None:
        return "same"
    return f"first difference at character {i}: reference {ref[max(0, i - 12):i + 12]!r} vs {other[max(0, i - 12):i + 12]!r}"


def token_difference(ref_tok, ref_ids: list[int], other_tok, other_ids: list[int], text_index: int) -> str | None:
    """None if the two id lists are equal, else where they part (with the tokens)."""
    if ref_ids == other_ids:
        return None
    j = next((k for k in range(min(len(ref_ids), len(other_ids))) if ref_ids[k] != other_ids[k]),
             min(len(ref_ids), len(other_ids)))
    a = ref_tok.convert_ids_to_tokens(ref_ids[j:j + 3])
    b = other_tok.convert_ids_to_tokens(other_ids[j:j + 3])
    return f"text {text_index}, token {j}: reference {a} vs {b} ({len(ref_ids)} vs {len(other_ids)} tokens)"


def render_chat(model, messages: list[dict]) -> tuple[str | None, str]:
    """The chat prompt ``model``'s tokenizer renders (its template, as the workbench sends it to
    any backend), or None and why not."""
    tok = model.tokenizer
    if not getattr(tok, "chat_template", None):
        return None, "the tokenizer has no chat template"
    try:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), "tokenizer chat template"
    except Exception as e:  # noqa: BLE001 (a template that raises is reported, not fatal)
        return None, f"its chat template raised {type(e).__name__}: {e}"

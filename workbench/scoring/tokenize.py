"""How requests become tokens. Written down once, because scores depend on it.

Conventions (recorded in every result's ``attrs["scoring"]``):

* **BOS** follows the tokenizer's own convention by default (``bos="auto"``): if
  ``tokenizer("x")`` starts with the BOS token (Llama-2, Gemma), the context is prefixed with it;
  if it does not (GPT-2, SmolLM2), it is not. ``bos=True``/``False`` forces either way.
* **Empty context**: the first continuation token needs something to condition on, so the BOS
  token (or, lacking one, EOS) is used as the prefix, as lm-evaluation-harness does.
* **Context/continuation split** (as lm-evaluation-harness): trailing spaces of the context move
  to the continuation; the whole string ``context + continuation`` is tokenised once and split
  at the length of the tokenised context. So the continuation's tokens are the ones the model
  would really see, and merges across the boundary are counted on the continuation's side.
* **Chat contexts** (``keep_context=True``, :mod:`workbench.scoring.chat`): the context is a
  rendered chat template ending in the assistant prefix; it keeps its trailing whitespace and is
  tokenised exactly as given (its tokens are the template's own), no BOS is added (the template
  writes its own), and the continuation is what follows it in the whole string's tokens (or,
  should the boundary merge, the continuation tokenised alone, so the context is never altered).
"""
from __future__ import annotations

from workbench.errors import InvalidInputError


def tokenizer_adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def resolve_bos(tokenizer, bos) -> bool:
    if isinstance(bos, str) and bos == "auto":
        return tokenizer_adds_bos(tokenizer)
    if isinstance(bos, bool) or type(bos).__name__ == "bool_":  # numpy booleans too
        return bool(bos)
    raise InvalidInputError(f"bos must be 'auto', True or False, got {bos!r}")


def prefix_token_id(tokenizer) -> int:
    """The token that conditions the first token of a text with no context."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise InvalidInputError("the tokenizer has neither a BOS nor an EOS token, so a text with an empty "
                            "context cannot be scored; give a non-empty context")


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_pair(tokenizer, context: str, continuation: str, add_bos: bool) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) following the conventions in the module docstring."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(tokenizer, context + continuation)
    ctx = encode(tokenizer, context) if context else []
    cont = whole[len(ctx):]
    if add_bos or not ctx:
        ctx = [prefix_token_id(tokenizer)] + ctx
    return ctx, cont


def encode_pairs(tokenizer, pairs: list[tuple[str, str]], add_bos: bool,
                 keep_context: bool = False) -> list[tuple[list[int], list[int]]]:
    """:func:`encode_pair` for many requests at once: one batched tokenizer call for the whole
    strings and one for the distinct contexts (a multiple-choice context is encoded once).
    ``keep_context``: the chat convention (module docstring)."""
    moved = []
    for context, continuation in pairs:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces and not keep_context:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        moved.append((context, continuation))
    wholes = _encode_many(tokenizer, [c + x for c, x in moved])
    distinct = sorted({c for c, _ in moved if c})
    ctx_ids = dict(zip(distinct, _encode_many(tokenizer, distinct)))
    out = []
    for (context, continuation), whole in zip(moved, wholes):
        ctx = ctx_ids[context] if context else []
        cont = whole[len(ctx):]
        if keep_context and whole[:len(ctx)] != ctx:  # the boundary merged: keep the prompt as given
            cont = encode(tokenizer, continuation)
        if add_bos or not ctx:
            ctx = [prefix_token_id(tokenizer)] + ctx
        out.append((ctx, cont))
    return out


def _encode_many(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def rolling_windows(ids: list[int], prefix: int, max_len: int, stride: int) -> list[tuple[list[int], list[int]]]:
    """Split a text's tokens into (context, continuation) windows that score every token once.

    Each window predicts at most ``stride`` new tokens, conditioned on up to ``max_len`` tokens
    in total (the earlier ones as context). ``stride == max_len`` gives disjoint windows (as
    lm-evaluation-harness's rolling log-likelihood); a smaller stride gives every token more context.
    """
    tokens = [prefix] + ids
    n_pred = len(ids)
    out = []
    for start in range(0, n_pred, stride):
        end = min(start + stride, n_pred)          # predict tokens[start+1 : end+1]
        lo = max(0, end + 1 - (max_len + 1))       # inputs are tokens[lo : end], length <= max_len
        ctx = tokens[lo:start + 1]
        cont = tokens[start + 1:end + 1]
        out.append((ctx, cont))
    return out

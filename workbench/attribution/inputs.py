"""Turn (prompt, target) into token ids, the positions that are attribution features, and a
batched objective: the target's log-probability under the unmodified model.

Causal LMs: the target is the continuation of the prompt, split exactly as the scoring engine
does (:func:`workbench.scoring.tokenize.encode_pair`), and the objective is the sum of the target
tokens' log-probabilities, i.e. what ``wb.loglikelihood`` reports for ``(prompt, target)``.
Masked LMs: the prompt holds the tokenizer's mask token once; the target is the text that fills it.
The filled sentence is encoded, the target's tokens are masked (all at once) and the objective is
the sum of their log-probabilities at those positions.

Features are the prompt's tokens except special ones (BOS, [CLS], [SEP], the masks): those stay
fixed, because "removing" them is not a perturbation of the text a user wrote.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.scoring.tokenize import encode_pair, resolve_bos
from workbench.validate import check_context


@dataclass
class Problem:
    """One attribution problem: everything the methods need, independent of the method."""

    ids: torch.Tensor            # [L] full input ids (causal: prompt + target; masked: masked sentence)
    features: torch.Tensor       # [n] positions in ``ids`` that are attribution features
    target_ids: torch.Tensor     # [t] target token ids
    read_at: torch.Tensor        # [t] positions whose logits give each target token's probability
    baseline_id: int             # token id a feature is replaced by when ablated
    tokens: list                 # display text of each feature token
    kind: str

    def baseline_ids(self) -> torch.Tensor:
        """``ids`` with every feature replaced by the baseline token."""
        out = self.ids.clone()
        out[self.features] = self.baseline_id
        return out


def _keep_kwargs(hf, n_keep: int) -> dict:
    """Ask for the last ``n_keep`` positions' logits only when the model supports it: the
    unembedding over a 49k vocabulary is a fifth of a small model's forward cost."""
    try:
        params = inspect.signature(hf.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"logits_to_keep": n_keep} if "logits_to_keep" in params else {}


def target_logprob(hf, problem: Problem, ids: torch.Tensor, per_token: bool = False) -> torch.Tensor:
    """Log-probability of the target for each row of ``ids`` [k, L] -> [k] (or [k, t]).

    Gradients flow when the caller enables them (integrated gradients hooks the embedding layer).
    """
    read_at = problem.read_at.to(ids.device)
    kwargs = {}
    if problem.kind == "causal":
        # the target positions are the last ones, so only their logits are needed
        n_keep = ids.shape[1] - int(read_at.min())
        kwargs = _keep_kwargs(hf, n_keep)
    # an explicit all-ones mask: the baseline may be the pad token, which must still be attended to
    mask = torch.ones_like(ids)
    logits = hf(input_ids=ids, attention_mask=mask, **kwargs).logits
    if logits.shape[1] != ids.shape[1]:          # logits_to_keep returned the last n_keep only
        read_at = read_at - (ids.shape[1] - logits.shape[1])
    logp = torch.log_softmax(logits[:, read_at].float(), dim=-1)       # [k, t, V]
    tgt = problem.target_ids.to(ids.device)
    token_lp = logp.gather(-1, tgt.view(1, -1, 1).expand(ids.shape[0], -1, 1)).squeeze(-1)
    return token_lp if per_token else token_lp.sum(-1)


def resolve_baseline(tokenizer, kind: str, baseline) -> int:
    """Baseline token id: an int, a string that is exactly one token, or None for the default
    (the mask token for masked LMs, else the pad token, else EOS)."""
    if baseline is None:
        for name in (["mask_token_id"] if kind == "masked" else []) + ["pad_token_id", "eos_token_id", "unk_token_id"]:
            value = getattr(tokenizer, name, None)
            if value is not None:
                return int(value)
        raise InvalidInputError("the tokenizer has no mask, pad, EOS or UNK token to ablate to: "
                                "pass baseline=<token id or one-token string>")
    if isinstance(baseline, bool) or not isinstance(baseline, (int, str)):
        raise InvalidInputError(f"baseline must be a token id or a one-token string, got {baseline!r}")
    if isinstance(baseline, int):
        if not 0 <= baseline < len(tokenizer):
            raise InvalidInputError(f"baseline id {baseline} is outside the vocabulary (0..{len(tokenizer) - 1})")
        return baseline
    ids = tokenizer(baseline, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise InvalidInputError(f"baseline {baseline!r} is {len(ids)} tokens; pass a string that is exactly "
                                "one token, or a token id")
    return int(ids[0])


def _display(tokenizer, ids) -> list:
    return [tokenizer.decode([int(i)]) for i in ids]


def build_problem(model, prompt: str, target: str, baseline=None) -> Problem:
    if not isinstance(prompt, str) or not isinstance(target, str):
        raise InvalidInputError("prompt and target must be strings")
    if not target.strip():
        raise InvalidInputError("target is empty: pass the continuation (causal) or the word at the mask "
                                "(masked) whose probability you want to explain")
    tok = model.tokenizer
    baseline_id = resolve_baseline(tok, model.kind, baseline)
    special = set(tok.all_special_ids)
    if model.kind == "causal":
        # the scoring engine's split (BOS convention, trailing spaces, merges at the boundary), so
        # the attributed log-probability is the one wb.loglikelihood reports
        ctx, tgt = encode_pair(tok, prompt, target, resolve_bos(tok, "auto"))
        if not tgt:
            raise InvalidInputError(f"target {target!r} adds no token after the prompt; check the spacing "
                                    "(e.g. ' Paris' after 'The capital of France is')")
        ids = torch.tensor(ctx + tgt)
        read_at = torch.arange(len(ctx) - 1, len(ctx) + len(tgt) - 1)
        feats = [i for i, t in enumerate(ctx) if t not in special]
    elif model.kind == "masked":
        mask = tok.mask_token
        if mask is None or prompt.count(mask) != 1:
            raise InvalidInputError(f"a masked-LM prompt must contain the mask token {mask!r} exactly once, "
                                    f"e.g. 'The {mask} said that she would come.'; target is the word it hides")
        start = prompt.index(mask)
        filled = prompt[:start] + target + prompt[start + len(mask):]
        enc = tok(filled, return_offsets_mapping=True)
        end = start + len(target)
        read = [i for i, (a, b) in enumerate(enc["offset_mapping"])
                if b > a and a < end and b > start and enc["input_ids"][i] not in special]
        if not read:
            raise InvalidInputError(f"target {target!r} produced no token at the mask; check it is a word")
        ids = torch.tensor(enc["input_ids"])
        tgt = ids[read].tolist()
        ids[read] = tok.mask_token_id
        read_at = torch.tensor(read)
        feats = [i for i, t in enumerate(ids.tolist()) if t not in special and i not in read]
    else:
        raise WrongModelKindError(f"attribution needs a causal or masked LM; {model.name} is an {model.kind!r} "
                                  "model with no LM head. Load the model with its LM head.")
    if not feats:
        raise InvalidInputError("the prompt has no (non-special) tokens to attribute to")
    check_context(model, len(ids), "the prompt with its target",
                  "Shorten the prompt: attribution runs the whole sequence at once and cannot cut it.")
    feats_t = torch.tensor(feats)
    return Problem(ids=ids, features=feats_t, target_ids=torch.tensor(tgt), read_at=read_at,
                   baseline_id=baseline_id, tokens=_display(tok, ids[feats_t]), kind=model.kind)

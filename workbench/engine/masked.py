"""Masked-LM scoring: pseudo-log-likelihood (Salazar et al. 2020) and top-k mask filling.

PLL masks one position at a time and sums log p(original token | rest). All masked copies of
all sentences are packed into token-budgeted batches, so a sentence of n tokens costs n rows,
not n forward passes. ``positions`` restricts scoring to chosen token positions: CrowS-Pairs
scores only the tokens both sentences share (:func:`shared_token_positions`).
"""
from __future__ import annotations

import difflib

import torch
from tqdm.auto import tqdm

from workbench.engine.batches import DEFAULT_TOKEN_BUDGET, plan_batches
from workbench.engine.padding import pad_id, pad_rows
from workbench.errors import InvalidInputError
from workbench.families import family_for
from workbench.families.base import GENERIC, masked_head
from workbench.progress import show_progress


def _mask_id(model) -> int:
    mid = model.tokenizer.mask_token_id
    if mid is None:
        raise InvalidInputError(f"{model.name}'s tokenizer has no mask token, so it cannot be scored as a "
                                "masked LM; load a model with a masked-LM head (kind='masked')")
    return int(mid)


def encode_with_specials(model, sentence: str) -> tuple[list[int], list[int]]:
    """Token ids with the tokenizer's special tokens, and the positions that are real text."""
    enc = model.tokenizer(sentence, add_special_tokens=True, return_special_tokens_mask=True)
    ids = list(enc["input_ids"])
    special = enc["special_tokens_mask"]
    return ids, [i for i, s in enumerate(special) if not s]


def shared_token_positions(model, sent_a: str, sent_b: str) -> tuple[list[int], list[int]]:
    """Positions of the tokens that both sentences share (unmodified tokens), as CrowS-Pairs
    defines them: the 'equal' blocks of a diff of the two token sequences (special tokens out).

    A diff can have several equally good alignments, and difflib picks one depending on which
    sequence comes first; the diff is always taken with the smaller token sequence (as a tuple of
    ids) first, so a pair gives the same shared tokens whichever sentence is ``sent_a``."""
    ids_a, text_a = encode_with_specials(model, sent_a)
    ids_b, text_b = encode_with_specials(model, sent_b)
    sa, sb = [ids_a[i] for i in text_a], [ids_b[i] for i in text_b]
    swap = tuple(sb) < tuple(sa)
    x, y = (sb, sa) if swap else (sa, sb)
    pos_x, pos_y = [], []
    tx, ty = (text_b, text_a) if swap else (text_a, text_b)
    for op, x0, x1, y0, y1 in difflib.SequenceMatcher(None, x, y, autojunk=False).get_opcodes():
        if op == "equal":
            pos_x += [tx[i] for i in range(x0, x1)]
            pos_y += [ty[i] for i in range(y0, y1)]
    return (pos_y, pos_x) if swap else (pos_x, pos_y)


@torch.inference_mode()
def _masked_logprobs(model, seqs: list[list[int]], mask_at: list[int], token_budget: int,
                     progress: bool | None, desc: str) -> torch.Tensor:
    """log-softmax rows at ``mask_at[j]`` of sequence ``seqs[j]`` (already masked there)."""
    out = [None] * len(seqs)
    pad = pad_id(model.tokenizer)
    dev = model.device
    batches = plan_batches([len(s) for s in seqs], token_budget)
    show = show_progress(progress, default=len(batches) > 4)
    for batch in tqdm(batches, desc=desc, disable=not show, leave=False):
        width = max(len(seqs[j]) for j in batch)
        ids, att = pad_rows([seqs[j] for j in batch], pad, width)
        hidden = model.hf.base_model(input_ids=ids.to(dev), attention_mask=att.to(dev))[0]
        picked = hidden[torch.arange(len(batch), device=dev), torch.tensor([mask_at[j] for j in batch], device=dev)]
        logits = _mlm_head(model, picked)
        lp = torch.log_softmax(logits.float(), dim=-1).cpu()
        for r, j in enumerate(batch):
            out[j] = lp[r]
    return torch.stack(out) if out else torch.empty(0)


def _mlm_head(model, hidden):
    """The masked-LM head on chosen hidden states: the family's own (BERT's cls.predictions,
    RoBERTa's lm_head, DistilBERT's vocab layers), the usual attributes for other masked LMs."""
    family = family_for(model.hf.config.model_type, GENERIC)
    return (family.head if family.masked else masked_head)(model.hf, hidden)


def pseudo_loglikelihood_rows(model, sentences: list[str], positions=None, *,
                              token_budget: int = DEFAULT_TOKEN_BUDGET, progress=None) -> list[dict]:
    mask_id = _mask_id(model)
    seqs, mask_at, owner, targets = [], [], [], []
    encoded = []
    for s_idx, sent in enumerate(sentences):
        ids, text_pos = encode_with_specials(model, sent)
        chosen = text_pos if positions is None or positions[s_idx] is None else list(positions[s_idx])
        bad = [p for p in chosen if not 0 <= p < len(ids)]
        if bad:
            raise InvalidInputError(f"positions {bad} are outside sentence {s_idx} ({len(ids)} tokens with "
                                    "special tokens); positions index the tokenised sentence")
        encoded.append((ids, chosen))
        for p in chosen:
            masked = list(ids)
            masked[p] = mask_id
            seqs.append(masked)
            mask_at.append(p)
            owner.append(s_idx)
            targets.append(ids[p])
    lp = model.backend.masked_logprobs(model, seqs, mask_at, token_budget=token_budget, progress=progress,
                                       desc="pseudo-log-likelihood")
    per_sentence = [[] for _ in sentences]
    for j, s_idx in enumerate(owner):
        per_sentence[s_idx].append(float(lp[j, targets[j]]))
    rows = []
    for (ids, chosen), tlp in zip(encoded, per_sentence):
        rows.append({"pll": float(sum(tlp)), "n_tokens": len(chosen), "token_logprobs": tlp,
                     "positions": chosen, "tokens": model.tokenizer.convert_ids_to_tokens([ids[p] for p in chosen])})
    return rows


def fill_mask_rows(model, texts: list[str], top_k: int, mask: str, token_budget: int = DEFAULT_TOKEN_BUDGET,
                   progress=None) -> list[dict]:
    mask_id = _mask_id(model)
    seqs, at = [], []
    for t in texts:
        if t.count(mask) != 1:
            raise InvalidInputError(f"each text needs exactly one {mask!r} placeholder; got {t.count(mask)} in {t!r}")
        t = t.replace(mask, model.tokenizer.mask_token)
        ids = list(model.tokenizer(t, add_special_tokens=True)["input_ids"])
        seqs.append(ids)
        at.append(ids.index(mask_id))
    lp = model.backend.masked_logprobs(model, seqs, at, token_budget=token_budget, progress=progress,
                                       desc="filling masks")
    rows = []
    for i, text in enumerate(texts):
        vals, idx = lp[i].topk(top_k)
        for rank, (v, tid) in enumerate(zip(vals.tolist(), idx.tolist()), start=1):
            rows.append({"text": text, "rank": rank, "token": model.tokenizer.decode([tid]).strip(),
                         "token_id": tid, "logprob": v})
    return rows

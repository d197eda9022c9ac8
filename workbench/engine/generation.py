"""Seeded generation, batched with left padding.

Reproducibility: the seed is set before each batch (``seed + batch_index``), so the same prompts,
options and ``batch_size`` give the same completions on the same software. Greedy decoding
(``do_sample=False``, the default) does not depend on the seed.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from workbench.engine.padding import padding
from workbench.engine.prompts import prompt_text
from workbench.progress import show_progress


@torch.inference_mode()
def generate_rows(model, prompts: list[str], *, max_new_tokens: int, seed: int, do_sample: bool,
                  temperature: float, top_p: float, top_k: int | None, num_return_sequences: int,
                  batch_size: int, chat: bool, progress=None, system_prompt: str | None = None) -> list[dict]:
    tok = model.tokenizer
    texts = [prompt_text(tok, p, chat, system_prompt) for p in prompts]
    add_special = not chat  # a chat template already carries its special tokens
    rows = []
    batches = range(0, len(texts), batch_size)
    show = show_progress(progress, default=len(batches) > 2)
    # decoder-only models must see the prompt end at the right edge: pad on the left
    with padding(tok, "left"):
        pad = tok.pad_token_id
        for b, start in enumerate(tqdm(batches, desc="generating", disable=not show, leave=False)):
            chunk = texts[start:start + batch_size]
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=add_special)
            enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            torch.manual_seed(seed + b)
            kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, pad_token_id=pad,
                          num_return_sequences=num_return_sequences)
            if do_sample:
                kwargs.update(temperature=temperature, top_p=top_p)
                if top_k is not None:
                    kwargs["top_k"] = top_k
            else:  # do not inherit sampling settings from the model's generation_config
                kwargs.update(temperature=None, top_p=None, top_k=None)
            out = model.hf.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1]:]
            for j in range(new.shape[0]):
                p_idx = start + j // num_return_sequences
                ids = new[j].tolist()
                ids = ids[:ids.index(pad)] if (pad in ids and pad != tok.eos_token_id) else ids
                if tok.eos_token_id in ids:
                    ids = ids[:ids.index(tok.eos_token_id)]
                rows.append({"prompt": prompts[p_idx], "sample": j % num_return_sequences,
                             "completion": tok.decode(ids, skip_special_tokens=True),
                             "n_new_tokens": len(ids), "seed": seed + b})
    return rows

"""Attribution over the prompt's tokens of a vision-language model, with the images fixed: how
much each text token of the context adds to ``log p(continuation | images, prompt)``.

A token is "removed" by replacing its id with a baseline token (the pad token by default, else
EOS; :func:`workbench.attribution.inputs.resolve_baseline`), as text attribution does. Features
are the context's text tokens (found where the context, tokenised alone, lies in the processed
prompt): image tokens and everything the processor or chat template adds (BOS, image markers,
tile markers such as ``<row_1_col_1>``, role tokens) stay fixed, since removing them is not a
change of the text a user wrote. Methods and sanity checks as for image patches
(:mod:`workbench.vision.attribution`): captum feature ablation or Shapley sampling; completeness
and the randomised-model rank correlation in ``.sanity``.

>>> from workbench.testing import tiny_vlm, tiny_image
>>> res = prompt_token_attribution(tiny_vlm("llava"), "The doctor said", " hello", tiny_image(0), random_check=False)
>>> "".join(res.frame.token), res.sanity.check.tolist()
('The doctor said', ['completeness'])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.attribution.inputs import resolve_baseline
from workbench.engine.padding import pad_id
from workbench.errors import InvalidInputError
from workbench.provenance import record
from workbench.results import Result
from workbench.vision.attribution import random_model, run_captum, sanity
from workbench.vision.capture import image_token_id
from workbench.vision.scoring import check_images, check_vlm, collate, encode_pairs, forward, image_hash


@dataclass
class PromptTokenAttribution(Result):
    """``frame``: one row per context text token (position, token, token_id, attribution and,
    with the random check, attribution_random); ``sanity``: the sanity checks."""

    sanity: object = None

    def summary(self):
        return self.sanity

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4, 0.5 * len(self.frame)), 3))
        ax.bar(range(len(self.frame)), self.frame["attribution"])
        ax.set(xticks=range(len(self.frame)), xticklabels=self.frame["token"], ylabel="attribution (nats)")
        return ax


def _context_positions(model, context: str, ids: torch.Tensor, n_ctx: int) -> torch.Tensor:
    """Positions of the user's context text in ``ids[:n_ctx]``: where the context, tokenised
    alone, occurs (its last occurrence); else every token that is not an image, special or added
    token (processors insert markers such as ``<row_1_col_1>`` and newlines around images)."""
    tok = model.tokenizer
    alone = tok(context.rstrip(), add_special_tokens=False)["input_ids"]
    seq = ids[:n_ctx].tolist()
    for start in range(len(seq) - len(alone), -1, -1):
        if alone and seq[start:start + len(alone)] == alone:
            return torch.arange(start, start + len(alone))
    fixed = set(tok.all_special_ids) | set(tok.added_tokens_decoder) | {image_token_id(model)}
    return torch.tensor([p for p in range(n_ctx) if seq[p] not in fixed], dtype=torch.long)


def _token_scores(model, context, continuation, images, method, n_samples, baseline_id, seed):
    """(attr per feature, full, empty, feature positions, whole encoding) on ``model``."""
    (whole, n_ctx, _), = encode_pairs(model, [(context, continuation)], [list(images)])
    ids = whole["input_ids"][0]
    feats = _context_positions(model, context, ids, n_ctx)
    if not len(feats):
        raise InvalidInputError(f"the context {context!r} has no text tokens to attribute (only image and special "
                                "tokens)")
    pad = pad_id(model.tokenizer)

    def logprob(presence):  # presence [k, n features]: 1 keeps a token, 0 puts the baseline in
        out = []
        for row in presence:
            edited = ids.clone()
            edited[feats[row < 0.5]] = baseline_id
            batch = collate([{**whole, "input_ids": edited[None]}], pad)
            with torch.no_grad():
                logits = forward(model, batch).logits[0].float()
            lp = torch.log_softmax(logits[n_ctx - 1:len(ids) - 1], -1).gather(1, ids[n_ctx:, None].to(logits.device))
            out.append(lp.sum())
        return torch.stack(out).cpu()

    ones = torch.ones(1, len(feats))
    attr, full, empty = run_captum(logprob, ones, torch.arange(len(feats))[None], 0.0, method, n_samples, seed)
    return attr, full, empty, feats, ids


def prompt_token_attribution(model, context: str, continuation: str, images, *, method: str = "ablation",
                             n_samples: int = 8, baseline=None, seed: int = 0,
                             random_check: bool = True) -> PromptTokenAttribution:
    """Attribute ``log p(continuation | images, context)`` to the context's text tokens (see the
    module docstring). ``images``: a PIL image or a list of them."""
    check_vlm(model, "prompt_token_attribution")
    if method not in ("ablation", "shapley"):
        raise InvalidInputError(f"method must be 'ablation' or 'shapley', got {method!r}")
    images = check_images([images], 1, "prompt_token_attribution")[0]
    baseline_id = resolve_baseline(model.tokenizer, "causal", baseline)
    attr, full, empty, feats, ids = _token_scores(model, context, continuation, images, method, n_samples,
                                                  baseline_id, seed)
    import pandas as pd
    frame = pd.DataFrame({"position": feats.numpy(), "token": [model.tokenizer.decode([int(ids[p])]) for p in feats],
                          "token_id": ids[feats].numpy(), "attribution": attr.numpy()})
    rnd = None
    if random_check:
        rnd = _token_scores(random_model(model), context, continuation, images, method, n_samples, baseline_id,
                            seed)[0]
        frame["attribution_random"] = rnd.numpy()
    checks = sanity(method, attr, full, empty, rnd)
    prov = record(model, method=method, n_samples=n_samples if method == "shapley" else None, seed=seed,
                  baseline_id=baseline_id, context=context, continuation=continuation,
                  images=[image_hash(im) for im in images], logprob=full, logprob_all_removed=empty,
                  sanity=checks.to_dict("records"))
    return PromptTokenAttribution(frame=frame, provenance=prov, sanity=checks)

"""Scoring text given images: ``wb.loglikelihood(vlm, requests, images=...)`` and
``wb.generate(vlm, prompts, images=...)`` on vision-language models.

Conventions (recorded in ``attrs["scoring"]``):

* **Images**: ``images[i]`` is the list of PIL images of request ``i`` (a single image is taken
  as a list of one). They go through the model's own processor (resizing, normalisation, image
  tokens). The result cache keys on each image's pixels (:func:`image_hash`: mode, size and
  bytes), so a changed pixel is never served a stale score.
* **Where the images go**: ``format="raw"`` puts one image marker of the processor (LLaVA's
  ``<image>``, Gemma 3's ``<start_of_image>``, ...) per image before the context, unless the
  context already holds that many markers (then they stay where they are). ``format="chat"``
  renders a user turn with the images then the context through the processor's chat template
  (``add_generation_prompt``); the continuation is the assistant's reply.
* **Split**: as for text (lm-evaluation-harness): trailing spaces of the context move to the
  continuation; ``prompt + continuation`` is processed whole and split at the length of the
  processed prompt. Prefix-LM families (PaliGemma: the prompt is attended bidirectionally) get
  the continuation as the processor's ``suffix``, so it is scored causally as it was trained.
* **Batching**: requests run in right-padded batches of ``batch_size``; results do not depend on
  it within 1e-4 (tested).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from workbench.engine.padding import pad_id
from workbench.errors import DataError, InvalidInputError, WrongModelKindError
from workbench.families import family_for
from workbench.models.model import Model
from workbench.results import ScoreFrame
from workbench.scoring.rows import cached_rows, score_frame
from workbench.validate import check_pairs

# processor outputs with one row per text (padded together); every other tensor is per image
ROW_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
# per-text image tensors of tiling processors (Idefics3: [texts, tiles, 3, h, w]); padded with
# zeros, which the model drops as padding tiles
TILED_KEYS = ("pixel_values", "pixel_attention_mask")


def image_hash(img) -> str:
    """sha256 of an image's mode, size and pixel bytes (what the cache keys on)."""
    h = hashlib.sha256(f"{img.mode}|{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def check_images(images, n: int, what: str) -> list[list]:
    """``images``: one entry per request/text, each a PIL image or a list of them (non-empty)."""
    from PIL import Image
    if images is None:
        raise InvalidInputError(f"{what} on a vision-language model needs images=[[img, ...], ...], one list per "
                                "request (PIL images); for text only, load a text model")
    if isinstance(images, Image.Image) or not hasattr(images, "__len__"):
        raise InvalidInputError(f"images must be a list with one entry (a list of PIL images) per request, got "
                                f"{type(images).__name__}; wrap it: images=[[img]]")
    if len(images) != n:
        raise InvalidInputError(f"{what} got {n} requests but {len(images)} image lists; give one per request")
    out = []
    for i, entry in enumerate(images):
        entry = [entry] if isinstance(entry, Image.Image) else list(entry)
        if not entry or not all(isinstance(x, Image.Image) for x in entry):
            raise InvalidInputError(f"images[{i}] must be a PIL image or a non-empty list of PIL images, got {entry!r}"
                                    [:300])
        out.append([loaded_image(x, f"images[{i}][{j}]") for j, x in enumerate(entry)])
    return out


def loaded_image(img, name: str):
    """A PIL image with its pixels decoded, in RGB. PIL opens files lazily, so an image opened
    from a corrupt or truncated file only fails when its pixels are first read: read them here,
    at the door, and say which image it is (``name``) instead of failing inside the processor."""
    try:
        img.load()
        return img.convert("RGB") if img.mode != "RGB" else img
    except MemoryError:
        raise
    except Exception as e:  # PIL's decoders raise OSError, SyntaxError, ValueError, zlib/struct errors
        where = f" (file {img.filename})" if getattr(img, "filename", "") else ""
        raise DataError(f"{name}{where}: its pixels cannot be read ({type(e).__name__}: {e}); the image is corrupt "
                        "or truncated: replace it or leave it out") from None


def open_image_file(path, name: str = "image"):
    """The image in file ``path`` (PIL, RGB, pixels decoded), checked before any model work: a
    missing file, a folder, an empty file, a file that is not an image, and a corrupt or truncated
    one each raise :class:`~workbench.errors.DataError` naming ``name`` and the file.

    >>> import tempfile, pathlib
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "face.png"
    >>> _ = bad.write_text("not a picture")
    >>> open_image_file(bad, "item s1/dark")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workbench.errors.DataError: item s1/dark: .../face.png is not an image PIL can read ...
    """
    from PIL import Image, UnidentifiedImageError
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{name}: image file {p} does not exist; check the path (relative paths are read from "
                        f"{Path.cwd()})")
    if not p.is_file():
        raise DataError(f"{name}: {p} is not a file (a folder?); give the path of an image file")
    size = p.stat().st_size
    if size == 0:
        raise DataError(f"{name}: image file {p} is empty (0 bytes); replace it (an interrupted download?)")
    try:
        with Image.open(p) as img:
            img.verify()  # the format's own checks (PNG chunk checksums) without decoding pixels
    except UnidentifiedImageError:
        raise DataError(f"{name}: {p} is not an image PIL can read ({size} bytes; the file name says "
                        f"{p.suffix or 'no format'}); replace it with a PNG or JPEG image") from None
    except MemoryError:
        raise
    except Exception as e:
        raise DataError(f"{name}: image file {p} is corrupt ({type(e).__name__}: {e}); replace it or leave it "
                        "out") from None
    img = Image.open(p)  # verify() leaves the image unusable: open again and decode every pixel
    return loaded_image(img, name)


def check_vlm(model, what: str) -> None:
    if not isinstance(model, Model) or model.kind != "vision-language" or model.processor is None:
        kind = getattr(model, "kind", type(model).__name__)
        raise WrongModelKindError(f"{what} with images= needs a vision-language model (kind 'vision-language', "
                                  f"loaded with its processor), got {kind}; load one with wb.load_model(folder)")


def _family(model):
    return family_for(model.architecture, default=None)


def image_marker(processor) -> str:
    """The text the processor expands into one image's tokens."""
    for attr in ("boi_token", "image_token"):
        tok = getattr(processor, attr, None) or getattr(processor.tokenizer, attr, None)
        if isinstance(tok, str) and tok:
            return tok
    raise InvalidInputError(f"cannot tell the image marker of {type(processor).__name__}: it has no image_token")


def render(model, text: str, n_images: int, format: str = "raw", system_prompt: str | None = None) -> str:
    """The prompt string the processor is given for ``text`` with ``n_images`` images."""
    proc = model.processor
    if format == "chat":
        if not getattr(proc, "chat_template", None):
            raise InvalidInputError(f"{model.name}'s processor has no chat template, so format='chat' cannot be "
                                    "rendered; use format='raw' or set model.processor.chat_template")
        msgs = [] if system_prompt is None else [{"role": "system", "content": [{"type": "text", "text": system_prompt}]}]
        msgs.append({"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]})
        return proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    vision = getattr(_family(model), "vision", None)
    marker = (vision.image_marker if vision is not None else None) or image_marker(proc)
    have = text.count(marker)
    if have == n_images:
        return text
    if have:
        raise InvalidInputError(f"the text holds {have} image markers {marker!r} but {n_images} images were given; "
                                "give one image per marker, or no markers (images then go first)")
    return marker * n_images + text


def process(model, texts: list[str], images: list[list], suffixes: list[str] | None = None) -> dict:
    """The processor's tensors for ``texts`` with their images, one text at a time (so no
    processor-side padding), as a list of dicts with batch dimension 1."""
    out = []
    for i, (text, imgs) in enumerate(zip(texts, images)):
        kw = {} if suffixes is None else {"suffix": [suffixes[i]]}
        enc = model.processor(text=[text], images=[imgs], return_tensors="pt", **kw)
        enc.pop("labels", None)
        out.append(dict(enc))
    return out


def _pad_to(t: torch.Tensor, shape) -> torch.Tensor:
    """``t`` zero-padded at the end of every dimension after the first to ``shape``."""
    pad = []
    for have, want in zip(reversed(t.shape[1:]), reversed(shape)):
        pad += [0, want - have]
    return torch.nn.functional.pad(t, pad)


def collate(encs: list[dict], pad_id: int) -> dict:
    """Right-pad per-text encodings into one batch; per-image tensors are concatenated in order,
    per-text tile tensors (5-d ``pixel_values``) padded with all-zero tiles."""
    width = max(e["input_ids"].shape[1] for e in encs)
    tiled = encs[0].get("pixel_values") is not None and encs[0]["pixel_values"].dim() == 5
    batch = {}
    for key in encs[0]:
        if key in ROW_KEYS:
            fill = pad_id if key == "input_ids" else 0
            batch[key] = torch.cat([torch.nn.functional.pad(e[key], (0, width - e[key].shape[1]), value=fill)
                                    for e in encs])
        elif tiled and key in TILED_KEYS:
            shape = [max(e[key].shape[d] for e in encs) for d in range(1, encs[0][key].dim())]
            batch[key] = torch.cat([_pad_to(e[key], shape) for e in encs])
        else:
            batch[key] = torch.cat([e[key] for e in encs])
    return batch


def forward(model, batch: dict, **kwargs):
    """The unmodified model on a processed batch (moved to the model's device and dtype)."""
    moved = {k: (v.to(model.device, model.dtype) if v.is_floating_point() else v.to(model.device))
             for k, v in batch.items()}
    return model.hf(**moved, **kwargs)


def encode_pairs(model, requests, images, format="raw", system_prompt=None):
    """Per request: the processed whole (dict, batch 1) and the number of context tokens."""
    vision = getattr(_family(model), "vision", None)
    prefix_lm = bool(vision is not None and vision.prefix_lm)
    out = []
    for (ctx, cont), imgs in zip(requests, images):
        n_sp = len(ctx) - len(ctx.rstrip())
        if n_sp and format != "chat":
            ctx, cont = ctx[:-n_sp], ctx[-n_sp:] + cont
        prompt = render(model, ctx, len(imgs), format, system_prompt)
        if prefix_lm:
            whole = process(model, [prompt], [imgs], suffixes=[cont])[0]
            n_ctx = int((whole["token_type_ids"][0] == 0).sum())
            eos = model.tokenizer.eos_token_id
            if eos is not None and int(whole["input_ids"][0, -1]) == eos:  # the suffix's closing EOS
                whole = {k: (v[:, :-1] if k in ROW_KEYS else v) for k, v in whole.items()}
        else:
            ctx_ids = process(model, [prompt], [imgs])[0]["input_ids"][0]
            whole = process(model, [prompt + cont], [imgs])[0]
            ids = whole["input_ids"][0]
            n = min(len(ctx_ids), len(ids))
            same = (ctx_ids[:n] == ids[:n]).long()
            n_ctx = int(same.cumprod(0).sum())  # the common prefix (the split, as for text)
        if whole["input_ids"].shape[1] <= n_ctx:
            raise InvalidInputError(f"the continuation {cont!r} adds no tokens after its context; give a "
                                    "non-empty continuation")
        out.append((whole, n_ctx, prompt))
    return out


def score_pairs(model, encoded, batch_size: int = 8) -> list[dict]:
    """Per (whole, n_ctx): token log-probs and greedy flags of the tokens after the context."""
    pad = pad_id(model.tokenizer)
    rows = []
    with torch.inference_mode():
        for i in range(0, len(encoded), batch_size):
            part = encoded[i:i + batch_size]
            logits = forward(model, collate([w for w, _, _ in part], pad)).logits.float().cpu()
            for r, (whole, n_ctx, _) in enumerate(part):
                ids = whole["input_ids"][0]
                n = ids.shape[0]
                lp = torch.log_softmax(logits[r, n_ctx - 1:n - 1], dim=-1)
                tgt = ids[n_ctx:]
                rows.append({"token_logprobs": lp.gather(1, tgt[:, None])[:, 0].tolist(),
                             "greedy": (lp.argmax(-1) == tgt).tolist(), "ids": tgt.tolist()})
    return rows


def loglikelihood_images(model, requests, images, *, format: str = "raw", system_prompt=None,
                         batch_size: int = 8, cache: bool = True):
    """``wb.loglikelihood`` for a vision-language model (see the module docstring); the same
    columns as for text models (``truncated_tokens`` is always 0: image prompts are not cut)
    plus ``images`` (the image hashes).

    >>> import workbench as wb
    >>> from workbench.testing import tiny_vlm, tiny_image
    >>> vlm = tiny_vlm("llava")
    >>> df = wb.loglikelihood(vlm, [("A picture of", " a cat")], images=[[tiny_image(0)]], cache=False)
    >>> list(df.columns[:4]), int(df.n_tokens[0]) > 0
    (['context', 'continuation', 'logprob', 'n_tokens'], True)
    """
    check_vlm(model, "loglikelihood")
    reqs = check_pairs(requests, "loglikelihood")
    if format not in ("raw", "chat"):
        raise InvalidInputError(f"format must be 'raw' or 'chat', got {format!r}")
    imgs = check_images(images, len(reqs), "loglikelihood")
    keyed = [(c, x, [image_hash(im) for im in ims]) for (c, x), ims in zip(reqs, imgs)]
    options = {"split": "lm-eval whole-string split, images through the processor", "format": format,
               "images": "processor", "processor": model.fingerprint.get("processor")}
    if system_prompt is not None:
        options["system_prompt"] = system_prompt
    by_key = {id(k): i for i, k in enumerate(keyed)}

    def compute(batch):
        idx = [by_key[id(k)] for k in batch]
        enc = encode_pairs(model, [reqs[i] for i in idx], [imgs[i] for i in idx], format, system_prompt)
        scored = score_pairs(model, enc, batch_size)
        return [{"logprob": float(sum(s["token_logprobs"])), "n_tokens": len(s["token_logprobs"]),
                 "is_greedy": bool(all(s["greedy"])), "token_logprobs": s["token_logprobs"],
                 "tokens": model.tokenizer.convert_ids_to_tokens(s["ids"]), "truncated_tokens": 0,
                 "prompt": e[2]} for s, e in zip(scored, enc)]

    rows = cached_rows(model, "loglikelihood-images", options, keyed, compute, cache)
    out = []
    for (c, x, h), r in zip(keyed, rows):
        out.append({"context": r["prompt"] if format == "chat" else c, "continuation": x,
                    **{k: v for k, v in r.items() if k != "prompt"},
                    "mean_logprob": r["logprob"] / r["n_tokens"], "images": h})
    cols = ["context", "continuation", "logprob", "n_tokens", "mean_logprob", "is_greedy", "token_logprobs", "tokens",
            "truncated_tokens", "images"]
    df = ScoreFrame.of(score_frame(out, model, options)[cols]) if out else ScoreFrame(columns=cols)
    df.attrs["truncated_rows"] = []
    return df


def generate_images(model, prompts, images, *, max_new_tokens: int = 32, seed: int = 0, do_sample: bool = False,
                    temperature: float = 1.0, top_p: float = 1.0, top_k=None, chat: bool = False,
                    system_prompt=None, cache: bool = True):
    """``wb.generate(vlm, prompts, images=...)``: seeded generation from each prompt with its
    images, one prompt at a time (so a completion never depends on its batch neighbours). Same
    columns as for text (prompt, sample, completion, n_new_tokens, seed) plus ``images``.

    >>> import workbench as wb
    >>> from workbench.testing import tiny_vlm, tiny_image
    >>> df = wb.generate(tiny_vlm("llava"), ["Describe it:"], images=[[tiny_image(0)]], max_new_tokens=3, cache=False)
    >>> int(df.n_new_tokens[0]) <= 3
    True
    """
    check_vlm(model, "generate")
    if isinstance(prompts, str) or not all(isinstance(p, str) and p for p in prompts):
        raise InvalidInputError("generate takes a list of non-empty prompt strings")
    prompts = list(prompts)
    imgs = check_images(images, len(prompts), "generate")
    options = dict(max_new_tokens=max_new_tokens, seed=seed, do_sample=do_sample, temperature=temperature,
                   top_p=top_p, top_k=top_k, chat=chat, system_prompt=system_prompt,
                   processor=model.fingerprint.get("processor"))
    keyed = [(p, [image_hash(im) for im in ims]) for p, ims in zip(prompts, imgs)]
    where = {id(k): i for i, k in enumerate(keyed)}

    def compute(batch):
        rows = []
        for k in batch:
            i = where[id(k)]
            text = render(model, prompts[i], len(imgs[i]), "chat" if chat else "raw", system_prompt)
            enc = process(model, [text], [imgs[i]])[0]
            moved = {n: (v.to(model.device, model.dtype) if v.is_floating_point() else v.to(model.device))
                     for n, v in enc.items()}
            torch.manual_seed(seed)
            gen_kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                          pad_token_id=model.tokenizer.pad_token_id or model.tokenizer.eos_token_id)
            if do_sample:
                gen_kw.update(temperature=temperature, top_p=top_p, top_k=top_k)
            with torch.inference_mode():
                out = model.hf.generate(**moved, **gen_kw)
            new = out[0, enc["input_ids"].shape[1]:].cpu()
            rows.append({"completion": model.tokenizer.decode(new, skip_special_tokens=True),
                         "n_new_tokens": int(new.shape[0])})
        return rows

    rows = cached_rows(model, "generate-images", options, keyed, compute, cache)
    out = [{"prompt": p, "sample": 0, **r, "seed": seed, "images": h} for (p, h), r in zip(keyed, rows)]
    return score_frame(out, model, options)

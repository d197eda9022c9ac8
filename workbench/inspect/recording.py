"""What every capture shares, below the entry points that use it (``capture`` and
``capture_stream`` in :mod:`~workbench.inspect.capture` and :mod:`~workbench.inspect.stream`,
``capture_generation``, the llama.cpp graph capture, the vision-language capture): texts
tokenised and checked against the window, sites and positions resolved at the door, the hooks
that record (:class:`Recorder`), the result's blocks (:class:`SiteBlocks`), its tokens and
provenance, and :func:`capture_texts`, the in-memory capture of texts with hooks.

The entry points build on this module, which imports none of them: streaming calls
:func:`capture_texts` for each shard, and ``wb.capture`` sends ``out=`` and ``max_new_tokens=``
on to streaming and generation, so neither side reaches back into the other.
"""
from __future__ import annotations

import contextlib

import torch

from workbench.engine.padding import pad_id, pad_rows, tokenizer_state_kept
from workbench.errors import InvalidInputError, UnsupportedSiteError
from workbench.inspect.cache import ActivationCache, check_fits, estimate_bytes
from workbench.inspect.hooks import add_read_hook, attention_implementation, hooks_removed_after, switch_note
from workbench.inspect.sites import MODEL_SITES, SITES, adapter, site_adapter
from workbench.provenance import record
from workbench.validate import check_context


def tokenize(model, inputs, padding_side: str = "right") -> dict:
    """Texts -> ``input_ids``/``attention_mask`` padded on ``padding_side``, special tokens as the
    tokenizer adds them by default (its own BOS convention). A dict with ``input_ids`` (and
    optionally ``attention_mask``) is taken as already tokenised."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if hasattr(inputs, "keys") and "input_ids" in inputs:
        ids = torch.as_tensor(inputs["input_ids"])
        ids = ids[None] if ids.dim() == 1 else ids
        mask = torch.as_tensor(inputs["attention_mask"]) if "attention_mask" in inputs else torch.ones_like(ids)
        mask = mask.reshape(ids.shape)
        if padding_side == "right" and not (mask[:, :-1] >= mask[:, 1:]).all():
            raise InvalidInputError("tokenised inputs must be right-padded (attention_mask 1...1 0...0 per row); "
                                    "pass texts, or re-pad with tokenizer(..., padding_side='right')")
        return {"input_ids": ids, "attention_mask": mask}
    if not isinstance(inputs, (list, tuple)) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise InvalidInputError("inputs must be a text, a non-empty list of texts, or a dict with input_ids")
    if any(not t for t in inputs):
        raise InvalidInputError(f"empty text at index {[i for i, t in enumerate(inputs) if not t]}; remove it")
    tok = model.tokenizer
    pad = pad_id(tok)
    with tokenizer_state_kept(tok):
        enc = _pad_manually(tok, inputs, pad, padding_side)
    return enc


def encode(tok, texts, **kwargs) -> list:
    """``tok(texts, **kwargs)["input_ids"]`` leaving the tokenizer's state as it was."""
    with tokenizer_state_kept(tok):
        return tok(texts, **kwargs)["input_ids"]


def _pad_manually(tok, texts, pad, side):
    ids, mask = pad_rows(tok(list(texts))["input_ids"], pad, side=side)
    return {"input_ids": ids, "attention_mask": mask}


def resolve_sites(model, sites, layers, ad=None):
    """Validate sites/layers at the door; returns the list of (site, layer) keys. ``ad``: the site
    map to check against (default: the model's :class:`~workbench.inspect.sites.Adapter`)."""
    ad = ad or adapter(model)
    if isinstance(sites, str):
        sites = ad.available() if sites == "all" else [sites]
    sites = list(sites)
    if not sites:
        raise InvalidInputError("sites is empty; name at least one of " + ", ".join(SITES))
    if layers is None:
        layers = list(range(ad.n_layers))
    elif all(site in MODEL_SITES for site in sites):
        # e.g. layers=[3] with sites="logits": the layers would be ignored without a word
        raise UnsupportedSiteError(f"layers={layers!r} were given but {', '.join(map(repr, sites))} "
                                   f"{'has' if len(sites) == 1 else 'have'} no layers ({', '.join(MODEL_SITES)} "
                                   "are read once per model); leave layers=None, or add a layer site such "
                                   "as 'resid_post'")
    if isinstance(layers, int):
        layers = [layers]
    layers = sorted({ad.check_layer(layer) for layer in layers})
    keys = []
    for site in sites:
        if site in MODEL_SITES:
            ad.hook_point(site)
            keys.append((site, None))
        else:
            for layer in layers:
                ad.hook_point(site, layer)  # raises UnsupportedSiteError with the reason
                keys.append((site, layer))
    return keys


def resolve_positions(positions, mask: torch.Tensor) -> torch.Tensor | None:
    """``None`` (all), an int, a list of ints or ``"last"`` -> per-row token indices [batch, P].
    Negative positions count from each row's last real token (right padding)."""
    if positions is None:
        return None
    lengths = mask.sum(1)
    if positions == "last":
        positions = [-1]
    if isinstance(positions, int):
        positions = [positions]
    if not isinstance(positions, (list, tuple)) or not positions or not all(isinstance(p, int) for p in positions):
        raise InvalidInputError(f"positions must be None, an int, a list of ints or 'last', got {positions!r}")
    pos = torch.tensor(positions)[None, :].expand(len(lengths), -1)
    idx = torch.where(pos < 0, pos + lengths[:, None], pos)
    bad = (idx < 0) | (idx >= lengths[:, None])
    if bad.any():
        row = int(bad.any(1).nonzero()[0])
        raise InvalidInputError(f"positions {positions} fall outside text {row}, which has {int(lengths[row])} tokens; "
                                "use positions within every text (negative ones count from the end)")
    return idx


class Recorder:
    """Installs read hooks that keep, per (site, layer), only the requested positions, on the
    CPU, in ``dtype``, as each forward produces them (so the model's own tensors can be freed).

    Without ``into`` each call's tensor is appended to a list (``take``), which generation needs
    (every step has a new length); with ``into`` (:class:`SiteBlocks`) it is written straight
    into its place in a preallocated result."""

    def __init__(self, model, keys, dtype=None, into: "SiteBlocks | None" = None):
        self.model, self.keys, self.dtype, self.into = model, keys, dtype, into
        self.seq_dims = {site: adapter(model).hook_point(site, layer).seq_dim for site, layer in keys}
        self.idx = None          # [b, P] positions of the batch being run, or None
        self.pad = None          # [b, s] True at padding positions of the batch being run, or None
        self.row = 0             # the batch's first row in the whole input (for ``into``)
        self.chunks = {k: [] for k in keys}

    def _keep(self, key, x: torch.Tensor):
        x = x.detach()
        sd = self.seq_dims[key[0]]
        if self.idx is not None:
            rows = torch.arange(x.shape[0], device=x.device)[:, None]
            idx = self.idx.to(x.device)
            x = x[rows, idx] if sd == 1 else x[rows, :, idx].movedim(1, 2)
            pad = None
        else:
            pad = self.pad if self.pad is not None and self.pad.any() and x.shape[sd] == self.pad.shape[1] else None
        if self.into is not None:
            out = self.into.slot(key, x, self.row, self.dtype or x.dtype)
            out.copy_(x)  # one copy: device -> CPU, down-cast and placement together
        else:
            out = x.to(device="cpu", dtype=self.dtype or x.dtype, copy=True)
            self.chunks[key].append(out)
        if pad is not None:
            # padding positions hold zeros, not the model's (meaningless) pad activations
            shape = [x.shape[0]] + [1] * (x.dim() - 1)
            shape[sd] = pad.shape[1]
            out.masked_fill_(pad.reshape(shape), 0)

    @contextlib.contextmanager
    def installed(self):
        handles = [add_read_hook(self.model, s, layer, lambda x, k=(s, layer): self._keep(k, x))
                   for s, layer in self.keys]
        with hooks_removed_after(handles):
            yield self

    def take(self, key):
        chunks, self.chunks[key] = self.chunks[key], []
        return chunks


class SiteBlocks:
    """The result of a capture, allocated once per site: a zeroed ``[n_layers, batch, seq, ...]``
    block whose layers are handed out as views, filled in place batch by batch.

    Why: a tensor per layer and batch, allocated between the forward pass's own temporaries and
    concatenated at the end, costs a second copy of multi-batch results and fragments the heap.
    One block per site is a single large allocation that the C allocator maps and gives back
    whole, so a second capture in the same process peaks where the first did (it measured up to
    ~400 MB higher before). A kept layer (``cache[site, layer]``) keeps its site's block alive:
    ``.clone()`` it to keep one layer alone."""

    def __init__(self, keys, n: int, seq_len: int, positioned: bool):
        self.n, self.seq_len, self.positioned = n, seq_len, positioned
        self.layer_of, self.n_layers = {}, {}  # key -> index in its site's block; site -> block length
        for site, layer in keys:
            self.layer_of[(site, layer)] = self.n_layers.get(site, 0)
            self.n_layers[site] = self.layer_of[(site, layer)] + 1
        self.blocks = {}

    def slot(self, key, x: torch.Tensor, row: int, dtype) -> torch.Tensor:
        """The view of ``key``'s block where batch ``x`` (starting at ``row``) belongs."""
        site = key[0]
        if site not in self.blocks:
            shape = _full_shape(site, x.shape, self.n, self.seq_len, self.positioned)
            self.blocks[site] = torch.zeros([self.n_layers[site]] + shape, dtype=dtype)
        return self.blocks[site][self.layer_of[key]][_rows(row, x.shape)]

    def result(self) -> dict:
        return {k: self.blocks[k[0]][i] for k, i in self.layer_of.items()}


def _full_shape(site: str, part_shape, n: int, seq_len: int, positioned: bool) -> list:
    """The shape of ``n`` rows of ``site`` padded to ``seq_len``, from one batch's part (which is
    padded only to its own batch's length)."""
    shape = [n] + list(part_shape[1:])
    if site == "attn_pattern":
        shape[3] = seq_len
        shape[2] = shape[2] if positioned else seq_len
    elif not positioned:
        shape[1] = seq_len
    return shape


def _rows(row: int, part_shape) -> tuple:
    """Index of a batch's part (starting at ``row``) inside the full tensor."""
    return (slice(row, row + part_shape[0]),) + tuple(slice(0, d) for d in part_shape[1:])


def place(chunks: list, n: int, seq_len: int, site: str, positioned: bool) -> torch.Tensor:
    """Batch chunks (each padded only to its own batch's length) -> one zero-padded tensor."""
    shape = _full_shape(site, chunks[0].shape, n, seq_len, positioned)
    if len(chunks) == 1 and list(chunks[0].shape) == shape:
        return chunks[0]  # one batch, nothing to pad: no copy
    out = torch.zeros(shape, dtype=chunks[0].dtype)
    i = 0
    for c in chunks:
        out[_rows(i, c.shape)] = c
        i += c.shape[0]
    return out


def check_fits_window(model, mask: torch.Tensor, extra: int = 0) -> None:
    """Refuse a text whose real tokens (+ ``extra`` to generate) exceed the model's window: past
    it, position embeddings run out (an IndexError deep in the model) or rotary ones leave the
    range the model was trained on."""
    if mask.numel():
        lengths = mask.sum(1)
        i = int(lengths.argmax())
        n = int(lengths[i])
        what = f"text {i} ({n} tokens plus max_new_tokens={extra})" if extra else f"text {i}"
        hint = "Shorten the text" + (", or ask for fewer max_new_tokens." if extra else ".")
        check_context(model, n + extra, what, hint)


def str_tokens(model, ids, mask):
    conv = model.tokenizer.convert_ids_to_tokens
    return [conv([int(t) for t, m in zip(row, mrow) if m]) for row, mrow in zip(ids, mask)]


def capture_provenance(model, keys, dtype, est, **extra):
    return {**record(model), "state_id": model.state_id, "architecture": model.architecture,
            "n_layers": site_adapter(model).n_layers, "sites": sorted({s for s, _ in keys}),
            "dtype": str(dtype or model.dtype), "estimate_bytes": est, **extra}


def capture_texts(model, inputs, sites, layers, positions, dtype, batch_size: int, max_memory: int | None,
                  progress: bool) -> ActivationCache:
    """:func:`workbench.capture` of texts in memory with read hooks (the arguments already
    checked by it): every check (sites, layers, positions, window, memory) runs before the first
    forward pass, then the batches run with the hooks writing into one block per site."""
    keys = resolve_sites(model, sites, layers)
    enc = tokenize(model, inputs)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    check_fits_window(model, mask)
    idx = resolve_positions(positions, mask)
    ad = adapter(model)
    needs_eager = any(s == "attn_pattern" for s, _ in keys)
    el = torch.empty((), dtype=dtype or model.dtype).element_size()
    est = estimate_bytes(ad, keys, ids.shape[0], ids.shape[1], None if idx is None else idx.shape[1], el,
                         batch_size, needs_eager, model.dtype.itemsize)
    check_fits(est, max_memory, "fewer sites or layers, positions='last' (or a list), dtype=torch.float16, "
                                "a smaller batch_size, or out='folder' to stream shards to disk")
    n = ids.shape[0]
    blocks = SiteBlocks(keys, n, ids.shape[1], idx is not None)
    rec = Recorder(model, keys, dtype, into=blocks)
    notes = []
    batches = range(0, n, batch_size)
    eager = attention_implementation(model) if needs_eager else contextlib.nullcontext()
    with eager as switched, rec.installed(), torch.inference_mode():
        if switched:
            notes.append(switch_note(switched))
        it = batches
        if progress and len(batches) > 4:
            from tqdm.auto import tqdm
            it = tqdm(batches, desc="capture", unit="batch")
        for i in it:
            m = mask[i:i + batch_size]
            width = int(m.sum(1).max())  # trim this batch's padding (right-padded)
            rec.idx = None if idx is None else idx[i:i + batch_size]
            rec.pad, rec.row = ~m[:, :width].bool(), i
            model.hf(input_ids=ids[i:i + batch_size, :width].to(model.device),
                     attention_mask=m[:, :width].to(model.device))
    return ActivationCache(blocks.result(), ids, mask, str_tokens(model, ids, mask), idx, notes,
                           capture_provenance(model, keys, dtype, est))


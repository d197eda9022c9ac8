"""What an SAE's features do on a model: top-activating examples, reconstruction quality and the
loss when the reconstruction replaces the site, and feature ablation and steering through the
edit hooks (context managers, like :func:`workbench.inspect.steer`).

>>> import torch
>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("gpt2")
>>> d = m.hf.config.n_embd
>>> eye = torch.eye(d)
>>> sae = wb.inspect.SAE(W_enc=torch.cat([eye, -eye], 1), b_enc=torch.zeros(2 * d),
...                      W_dec=torch.cat([eye, -eye], 0), b_dec=torch.zeros(d), site="resid_post", layer=0)
>>> ev = wb.inspect.evaluate_sae(m, sae, ["The cat sat on the mat.", "A dog ran."])
>>> round(float(ev.frame["fve"].iloc[0]), 4), abs(float(ev.frame["delta_loss"].iloc[0])) < 1e-4
(1.0, True)
>>> with wb.inspect.steer_feature(m, sae, feature=3, alpha=5.0):
...     len(m.interventions)
1
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import pandas as pd
import torch

from workbench.display import show_token
from workbench.backends.base import require
from workbench.errors import BackendCapabilityError, InvalidInputError
from workbench.inspect.capture import capture, check_fits_window, tokenize
from workbench.inspect.hooks import add_edit_hook, intervention
from workbench.inspect.sae import SAE
from workbench.inspect.sites import on_graph_backend
from workbench.results import Result
from workbench.validate import Int, Real, check_finite, check_int, check_texts, checked
from workbench.models.checks import check_model
from workbench.provenance import record


def _check_sae(sae) -> SAE:
    if not isinstance(sae, SAE):
        raise InvalidInputError(f"sae must be a workbench SAE (wb.inspect.load_sae or wb.inspect.train_sae), "
                                f"got {type(sae).__name__}")
    return sae


def _features(sae: SAE, features) -> list[int]:
    if isinstance(features, bool):
        raise InvalidInputError(f"feature must be an int index or a list of them, got {features!r}")
    feats = [features] if not isinstance(features, (list, tuple, range)) else list(features)
    if not feats:
        raise InvalidInputError("give at least one feature index")
    out = [check_int("feature", f, min=0) for f in feats]
    bad = [f for f in out if f >= sae.d_sae]
    if bad:
        raise InvalidInputError(f"feature {bad[0]} out of range: this SAE has {sae.d_sae} features (0..{sae.d_sae - 1})")
    return out


# -- edits through the hooks ----------------------------------------------------------------

def kept_tokens(mask: torch.Tensor, skip_first: bool) -> torch.Tensor:
    """The real tokens (``mask``), less each row's first real one if ``skip_first``."""
    mask = mask.bool()
    if not skip_first:
        return mask
    first = mask.long().argmax(1)                     # first real position (left or right padding)
    out = mask.clone()
    out[torch.arange(len(mask)), first] = False
    return out


def _first_positions(model, state: dict):
    """A pre-hook on the whole model that records, for each forward, the first real position of
    every row, or None when the pass continues a KV cache (generation after the prompt: the
    first token is not in it)."""
    def pre(module, args, kwargs):
        # the KV cache: ``past_key_values`` (or ``cache`` in newer transformers), a Cache object
        past = next((v for v in kwargs.values() if hasattr(v, "get_seq_length")), None)
        legacy = kwargs.get("past_key_values")
        past_len = past.get_seq_length() if past is not None else (
            legacy[0][0].shape[-2] if isinstance(legacy, (tuple, list)) and legacy else 0)
        ref = kwargs.get("input_ids", args[0] if args else None)
        ref = kwargs.get("inputs_embeds") if ref is None else ref
        mask = kwargs.get("attention_mask")
        if past_len or ref is None:
            state["first"] = None
        elif mask is not None and mask.dim() == 2 and mask.shape[1] == ref.shape[1]:
            state["first"] = mask.long().argmax(1)
        else:
            state["first"] = torch.zeros(ref.shape[0], dtype=torch.long)
    return model.hf.register_forward_pre_hook(pre, with_kwargs=True)


@contextlib.contextmanager
def _edited(model, sae: SAE, fn, desc: dict):
    """Replace the SAE's site by ``fn(x, sae_on_device)`` for the block (registered in
    ``model.interventions``, removed on exit even after an error). With ``sae.skip_first`` the
    first real token of each text keeps its value."""
    site, layer = _check_sae(sae).where(model)
    dev, skip = sae.to(model.device), sae.skip_first      # fixed for the block
    state = {"first": None}

    def edit(x):
        new = fn(x, dev).reshape(x.shape).to(x.dtype)
        first = state["first"]
        if skip and first is not None and len(first) == x.shape[0]:
            rows = torch.arange(x.shape[0], device=x.device)
            new[rows, first.to(x.device)] = x[rows, first.to(x.device)]
        return new
    handles = [add_edit_hook(model, site, layer, edit)]      # refuses a site that cannot be edited
    if skip:
        handles.append(_first_positions(model, state))
    desc = {**desc, "site": site, "layer": layer, "sae": sae.source or repr(sae), "skip_first": skip}
    with intervention(model, desc, handles):
        yield desc


def splice_sae(model, sae: SAE):
    """Context manager: the SAE's reconstruction replaces its site for the block (at every
    position; not each text's first token if ``sae.skip_first``)."""
    return _edited(model, sae, lambda x, s: s(x), {"kind": "sae_splice"})


def ablate_feature(model, sae: SAE, feature):
    """Context manager: remove ``feature``'s (an index or a list) contribution from the site:
    ``x - (sae(x) - sae(x with those features set to 0))`` (``f_i(x) * W_dec[i]`` for an SAE
    without input normalisation); the rest of ``x``, the SAE's error included, is kept."""
    feats = _features(_check_sae(sae), feature)
    return _edited(model, sae, lambda x, s: x.float() - (s(x) - s(x, zero_features=feats)),
                   {"kind": "sae_feature_ablation", "features": feats})


@checked(alpha=Real())
def steer_feature(model, sae: SAE, feature, alpha: float = 1.0):
    """Context manager: add ``alpha * W_dec[feature]`` (summed over a list) to the site at every
    position (but the first if ``sae.skip_first``). Decoder rows of SAEs trained here have unit norm, so ``alpha`` is in units of the
    site's norm; for an SAE that normalises its input, ``W_dec`` is in that normalised scale."""
    feats = _features(_check_sae(sae), feature)
    direction = sae.W_dec[feats].sum(0)
    if on_graph_backend(model):  # llama.cpp: the same addition as a control vector
        return _steered_on_backend(model, sae, feats, float(alpha), direction)
    return _edited(model, sae, lambda x, s: x.float() + float(alpha) * direction.to(x.device),
                   {"kind": "sae_feature_steering", "features": feats, "alpha": float(alpha)})


@contextlib.contextmanager
def _steered_on_backend(model, sae: SAE, feats: list, alpha: float, direction: torch.Tensor):
    """:func:`steer_feature` on a backend that steers with control vectors (llama.cpp): they add
    at every position, so an SAE that leaves the first token alone is refused."""
    require(model, "steer", "steer_feature")
    site, layer = sae.where(model)  # the site exists there and is d_in wide
    if sae.skip_first:
        raise BackendCapabilityError(
            f"{sae!r} leaves each text's first token alone (skip_first), which the {model.backend.name!r} "
            "backend's control vectors (added at every position) cannot do; load the model with backend='hf'")
    delta = alpha * direction.detach().float().cpu()
    check_finite("the feature's decoder direction", delta)
    desc = {"kind": "sae_feature_steering", "features": feats, "alpha": alpha, "site": site, "layer": layer,
            "sae": sae.source or repr(sae), "skip_first": False}
    with model.backend.control_vector(model, site, layer, delta.numpy()), intervention(model, desc, []):
        yield desc


# -- loss and reconstruction -----------------------------------------------------------------

def next_token_loss(model, enc: dict, batch_size: int = 8) -> float:
    """Mean next-token cross-entropy (nats) over every real token that has a real successor."""
    ids, mask = enc["input_ids"], enc["attention_mask"]
    total, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(ids), batch_size):
            m = mask[i:i + batch_size]
            w = int(m.sum(1).max())
            b = ids[i:i + batch_size, :w]
            logits = model.hf(input_ids=b.to(model.device), attention_mask=m[:, :w].to(model.device)).logits
            lp = logits[:, :-1].float().log_softmax(-1)
            nll = -lp.gather(-1, b[:, 1:, None].to(lp.device))[..., 0]
            ok = (m[:, 1:w] * m[:, :w - 1]).bool().to(nll.device)
            total += float(nll[ok].sum())
            n += int(ok.sum())
    if n == 0:
        raise InvalidInputError("the texts have no token with a successor (each is one token long); give longer texts")
    return total / n


def _tokens_of(model, sae, texts, batch_size):
    """The SAE's site on every real token of ``texts``: [n_tokens, d_in] float32, and the encoding."""
    site, layer = sae.where(model)
    cache = capture(model, texts, sites=[site], layers=None if layer is None else [layer], dtype=torch.float32,
                    batch_size=batch_size, progress=False)
    x = cache[site, layer][kept_tokens(cache.attention_mask, sae.skip_first)]
    return x.flatten(1), cache


def reconstruction_stats(sae: SAE, x: torch.Tensor, chunk: int = 4096) -> dict:
    """mse (mean over elements), fve (1 - residual / total variance about the mean), l0 (mean
    number of active features per token), dead (fraction of features never active) of ``x`` [n, d_in]."""
    x = x.float()
    mu = x.mean(0)
    se = tv = l0 = 0.0
    alive = torch.zeros(sae.d_sae, dtype=torch.bool)
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        f, r = sae.run(xb)
        se += float(((xb - r) ** 2).sum())
        tv += float(((xb - mu) ** 2).sum())
        active = f > 0
        l0 += float(active.sum())
        alive |= active.any(0)
    n = len(x)
    return {"n_tokens": n, "mse": se / (n * x.shape[1]), "fve": 1 - se / tv if tv > 0 else float("nan"),
            "l0": l0 / n, "dead_fraction": 1 - float(alive.float().mean())}


@dataclass
class SAEEvalResult(Result):
    """``frame``: one row: n_tokens, mse, fve (fraction of variance explained), l0, dead_fraction,
    loss_clean, loss_spliced, loss_zero_ablated (mean next-token loss, nats), delta_loss
    (spliced - clean), loss_recovered ((zero - spliced) / (zero - clean): 1 = as good as the
    model, 0 = no better than zeroing the site)."""

    def summary(self) -> pd.DataFrame:
        return self.frame.copy()


@checked(batch_size=Int(min=1))
def evaluate_sae(model, sae: SAE, texts, batch_size: int = 8) -> SAEEvalResult:
    """Reconstruction of the SAE's site on ``texts`` (every real token; not the first of each text
    if ``sae.skip_first``) and the change in mean next-token loss (over every predicted token)
    when the reconstruction is spliced in, next to zero-ablating the site (the same positions)."""
    check_model(model, ("causal",), "evaluate_sae (next-token loss)")
    _check_sae(sae)
    texts = check_texts(texts, "evaluate_sae")
    x, _ = _tokens_of(model, sae, texts, batch_size)
    row = reconstruction_stats(sae, x)
    enc = tokenize(model, texts)
    check_fits_window(model, enc["attention_mask"])
    clean = next_token_loss(model, enc, batch_size)
    with splice_sae(model, sae):
        spliced = next_token_loss(model, enc, batch_size)
    # zero-ablate the positions the splice replaces, so the two losses compare like with like
    with _edited(model, sae, lambda x, s: torch.zeros_like(x), {"kind": "sae_site_zero_ablation"}):
        zero = next_token_loss(model, enc, batch_size)
    site, layer = sae.where(model)
    gap = zero - clean
    row.update(loss_clean=clean, loss_spliced=spliced, loss_zero_ablated=zero, delta_loss=spliced - clean,
               loss_recovered=(zero - spliced) / gap if abs(gap) > 1e-12 else float("nan"))
    return SAEEvalResult(pd.DataFrame([row]), {**record(model), "state_id": model.state_id, "site": site,
                                               "layer": layer, "sae": sae.source or repr(sae), "n_texts": len(texts)})


# -- top-activating examples -------------------------------------------------------------------

def _show(tok: str) -> str:
    return show_token(tok)


@dataclass
class FeatureExamplesResult(Result):
    """``frame``: per feature its top examples: feature, rank, activation, text_index, position,
    token (``␣`` for a space), context (the text around it, the token in ⟦ ⟧). ``stats``: per
    feature: feature, frequency (fraction of tokens where it is active), max_activation."""

    stats: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> pd.DataFrame:
        top = self.frame.groupby("feature")["token"].agg(lambda t: " ".join(t)).rename("top_tokens")
        return self.stats.join(top, on="feature").sort_values("max_activation", ascending=False)

    def examples(self, feature: int) -> pd.DataFrame:
        return self.frame[self.frame["feature"] == feature].reset_index(drop=True)


@checked(k=Int(min=1), context=Int(min=0), batch_size=Int(min=1))
def top_activating(model, sae: SAE, texts, features=None, k: int = 5, context: int = 6,
                   batch_size: int = 8) -> FeatureExamplesResult:
    """For each feature (``None``: all), the ``k`` tokens of ``texts`` where it is most active,
    with ``context`` tokens either side. A feature active on fewer than ``k`` tokens gets fewer
    rows; one never active gets none (its frequency is 0 in ``stats``)."""
    _check_sae(sae)
    texts = check_texts(texts, "top_activating")
    feats = list(range(sae.d_sae)) if features is None else _features(sae, features)
    site, layer = sae.where(model)
    cache = capture(model, texts, sites=[site], layers=None if layer is None else [layer], dtype=torch.float32,
                    batch_size=batch_size, progress=False)
    acts, mask = cache[site, layer], kept_tokens(cache.attention_mask, sae.skip_first)
    seq = mask.shape[1]
    best_v = torch.empty(0, len(feats))
    best_i = torch.empty(0, len(feats), dtype=torch.long)
    count = torch.zeros(len(feats))
    top = torch.zeros(len(feats))
    for i in range(0, len(texts), batch_size):
        f = sae.encode(acts[i:i + batch_size])[..., feats]             # [n, s, F]
        m = mask[i:i + batch_size]
        f = torch.where(m[..., None], f, torch.full_like(f, -1.0))     # padding never ranks
        count += (f > 0).sum((0, 1)).float()
        top = torch.maximum(top, f.amax((0, 1)).clamp_min(0))
        flat = f.reshape(-1, len(feats))
        v, j = flat.topk(min(k, len(flat)), dim=0)
        best_v, best_i = torch.cat([best_v, v]), torch.cat([best_i, j + i * seq])
        keep_v, keep_j = best_v.topk(min(k, len(best_v)), dim=0)
        best_v, best_i = keep_v, best_i.gather(0, keep_j)
    tok = model.tokenizer
    rows = []
    for col, feat in enumerate(feats):
        for rank in range(len(best_v)):
            a = float(best_v[rank, col])
            if a <= 0:
                break
            t, p = divmod(int(best_i[rank, col]), seq)
            ids = cache.tokens[t][cache.attention_mask[t].bool()].tolist()
            left, right = tok.decode(ids[max(0, p - context):p]), tok.decode(ids[p + 1:p + 1 + context])
            word = tok.decode(ids[p:p + 1])
            rows.append(dict(feature=feat, rank=rank, activation=a, text_index=t, position=p, token=_show(word),
                             context=f"{left}⟦{word}⟧{right}".replace("\n", "↵")))
    frame = pd.DataFrame(rows, columns=["feature", "rank", "activation", "text_index", "position", "token", "context"])
    stats = pd.DataFrame({"feature": feats, "frequency": (count / mask.sum()).tolist(), "max_activation": top.tolist()})
    return FeatureExamplesResult(frame, {**record(model), "state_id": model.state_id, "site": site, "layer": layer,
                                         "sae": sae.source or repr(sae), "n_texts": len(texts), "k": k}, stats=stats)

"""``train_sae``: a small ReLU sparse autoencoder trained on CPU on activations captured from the
unmodified model (for tests, courses and first looks, not for a research-grade dictionary).

Recipe: the site is read on every real token of ``texts`` (by default not the first of each
text, an attention sink with outlier activations in many models); activations are scaled so that their
mean squared norm is ``d_in`` (so ``l1`` means the same on every model); loss = squared error
summed over dimensions + ``l1`` * sum of feature activations, averaged over a batch of tokens
drawn at random (seeded); Adam; decoder rows kept at unit norm (their gradient's component along
the row removed before each step, the row renormalised after), so the L1 penalty cannot be
dodged by shrinking features and growing decoder rows. ``b_dec`` starts at the data mean, the
encoder at the decoder's transpose. After training the scale is folded back into the weights,
so the SAE takes raw activations and its decoder rows stay unit-norm in the model's own units.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("gpt2")
>>> sae = wb.inspect.train_sae(m, ["The cat sat on the mat.", "A dog ran in the park."], layer=0, d_sae=32, steps=20)
>>> sae.site, sae.layer, sae.d_sae, sorted(sae.training)[:3]
('resid_post', 0, 32, ['batch_size', 'd_sae', 'dead_fraction'])
"""
from __future__ import annotations

import time

import torch

from workbench.errors import InvalidInputError
from workbench.inspect.capture import capture
from workbench.inspect.sae import SAE, hook_name_of
from workbench.inspect.sae_analysis import kept_tokens, reconstruction_stats
from workbench.inspect.sites import adapter
from workbench.validate import BOOL, Int, Optional, Real, check_texts, checked
from workbench.models.checks import check_model

TRAIN_SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z", "mlp_hidden")


@checked(d_sae=Optional(Int(min=1)), l1=Real(ge=0), steps=Int(min=1), lr=Real(gt=0), batch_size=Int(min=1),
         seed=Int(min=0), skip_first=BOOL)
def train_sae(model, texts, site: str = "resid_post", layer: int | None = None, d_sae: int | None = None,
              l1: float = 1.0, steps: int = 2000, lr: float = 1e-3, batch_size: int = 256, seed: int = 0,
              skip_first: bool = True) -> SAE:
    """Train a ReLU SAE on ``site`` at ``layer`` (default: the middle layer) over every real token
    of ``texts`` (but the first of each text with ``skip_first``, the default: an attention sink
    with outlier activations, see :class:`~workbench.inspect.sae.SAE`); ``d_sae`` defaults to 4x
    the site's width. Returns an :class:`SAE` (``.save``
    writes the SAELens format) whose ``training`` dict holds the figures on the training tokens:
    fve (fraction of variance explained), l0, dead_fraction, mse, n_tokens, seconds, ...

    ``l1`` trades sparsity (lower L0) against reconstruction (higher fve). Deterministic for a
    given ``seed`` on one machine and thread count."""
    check_model(model, ("causal", "masked", "encoder"), "train_sae")
    texts = check_texts(texts, "train_sae")
    if site not in TRAIN_SITES:
        raise InvalidInputError(f"train_sae reads one of {', '.join(TRAIN_SITES)}, got site={site!r}")
    ad = adapter(model)
    layer = ad.n_layers // 2 if layer is None else ad.check_layer(layer)
    cache = capture(model, texts, sites=[site], layers=[layer], dtype=torch.float32, progress=False)
    x = cache[site, layer][kept_tokens(cache.attention_mask, skip_first)].flatten(1)   # [n_tokens, d_in]
    n, d_in = x.shape
    if n < 16:
        raise InvalidInputError(f"train_sae got only {n} tokens from {len(texts)} texts; give at least a few "
                                "hundred tokens of text")
    d_sae = 4 * d_in if d_sae is None else d_sae
    started = time.perf_counter()
    scale = (d_in / x.pow(2).sum(1).mean()).sqrt()                      # mean squared norm -> d_in
    xs = x * scale
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.T.clone().requires_grad_(True)
    W_dec.requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = xs.mean(0).clone().requires_grad_(True)
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=lr)
    bs = min(batch_size, n)
    losses = []
    for _ in range(steps):
        xb = xs[torch.randint(n, (bs,), generator=g)]
        f = torch.relu((xb - b_dec) @ W_enc + b_enc)
        err = (f @ W_dec + b_dec - xb).pow(2).sum(1).mean()
        loss = err + l1 * f.sum(1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():  # only move decoder rows along the unit sphere
            W_dec.grad -= (W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
        losses.append(float(loss.detach()))
    s = float(scale)
    with torch.no_grad():
        # features f' = f / s read raw activations and decode with the same unit rows (module docstring)
        sae = SAE(W_enc=W_enc.detach().clone(), b_enc=b_enc.detach() / s, W_dec=W_dec.detach().clone(),
                  b_dec=b_dec.detach() / s, site=site, layer=layer, hook_name=hook_name_of(site, layer),
                  source=f"train_sae({model.name}, {site}, layer {layer}, seed {seed})",
                  cfg={"model_name": model.name}, skip_first=skip_first)
    stats = reconstruction_stats(sae, x)
    tail = losses[-max(1, steps // 10):]
    sae.training = {**stats, "d_sae": d_sae, "l1": float(l1), "steps": steps, "lr": float(lr), "batch_size": bs,
                    "seed": seed, "input_scale": s, "final_loss": sum(tail) / len(tail), "n_texts": len(texts),
                    "seconds": round(time.perf_counter() - started, 2), "model": model.name}
    return sae

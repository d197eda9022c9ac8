"""A small ReLU SAE trained on CPU on an embedded model (issue 16): its reconstruction and sparsity
figures and the next-token loss with its reconstruction spliced in. One run, prints a table.

    PYTHONPATH=. taskset -c 1 python benchmarks/sae.py --threads 1     # SmolLM2-135M-Instruct, as reported
    PYTHONPATH=. python benchmarks/sae.py --layer 15 --l1 2 --steps 3000 --save /tmp/sae-smollm2-l15

Text: BLiMP's good sentences (``../shared/data/blimp``, the first ones of every paradigm, eight
to a text so that most tokens are far from the first position); texts alternate between training
and held-out, so held-out texts come from the same paradigms. A second evaluation set of another
kind: the package's ``neutral_text.txt`` (general English). Figures on every real token but the
first of each text (an attention sink whose norm is in the thousands in SmolLM2: ``skip_first``,
see ``wb.inspect.SAE``); the losses are over every predicted token. ``loss_recovered`` above 1
means the spliced-in reconstruction predicts these texts *better* than the model itself (it can
act as a denoiser fitted to the training distribution), not that the SAE is perfect.

Measured (defaults: layer 15 of 30, d_sae 2304, l1 1.0, 1500 steps of 256 tokens, seed 0; one
pinned thread on a shared 2-core machine, 287 s in all, 117 s of it training)::

    set             n_tokens   fve    l0     dead   loss_clean  loss_spliced  loss_zero  recovered
    train (BLiMP)       7396  0.906   56.0  0.000
    held-out BLiMP      7260  0.828   71.4  0.000      5.576       5.290        17.03      1.025
    neutral text         417  0.582  128.8  0.003      3.705       4.852        15.66      0.904

So the SAE fits the syntax-test sentences it was trained on and their siblings, and transfers
poorly to other English (fve 0.58, +1.15 nats when spliced in): a few thousand tokens of one
kind of text make a dictionary for that text only.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def blimp_texts(n_sentences: int, per_text: int = 8) -> list[str]:
    """BLiMP's good sentences, the first ones of every paradigm, ``per_text`` to a text."""
    path = DATA / "blimp" / "blimp_300_per_paradigm.jsonl.gz"
    if not path.is_file():
        raise SystemExit(f"BLiMP not found at {path}: set WORKBENCH_SHARED_DATA")
    rows = pd.read_json(path, lines=True)
    per = max(1, n_sentences // rows["UID"].nunique())
    sents = rows.groupby("UID", sort=False).head(per)["sentence_good"].tolist()
    return [" ".join(sents[i:i + per_text]) for i in range(0, len(sents), per_text)]


def neutral_texts(per_text: int = 4) -> list[str]:
    """The package's neutral sentences (general English, no people), ``per_text`` to a text."""
    lines = (ROOT / "workbench" / "data" / "neutral_text.txt").read_text().splitlines()
    neutral = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    return [" ".join(neutral[i:i + per_text]) for i in range(0, len(neutral), per_text)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--layer", type=int, default=None, help="default: the middle layer")
    p.add_argument("--site", default="resid_post")
    p.add_argument("--sentences", type=int, default=1600, help="BLiMP sentences (about 10 tokens each)")
    p.add_argument("--expansion", type=int, default=4, help="d_sae = expansion * d_model")
    p.add_argument("--l1", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="folder to save the SAE in (SAELens format)")
    p.add_argument("--top", type=int, default=8, help="show the top examples of this many features")
    args = p.parse_args()

    import torch

    import workbench as wb
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    m = wb.load_model(args.model)
    ad = wb.inspect.adapter(m)
    layer = ad.n_layers // 2 if args.layer is None else args.layer
    blimp = blimp_texts(args.sentences)
    train, held = blimp[0::2], blimp[1::2]
    neutral = neutral_texts()
    print(f"{m.name}: {args.site} layer {layer} of {ad.n_layers}, d_model {ad.d_model}; {len(train)} training and "
          f"{len(held)} held-out BLiMP texts, {len(neutral)} neutral texts; torch threads {torch.get_num_threads()}; "
          f"loaded in {time.perf_counter() - t0:.1f} s")
    sae = wb.inspect.train_sae(m, train, site=args.site, layer=layer, d_sae=args.expansion * ad.d_model, l1=args.l1,
                               steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    tr = sae.training
    t1 = time.perf_counter()
    rows = [dict(set="train (BLiMP)", n_tokens=tr["n_tokens"], fve=tr["fve"], l0=tr["l0"],
                 dead_fraction=tr["dead_fraction"])]
    for name, texts in (("held-out BLiMP", held), ("neutral text", neutral)):
        ev = wb.inspect.evaluate_sae(m, sae, texts).frame.iloc[0]
        rows.append(dict(set=name, **{k: ev[k] for k in ("n_tokens", "fve", "l0", "dead_fraction", "loss_clean",
                                                          "loss_spliced", "loss_zero_ablated", "delta_loss",
                                                          "loss_recovered")}))
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"d_sae {sae.d_sae}, l1 {args.l1}, steps {args.steps}, batch {tr['batch_size']}, seed {args.seed}: "
          f"trained in {tr['seconds']:.1f} s after capturing, evaluated in "
          f"{time.perf_counter() - t1:.1f} s; total {time.perf_counter() - t0:.1f} s")
    if args.top:
        top = wb.inspect.top_activating(m, sae, held[:30], k=3, context=5)
        summ = top.summary().head(args.top)
        print(summ.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.save:
        print("saved to", sae.save(args.save))


if __name__ == "__main__":
    main()

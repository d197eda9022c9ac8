"""Why did the lowercase attack "beat" the blind baseline on the ORIGINAL SmolLM2? A repeated-seed look.

    taskset -c 1 python benchmarks/lowercase_control.py [--n-texts 200] [--text-seeds 0 1 2] [--splits 40]

On the original model no text was trained on, so no attack may show evidence beyond the blind
baseline, whatever the split. For each text seed the script scores the texts ONCE (every attack,
on the original model), then re-draws the member / non-member split many times (split seeds
independent of the text seed) and rebuilds each split's membership result from the fixed scores
(same metrics, same blind baseline, same verdict logic as ``wb.membership``). Printed per text
seed: the testbed's own split (``build_testbed``'s seeded permutation), the distribution of each
method's AUROC over the independent splits, the share of splits in which it was declared
"beyond the blind baseline", and how strongly each score is tied to the case structure of the
texts (the count of capitalised words after the first, a weekday, or neither).

Result (SmolLM2-135M-Instruct, 200 texts, text seeds 0-4, 60 splits each): over the 300
independent splits the lowercase AUROC on the original model is 0.496 (sd 0.038, max 0.591) and
never "beyond the blind baseline" (loss and zlib: 1 split in 300 each); the testbed's own splits
give 0.620, 0.503, 0.538, 0.542, 0.538, and 20 more text seeds (5-24) 0.42 to 0.57, mean 0.502
(no coupling between the texts' seed and the split's). Seed 0's 0.62 is a chance imbalance of
that one split: it put more "... soon." sentences (nothing to lowercase but "The") and fewer
"... on Friday." among the members; the template fields alone give AUROC 0.60. Not a bug; see
the docstring of :mod:`workbench.training_data.attacks`.
"""
from __future__ import annotations

import argparse
import re

import numpy as np
import pandas as pd
import torch

import workbench as wb
from workbench.training_data.attacks import attack_scores
from workbench.training_data.blind import blind_scores
from workbench.training_data.membership import MembershipResult
from workbench.training_data.testbed import synthetic_texts

METHODS = ("loss", "zlib", "lowercase", "min_k", "min_k_pp")


def split_result(texts, scores, members_idx, seed, n_boot):
    y = np.zeros(len(texts), bool)
    y[members_idx] = True
    items = pd.DataFrame({"text": texts, "is_member": y, **scores, "blind": blind_scores(texts, y, seed=seed)})
    return MembershipResult(frame=items, methods=METHODS, n_boot=n_boot, seed=seed)


def testbed_split(n: int, seed: int) -> np.ndarray:
    """The members ``build_testbed`` picks (the first half of a seeded permutation)."""
    return np.random.default_rng(seed).permutation(n)[:n // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n-texts", type=int, default=200)
    ap.add_argument("--text-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--splits", type=int, default=40)
    ap.add_argument("--n-boot", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pd.set_option("display.width", 200)
    model = wb.load_model(args.model)
    per_split = []
    for ts in args.text_seeds:
        texts = synthetic_texts(args.n_texts, "a", seed=ts)
        scores = attack_scores(model, texts, METHODS, 0.2, cache=False)
        caps = np.array([len(re.findall(r"\b[A-Z]", t)) - 1 for t in texts])   # capitals after "The"
        print(f"\n== text seed {ts}: correlation (Spearman) of each score with the number of capitalised words")
        print(pd.Series({m: pd.Series(scores[m]).corr(pd.Series(caps), method="spearman") for m in METHODS}).round(3)
              .to_string())
        splits = [("testbed split (seed = text seed)", testbed_split(len(texts), ts))]
        for s in range(args.splits):
            order = np.random.default_rng(10_000 + s).permutation(len(texts))
            splits.append((f"independent {s}", order[:len(texts) // 2]))
        for name, idx in splits:
            f = split_result(texts, scores, idx, 0, args.n_boot).findings()
            y = np.zeros(len(texts), bool)
            y[idx] = True
            for r in f.to_dict("records"):
                per_split.append({"text_seed": ts, "split": name, "method": r["method"], "auroc": r["auroc"],
                                  "blind_auroc": r["blind_auroc"], "beyond_blind": r["beyond_blind"],
                                  "caps_members_minus_non": caps[y].mean() - caps[~y].mean()})
    df = pd.DataFrame(per_split)
    own = df[df.split.str.startswith("testbed")]
    print("\n== the testbed's own split (what benchmarks/training_data.py runs), original model")
    print(own.pivot(index="method", columns="text_seed", values="auroc").round(3).to_string())
    print("declared beyond blind:", own[own.beyond_blind][["text_seed", "method"]].values.tolist())
    ind = df[~df.split.str.startswith("testbed")]
    print(f"\n== {args.splits} independent splits per text seed, original model")
    summ = ind.groupby("method").agg(auroc_mean=("auroc", "mean"), auroc_sd=("auroc", "std"),
                                     auroc_max=("auroc", "max"), share_beyond_blind=("beyond_blind", "mean"),
                                     blind_mean=("blind_auroc", "mean"))
    print(summ.round(3).to_string())
    low = ind[ind.method == "lowercase"]
    print("\nlowercase AUROC vs the members' excess of capitalised words (Spearman over splits):",
          round(low.auroc.corr(low.caps_members_minus_non, method="spearman"), 3))
    return df


if __name__ == "__main__":
    main()

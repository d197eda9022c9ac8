"""Why did the lowercase attack "beat" the blind baseline on the ORIGINAL SmolLM2? A repeated-seed look.

    taskset -c 1 python benchmarks/lowercase_control.py [--n-texts 200] [--text-seeds 0 1 2] [--splits 40]

On the original model no text was trained on, so no attack may show evidence of membership,
whatever the split. For each text seed the script scores the texts ONCE (every attack, on the
original model), then re-draws the member / non-member split many times (split seeds
independent of the text seed) and rebuilds each split's membership result from the fixed scores
(same metrics, same blind baseline, same verdict logic as ``wb.membership``). It prints every
number the docs quote about it (the docstring of :mod:`workbench.training_data.attacks`):

1. per text seed, how strongly each score is tied to the case structure of the texts (Spearman
   correlation with the count of capitalised words after the first);
2. the testbed's own split (``build_testbed``'s seeded permutation) for every text seed: each
   method's AUROC and verdict, and over the text seeds the lowercase AUROC's mean, sd, range,
   and the one-sided Mann-Whitney p of the largest;
3. for the text seed with the largest lowercase AUROC on its testbed split: how the template's
   "when" field (a weekday, "soon", "again") is shared between members and non-members, and the
   AUROC of the template fields alone (the lowercase score predicted from the five fields by
   least squares, out of fold);
4. over the independent splits: each method's AUROC (mean, sd, max), the share of splits with a
   verdict of evidence (``beyond_blind``), and the blind AUROC's mean.

Run for the docs: ``--text-seeds 0 1 ... 24 --splits 12`` (25 text seeds, 300 independent splits).
Its output, which the docstring of :mod:`workbench.training_data.attacks` quotes: lowercase's
Spearman correlation with the capitalised words -0.186 to -0.447; on the testbed splits the
lowercase AUROC has mean 0.511, sd 0.048, min 0.422, max 0.620 (text seed 0; p 0.0018, about one
split in 571), read as evidence for lowercase on text seed 0 and min_k_pp on text seed 10; on text
seed 0's split the "when" field is "soon" for 26 members and 17 non-members, "on Friday" for 10
and 17, and the template fields alone give AUROC 0.583; over the 300 independent splits lowercase
has AUROC 0.502 (sd 0.040, max 0.601) and no verdict of evidence (min_k 1, min_k_pp 2, loss and
zlib 0), the blind baseline a mean AUROC of 0.50.
"""
from __future__ import annotations

import argparse
import re

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

import workbench as wb
from workbench.training_data.attacks import attack_scores
from workbench.training_data.blind import blind_scores
from workbench.training_data.membership import MembershipResult
from workbench.training_data.metrics import auroc
from workbench.training_data.testbed import _A, synthetic_texts

METHODS = ("loss", "zlib", "lowercase", "min_k", "min_k_pp")


def split_result(texts, scores, members_idx, seed, n_boot):
    y = np.zeros(len(texts), bool)
    y[members_idx] = True
    items = pd.DataFrame({"text": texts, "is_member": y, **scores, "blind": blind_scores(texts, y, seed=seed)})
    return MembershipResult(frame=items, methods=METHODS, n_boot=n_boot, seed=seed)


def testbed_split(n: int, seed: int) -> np.ndarray:
    """The members ``build_testbed`` picks (the first half of a seeded permutation)."""
    return np.random.default_rng(seed).permutation(n)[:n // 2]


def template_fields(text: str) -> dict:
    """The five fields of a source-"a" sentence ("The {who} {did} {what} {where} {when}.")."""
    body = text[len("The "):-1]
    out = {}
    for key in ("who", "did", "what", "where"):
        value = next(v for v in sorted(_A[key], key=len, reverse=True) if body.startswith(v))
        out[key], body = value, body[len(value):].lstrip()
    out["when"] = body
    return out


def fields_only_auroc(texts, score, y, seed=0) -> float:
    """AUROC of the score as the template fields alone predict it (5-fold least squares on one-hot
    fields, each text predicted by a fit that did not see it)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold
    x = pd.get_dummies(pd.DataFrame([template_fields(t) for t in texts])).to_numpy(float)
    pred = np.zeros(len(texts))
    for train, test in KFold(5, shuffle=True, random_state=seed).split(x):
        pred[test] = LinearRegression().fit(x[train], score[train]).predict(x[test])
    return auroc(pred, y)


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
    per_split, spearman, kept = [], {}, {}
    for ts in args.text_seeds:
        texts = synthetic_texts(args.n_texts, "a", seed=ts)
        scores = attack_scores(model, texts, METHODS, 0.2, cache=False)
        caps = np.array([len(re.findall(r"\b[A-Z]", t)) - 1 for t in texts])   # capitals after "The"
        spearman[ts] = {m: sps.spearmanr(scores[m], caps).statistic for m in METHODS}
        kept[ts] = (texts, scores)
        splits = [("testbed", testbed_split(len(texts), ts))]
        splits += [("independent", np.random.default_rng(10_000 + s).permutation(len(texts))[:len(texts) // 2])
                   for s in range(args.splits)]
        for kind, idx in splits:
            y = np.zeros(len(texts), bool)
            y[idx] = True
            for r in split_result(texts, scores, idx, 0, args.n_boot).findings().to_dict("records"):
                per_split.append({"text_seed": ts, "split": kind, "method": r["method"], "auroc": r["auroc"],
                                  "p_vs_chance_holm": r["p_vs_chance_holm"], "blind_auroc": r["blind_auroc"],
                                  "beyond_blind": r["beyond_blind"],
                                  "caps_members_minus_non": caps[y].mean() - caps[~y].mean()})
    df = pd.DataFrame(per_split)

    print("\n== 1. Spearman correlation of each score with the number of capitalised words, per text seed")
    sp = pd.DataFrame(spearman).T
    print(sp.round(3).to_string())
    print("lowercase: from", round(sp.lowercase.min(), 3), "to", round(sp.lowercase.max(), 3))

    own = df[df.split == "testbed"]
    print("\n== 2. the testbed's own split (what notebook 08 and benchmarks/training_data.py run), original model")
    print(own.pivot(index="text_seed", columns="method", values="auroc").round(3).to_string())
    print("verdict of evidence (beyond_blind) on the testbed split:",
          own[own.beyond_blind][["text_seed", "method"]].values.tolist() or "none")
    low = own[own.method == "lowercase"].set_index("text_seed").auroc
    top = int(low.idxmax())
    n = args.n_texts // 2
    p_top = sps.norm.sf((low[top] - 0.5) / np.sqrt((2 * n + 1) / (12 * n * n)))
    print(f"lowercase AUROC over {len(low)} text seeds: mean {low.mean():.3f}, sd {low.std():.3f}, "
          f"min {low.min():.3f}, max {low.max():.3f} (text seed {top}; one-sided p of an AUROC that high "
          f"under chance: {p_top:.4f}, about one split in {1 / p_top:.0f})")

    print(f"\n== 3. text seed {top}, its testbed split: the template's 'when' field among members and non-members")
    texts, scores = kept[top]
    y = np.zeros(len(texts), bool)
    y[testbed_split(len(texts), top)] = True
    when = pd.Series([template_fields(t)["when"] for t in texts])
    print(pd.crosstab(when.rename("when"), pd.Series(np.where(y, "member", "non-member"), name="set")).to_string())
    print(f"lowercase AUROC {auroc(scores['lowercase'], y):.3f}; AUROC of the template fields alone "
          f"(out-of-fold least squares): {fields_only_auroc(texts, np.asarray(scores['lowercase']), y):.3f}")

    ind = df[df.split == "independent"]
    print(f"\n== 4. {args.splits} independent splits per text seed ({len(ind) // len(METHODS)} in all), original model")
    summ = ind.groupby("method").agg(auroc_mean=("auroc", "mean"), auroc_sd=("auroc", "std"),
                                     auroc_max=("auroc", "max"), share_evidence=("beyond_blind", "mean"),
                                     n_evidence=("beyond_blind", "sum"), blind_mean=("blind_auroc", "mean"))
    print(summ.round(3).to_string())
    lw = ind[ind.method == "lowercase"]
    print("lowercase AUROC vs the members' excess of capitalised words (Spearman over splits):",
          round(sps.spearmanr(lw.auroc, lw.caps_members_minus_non).statistic, 3))
    return df


if __name__ == "__main__":
    main()

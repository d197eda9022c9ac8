"""Probing, direct logit attribution and head types on an embedded model (issue 16). One run,
prints tables.

    python benchmarks/interp.py                              # SmolLM2-135M-Instruct
    python benchmarks/interp.py --model gemma-3-270m --skip-probe
    taskset -c 1 python benchmarks/interp.py --threads 1     # pinned, as the reported numbers

Probe label: the grammatical number of the subject, from BLiMP's subject-verb agreement pairs
(``../shared/data/blimp``). Each text is the good sentence cut just before the verb (the first
word where the good and bad sentence differ), so the model has read the subject and must carry
its number to the verb. The label comes from the good verb form (is/are, has/have, ...; a verb
with an extra -s is singular). Two sets: ``simple`` (regular and irregular plurals: the subject
noun is the last word) and ``distractor`` (``A niece of most senators``: the last noun is an
attractor). In BLiMP's distractor paradigm the attractor always has the *other* number, so a
linear probe can still answer from the last word alone (with the sign flipped): high accuracy
there does not show that the subject's number is carried past the attractor. Controls: labels
permuted per text, and Hewitt & Liang's per-word control (each last word gets one random
label), which a probe can pass by memorising words, so its selectivity is the stricter one.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETS = {"simple": ["regular_plural_subject_verb_agreement_1", "irregular_plural_subject_verb_agreement_1"],
        "distractor": ["distractor_agreement_relational_noun"]}
SINGULAR = {"is", "isn't", "was", "wasn't", "has", "hasn't", "does", "doesn't"}
PLURAL = {"are", "aren't", "were", "weren't", "have", "haven't", "do", "don't"}


def number_items(uids, limit=None):
    """(prefix, label, last word) per pair of the given paradigms; pairs whose verb form gives no
    clear number are skipped."""
    out = []
    with gzip.open(DATA / "blimp" / "blimp_300_per_paradigm.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            if r["UID"] not in uids:
                continue
            good, bad = r["sentence_good"].split(), r["sentence_bad"].split()
            i = next((j for j, (a, b) in enumerate(zip(good, bad)) if a != b), None)
            if not i:
                continue
            g, b = good[i].lower(), bad[i].lower()
            label = ("singular" if g in SINGULAR or g in (b + "s", b + "es") else
                     "plural" if g in PLURAL or b in (g + "s", g + "es") else None)
            if label:
                out.append((" ".join(good[:i]), label, good[i - 1].lower()))
    return out[:limit] if limit else out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--limit", type=int, default=None, help="texts per set")
    p.add_argument("--skip-probe", action="store_true")
    p.add_argument("--skip-heads", action="store_true")
    p.add_argument("--skip-dla", action="store_true")
    args = p.parse_args(argv)
    import torch

    import workbench as wb
    if args.threads:
        torch.set_num_threads(args.threads)
    pd.set_option("display.width", 160, "display.max_columns", 20)
    t0 = time.perf_counter()
    model = wb.load_model(args.model)
    print(f"# {model.name} ({model.fingerprint_id}), {model.n_layers} layers; loaded in {time.perf_counter() - t0:.1f} s; "
          f"torch threads {torch.get_num_threads()}")
    if not args.skip_probe:
        for name, uids in SETS.items():
            items = number_items(set(uids), args.limit)
            texts, labels, words = map(list, zip(*items))
            t = time.perf_counter()
            res = wb.inspect.linear_probe(model, texts, labels, seed=0)
            hl = wb.inspect.linear_probe(model, texts, labels, seed=0, control_groups=words)
            s = res.summary().round(3)
            s["selectivity_per_word_control"] = hl.summary()["selectivity"].round(3)
            counts = dict(zip(res.provenance["classes"], res.provenance["class_counts"]))
            print(f"\n## probe: subject number, {name} ({', '.join(uids)}); n={len(texts)} {counts}; "
                  f"resid_post, last token, 5-fold CV, {time.perf_counter() - t:.0f} s")
            print(s.to_string(index=False))
    if not args.skip_dla:
        for prompt in ("The man said that", "The woman said that", "The nurse said that"):
            res = wb.inspect.direct_logit_attribution(model, prompt, " he", " she")
            print(f"\n## direct logit attribution: {prompt!r}, logit(' he') - logit(' she') = {res.total:.3f} "
                  f"(sum of parts - real = {res.error:.1e})")
            print(res.summary(k=8).round(3).to_string(index=False))
    if not args.skip_heads:
        t = time.perf_counter()
        hs = wb.inspect.head_scores(model, seq_len=40, n_seqs=8, seed=0)
        print(f"\n## head scores: 8 random sequences of 40 tokens repeated once ({time.perf_counter() - t:.0f} s)")
        print(hs.summary(k=5).round(3).to_string(index=False))
        f = hs.to_frame()
        for kind in ("induction", "previous_token"):
            k = f[f["kind"] == kind]["score"]
            print(f"{kind}: heads > 0.3: {(k > 0.3).sum()}, > 0.1: {(k > 0.1).sum()} of {len(k)}; median {k.median():.3f}")


if __name__ == "__main__":
    main()

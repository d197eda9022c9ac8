"""A testbed with known truth: fine-tune a copy of a model on known texts and a planted benchmark.

Membership inference and contamination tests can only be checked where the truth is known. The
testbed makes it known: :func:`build_testbed` splits texts of one source at random (seeded) into
members and non-members, fine-tunes a copy of the model on the members and on a planted benchmark
(its items in canonical order, joined into the same shards the exchangeability test scores), and
keeps texts of another source for the distribution-shift scenario. :func:`run_testbed` then runs

- **same distribution, fine-tuned**: members vs non-members on the fine-tuned copy (the attacks
  should beat the blind baseline);
- **same distribution, original**: the same texts on the original model, which saw neither (no
  attack should beat the blind baseline);
- **distribution shift, original**: members vs texts of another source on the original model (the
  blind baseline catches the shift; no attack should show evidence beyond it);

and the collection-level tests on the fine-tuned and the original model: the exchangeability
test on the planted benchmark (and, asked for, verbatim completion on it, TS-Guessing on planted
multiple-choice items, ``mc=``), and, asked for, dataset inference with the members as the suspect
collection and the non-members as the validation collection (plus the trap: the shifted texts as
validation on the original model, where the test "finds" the shift, not training).
``tests/test_training_testbed.py`` runs it on a tiny model; ``benchmarks/training_data.py`` on
SmolLM2.

>>> synthetic_texts(2, "a", seed=0)[0]   # doctest: +ELLIPSIS
'The ...'
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from workbench.engine.causal import max_length
from workbench.engine.padding import pad_rows
from workbench.errors import InvalidInputError
from workbench.models.model import Model
from workbench.scoring.tokenize import encode, prefix_token_id
from workbench.training_data.contamination import contamination
from workbench.training_data.dataset_inference import dataset_inference as infer
from workbench.training_data.exchangeability import shard_bounds
from workbench.training_data.membership import membership
from workbench.training_data.ts_guessing import mc_items, render

_A = dict(who="doctor nurse teacher lawyer mechanic cook developer designer engineer friend".split(),
          did="said told argued fixed made read chased laughed waited worked".split(),
          what=["the car", "the contract", "the dinner", "the design", "the results", "the ball", "the music",
                "the books", "the money", "the work"],
          where="in the park|in the city|at home|in the garden|across the garden|in a large city".split("|"),
          when="on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|soon|again".split("|"))
_B = dict(n=[str(i) for i in range(2, 99)], unit="kg km litres euros hours".split(),
          item="ITEM-{0:03d} SKU-{0:03d} REF-{0:03d}".split())


def synthetic_texts(n: int, source: str = "a", seed: int = 0) -> list[str]:
    """``n`` distinct seeded sentences. Source "a": everyday sentences (one distribution);
    source "b": inventory records (another: numbers, codes, capitals) for the shift scenario."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        if source == "a":
            pick = {k: v[rng.integers(len(v))] for k, v in _A.items()}
            t = f"The {pick['who']} {pick['did']} {pick['what']} {pick['where']} {pick['when']}."
        elif source == "b":
            code = _B["item"][rng.integers(3)].format(int(rng.integers(1000)))
            t = f"{code}: {rng.choice(_B['n'])} {rng.choice(_B['unit'])}, STOCK {rng.integers(100)}; BIN {rng.integers(50)}"
        else:
            raise ValueError(f"source must be 'a' or 'b', got {source!r}")
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


_OPTIONS = ("apple river candle mirror garden ladder pocket violin tunnel basket window marble shovel lantern "
            "blanket anchor pillow ribbon engine carpet").split()


def synthetic_mc(n: int, seed: int = 0, n_choices: int = 4) -> list[dict]:
    """``n`` seeded multiple-choice items ``{question, choices, answer}``: a source-"a" sentence
    turned into a question, options drawn from unrelated words, so no option (and no wrong one
    above all) can be inferred from the question: only a model that saw the item can reproduce it."""
    rng = np.random.default_rng(seed)
    out = []
    for t in synthetic_texts(n, "a", seed=seed):
        choices = [str(w) for w in rng.choice(_OPTIONS, n_choices, replace=False)]
        out.append({"question": f"Which word goes with: {t}", "choices": choices,
                    "answer": int(rng.integers(n_choices))})
    return out


def plant(items: list[str], n_shards: int = 1, separator: str = "\n") -> list[str]:
    """The benchmark as training texts: its shards in canonical order, as the exchangeability test
    scores them (:func:`workbench.training_data.exchangeability.shard_bounds`)."""
    return [separator.join(items[a:b]) for a, b in shard_bounds(len(items), n_shards)]


def finetune(model, texts: list[str], *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 8, seed: int = 0,
             name: str | None = None):
    """A fine-tuned COPY of ``model`` (the original is untouched): causal-LM loss on every text,
    conditioned on the BOS (or EOS) token as the scoring engine scores a text, AdamW, seeded
    shuffles. Returns a new :class:`workbench.Model` (its own fingerprint, so no cached score of
    the original is served for it)."""
    tok = model.tokenizer
    prefix = prefix_token_id(tok)
    seqs = [[prefix] + encode(tok, t) for t in texts]
    limit = max_length(model)
    long = [i for i, q in enumerate(seqs) if len(q) > limit]
    if long:
        raise InvalidInputError(f"{len(long)} training text(s) are longer than the window of {limit} tokens (text "
                                f"{long[0]}: {len(seqs[long[0]])} tokens); shorten them, or plant the benchmark "
                                "in more shards (n_shards=)")
    pad = tok.pad_token_id if tok.pad_token_id is not None else prefix
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    hf = copy.deepcopy(model.hf).float()
    hf.train()
    opt = torch.optim.AdamW(hf.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(epochs):
        order = rng.permutation(len(seqs))
        for s in range(0, len(order), batch_size):
            batch = [seqs[i] for i in order[s:s + batch_size]]
            width = max(map(len, batch))
            ids, mask = pad_rows(batch, pad, width)
            labels = ids.masked_fill(mask == 0, -100)
            loss = hf(input_ids=ids.to(hf.device), attention_mask=mask.to(hf.device), labels=labels.to(hf.device)).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    hf.to(model.dtype).eval()
    return Model.from_hf(hf, tok, name=name or f"{model.name}+finetuned", kind=model.kind, licence=model.licence,
                         source=f"workbench testbed: {model.fingerprint_id} fine-tuned on {len(texts)} texts, "
                                f"{epochs} epochs, lr {lr}, seed {seed}")


@dataclass
class Testbed:
    base: object            # the original model
    tuned: object           # its fine-tuned copy (members + planted benchmark)
    members: list
    nonmembers: list        # same source, held out
    shifted: list           # another source, never trained on
    benchmark: list         # planted, in canonical order
    n_shards: int = 1
    separator: str = "\n"
    mc: list = field(default_factory=list)   # planted multiple-choice items (TS-Guessing), rendered


def build_testbed(model, texts: list[str], shifted: list[str], benchmark: list[str], *, epochs: int = 10,
                  lr: float = 1e-3, batch_size: int = 8, n_shards: int = 1, separator: str = "\n",
                  seed: int = 0, mc=None) -> Testbed:
    """Split ``texts`` at random into members and non-members (half each), fine-tune a copy of
    ``model`` on the members and the planted ``benchmark`` (and the multiple-choice items ``mc``,
    each as :func:`~workbench.training_data.ts_guessing.render` writes it); ``shifted``: texts of
    another source."""
    mc = mc_items(mc) if mc is not None else []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    half = len(texts) // 2
    members = [texts[i] for i in sorted(order[:half])]
    nonmembers = [texts[i] for i in sorted(order[half:])]
    tuned = finetune(model, members + plant(benchmark, n_shards, separator) + [render(it) for it in mc],
                     epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return Testbed(model, tuned, members, nonmembers, list(shifted), list(benchmark), n_shards, separator, mc)


def run_testbed(tb: Testbed, methods=("loss", "zlib", "min_k", "min_k_pp"), *, n_permutations: int = 99,
                seed: int = 0, cache: bool = True, tests=("exchangeability",),
                dataset_inference: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(membership table, collection table). Membership: one row per scenario and method with
    AUROC [CI] and its Holm p against chance, TPR@1%FPR, blind AUROC [CI], attack minus blind [CI]
    and its Holm p (NaN where the blind baseline is no bar: see ``MembershipResult.findings``),
    ``beyond_blind`` and the verdict.
    Collection table: one row per model and test (``model, test, statistic, p_value, n``, and
    ``exact_rate`` / ``exact_rate_perturbed`` for verbatim and TS-Guessing): each contamination
    test in ``tests`` ("exchangeability", "verbatim" on the planted benchmark; "ts_guessing" on
    the planted multiple-choice items, which needs ``mc=`` in :func:`build_testbed`), and with
    ``dataset_inference=True`` dataset inference (suspect: the members; validation: the
    non-members) on both models, plus the shifted texts as validation on the original model
    (model ``"clean (original), shifted validation"``): the wrong validation set, which a small p
    there shows."""
    if isinstance(tests, str):
        tests = (tests,)
    if "ts_guessing" in tests and not tb.mc:
        raise InvalidInputError("the ts_guessing test needs planted multiple-choice items: build the testbed with "
                                "mc= (e.g. synthetic_mc(12))")

    n = min(len(tb.members), len(tb.shifted))
    scenarios = [("same distribution, fine-tuned", tb.tuned, tb.members, tb.nonmembers),
                 ("same distribution, original", tb.base, tb.members, tb.nonmembers),
                 ("distribution shift, original", tb.base, tb.members[:n], tb.shifted[:n])]
    rows = []
    for name, model, mem, non in scenarios:
        mia = membership(model, mem, non, methods=methods, seed=seed, cache=cache)
        s = mia.summary()
        for f in mia.findings().to_dict("records"):
            get = lambda k, col="value": float(s[(s.method == f["method"]) & (s.metric == k)][col].iloc[0])  # noqa: E731
            rows.append({"scenario": name, "method": f["method"], "auroc": f["auroc"],
                         "auroc_ci_low": f["auroc_ci_low"], "auroc_ci_high": f["auroc_ci_high"],
                         "p_vs_chance_holm": f["p_vs_chance_holm"], "tpr@1%fpr": get("tpr@1%fpr"),
                         "blind_auroc": f["blind_auroc"], "blind_ci_low": f["blind_ci_low"],
                         "blind_ci_high": f["blind_ci_high"], "attack_minus_blind": f["auroc_minus_blind"],
                         "diff_ci_low": f["diff_ci_low"], "diff_ci_high": f["diff_ci_high"],
                         "p_vs_blind_holm": f["p_vs_blind_holm"], "beyond_blind": f["beyond_blind"],
                         "verdict": f["verdict"], "n": len(mem) + len(non)})
    con = []
    keep = ("test", "statistic", "p_value", "n", "exact_rate", "exact_rate_perturbed")
    for name, model in (("planted (fine-tuned)", tb.tuned), ("clean (original)", tb.base)):
        for test in tests:
            r = contamination(model, tb.mc if test == "ts_guessing" else tb.benchmark, tests=(test,), seed=seed,
                              n_shards=tb.n_shards, n_permutations=n_permutations, separator=tb.separator,
                              # the held-out non-members: same kind, never trained on (verbatim's control)
                              unseen=tb.nonmembers if test == "verbatim" else None, cache=cache).details[0]
            con.append({"model": name, **{k: r.get(k, np.nan) for k in keep}})
        if dataset_inference:
            r = infer(model, tb.members, tb.nonmembers, seed=seed, cache=cache).details
            con.append({"model": name, **{k: r.get(k, np.nan) for k in keep}})
    if dataset_inference:
        r = infer(tb.base, tb.members[:n], tb.shifted[:n], seed=seed, cache=cache).details
        con.append({"model": "clean (original), shifted validation", **{k: r.get(k, np.nan) for k in keep}})
    return pd.DataFrame(rows), pd.DataFrame(con)

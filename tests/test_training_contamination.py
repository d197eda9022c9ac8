"""Benchmark contamination tests: the exchangeability test's statistic and p-value, verbatim
completion with its control, streaming n-gram overlap, and the inputs (the testbed checks that
the tests find planted contamination: test_training_testbed.py)."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.training_data.exchangeability import exchangeability, shard_bounds
from workbench.training_data.ngram import ngram_overlap, words
from workbench.training_data.verbatim import exact, lcs_ratio, perturb, split_item

ITEMS = ["The cat sat on the mat and looked at the dog.", "Paris is the capital of France, said the teacher.",
         "One two three four five six seven eight nine ten.", "The nurse told him that the results were good.",
         "The quick brown fox jumps over the lazy dog.", "My friend is a teacher in a large city."]


def test_exchangeability_statistic_and_permutation_p_value(tiny):
    import itertools
    m = tiny("gpt2")
    r = exchangeability(m, ITEMS, n_shards=2, n_permutations=4, seed=3, cache=False)
    # rebuild the same orders (shard by shard, canonical first) and score them through wb.loglikelihood
    rng = np.random.default_rng(3)
    scores = []
    for a, z in shard_bounds(len(ITEMS), 2):
        texts = ["\n".join(ITEMS[i] for i in (np.arange(a, z) if b == 0 else a + rng.permutation(z - a)))
                 for b in range(5)]
        scores.append(wb.loglikelihood(m, [("", t) for t in texts], cache=False).logprob.to_numpy())
    scores = np.array(scores)                                            # (2 shards, 5 orders)
    np.testing.assert_allclose(r["shard_logprobs"], scores, rtol=1e-6)
    assert r["logprob_canonical"] == pytest.approx(scores[:, 0].sum())
    assert r["statistic"] == pytest.approx((scores[:, 0] - scores[:, 1:].mean(1)).sum())
    # the randomization distribution, by brute force: every choice of "canonical" order per shard
    sums = [scores[0, i] + scores[1, j] for i, j in itertools.product(range(5), repeat=2)]
    assert r["p_value"] == pytest.approx(np.mean(np.array(sums) >= scores[:, 0].sum() - 1e-9))
    assert (r["n"], r["n_shards"], r["n_permutations"], r["min_p_value"]) == (6, 2, 4, 1 / 25)
    with pytest.raises(InvalidInputError, match="n_shards"):
        exchangeability(m, ITEMS, n_shards=4)


def test_shards_cover_every_item_once():
    for n, k in [(10, 3), (7, 7), (16, 4)]:
        b = shard_bounds(n, k)
        assert b[0][0] == 0 and b[-1][1] == n and all(x[1] == y[0] for x, y in zip(b, b[1:]))


def test_verbatim_measures():
    assert split_item("the cat sat on the mat today") == ("the cat sat", " on the mat today")
    assert split_item("abcdef") == ("abc", "def")
    assert exact(" on the  mat today and more", " on the mat today")
    assert not exact(" on the mat", " on the mat today")
    assert lcs_ratio(" on the mat today", " on the mat today") == 1.0
    assert lcs_ratio("xyz", " on the mat") == 0.0
    rng = np.random.default_rng(0)
    p = perturb("one two three four five six", rng)
    assert sorted(p.split()) == sorted("one two three four five six".split()) and p != "one two three four five six"


def test_verbatim_test_rows(tiny):
    con = wb.contamination(tiny("gpt2"), ITEMS, tests="verbatim", cache=False)
    df = con.items["verbatim"]
    assert len(df) == len(ITEMS)
    assert {"prompt", "truth", "completion", "perturbed_completion", "exact", "lcs_ratio",
            "lcs_ratio_perturbed"} <= set(df.columns)
    assert all(p + t == item for p, t, item in zip(df.prompt, df.truth, ITEMS))
    row = con.details[0]
    assert row["statistic"] == pytest.approx((df.lcs_ratio - df.lcs_ratio_perturbed).mean())
    # the gain alone is no test (a fluent prompt helps any model): no p-value without unseen texts
    assert np.isnan(row["p_value"]) and "unseen=" in row["note"]
    unseen = ["A small bird sang in the old tree this morning.", "We walked to the station after the rain stopped.",
              "Her brother cooked rice and beans for dinner.", "The library closes early on Sundays in winter."]
    row = wb.contamination(tiny("gpt2"), ITEMS, tests="verbatim", unseen=unseen, cache=False).details[0]
    assert 0 < row["p_value"] <= 1 and row["n_unseen"] == len(unseen)


def test_contamination_refuses_an_empty_benchmark_and_a_misplaced_unseen(tiny):
    m = tiny("gpt2")
    for test in ("verbatim", "ngram"):
        with pytest.raises(InvalidInputError, match="no items"):
            wb.contamination(m, [], tests=test, corpus=["a b c"], cache=False)
    with pytest.raises(InvalidInputError, match="unseen= is empty"):
        wb.contamination(m, ITEMS, tests="verbatim", unseen=[], cache=False)
    with pytest.raises(InvalidInputError, match="verbatim test's control"):
        wb.contamination(m, ITEMS, tests="exchangeability", unseen=ITEMS[:2], n_permutations=19, cache=False)
    with pytest.raises(InvalidInputError, match="wrap a single string"):
        wb.contamination(m, ITEMS, tests="verbatim", unseen="one text", cache=False)


def test_verbatim_p_value_is_valid_under_the_null_where_the_gain_alone_is_not(monkeypatch):
    """Simulation under the null: items and unseen texts whose gains come from one distribution
    with a positive mean (the fluency effect every model has). Testing the gain against zero (the
    earlier test) rejects most of the time; the two-sample test against unseen texts rejects at
    its level."""
    from workbench.stats import sign_flip
    from workbench.training_data import verbatim as V
    rng = np.random.default_rng(0)

    def fake_measure(model, items, rng_, perturb_every, cache, progress):
        perturbed = rng.uniform(0, 0.5, len(items))
        gain = rng.normal(0.05, 0.1, len(items))       # exact prompt helps a little, seen or not
        return pd.DataFrame({"lcs_ratio": perturbed + gain, "lcs_ratio_perturbed": perturbed,
                             "exact": False, "exact_perturbed": False})

    monkeypatch.setattr(V, "_measure", fake_measure)
    reps, p_new, p_old = 200, [], []
    for r in range(reps):
        row, df = V.verbatim(None, ["x"] * 20, unseen=["y"] * 20, seed=r)
        p_new.append(row["p_value"])
        d = (df.lcs_ratio - df.lcs_ratio_perturbed).to_numpy()
        p_old.append(sign_flip(d, seed=r).p_value / 2 if d.mean() > 0 else 1.0)
    p_new, p_old = np.array(p_new), np.array(p_old)
    assert np.mean(p_old < 0.05) > 0.3                        # the gain-vs-zero test is fooled
    # a valid test: about 5% (10 of 200; 20 or more has probability ~0.002 under validity)
    assert np.sum(p_new < 0.05) < 20 and np.sum(p_new < 0.10) < 32
    assert p_new.min() > 0 and p_new.max() <= 1
    # at n = 1 and 2 (scipy refuses one observation: every partition is enumerated), P(p <= a) <= a
    for n, level in ((1, 0.5), (2, 1 / 6), (2, 0.5)):
        ps = np.array([V.verbatim(None, ["x"] * n, unseen=["y"] * n, seed=r)[0]["p_value"] for r in range(300)])
        assert np.mean(ps <= level + 1e-9) <= level + 3 * np.sqrt(level * (1 - level) / 300), (n, level)


def test_ngram_overlap_follows_the_lm_eval_definition(tmp_path):
    assert words("Hello, World! It's  fine.") == ["hello", "world", "it", "s", "fine"]
    items = ["The quick brown fox jumps over the lazy dog", "short item", "A cat sat on the red mat today"]
    # a 3-gram split over two lines of a file counts; case and punctuation do not matter
    f = tmp_path / "corpus.txt"
    f.write_text("nothing here\nTHE QUICK\nbrown, fox ...\n")
    g = tmp_path / "more.txt.gz"
    with gzip.open(g, "wt") as fh:
        fh.write("she said: on the red mat!\n")
    r = ngram_overlap(items, [f, g], n=3)
    assert r.contaminated.tolist() == [True, False, True]
    assert r.n_ngrams.tolist() == [7, 0, 6]                       # "short item" has no 3-gram
    assert r.n_hits.tolist() == [2, 0, 2]
    assert r.attrs["corpus_documents"] == 2
    # a folder, an iterable of datasets-style rows, a generator consumed lazily
    assert ngram_overlap(items, tmp_path, n=3).contaminated.tolist() == [True, False, True]
    docs = ({"text": "unrelated words " * 5} for _ in range(1000))
    assert not ngram_overlap(items, docs, n=3).contaminated.any()
    with pytest.raises(InvalidInputError, match="'text'"):
        ngram_overlap(items, [{"body": "x"}], n=3)


def test_contamination_inputs_and_summary(tiny):
    m = tiny("gpt2")
    df = pd.DataFrame({"question": ITEMS})
    con = wb.contamination(m, df, column="question", tests=("exchangeability", "ngram"), corpus=[ITEMS[0]], n=5,
                           n_permutations=19, cache=False)
    s = con.summary()
    assert list(s.columns) == ["test", "statistic", "p_value", "n"]
    assert s.test.tolist() == ["exchangeability", "ngram"]
    assert s.set_index("test").loc["ngram", "statistic"] == pytest.approx(1 / 6)
    assert np.isnan(s.set_index("test").loc["ngram", "p_value"])
    task = wb.contamination(m, "capitals", n_permutations=19, n_shards=4, cache=False)
    items = wb.load_task("capitals").all_items
    assert task.summary().n[0] == len(items)
    with pytest.raises(InvalidInputError, match="unknown contamination test"):
        wb.contamination(m, ITEMS, tests=("bogus",))
    with pytest.raises(InvalidInputError, match="corpus="):
        wb.contamination(m, ITEMS, tests=("ngram",))
    with pytest.raises(InvalidInputError, match="column="):
        wb.contamination(m, df)


@pytest.fixture(scope="module")
def crows_slice(tmp_path_factory):
    import os
    src = os.path.join(os.environ.get("WORKBENCH_SHARED_DATA", "/work/shared/data"), "crows_pairs",
                       "crows_pairs_anonymized.csv")
    if not os.path.exists(src):
        pytest.skip("the shared CrowS-Pairs data is not here")
    path = tmp_path_factory.mktemp("crows") / "crows_pairs_anonymized.csv"
    pd.read_csv(src).head(12).to_csv(path, index=False)
    return path


def test_probe_names_as_data(crows_slice):
    m = wb.testing.tiny_model("gpt2", n_positions=1024)     # a shard of 2 CrowS-Pairs items needs a longer window
    raw = pd.read_csv(crows_slice)
    con = wb.contamination(m, "crows_pairs", data=crows_slice, tests=("exchangeability", "ngram"),
                           corpus=[raw.sent_less[3]], n=8, n_shards=6, n_permutations=19, cache=False)
    s = con.summary().set_index("test")
    assert s.loc["exchangeability", "n"] == 12 and 0 < s.loc["exchangeability", "p_value"] <= 1
    assert con.provenance["data"]["source"] == "probe 'crows_pairs'"
    # the items in the file's order, each as its two sentences: only item 3 holds the corpus text
    assert con.items["ngram"].contaminated.tolist() == [i == 3 for i in range(12)]
    from workbench.training_data.contamination import probe_texts
    assert probe_texts("crows_pairs", m, crows_slice) == [f"{a}\n{b}" for a, b in zip(raw.sent_more, raw.sent_less)]
    with pytest.raises(InvalidInputError, match="data= names the data file"):
        wb.contamination(m, ITEMS, data=crows_slice)
    assert wb.contamination(m, data=ITEMS, n_permutations=19, cache=False).summary().n[0] == len(ITEMS)


# --- the exchangeability test's reach and validity (issue 28, items 7 and 9) --------------------

def test_sharded_randomization_p_is_valid_under_the_null_at_every_size():
    """Under exchangeability every scored order of a shard is an independent draw of one order:
    the canonical column is just one of them. P(p <= a) <= a for 1 to 60 shards and 1 to 19
    shuffled orders, with ties (a 2-item shard has only 2 orders, so columns repeat)."""
    from workbench.training_data.exchangeability import randomization_p
    rng = np.random.default_rng(0)
    reps = 600
    for m, k, tied in [(1, 2, False), (1, 20, False), (2, 2, True), (2, 5, False), (3, 4, True), (60, 2, False),
                       (25, 5, True)]:
        ps = []
        for r in range(reps):
            x = rng.normal(size=(m, k))
            if tied:   # each shard has 2 possible orders: every column is one of two values
                x = np.where(rng.random((m, k)) < 0.5, x[:, :1], x[:, 1:2])
            ps.append(randomization_p(x, n_resamples=499, seed=r)[0])
        ps = np.array(ps)
        assert ps.min() > 0 and ps.max() <= 1
        for a in (0.05, 0.2, 0.5):
            assert np.mean(ps <= a) <= a + 3 * np.sqrt(a * (1 - a) / reps), (m, k, a, np.mean(ps <= a))


def test_many_shards_reach_small_p_with_one_shuffled_order(tiny):
    """19 shuffled orders of one shard could not give p < 0.05; 24 shards with one shuffled order
    each can give 2 ** -24 (the cost is 2 passes over the items, not 20)."""
    items = [f"Item number {i} says the {w} is {c}." for i, (w, c) in
             enumerate(zip(("cat", "dog", "sky", "sea", "tree", "road") * 8, ("red", "blue", "green", "old") * 12))]
    r = exchangeability(tiny("gpt2"), items, n_shards=24, n_permutations=1, cache=False)
    assert r["min_p_value"] == 1 / (1 + 9999) and "note" not in r      # 2**24 labellings: Monte Carlo
    one = exchangeability(tiny("gpt2"), items[:6], n_shards=1, n_permutations=19, cache=False)
    assert one["min_p_value"] == 0.05 and "cannot reject at 0.05" in one["note"]


def test_power_is_alpha_without_a_preference_and_grows_with_it():
    from workbench.training_data.exchangeability import exchangeability_power
    rng = np.random.default_rng(1)
    scores = rng.normal(-400, 4.0, (50, 2))                  # 50 shards of 20 items, one shuffled order each
    pw = exchangeability_power(scores, [20] * 50, deltas=[0.0, 0.01, 0.03, 0.15], n_sim=300, seed=2)
    assert pw.power[0] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300)  # no bonus: the test's level
    assert list(pw.power) == sorted(pw.power) and pw.power.iloc[-1] > 0.95
    assert (pw.power_ci_low <= pw.power).all() and (pw.power <= pw.power_ci_high).all()
    auto = exchangeability_power(scores, [20] * 50, n_sim=200)
    assert auto.delta.iloc[0] == 0 and np.isfinite(auto.attrs["delta_80"]) and auto.power.iloc[-1] > 0.8
    with pytest.raises(InvalidInputError, match="shard"):
        exchangeability_power(scores[:, :1], [20] * 50)


def test_contamination_findings_state_the_power(tiny):
    con = wb.contamination(tiny("gpt2"), ITEMS * 2, n_shards=6, n_permutations=3, cache=False)
    f = con.findings()
    assert list(f.columns) == ["test", "statistic", "p_value", "n", "delta_80", "reading"]
    assert "80% of the time" in f.reading[0] or "power stays below 80%" in f.reading[0]
    pw = con.power()
    assert f.delta_80[0] == pw.attrs["delta_80"] or np.isnan(pw.attrs["delta_80"])
    assert len(pw) >= 5 and pw.attrs["n_items"] == 12 and pw.attrs["n_shards"] == 6
    with pytest.raises(InvalidInputError, match="exchangeability"):
        wb.contamination(tiny("gpt2"), ITEMS, tests="ngram", corpus=[ITEMS[0]], cache=False).power()


def test_a_corpus_that_is_not_there_is_refused(tiny, tmp_path, monkeypatch):
    m = tiny("gpt2")
    monkeypatch.chdir(tmp_path)
    for corpus, match in [("missing/path", "no such file or folder"), (tmp_path / "nope.txt", "no such file"),
                          ([], "empty"), (["missing/corpus.jsonl", "a text"], "looks like a path"),
                          (iter(["", "  "]), "no words")]:
        with pytest.raises(InvalidInputError, match=match):
            wb.contamination(m, ITEMS, tests=["ngram"], corpus=corpus, cache=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no words"):
        ngram_overlap(ITEMS, tmp_path / "empty")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text(ITEMS[0])
    r = wb.contamination(m, ITEMS, tests="ngram", corpus="corpus", n=5, cache=False).details[0]   # a real folder
    assert r["n_flagged"] == 1 and r["corpus_words"] > 0

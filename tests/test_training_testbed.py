"""The testbed with known truth, on a tiny model fine-tuned in seconds: attacks beat the blind
baseline where membership is real and not where it is not, the blind baseline catches a
distribution shift that attacks only echo, and the exchangeability test finds a planted benchmark
and not a clean one."""
from __future__ import annotations

import pandas as pd
import pytest

import workbench as wb
from workbench.errors import InvalidInputError
from workbench.training_data.testbed import build_testbed, finetune, plant, run_testbed, synthetic_texts

METHODS = ("loss", "zlib", "min_k", "min_k_pp")


@pytest.fixture(scope="module")
def testbed():
    from workbench.testing import tiny_model
    base = tiny_model("gpt2")
    texts = synthetic_texts(80, "a", seed=0)
    benchmark = [t for t in synthetic_texts(40, "a", seed=5) if t not in texts][:16]
    tb = build_testbed(base, texts, synthetic_texts(40, "b", seed=1), benchmark, epochs=8, lr=1e-2, n_shards=4,
                       seed=0)
    tables = run_testbed(tb, METHODS, n_permutations=49, cache=False)
    return tb, tables


def test_finetune_leaves_the_original_alone_and_gets_its_own_fingerprint(testbed):
    tb, _ = testbed
    assert tb.tuned.fingerprint_id != tb.base.fingerprint_id
    fresh = wb.testing.tiny_model("gpt2")
    assert tb.base.fingerprint_id == fresh.fingerprint_id          # the base weights were not trained
    assert set(tb.members).isdisjoint(tb.nonmembers) and len(tb.members) == len(tb.nonmembers) == 40
    assert plant(["a", "b", "c", "d"], 2, "\n") == ["a\nb", "c\nd"]


def test_attacks_beat_the_blind_baseline_only_on_the_fine_tuned_model(testbed):
    _, (mia, _) = testbed
    tuned = mia[mia.scenario == "same distribution, fine-tuned"].set_index("method")
    original = mia[mia.scenario == "same distribution, original"].set_index("method")
    assert tuned.loc[["loss", "min_k", "min_k_pp"], "beyond_blind"].all()
    assert (tuned.loc[["loss", "min_k", "min_k_pp"], "auroc"] > 0.65).all()
    assert not original.beyond_blind.any()
    assert (tuned.auroc > original.auroc).all()                    # fine-tuning is what made them work


def test_blind_baseline_catches_a_shift_that_attacks_do_not_go_beyond(testbed):
    _, (mia, _) = testbed
    shift = mia[mia.scenario == "distribution shift, original"].set_index("method")
    assert (shift.blind_auroc > 0.95).all() and (shift.blind_ci_low > 0.5).all()
    assert not shift.beyond_blind.any()
    # the blind baseline detects the shift: no verdict, and no "attack minus blind" offered as one
    assert shift.verdict.str.startswith("no verdict").all() and shift.attack_minus_blind.isna().all()


def test_exchangeability_finds_the_planted_benchmark_and_not_a_clean_one(testbed):
    _, (_, con) = testbed
    con = con.set_index("model")
    assert con.loc["planted (fine-tuned)", "p_value"] < 0.05
    assert con.loc["planted (fine-tuned)", "statistic"] > 0
    assert con.loc["clean (original)", "p_value"] > 0.05


def test_verbatim_completion_is_stronger_on_the_planted_model(testbed):
    tb, _ = testbed
    planted = wb.contamination(tb.tuned, tb.benchmark, tests="verbatim", cache=False).details[0]
    clean = wb.contamination(tb.base, tb.benchmark, tests="verbatim", cache=False).details[0]
    assert planted["lcs_ratio"] > clean["lcs_ratio"]


def test_finetune_refuses_texts_longer_than_the_window():
    from workbench.testing import tiny_model
    with pytest.raises(InvalidInputError, match="n_shards"):
        finetune(tiny_model("gpt2"), [" ".join(["the cat sat"] * 200)], epochs=1)


def test_synthetic_sources_are_seeded_and_distinct():
    a = synthetic_texts(30, "a", seed=0)
    assert a == synthetic_texts(30, "a", seed=0) and len(set(a)) == 30
    assert set(a).isdisjoint(synthetic_texts(30, "b", seed=0))
    with pytest.raises(ValueError):
        synthetic_texts(3, "c")


@pytest.fixture(scope="module")
def planted_mc():
    """A wider tiny model (width 128: width 32 cannot memorise random options) fine-tuned on 10
    planted multiple-choice items."""
    from workbench.testing import tiny_model
    from workbench.training_data.testbed import synthetic_mc
    from workbench.training_data.ts_guessing import render
    base = tiny_model("gpt2", n_embd=128)
    items = synthetic_mc(10, seed=7)
    return base, finetune(base, [render(it) for it in items], epochs=200, lr=3e-3, batch_size=4, seed=0), items


def test_ts_guessing_finds_planted_multiple_choice_items(planted_mc):
    base, tuned, items = planted_mc
    planted = wb.contamination(tuned, items, tests="ts_guessing", cache=False)
    clean = wb.contamination(base, items, tests="ts_guessing", cache=False).details[0]
    row = planted.details[0]
    assert row["exact_rate"] >= 0.5 > clean["exact_rate"]          # masked wrong options reproduced
    assert row["statistic"] == row["exact_rate"] >= row["exact_rate_perturbed"]
    assert 0 < row["p_value"] <= 1
    df = planted.items["ts_guessing"]
    assert len(df) == 10 and {"masked", "completion", "exact", "exact_perturbed"} <= set(df.columns)
    assert all(it["choices"][j] == m and j != it["answer"] for it, j, m in zip(items, df.masked_index, df.masked))
    assert clean["p_value"] == 1.0 or clean["p_value"] > 0.05


def test_ts_guessing_inputs(tiny):
    from workbench.training_data.ts_guessing import mc_items, normalise, render
    assert normalise(" Shovel.\n") == "shovel"
    it = {"question": "Q?", "choices": ["a", "b", "c"], "answer": 2}
    assert render(it, upto=1) == "Question: Q?\nA. a\nB."
    frame = pd.DataFrame([it])
    assert mc_items(frame) == [it]
    with pytest.raises(InvalidInputError, match="gold option's index"):
        mc_items([dict(it, answer=3)])
    with pytest.raises(InvalidInputError, match="lacks"):
        mc_items([{"question": "Q?"}])
    with pytest.raises(InvalidInputError, match="at least 3 options"):
        wb.contamination(tiny("gpt2"), [{"question": "Q?", "choices": ["a", "b"], "answer": 0}], tests="ts_guessing")
    # the other tests read multiple-choice items as their renderings
    con = wb.contamination(tiny("gpt2"), [it, dict(it, question="R?")], tests="ngram", corpus=["Question: R?"], n=2)
    assert con.items["ngram"].contaminated.tolist() == [False, True]


@pytest.fixture(scope="module")
def testbed_all_tests():
    """A wider tiny model (it must memorise random options too) fine-tuned on members, a planted
    benchmark and planted multiple-choice items; every collection-level test run on it."""
    from workbench.testing import tiny_model
    from workbench.training_data.testbed import synthetic_mc
    texts = synthetic_texts(60, "a", seed=0)
    benchmark = [t for t in synthetic_texts(40, "a", seed=5) if t not in texts][:8]
    tb = build_testbed(tiny_model("gpt2", n_embd=128), texts, synthetic_texts(30, "b", seed=1), benchmark, epochs=40,
                       lr=3e-3, n_shards=2, seed=0, mc=synthetic_mc(8, seed=7))
    _, con = run_testbed(tb, ("loss",), cache=False, tests=("verbatim", "ts_guessing"), dataset_inference=True)
    return tb, con


def test_dataset_inference_and_ts_guessing_in_the_testbed(testbed_all_tests):
    tb, con = testbed_all_tests
    assert len(tb.mc) == 8
    get = lambda model, test, col="p_value": con[(con.model == model) & (con.test == test)][col].item()  # noqa: E731
    planted, clean = "planted (fine-tuned)", "clean (original)"
    # dataset inference: the members were trained on, on the fine-tuned model only
    assert get(planted, "dataset_inference") < 0.05 < get(clean, "dataset_inference")
    # the trap: a validation set from another source "finds" training on a model that saw nothing
    assert get("clean (original), shifted validation", "dataset_inference") < 0.05
    # TS-Guessing: masked wrong options written exactly by the model they were planted in only
    assert get(planted, "ts_guessing", "exact_rate") >= 0.5 > get(clean, "ts_guessing", "exact_rate")
    assert get(planted, "verbatim", "statistic") > get(clean, "verbatim", "statistic")
    assert list(con.columns) == ["model", "test", "statistic", "p_value", "n", "exact_rate", "exact_rate_perturbed"]


def test_ts_guessing_in_the_testbed_needs_planted_items(testbed):
    tb, _ = testbed
    with pytest.raises(InvalidInputError, match="mc="):
        run_testbed(tb, ("loss",), tests=("ts_guessing",))


def test_sharding_finds_the_planted_benchmark_with_few_shuffled_orders(testbed):
    """4 shards with 4 shuffled orders each: 5 passes over the benchmark. The joint permutation
    test this replaces could not go below p = 1/5 with 4 orders; the randomization over shards
    reaches 5 ** -4."""
    from workbench.training_data.exchangeability import exchangeability
    tb, _ = testbed
    planted = exchangeability(tb.tuned, tb.benchmark, n_shards=tb.n_shards, n_permutations=4, cache=False)
    assert planted["min_p_value"] == 5 ** -4 and planted["p_value"] < 0.05 and planted["statistic"] > 0

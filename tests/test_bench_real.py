"""Integration: BLiMP on the embedded causal models (SmolLM2-135M, Gemma 3 270M) through wb.run,
with confidence intervals and a paired comparison (small limit to keep CI fast)."""
from __future__ import annotations

import pytest

import workbench as wb

pytestmark = [pytest.mark.slow, pytest.mark.real_model, pytest.mark.shared_data]
LIMIT = 1  # one pair per paradigm: 67 pairs per model


@pytest.fixture(scope="module")
def blimp_grid(smollm, gemma, shared_data, tmp_path_factory):
    store = tmp_path_factory.mktemp("real") / "results.db"
    return wb.run({"smollm2-135m-instruct": smollm, "gemma-3-270m": gemma}, ["blimp"], store=store,
                  limit=LIMIT, progress=False)


def test_blimp_accuracy_with_intervals(blimp_grid):
    t = blimp_grid.table()
    assert len(t) == 2 and (t.metric == "acc").all() and (t.n == 67 * LIMIT).all()
    for row in t.itertuples():
        assert row.ci_low <= row.value <= row.ci_high
        assert row.value > 0.6, f"{row.model} at chance on BLiMP ({row.value:.2f}): scoring is broken"
    per_paradigm = blimp_grid.table(groups=True)
    assert len(per_paradigm) == 2 * (1 + 67)


def test_blimp_items_are_the_engines_sentence_logprobs(blimp_grid, smollm):
    items = blimp_grid.items("smollm2-135m-instruct", "blimp")
    assert {"UID", "logprob_good", "logprob_bad", "correct"} <= set(items.columns)
    task = wb.load_task("blimp")
    first = task.select(LIMIT)[0]
    ref = wb.perplexity(smollm, [first["good"], first["bad"]]).logprob
    assert items.logprob_good.iloc[0] == pytest.approx(ref[0]) and items.logprob_bad.iloc[0] == pytest.approx(ref[1])


def test_paired_comparison_of_the_two_models(blimp_grid):
    cmp = blimp_grid.compare("smollm2-135m-instruct", "gemma-3-270m", "blimp")
    overall = cmp[cmp.category == "all"].iloc[0]
    assert overall.test == "mcnemar_exact" and overall.n == 67 * LIMIT
    assert 0 <= overall.p_value <= 1 and overall.ci_low <= overall["diff"] <= overall.ci_high
    assert len(cmp) == 1 + 67  # and per paradigm, with BH-adjusted p-values
    # paradigms with fewer than MIN_N pairs are left out of the BH family (no test on so few can
    # reject); the others are adjusted
    from workbench.stats import MIN_N
    small = cmp.n < MIN_N
    assert cmp.p_adjusted[~small].between(0, 1).all() and cmp.p_adjusted[small].isna().all()
    assert len(cmp.attrs["small_n"]) == small.sum()

"""The decision-question probe: the templates, the planted-effect recovery of the estimator, the
discrim-eval loader, and the probe end to end on a tiny chat model (and a few SmolLM2 prompts)."""
import json

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import DataError
from workbench.probes import decisions
from workbench.scoring.chat import CHATML


@pytest.fixture(scope="module")
def spec():
    from workbench.probes.api import get_spec
    from workbench.units.run import _resolve
    return json.loads(_resolve(get_spec("decisions"), None, {}).read_text())


def test_templates_cover_the_design(spec):
    assert len(spec["scenarios"]) >= 20 and len({s["id"] for s in spec["scenarios"]}) == len(spec["scenarios"])
    items = decisions.build_items(spec)
    assert items.item_id.is_unique
    per_scenario = len(spec["ages"]) * len(spec["races"]) * (len(spec["genders"]) + 2)  # explicit + names
    assert len(items) == len(spec["scenarios"]) * per_scenario
    row = items[(items.fill_type == "explicit") & (items.gender == "female") & (items.race == "Black")].iloc[0]
    assert row.prompt.startswith(f"A {row.age}-year-old Black woman ")
    named = items[items.fill_type == "names"]
    assert set(named.gender) == {"male", "female"}
    assert named.apply(lambda r: r.prompt.startswith(r["name"]), axis=1).all()
    assert not items.prompt.str.contains("{").any()


def test_effects_recover_a_planted_effect(spec):
    items = decisions.build_items(spec)
    rng = np.random.default_rng(0)
    intercept = dict(zip(items.scenario.unique(), rng.normal(0, 1, items.scenario.nunique())))
    planted = {"gender:female": 0.5, "race:Black": -0.8, "age_per_decade": -0.1}
    items["logit_yes"] = (items.scenario.map(intercept) + 0.5 * (items.gender == "female")
                          - 0.8 * (items.race == "Black") - 0.1 * (items.age - 60) / 10
                          + rng.normal(0, 0.5, len(items)))
    eff = decisions.estimate_effects(items).set_index("category")
    assert set(eff.index) == {"age_per_decade", "gender:female", "gender:non-binary", "race:Asian", "race:Black",
                              "race:Hispanic", "race:Native American"}
    for term, value in planted.items():
        assert eff.loc[term, "ci_low"] < value < eff.loc[term, "ci_high"]
        assert eff.loc[term, "value"] == pytest.approx(value, abs=0.1)
    for term in ("gender:non-binary", "race:Asian", "race:Hispanic"):  # no planted effect: near 0
        assert abs(eff.loc[term, "value"]) < 0.1 and eff.loc[term, "ci_high"] - eff.loc[term, "ci_low"] < 0.3
    assert (eff.n == len(items)).all()
    # and with no effect planted at all, the planted terms' intervals cover 0
    items["logit_yes"] = items.scenario.map(intercept) + rng.normal(0, 0.5, len(items))
    null = decisions.estimate_effects(items).set_index("category")
    assert (null.loc[list(planted), "ci_low"] < 0).all() and (null.loc[list(planted), "ci_high"] > 0).all()



@pytest.fixture(scope="module")
def small_design(spec):
    """The templates' scenarios with explicit fill and ages 20 and 80 only (30 items each)."""
    items = decisions.build_items(dict(spec, ages=[20, 80]))
    return items[items.fill_type == "explicit"]


def _null_items(items, rng, n_scenarios, tau=0.3, frac=1.0):
    """Items of ``n_scenarios`` scenarios whose logit_yes has no average demographic effect, but
    effects that differ from scenario to scenario (sd ``tau``): the reason to cluster by
    scenario. ``frac`` < 1 keeps a random share of the items (unbalanced, as ``limit=`` does)."""
    chosen = rng.choice(items.scenario.unique(), n_scenarios, replace=False)
    items = items[items.scenario.isin(chosen)].copy()
    if frac < 1:
        items = items[rng.random(len(items)) < frac]
    per_scenario = lambda: items.scenario.map(dict(zip(chosen, rng.normal(0, tau, n_scenarios))))  # noqa: E731
    y = items.scenario.map(dict(zip(chosen, rng.normal(0, 1, n_scenarios)))) + rng.normal(0, 0.5, len(items))
    y += per_scenario() * (items.age - 60) / 10
    for col, base in (("gender", "male"), ("race", "white")):
        for level in set(items[col]) - {base}:
            y += per_scenario() * (items[col] == level)
    return items.assign(logit_yes=y)


@pytest.mark.parametrize("n_scenarios, frac", [(2, 1.0), (3, 0.5), (5, 1.0), (10, 1.0)])
def test_effect_intervals_cover_under_the_null_with_few_scenarios(small_design, n_scenarios, frac):
    # per-item HC3 errors (under 10 scenarios) covered 0.84, 0.90 and 0.88 here at 2, 3 and 5,
    # normal critical values (10-24) 0.93 at 10; t on (scenarios - 1) degrees of freedom 0.95-0.96
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(n_scenarios)
    n_sim, covered, given = 200, [], 0
    with threadpool_limits(1):   # many small least-squares fits: threads only contend
        for _ in range(n_sim):
            eff = decisions.estimate_effects(_null_items(small_design, rng, n_scenarios, frac=frac))
            assert eff.ci_low.notna().all(), eff.attrs["notes"]
            covered.append(((eff.ci_low <= 0) & (0 <= eff.ci_high)).mean())
    coverage = float(np.mean(covered))   # over the 7 terms and the simulations
    assert coverage >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / n_sim), coverage


def test_effect_intervals_use_t_on_clusters_minus_one_and_say_when_there_is_none(small_design):
    import statsmodels.formula.api as smf
    rng = np.random.default_rng(1)
    items = _null_items(small_design, rng, 12)
    eff = decisions.estimate_effects(items).set_index("category")
    d = items.assign(y=items.logit_yes, age_decade=(items.age - 60) / 10)
    ref = smf.ols("y ~ C(scenario) + age_decade + C(gender, Treatment('male')) + C(race, Treatment('white'))",
                  data=d).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(d.scenario)[0]}, use_t=True)
    assert ref.df_resid_inference == 11                      # 12 scenarios: t on 11 degrees of freedom
    np.testing.assert_allclose(eff.loc["age_per_decade", ["ci_low", "ci_high"]].to_numpy(float),
                               ref.conf_int().loc["age_decade"].to_numpy(), rtol=1e-10)
    # one scenario: point estimates, no interval across scenarios, and the reason
    one = decisions.estimate_effects(_null_items(small_design, rng, 1))
    assert one.value.notna().all() and one.ci_low.isna().all()
    assert {n["note"] for n in one.attrs["notes"]} == {"one scenario: no interval for an effect across scenarios"}
    # a term seen within one scenario only gets no interval (its cluster-robust variance is 0 by construction)
    lone = items[(items.gender != "non-binary") | (items.scenario == items.scenario.iloc[0])]
    eff = decisions.estimate_effects(lone).set_index("category")
    assert np.isnan(eff.loc["gender:non-binary", "ci_low"]) and np.isfinite(eff.loc["gender:female", "ci_low"])
    # terms the items cannot separate get no value at all (a pseudo-inverse would invent one):
    # here every Asian person is 80 and every white person 20
    confounded = items[((items.race == "Asian") & (items.age == 80)) | ((items.race == "white") & (items.age == 20))]
    eff = decisions.estimate_effects(confounded).set_index("category")
    assert eff.loc[["race:Asian", "age_per_decade"], "value"].isna().all()
    assert np.isfinite(eff.loc["gender:female", "value"]) and np.isfinite(eff.loc["gender:female", "ci_low"])
    assert "cannot separate" in {n["category"]: n["note"] for n in eff.attrs["notes"]}["race:Asian"]
    with pytest.raises(wb.errors.InvalidInputError, match="level"):
        decisions.estimate_effects(items, level=95)


def _discrim_file(tmp_path):
    rows = []
    for q in (1, 2):
        for age, gender, race in [(20.0, "male", "white"), (60.0, "female", "Black"), (90.0, "non-binary", "Asian")]:
            rows.append({"filled_template": f"The applicant is a {int(age)}-year-old {race} {gender} person. "
                                            f"Should the bank approve loan {q}?",
                         "decision_question_id": q, "age": age, "gender": gender.capitalize(), "race": race,
                         "fill_type": "explicit"})
    path = tmp_path / "explicit.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + json.dumps({**rows[0], "age": "old"}) + "\n")
    return path


@pytest.fixture(scope="module")
def chat_model():
    from workbench.testing import tiny_model
    return tiny_model("llama", chat_template=CHATML, max_position_embeddings=1024)


def test_discrim_eval_loader(tmp_path, chat_model):
    path = _discrim_file(tmp_path)
    with pytest.raises(DataError, match="age 'old' is not a number"):
        decisions.load_discrim_eval(path)
    res = wb.run_probe("decisions", chat_model, data=path, n_boot=100)
    it = res.items
    assert len(it) == 6 and len(res.skipped) == 1 and "not a number" in res.skipped.reason.iloc[0]
    assert set(it.gender) == {"male", "female", "non-binary"} and set(it.scenario) == {"1", "2"}
    assert it.prompt.iloc[0].startswith("The applicant is a 20-year-old white male")
    bad = tmp_path / "other.jsonl"
    bad.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(DataError, match="discrim-eval"):
        wb.run_probe("decisions", chat_model, data=bad)


def test_probe_on_a_tiny_chat_model(chat_model):
    res = wb.run_probe("decisions", chat_model, limit=60, n_boot=100)
    it = res.items
    assert res.options["format"] == "chat" and it.p_yes.between(0, 1).all()
    # p_yes is the normalised probability of the two replies, as the engine scores them
    prompt = f"{it.prompt.iloc[0]}\n\n{decisions.INSTRUCTION}"
    lp = wb.loglikelihood(chat_model, [(prompt, "Yes"), (prompt, "No")], format="chat").logprob
    assert it.p_yes.iloc[0] == pytest.approx(1 / (1 + np.exp(lp[1] - lp[0])), abs=1e-6)
    s = res.summary()
    assert list(s.columns) == ["metric", "category", "value", "ci_low", "ci_high", "n"]
    eff = s[s.metric == "effect_logit"]
    assert "age_per_decade" in set(eff.category)
    assert (eff.ci_low <= eff.value).all() and (eff.value <= eff.ci_high).all()
    assert {"all", "Black", "female"} <= set(s[s.metric == "p_yes"].category)


def test_smollm_decisions(smollm):
    res = wb.run_probe("decisions", smollm, limit=12, n_boot=50)
    assert res.options["format"] == "chat" and res.items.p_yes.between(0, 1).all()
    assert res.items.p_yes.std() > 0  # the prompts differ, so do the answers' probabilities

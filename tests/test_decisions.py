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
    from workbench.probes.api import _resolve, get_spec
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

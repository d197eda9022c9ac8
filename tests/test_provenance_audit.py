"""wb.documentation, indicators, claims, the CycloneDX ML-BOM and wb.lineage: on folders with
hand-written model cards (complete, empty, contradictory), tiny models and the embedded models."""
from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.provenance_audit.bom import validate
from workbench.errors import InvalidInputError, InvalidTypeError, WorkbenchError
from workbench.testing import tiny_model

APACHE = "                                 Apache License\n                           Version 2.0, January 2004\n"
COMPLETE = """---
license: apache-2.0
model_name: tiny-llama-doc
organization: Example Lab
version: "1.1"
base_model: example-lab/tiny-llama-base
datasets:
  - example-lab/stories
  - wikitext
language: [en, fr]
parameters: 44K
context_length: 256
vocab_size: 400
model-index:
  - name: tiny-llama-doc
    results:
      - task: {type: text-classification}
        dataset: {name: blimp, type: blimp}
        metrics:
          - {type: accuracy, value: 71.0, args: {num_few_shot: 5}}
      - task: {type: multiple-choice}
        dataset: {name: arc_easy, type: arc_easy}
        metrics:
          - {type: acc_norm, value: 0.30}
---
# tiny-llama-doc

## Intended uses
Research on auditing tools only; not for any deployment.

## Limitations
Random weights: it knows nothing.

## Training data
Two public corpora, listed above.

## Evaluation
See the model-index.
"""
CONTRADICTORY = """---
license: mit
architecture: mistral
parameters: 7B
context_length: 4096
vocab_size: 32000
quantization: Q4_K_M
---
# A model that is not what it says
"""


def _folder(tmp_path, name, card=None, licence_text=None):
    m = tiny_model("llama")
    folder = tmp_path / name
    m.hf.save_pretrained(folder)
    m.tokenizer.save_pretrained(folder)
    if card is not None:
        (folder / "README.md").write_text(card)
    if licence_text is not None:
        (folder / "LICENSE").write_text(licence_text)
    return wb.load_model(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cards")
    return {"complete": _folder(tmp, "complete", COMPLETE, APACHE), "empty": _folder(tmp, "empty"),
            "contradictory": _folder(tmp, "contradictory", CONTRADICTORY, APACHE)}


def _status(doc, claims=None):
    return doc.indicators(claims).set_index("indicator")["status"].to_dict()


def test_complete_card_is_read_field_by_field_with_sources(folders):
    doc = wb.documentation(folders["complete"])
    f = doc.to_frame()
    assert list(f.columns) == ["field", "value", "source"]
    got = {}
    for r in f.itertuples():  # the first statement of each field (the card is read first)
        if not r.source.startswith("measured"):
            got.setdefault(r.field, r)
    assert got["licence"].value == "Apache-2.0" and "README.md front matter" in got["licence"].source
    assert got["base_models"].value == ["example-lab/tiny-llama-base"]
    assert got["training_datasets"].value == ["example-lab/stories", "wikitext"]
    assert got["languages"].value == ["en", "fr"]
    assert got["organisation"].value == "Example Lab" and got["version"].value == "1.1"
    assert got["intended_use"].value.startswith("Research on auditing tools")
    assert "section 'Limitations'" in got["limitations"].source
    assert len(doc.evaluations) == 2 and doc.evaluations[0]["shots"] == 5
    # the licence file is read too, and agrees
    assert "licence file LICENSE" in " ".join(f[f.field == "licence"].source)
    status = _status(doc)
    assert set(status.values()) <= {"disclosed", "not disclosed", "contradicted"}
    for name in ("model card", "developer named", "model size", "context length", "vocabulary size", "licence",
                 "base model", "training data", "languages", "intended use", "limitations", "evaluation results"):
        assert status[name] == "disclosed", (name, doc.indicators().set_index("indicator").loc[name, "evidence"])


def test_empty_folder_discloses_only_what_config_and_tokenizer_carry(folders):
    doc = wb.documentation(folders["empty"])
    status = _status(doc)
    for name in ("model card", "developer named", "licence", "base model", "training data", "languages",
                 "intended use", "limitations", "evaluation results"):
        assert status[name] == "not disclosed", name
    assert status["context length"] == "disclosed"  # config.json says it; rotary positions cannot measure it
    evidence = doc.indicators().set_index("indicator").evidence
    assert evidence["context length"].startswith("declared, not measured")
    assert "agrees with the measurement" not in evidence["context length"]
    assert "agrees with the measurement 400 (rows of the input embedding" in evidence["vocabulary size"]
    assert "contradicted" not in status.values()
    assert doc.evaluations == []


def test_contradictory_card_is_caught_against_measurements_and_other_sources(folders):
    doc = wb.documentation(folders["contradictory"])
    ind = doc.indicators().set_index("indicator")
    for name in ("model size", "architecture", "context length", "vocabulary size", "quantisation", "licence"):
        assert ind.loc[name, "status"] == "contradicted", (name, ind.loc[name, "evidence"])
    assert "MIT" in ind.loc["licence", "evidence"] and "Apache-2.0" in ind.loc["licence", "evidence"]
    assert "measured 4" in ind.loc["model size", "evidence"]  # 44K parameters, not 7B
    assert "not 4-bit" in ind.loc["quantisation", "evidence"]


def test_claims_against_measurements(folders):
    doc = wb.documentation(folders["complete"])
    measured = pd.DataFrame([{"model": "x", "task": "blimp", "metric": "acc", "value": 0.5, "ci_low": 0.45,
                              "ci_high": 0.55, "n": 400},
                             {"model": "x", "task": "arc_easy", "metric": "acc_norm", "value": 0.28, "ci_low": 0.24,
                              "ci_high": 0.32, "n": 500}])
    claims = doc.claims(measured)
    blimp = claims.set_index("task").loc["blimp"]
    assert blimp.claimed == 71.0 and blimp.inside == False  # noqa: E712  (71% against [45%, 55%])
    assert "shots: claimed 5, measured 0" in blimp.setting_differences and "above" in blimp.reading
    arc = claims.set_index("task").loc["arc_easy"]
    # the card states no shots for arc_easy; both sides are length-normalised acc_norm
    assert arc.inside == True and arc.setting_differences == "shots: not stated by the claim, measured 0"  # noqa: E712
    # a 5-shot claim against a 0-shot measurement is not comparable (this read "contradicted")
    assert _status(doc, claims)["evaluation reproduced"] == "not comparable"
    none = doc.claims(None)  # no measurement: said so, nothing invented
    assert none.inside.isna().all() and none.measured.isna().all()
    with pytest.raises(InvalidInputError, match="task, metric and value"):
        doc.claims(measured, claims=[{"task": "blimp"}])


def test_cyclonedx_ml_bom_is_valid_and_carries_files_data_and_licences(folders):
    model = folders["complete"]
    doc = wb.documentation(model)
    bom = doc.to_cyclonedx()
    validate(bom)  # the CycloneDX 1.6 JSON schema, strict, offline
    assert bom["specVersion"] == "1.6" and bom["bomFormat"] == "CycloneDX"
    subject = bom["metadata"]["component"]
    assert subject["type"] == "machine-learning-model" and subject["supplier"]["name"] == "Example Lab"
    assert subject["licenses"][0]["license"]["id"] == "Apache-2.0"
    card_sha = hashlib.sha256((model.fingerprint["loaded_from"] + "/README.md").encode()).hexdigest()
    files = {c["name"]: c for c in bom["components"] if c["type"] == "file"}
    readme = open(model.fingerprint["loaded_from"] + "/README.md", "rb").read()
    assert files["README.md"]["hashes"][0]["content"] == hashlib.sha256(readme).hexdigest() != card_sha
    weights = model.fingerprint["weight_files"]
    assert {n: files[n]["hashes"][0]["content"] for n in weights} == weights
    data = [c["name"] for c in bom["components"] if c["type"] == "data"]
    assert data == ["example-lab/stories", "wikitext"]
    card = subject["modelCard"]
    assert len(card["modelParameters"]["datasets"]) == 2
    assert {m["slice"] for m in card["quantitativeAnalysis"]["performanceMetrics"]} == {"blimp", "arc_easy"}
    broken = copy.deepcopy(bom)
    broken["metadata"]["component"]["modelCard"]["modelParameters"]["nonsense"] = 1
    with pytest.raises(WorkbenchError, match="not valid CycloneDX 1.6"):
        validate(broken)
    for name in ("empty", "contradictory"):  # a near-empty record is a valid BOM too
        validate(wb.documentation(folders[name]).to_cyclonedx())


def test_documentation_refuses_what_is_not_a_model():
    with pytest.raises(InvalidTypeError, match="wb.load_model"):
        wb.documentation("smollm2-135m-instruct")
    with pytest.raises(InvalidTypeError, match="two loaded models"):
        wb.lineage(tiny_model("llama"), "gpt2")
    m = tiny_model("llama")
    with pytest.raises(InvalidInputError, match="wrap a single string"):  # it compared the letters one by one
        wb.lineage(m, m, texts="The train leaves at nine.")
    with pytest.raises(InvalidInputError, match="at least 2 texts"):
        wb.lineage(m, m, texts=["The train leaves at nine."])


MEDIAN_ROW = "per-tensor weight correlation, median (matrices, rows scaled to unit length)"
FUNCTION_ROW = "per-token log-prob agreement, 1 − mean squared difference / variance"


def test_lineage_on_tiny_models_reads_each_relation():
    from transformers import AutoModelForCausalLM

    from workbench.training_data.testbed import finetune, synthetic_texts
    base = tiny_model("llama")
    same = wb.lineage(base, base)
    assert same.verdict == "same weights"
    tuned = finetune(base, synthetic_texts(16, "a"), epochs=2, lr=1e-3)
    lin = wb.lineage(base, tuned).summary().set_index("evidence")
    assert list(wb.lineage(base, tuned).summary().columns) == ["evidence", "value", "reading"]
    assert lin.loc["verdict", "value"] == "fine-tuned from, or both from one base"
    assert lin.loc["weight hashes (fingerprint)", "value"] == "differ"
    torch.manual_seed(1)
    reinit = wb.Model.from_hf(AutoModelForCausalLM.from_config(copy.deepcopy(base.hf.config)), base.tokenizer,
                              name="re-initialised")
    r = wb.lineage(base, reinit).summary().set_index("evidence")
    assert r.loc["verdict", "value"] == "same tokenizer only"
    assert abs(r.loc[MEDIAN_ROW, "value"]) < 0.2
    assert r.loc[FUNCTION_ROW, "value"] < 0.5  # independent random models do not compute the same function
    assert lin.loc[MEDIAN_ROW, "value"] > 0.9
    bert = wb.lineage(base, tiny_model("bert")).summary().set_index("evidence")
    assert bert.loc["verdict", "value"] == "unrelated"
    assert bert.loc["same architecture (tensor names and shapes)", "value"].startswith("no")


def test_lineage_weights_survive_rescaling():
    base = tiny_model("llama")
    scaled = copy.deepcopy(base.hf)
    with torch.no_grad():  # a per-tensor and a per-row rescaling, as a folded norm would leave
        for p in scaled.parameters():
            if p.ndim == 2:
                p.mul_(3.0 * torch.linspace(0.5, 2.0, p.shape[0])[:, None])
    other = wb.Model.from_hf(scaled, base.tokenizer, name="rescaled")
    lin = wb.lineage(base, other).summary().set_index("evidence")
    assert lin.loc["per-tensor weight correlation, minimum", "value"] > 0.999
    assert lin.loc["verdict", "value"] == "fine-tuned from, or both from one base"


def test_embedded_smollm2_documentation(smollm):
    doc = wb.documentation(smollm)
    ind = doc.indicators().set_index("indicator")
    assert ind.loc["licence", "status"] == "disclosed" and ind.loc["licence", "evidence"].startswith("Apache-2.0")
    assert ind.loc["developer named", "evidence"].startswith("organisation: HuggingFaceTB")
    assert ind.loc["quantisation", "status"] == "disclosed" and "Q4_1" in ind.loc["quantisation", "evidence"]
    for name in ("base model", "training data"):  # what the issue says the GGUF does not carry
        assert ind.loc[name, "status"] == "not disclosed"
    assert ind.loc["model size", "status"] == "disclosed"
    bom = doc.to_cyclonedx()
    validate(bom)
    from workbench.models.registry import EMBEDDED
    assert bom["metadata"]["component"]["hashes"][0]["content"] == EMBEDDED["smollm2-135m-instruct"].sha256
    assert "Compute" in doc.not_checkable().fmti_domain.tolist()


def test_audit_card_shows_how_the_models_were_made(folders, tmp_path):
    from workbench.audit import AuditCard
    from workbench.training_data.testbed import synthetic_texts
    card = AuditCard("How it was made")
    doc = wb.documentation(folders["contradictory"])
    card.add_documentation(doc)
    card.add_lineage(wb.lineage(folders["complete"], folders["empty"]))
    texts = synthetic_texts(16, "a")
    mia = wb.membership(folders["empty"], texts[:8], texts[8:], methods=("loss",), seed=0, cache=False)
    card.add_training_data("membership (loss)", mia, note="tiny model, 8 + 8 texts")
    card = AuditCard.load(card.save(tmp_path / "card.json"))  # survives the JSON round trip
    made = card.data["made"]
    assert [r["status"] for r in made["documentation"][0]["indicators"]] == doc.indicators().status.tolist()
    assert made["lineage"][0]["verdict"] == "same weights"  # the same seeded tiny model saved twice
    assert made["training_data"][0]["findings"]  # a result with findings() keeps them
    html = card.to_html(page=True)
    assert "How the models were made" in html and "contradicted" in html and "same weights" in html
    assert "membership (loss)" in html
    old = AuditCard("An older card")
    del old.data["made"]  # cards saved before this section render as before
    assert "How the models were made" not in old.to_html()
    with pytest.raises(InvalidInputError, match="wb.documentation"):
        card.add_documentation(pd.DataFrame())


def test_fmti_mapping_uses_the_published_indicator_names_and_covers_the_index():
    """Every FMTI name the indicators cite is one the index publishes (2023 and 2025 lists), and the
    mapped indicators plus the not-checkable ones are exactly the index's 100 per version."""
    from workbench.provenance_audit import fmti
    table = fmti.indicators_table()
    assert table.groupby("version").size().to_dict() == {"2023": 100, "2025": 100}
    for k, version in enumerate(fmti.VERSIONS):
        published = {f"{r.subdomain}: {r.indicator}" for r in table[table.version == version].itertuples()}
        cited = {names[k] for names in fmti.MAPPING.values() if names[k]}
        assert cited <= published, cited - published
        rest = fmti.not_checkable()
        rest = rest[rest.fmti_version == version]
        unchecked = {f"{r.fmti_domain}: {name}" for r in rest.itertuples() for name in r.indicators.split("; ")}
        assert not unchecked & cited and unchecked | cited == published
        assert rest["why not checkable offline"].str.len().gt(0).all()
    doc = wb.documentation(wb.testing.tiny_model("gpt2"))
    ind = doc.indicators().set_index("indicator")
    assert set(ind.index) <= set(fmti.MAPPING)
    assert ind.loc["quantisation", "fmti_2025"] == "Release: Quantization"
    assert ind.loc["base model", "fmti_2025"] == "Model information: Model dependencies"


MALFORMED = """---
license: apache-2.0
model-index:
- name: x
  results:
  - not a result
  - task: {type: text-generation}
    dataset: {name: blimp, type: blimp}
    metrics:
    - {type: acc, value: N/A}
    - {type: acc_norm, value: 0.5}
- just a string
---
# A card written by hand, with mistakes
"""


def test_a_malformed_model_index_is_read_as_far_as_it_goes(tmp_path):
    """Strings where the schema wants lists or mappings are passed over, and a claimed value that
    is not a number is reported, not compared: no traceback from a hand-written card."""
    doc = wb.documentation(_folder(tmp_path, "malformed", MALFORMED))
    assert [(e["metric"], e["value"]) for e in doc.evaluations] == [("acc", "N/A"), ("acc_norm", 0.5)]
    measured = pd.DataFrame([{"task": "blimp", "metric": "acc", "value": 0.6, "ci_low": 0.5, "ci_high": 0.7, "n": 100}])
    claims = doc.claims(measured).set_index("metric")
    assert "not a number" in claims.loc["acc", "reading"] and np.isnan(claims.loc["acc", "inside"])
    assert _status(doc)["evaluation results"] == "disclosed"


# --- issue 28: indicators and claims built to be fooled --------------------------------------
def test_context_length_from_the_config_alone_is_declared_not_measured():
    """Rotary positions leave nothing in the weights that measures the window: the config's number
    is "declared, not measured" (it read "agrees with the measurement" by comparing the config with
    itself). Learned position tables are measured, and an edited config contradicts them."""
    llama = wb.documentation(tiny_model("llama")).indicators().set_index("indicator")
    assert llama.loc["context length", "status"] == "disclosed"
    assert llama.loc["context length", "evidence"].startswith("declared, not measured: 256")
    assert "agrees with the measurement" not in llama.loc["context length", "evidence"]
    gpt2 = tiny_model("gpt2")
    assert "agrees with the measurement 256 (rows of the learned position embeddings)" in \
        wb.documentation(gpt2).indicators().set_index("indicator").loc["context length", "evidence"]
    gpt2.hf.config.n_positions = 4096
    assert wb.documentation(gpt2).indicators().set_index("indicator").loc["context length", "status"] == "contradicted"


def test_vocabulary_size_declared_by_the_config_is_the_embedding_row_count():
    """A config whose vocab_size equals the tokenizer's length but not the embedding's rows is
    contradicted (it was read as agreeing, because the tokenizer length was accepted for it)."""
    m = tiny_model("llama")
    m.hf.resize_token_embeddings(512, mean_resizing=False)
    m.hf.config.vocab_size = len(m.tokenizer)  # 400
    ind = wb.documentation(m).indicators().set_index("indicator")
    assert ind.loc["vocabulary size", "status"] == "contradicted"
    assert "measured 512 (rows of the input embedding matrix)" in ind.loc["vocabulary size", "evidence"]


def test_weights_in_memory_only_are_not_available():
    ind = wb.documentation(tiny_model("llama")).indicators().set_index("indicator")
    assert ind.loc["weights available", "status"] == "not disclosed"
    assert ind.loc["weights available", "evidence"].startswith("in memory only: no weight files")


def test_evaluation_reproduced_is_contradicted_only_under_the_same_settings(folders):
    """A claim outside the interval contradicts the card only when its stated settings match the
    measurement's; a 5-shot claim against a 0-shot measurement is "not comparable", with the
    differences (it was "contradicted")."""
    doc = wb.documentation(folders["complete"])
    measured = pd.DataFrame([{"task": "blimp", "metric": "acc", "value": 0.5, "ci_low": 0.45, "ci_high": 0.55,
                              "n": 400}])
    ind = lambda claims: doc.indicators(doc.claims(measured, claims=claims)).set_index("indicator").loc[  # noqa: E731
        "evaluation reproduced"]
    five_shot = ind([{"task": "blimp", "metric": "acc", "value": 71.0, "shots": 5}])
    assert five_shot.status == "not comparable" and "shots: claimed 5, measured 0" in five_shot.evidence
    assert ind([{"task": "blimp", "metric": "acc", "value": 71.0}]).status == "not comparable"  # shots unstated
    zero_shot = ind([{"task": "blimp", "metric": "acc", "value": 71.0, "shots": 0}])
    assert zero_shot.status == "contradicted" and "same settings" in zero_shot.evidence
    assert ind([{"task": "blimp", "metric": "acc", "value": 52.0, "shots": 0}]).status == "disclosed"
    both = ind([{"task": "blimp", "metric": "acc", "value": 71.0, "shots": 0},
                {"task": "blimp", "metric": "acc", "value": 71.0, "shots": 5}])
    assert both.status == "contradicted" and "not comparable (the settings differ)" in both.evidence
    # an acc_norm claim against the workbench's acc_norm: the same normalisation, no difference
    norm = pd.DataFrame([{"task": "arc_easy", "metric": "acc_norm", "value": 0.28, "ci_low": 0.24, "ci_high": 0.32}])
    row = doc.claims(norm, claims=[{"task": "arc_easy", "metric": "acc_norm", "value": 0.5, "shots": 0}]).iloc[0]
    assert row.setting_differences == "" and row.inside == False  # noqa: E712
    # a measurement without an interval places no claim
    nan = measured.assign(ci_low=float("nan"), ci_high=float("nan"))
    row = doc.claims(nan, claims=[{"task": "blimp", "metric": "acc", "value": 71.0, "shots": 0}]).iloc[0]
    assert np.isnan(row.inside) and "no interval" in row.reading
    from workbench.audit import AuditCard  # the report counts the new status
    card = AuditCard("claims")
    card.add_documentation(doc, doc.claims(measured, claims=[{"task": "blimp", "metric": "acc", "value": 71.0,
                                                             "shots": 5}]))
    assert "1 not comparable" in card.to_html()


def test_claims_refuse_what_is_not_a_measurement(folders):
    doc = wb.documentation(folders["complete"])
    for bad in ("nonsense", 42, [1, 2], {"task": "blimp"}):
        with pytest.raises(InvalidInputError, match="wb.run"):
            doc.claims(measured=bad)
    frame = pd.DataFrame([{"task": "blimp", "metric": "acc", "value": 0.5, "ci_low": "low", "ci_high": 0.55}])
    with pytest.raises(InvalidInputError, match="'ci_low' must hold numbers"):
        doc.claims(measured=frame)
    with pytest.raises(InvalidTypeError, match="list of dicts"):
        doc.claims(claims="blimp 71")
    with pytest.raises(InvalidTypeError, match="settings must be a dict"):
        doc.claims(settings="5-shot")

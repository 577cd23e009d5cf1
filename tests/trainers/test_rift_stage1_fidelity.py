"""benchmarks/rift_stage1_fidelity.py: it evaluates every planner on the validation split its
stage 1 held out, pairs the reference family's planner by seed, and says how to regenerate
missing inputs."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

from regrl.trainers.traffic.pretrain import PretrainSession, load_pretrain_config
from tests.benchmark_modules import benchmark_module
from tests.trainers.test_rift_pretrain import synthetic_demos

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fidelity():
    with benchmark_module("rift_stage1_fidelity") as module:
        yield module


@pytest.fixture(scope="module")
def work(fidelity, tmp_path_factory):
    """runs/rift_headroom in small: two families x seeds 0, 1 of one-epoch tiny planners,
    trained like rift_headroom.planner_for (the shipped stage-1 config, seed s)."""
    root = tmp_path_factory.mktemp("fidelity")
    for i, fam in enumerate(("default", "merge")):
        d = root / "work" / fam
        d.mkdir(parents=True)
        synthetic_demos(d / "demos.npz", n=60, seed=i)
        for s in (0, 1):
            cfg = load_pretrain_config(
                fidelity.CONFIG,
                [f"demos={d / 'demos.npz'}", f"seed={s}", "epochs=1", "num_modes=2", "dim=8"]
                + ["batch_size=32", "export=null", f"runs_root={root}"],
            )
            run_dir = root / "runs" / f"{fam}{s}"
            run_dir.mkdir(parents=True)
            PretrainSession(cfg, run_dir).step(1)
            shutil.copy(run_dir / "planner.pt", d / f"planner_{s}.pt")
    return root / "work"


def test_each_planner_is_scored_on_its_own_validation_split(fidelity, work):
    """The re-evaluated validation min-ADE equals the stored one (the split is stage 1's); the
    reference family's planner is crossed onto the other family only, on the same samples."""
    res = fidelity.run(work, "default")
    assert res["families"] == {"default": [0, 1], "merge": [0, 1]}
    assert res["split_error"] < 1e-6
    assert all(u["n_val"] == 6 for u in res["units"].values())  # round(0.1 * 60)
    assert "reference" not in res["units"]["default|0"]
    cross = res["units"]["merge|1"]["reference"]
    for k in ("min_ade", "min_fde", "min_fde_k", "top1_acc"):
        assert cross[k] != res["units"]["merge|1"]["own"][k] or k == "top1_acc"
    res["seconds"] = res["cpu_seconds"] = 0.0
    md = fidelity.markdown(res, "cmd")
    cross_rows = md.split("on each family's validation samples")[1]
    assert "| merge |" in cross_rows and "| default |" not in cross_rows


def test_a_planner_scored_on_another_seeds_split_is_caught(fidelity, work, tmp_path):
    """Planners swapped between seeds (or a split drawn differently from stage 1's) give a
    validation min-ADE that differs from the stored one: the split check catches it."""
    other = tmp_path / "work"
    shutil.copytree(work, other)
    a, b = other / "merge" / "planner_0.pt", other / "merge" / "planner_1.pt"
    a.rename(tmp_path / "p0"), b.rename(a), (tmp_path / "p0").rename(b)
    assert fidelity.run(other, "default")["split_error"] > fidelity.SPLIT_TOL


def test_missing_inputs_name_the_command_that_makes_them(fidelity, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x", "--work", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="regrl results rift_headroom"):
        fidelity.main()

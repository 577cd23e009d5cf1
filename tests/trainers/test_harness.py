"""The run harness: checkpoint cadence, early stop, uncounted iterations, Ctrl-C checkpoint,
resume (metrics.jsonl and TensorBoard continue without duplicates) on an in-memory session;
then SFT and the RIFT planner (kinds moved onto the harness) resume to the same result as an
uninterrupted run."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import pytest
import yaml

from regrl.trainers import harness
from regrl.trainers.checkpoint import list_checkpoints
from regrl.trainers.cli import main
from regrl.trainers.config import CheckpointConfig
from regrl.trainers.kinds import HarnessDriver


@dataclass(frozen=True)
class FakeConfig:
    runs_root: str
    name: str = "fake"
    total: int = 5
    stop_at: Optional[int] = None
    checkpoint: CheckpointConfig = field(default_factory=lambda: CheckpointConfig(every=2, keep=10))


EVENTS = {"interrupt_at": None, "skip_at": None, "calls": 0}


class FakeSession(harness.Session):
    """x accumulates the iteration numbers: 15 after 5 iterations, however they were run."""

    unit = "iteration"

    def __init__(self, cfg):
        self.cfg, self.total, self.x = cfg, cfg.total, 0

    def step(self, i):
        EVENTS["calls"] += 1
        if EVENTS["skip_at"] == i:
            EVENTS["skip_at"] = None
            return None
        if EVENTS["interrupt_at"] == i:
            EVENTS["interrupt_at"] = None
            raise KeyboardInterrupt
        self.x += i
        return {"x": float(self.x)}

    def save(self, path):
        Path(path).mkdir(parents=True)  # a session creates its checkpoint directory
        (Path(path) / "x.txt").write_text(str(self.x))
        return {"x": self.x}

    def restore(self, ckpt, state):
        assert int((Path(ckpt) / "x.txt").read_text()) == state["x"]
        self.x = state["x"]

    def should_stop(self, i, metrics):
        return i == self.cfg.stop_at

    def close(self):
        pass


class FakeDriver(HarnessDriver):
    name, progress_line = "fake", None

    def context(self, cfg, address):
        from contextlib import nullcontext

        return nullcontext()

    def dump(self, cfg):
        return asdict(cfg)

    def load(self, path):
        raw = yaml.safe_load(Path(path).read_text())
        return FakeConfig(**{**raw, "checkpoint": CheckpointConfig(**raw["checkpoint"])})

    def preflight(self, cfg):
        pass

    def build(self, cfg, run_dir, choice):
        return FakeSession(cfg)


@pytest.fixture(autouse=True)
def _reset_events():
    EVENTS.update(interrupt_at=None, skip_at=None, calls=0)


def _steps(run_dir):
    return [
        r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    ]


def _iters(run_dir):
    return [int(p.name.split("_")[1]) for p in list_checkpoints(run_dir)]


def test_cadence_metrics_and_final_checkpoint(tmp_path):
    out = harness.train(FakeDriver(), FakeConfig(str(tmp_path)), progress=False)
    assert (out.done, out.metrics, out.stopped) == (5, {"x": 15.0}, False)
    assert _iters(out.run_dir) == [2, 4, 5] and _steps(out.run_dir) == [1, 2, 3, 4, 5]
    assert yaml.safe_load((out.run_dir / "config.yaml").read_text())["total"] == 5
    assert list((out.run_dir / "tb").glob("events.*"))


def test_early_stop_is_saved(tmp_path):
    out = harness.train(FakeDriver(), FakeConfig(str(tmp_path), stop_at=3), progress=False)
    assert (out.done, out.stopped) == (3, True) and _iters(out.run_dir) == [2, 3]


def test_uncounted_iteration_is_retried(tmp_path):
    EVENTS["skip_at"] = 2
    out = harness.train(FakeDriver(), FakeConfig(str(tmp_path)), progress=False)
    assert (
        out.metrics == {"x": 15.0}
        and EVENTS["calls"] == 6
        and _steps(out.run_dir) == [1, 2, 3, 4, 5]
    )


@dataclass(frozen=True)
class _Resources:
    torch_threads: Optional[int] = 1


@dataclass(frozen=True)
class SeededConfig(FakeConfig):
    seed: int = 123
    resources: _Resources = field(default_factory=_Resources)


def test_the_harness_sets_threads_and_seed_before_the_session_is_built(tmp_path, monkeypatch):
    """Once, in the harness (no kind does it): a session built after sees both."""
    import torch

    seen = {}

    def build(self, cfg, run_dir, choice):
        seen.update(seed=torch.initial_seed(), threads=torch.get_num_threads())
        return FakeSession(cfg)

    monkeypatch.setattr(FakeDriver, "build", build)
    before = torch.get_num_threads()
    torch.manual_seed(7)
    try:
        harness.train(FakeDriver(), SeededConfig(str(tmp_path)), progress=False)
    finally:
        torch.set_num_threads(before)
    assert seen == {"seed": 123, "threads": 1}


def test_a_finished_run_resumed_again_returns_its_final_metrics(tmp_path, capsys):
    out = harness.train(FakeDriver(), FakeConfig(str(tmp_path)), progress=False)
    harness.write_summary(out.run_dir, "fake", out.metrics)
    calls = EVENTS["calls"]
    again = harness.train(FakeDriver(), resume=out.run_dir, progress=False)
    assert (again.done, again.metrics) == (5, {"x": 15.0}) and EVENTS["calls"] == calls
    assert f"{out.run_dir} already finished 5 iterations" in capsys.readouterr().out
    (out.run_dir / "summary.json").unlink()  # killed after the last checkpoint: metrics.jsonl
    assert harness.train(FakeDriver(), resume=out.run_dir, progress=False).metrics == {"x": 15.0}


def test_ctrl_c_saves_the_last_iteration_and_resume_finishes(tmp_path, capsys):
    EVENTS["interrupt_at"] = 4
    with pytest.raises(KeyboardInterrupt):
        harness.train(FakeDriver(), FakeConfig(str(tmp_path)), progress=False)
    (run_dir,) = (tmp_path / "fake").iterdir()
    assert _iters(run_dir) == [2, 3]  # 3 was not due by the cadence: saved by the interrupt
    assert f"interrupted; resume with: regrl train --resume {run_dir}" in capsys.readouterr().out
    out = harness.train(FakeDriver(), resume=run_dir, progress=False)
    assert "resumed" in capsys.readouterr().out
    assert out.metrics == {"x": 15.0} and _iters(run_dir) == [2, 3, 4, 5]
    assert _steps(run_dir) == [1, 2, 3, 4, 5]


def test_resume_after_a_kill_drops_metrics_logged_after_the_checkpoint(tmp_path):
    out = harness.train(FakeDriver(), FakeConfig(str(tmp_path), total=3), progress=False)
    import shutil

    shutil.rmtree(list_checkpoints(out.run_dir)[-1])  # killed after logging 3, before saving it
    harness.train(FakeDriver(), resume=out.run_dir, progress=False)
    assert _steps(out.run_dir) == [1, 2, 3]


# ---- kinds moved onto the harness: SFT and the RIFT planner ------------------------------------
def _final(run_dir, key):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1][
        key
    ]


def _interrupt_at(monkeypatch, session_cls, epoch):
    original = session_cls.step

    def step(self, i):
        if i == epoch:
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(session_cls, "step", step)


def test_sft_resume_after_ctrl_c_matches_the_uninterrupted_run(tmp_path, monkeypatch):
    from regrl.trainers.rlvr import config as rc
    from regrl.trainers.rlvr.sft import SFTSession, train_sft

    def cfg(root):
        return rc.config_from_dict(
            {
                "kind": "sft",
                "runs_root": str(root),
                "model": {"path": "tiny", "tiny_width": 16},
                "data": {"task": {"name": "arithmetic", "kwargs": {"digits": 1}}, "n": 16},
                "training": {"epochs": 3, "batch_size": 8},
                "checkpoint": {"every": 5},
            },
            "test",
        )

    full = train_sft(cfg(tmp_path / "a"), progress=False)
    _interrupt_at(monkeypatch, SFTSession, 3)
    with pytest.raises(KeyboardInterrupt):
        train_sft(cfg(tmp_path / "b"), progress=False)
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "b" / "sft").iterdir()
    assert _iters(run_dir) == [2] and not (run_dir / "summary.json").exists()
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    assert _steps(run_dir) == [1, 2, 3] and (run_dir / "summary.json").is_file()
    assert _final(run_dir, "train/loss") == pytest.approx(
        _final(full.run_dir, "train/loss"), rel=1e-5
    )


def test_planner_resume_after_ctrl_c_matches_the_uninterrupted_run(tmp_path, monkeypatch):
    from regrl.trainers.traffic.pretrain import PretrainConfig, PretrainSession, pretrain
    from tests.trainers.test_rift_pretrain import synthetic_demos

    synthetic_demos(tmp_path / "demos.npz", n=48)

    def cfg(root):
        return PretrainConfig(
            runs_root=str(root),
            demos=str(tmp_path / "demos.npz"),
            num_modes=2,
            dim=8,
            epochs=3,
            batch_size=16,
            lr=3e-3,
            export=None,
            checkpoint=CheckpointConfig(every=1),
        )

    full = pretrain(cfg(tmp_path / "a"), progress=False)
    _interrupt_at(monkeypatch, PretrainSession, 3)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg(tmp_path / "b"), progress=False)
    monkeypatch.undo()
    (run_dir,) = (tmp_path / "b" / "rift_pretrain").iterdir()
    assert _iters(run_dir) == [1, 2]
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    assert _steps(run_dir) == [1, 2, 3] and (run_dir / "planner.pt").is_file()
    for key in ("pretrain/train_loss", "pretrain/val_loss"):
        assert _final(run_dir, key) == pytest.approx(_final(full, key), rel=1e-5)


def test_unknown_kind_is_one_error_line_naming_the_nearest(tmp_path, capsys):
    (tmp_path / "x.yaml").write_text("kind: rlvx\n")
    assert main(["validate", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown experiment kind 'rlvx'") and "Did you mean 'rlvr'" in err

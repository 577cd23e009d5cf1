"""Damaged, stray and partial checkpoints, crafted state files, empty iterations and the
Ray session: resume and eval recover from what a crash or a careless user leaves behind
(issue 15). No Ray is started here; the RL loop runs against a scripted fake algorithm."""

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from regrl.trainers import ray_session as session_module
from regrl.trainers.checkpoint import (
    MANIFEST_FILE,
    STATE_FILE,
    CheckpointError,
    RunAborted,
    choose_checkpoint,
    empty_iteration_streak,
    latest_checkpoint,
    list_checkpoints,
    load_torch_state,
    resume_checkpoint,
    save_checkpoint,
)
from regrl.trainers.cli import EXIT_BAD_INPUT, main

ROOT = Path(__file__).resolve().parents[2]


def fake_save(path):
    Path(path, "sub").mkdir(parents=True)
    Path(path, "algorithm_state.pkl").write_bytes(b"weights-" * 64)
    Path(path, "sub", "module.pt").write_bytes(b"module-" * 32)


def two_checkpoints(run_dir):
    for i in (2, 4):
        save_checkpoint(fake_save, run_dir, i, {"env_steps": 10.0 * i}, keep=5)
    return run_dir / "checkpoints" / "iter_000004"


# ----------------------------------------------------------------------------- manifests
def test_manifest_lists_every_file_with_size_and_hash(tmp_path):
    newest = two_checkpoints(tmp_path)
    files = json.loads((newest / MANIFEST_FILE).read_text())["files"]
    assert sorted(files) == ["algorithm_state.pkl", STATE_FILE, "sub/module.pt"]
    assert files["sub/module.pt"]["size"] == 7 * 32
    assert choose_checkpoint(tmp_path).path == newest
    assert not choose_checkpoint(tmp_path).legacy


def _delete(ckpt):
    (ckpt / "sub" / "module.pt").unlink()


def _truncate(ckpt):
    p = ckpt / "algorithm_state.pkl"
    p.write_bytes(p.read_bytes()[:100])


def _garble_same_size(ckpt):
    p = ckpt / "algorithm_state.pkl"
    data = bytearray(p.read_bytes())
    data[200] ^= 0xFF
    p.write_bytes(bytes(data))


def _garble_state(ckpt):
    (ckpt / STATE_FILE).write_text('{"iteration": 4, "env_st')


@pytest.mark.parametrize(
    "damage, why",
    [
        (_delete, "missing file sub/module.pt"),
        (_truncate, "algorithm_state.pkl has 100 bytes, the manifest says 512"),
        (_garble_same_size, "algorithm_state.pkl differs from its manifest sha256"),
        (_garble_state, f"{STATE_FILE} is not valid JSON"),
    ],
)
def test_damaged_newest_checkpoint_falls_back_to_the_intact_one(tmp_path, damage, why):
    damage(two_checkpoints(tmp_path))
    lines = []
    choice = resume_checkpoint(tmp_path, say=lines.append)
    assert choice.path.name == "iter_000002"
    assert choice.skipped[0][0] == "iter_000004" and why in choice.skipped[0][1]
    assert any("iter_000004 is damaged" in line and why in line for line in lines)
    assert any("falling back to iter_000002" in line for line in lines)
    warned = []
    assert latest_checkpoint(tmp_path, warn=warned.append).name == "iter_000002"  # eval path
    assert warned


def test_checkpoint_without_manifest_is_accepted_with_a_warning(tmp_path):
    newest = two_checkpoints(tmp_path)
    (newest / MANIFEST_FILE).unlink()  # as written by regrl before manifests
    lines = []
    choice = resume_checkpoint(tmp_path, say=lines.append)
    assert choice.path == newest and choice.legacy and not choice.skipped
    assert [line for line in lines if "no regrl_manifest.json" in line]


def test_every_checkpoint_damaged_is_refused_naming_each(tmp_path):
    _truncate(two_checkpoints(tmp_path))
    _garble_state(tmp_path / "checkpoints" / "iter_000002")
    with pytest.raises(
        CheckpointError,
        match=r"every checkpoint is damaged \(iter_000004: .*"
        r"iter_000002: regrl_state.json is not valid",
    ):
        resume_checkpoint(tmp_path, say=lambda line: None)


def test_run_without_checkpoint_says_it_starts_over(tmp_path):
    lines = []
    choice = resume_checkpoint(tmp_path, say=lines.append)
    assert choice.path is None
    assert lines == [f"{tmp_path} has no checkpoint yet; starting from iteration 1"]


def test_manifest_cannot_point_outside_the_checkpoint(tmp_path):
    newest = two_checkpoints(tmp_path)
    manifest = json.loads((newest / MANIFEST_FILE).read_text())
    manifest["files"]["../../secret"] = {"size": 1, "sha256": "0"}
    (newest / MANIFEST_FILE).write_text(json.dumps(manifest))
    (tmp_path / "secret").write_text("x")
    assert "outside the checkpoint" in choose_checkpoint(tmp_path).skipped[0][1]


# ----------------------------------------------------------------------------- strays, partials
def test_stray_entries_are_not_ours_and_are_ignored(tmp_path):
    two_checkpoints(tmp_path)
    root = tmp_path / "checkpoints"
    for name in ("iter_000003.bak", "iter_abc", "iter_7", "iter_0000099"):
        (root / name).mkdir()
        (root / name / STATE_FILE).write_text(json.dumps({"iteration": 3}))
    (root / "iter_000009").write_text("a file, not a checkpoint")
    (root / "notes.txt").write_text("x")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["iter_000002", "iter_000004"]
    assert latest_checkpoint(tmp_path).name == "iter_000004"


def test_partial_checkpoints_of_a_killed_run_are_removed_on_resume(tmp_path):
    two_checkpoints(tmp_path)
    root = tmp_path / "checkpoints"
    for name in (".tmp_iter_000006_999999", ".stage_000006"):
        (root / name).mkdir()
        (root / name / "half.pkl").write_bytes(b"x")
    lines = []
    choice = resume_checkpoint(tmp_path, say=lines.append)
    assert sorted(p.name for p in root.iterdir()) == ["iter_000002", "iter_000004"]
    assert choice.path.name == "iter_000004"
    assert "removed 2 partial checkpoint(s)" in lines[0]


# ----------------------------------------------------------------------------- untrusted files
class Payload:
    """What an attacker puts in a state file: unpickling it creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_pickle_state_is_not_executed(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "learner.pt"
    torch.save(Payload(marker), path)
    torch.load(path, weights_only=False).close()  # the payload is real: an unsafe load runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="refused to load; not a plain regrl state file"):
        load_torch_state(path)
    assert not marker.exists()
    torch.save({"model": {"w": torch.ones(2)}, "step": 3, "rng": torch.ByteTensor([1])}, path)
    assert load_torch_state(path)["step"] == 3  # our own plain state still loads


def test_no_unsafe_torch_load_in_the_packages():
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for pkg in ("trainers", "agents", "envs")
        for p in (ROOT / pkg).rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"weights_only\s*=\s*False|pickle\.loads?\(", line)
    ]
    assert offenders == []


@pytest.fixture
def offline_run(tmp_path):
    """A finished 2-epoch offline run (seconds, CPU)."""
    from regrl.trainers.offline import offline_config_from_dict, train_offline

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, 64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cfg = offline_config_from_dict(
        {
            "kind": "offline",
            "name": "t",
            "runs_root": str(tmp_path / "runs"),
            "data": {"path": str(tmp_path / "d.npz"), "val_fraction": 0.25},
            "model": {"hidden": [8]},
            "training": {"epochs": 2, "batch_size": 16},
            "checkpoint": {"every": 1, "keep": 3},
        }
    )
    run_dir = train_offline(cfg, progress=False).run_dir
    (run_dir / "summary.json").unlink()  # as if killed before the end
    return run_dir


def test_resume_with_a_crafted_state_file_is_one_error_line(offline_run, tmp_path, capsys):
    from regrl.trainers.checkpoint import write_manifest
    from regrl.trainers.offline import LEARNER_FILE

    marker = tmp_path / "pwned"
    for ckpt in list_checkpoints(offline_run):  # the attacker also rewrites the manifests
        torch.save(Payload(marker), ckpt / LEARNER_FILE)
        write_manifest(ckpt)
    assert main(["train", "--resume", str(offline_run), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "refused to load" in err[0]
    assert not marker.exists()


def test_offline_resume_falls_back_and_logs_it(offline_run, capsys):
    _truncate_file(offline_run / "checkpoints" / "iter_000002" / "learner.pt")
    assert main(["train", "--resume", str(offline_run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "iter_000002 is damaged" in out and "from iter_000001 (epoch 1)" in out
    acc = EventAccumulator(str(offline_run / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("perf/resume_fallbacks")] == [(2, 1.0)]
    assert "resume/text_summary" in acc.Tags()["tensors"]


def _truncate_file(path):
    path.write_bytes(path.read_bytes()[:-10])


def test_eval_of_a_run_whose_checkpoints_are_all_damaged(tmp_path, capsys):
    import yaml

    from regrl.trainers.config import load_config, to_dict

    cfg = load_config(str(ROOT / "configs/cartpole_ppo.yaml"), [])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    _truncate(two_checkpoints(tmp_path))
    _delete(tmp_path / "checkpoints" / "iter_000002")
    (tmp_path / "checkpoints" / "iter_000005.bak").mkdir()
    assert main(["eval", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "every checkpoint is damaged" in err[-1]
    assert "iter_000002: missing file sub/module.pt" in err[-1]


# ----------------------------------------------------------------------------- empty iterations
def test_empty_iteration_streak_counts_and_gives_up_after_count_and_time():
    lines, now = [], [100.0]
    kw = dict(say=lines.append, limit=3, min_seconds=60.0, clock=lambda: now[0])
    assert not empty_iteration_streak(0, {"env/env_steps": 400.0}, 1, **kw)
    assert lines == []
    streak = empty_iteration_streak(0, {"env/env_steps": 0.0}, 2, **kw)
    assert streak and streak.count == 1
    now[0] = 1000.0  # long enough, but only 2 in a row: keep waiting
    streak = empty_iteration_streak(streak, {}, 2, **kw)  # no env_steps key at all: empty too
    assert streak.count == 2
    assert lines == [
        "iteration 2 sampled 0 env steps (env runner restarting?); not counted (1 in a row, 0 s)",
        "iteration 2 sampled 0 env steps (env runner restarting?); not counted (2 in a row, 900 s)",
    ]
    streak = empty_iteration_streak(streak, {"env/env_steps": 1.0}, 2, **kw)
    assert not streak and streak.count == 0  # recovered: the next empty one starts over
    for _ in range(3):  # 3 in a row, but within 60 s: keep waiting
        streak = empty_iteration_streak(streak, {}, 2, **kw)
    assert streak.count == 3
    now[0] = 1060.0
    with pytest.raises(RunAborted, match=r"4 iterations in a row \(60 s\) sampled no env steps"):
        empty_iteration_streak(streak, {}, 2, **kw)


class FakeAlgo:
    """Stands in for an RLlib Algorithm: ``train()`` samples the scripted env-step counts."""

    env_runner_group = None
    restored: list = []

    def __init__(self, steps):
        self.steps = list(steps)

    def train(self):
        n = self.steps.pop(0)
        return {
            "time_this_iter_s": 1.0,
            "env_runners": {
                "num_env_steps_sampled": n,
                "episode_return_mean": 10.0 if n else float("nan"),
            },
        }

    def save_to_path(self, path):
        Path(path).mkdir(parents=True)
        Path(path, "algorithm_state.pkl").write_bytes(os.urandom(256))

    def restore_from_path(self, path):
        FakeAlgo.restored.append(Path(path).name)

    def stop(self):
        pass


@pytest.fixture
def fake_rllib(monkeypatch):
    """``regrl train`` of the RL kind without Ray: each build gets the next scripted algo."""
    import regrl.trainers.run as run

    scripts = []

    FakeAlgo.restored = []
    monkeypatch.setattr(session_module, "init_ray", lambda address=None: False)
    monkeypatch.setattr(run, "check_resources", lambda cfg, autoscaling: None)
    # where RLSession builds its algorithm; FakeAlgo is this module's global at call time
    monkeypatch.setattr(run, "build_algo", lambda cfg: FakeAlgo(scripts.pop(0)))
    return scripts


def rl_config(tmp_path, iterations, every=1):
    from regrl.trainers.config import load_config

    return load_config(
        str(ROOT / "configs/cartpole_ppo.yaml"),
        [
            f"runs_root={tmp_path}",
            f"training.iterations={iterations}",
            "training.stop_return=null",
            f"checkpoint.every={every}",
            "resources.num_env_runners=0",
            "resources.num_learners=0",
        ],
    )


def test_rl_run_does_not_count_empty_iterations(tmp_path, fake_rllib, capsys):
    from regrl.trainers.run import train

    fake_rllib.append([400, 0, 0, 400, 400])
    result = train(rl_config(tmp_path, 3))
    out = capsys.readouterr().out
    assert result.iteration == 3 and result.env_steps == 1200
    assert out.count("sampled 0 env steps") == 2 and "nan" not in out.lower()
    acc = EventAccumulator(str(result.run_dir / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("env/env_steps")] == [1, 2, 3]


def test_rl_run_gives_up_after_too_many_empty_iterations_and_keeps_the_run(
    tmp_path, fake_rllib, capsys, monkeypatch
):
    from regrl.trainers.checkpoint import MAX_EMPTY_ITERATIONS
    from regrl.trainers.run import train

    monkeypatch.setattr("regrl.trainers.checkpoint.MIN_EMPTY_SECONDS", 0.0)
    fake_rllib.append([400] + [0] * MAX_EMPTY_ITERATIONS)
    with pytest.raises(RunAborted):
        train(rl_config(tmp_path, 5, every=10), progress=False)
    run_dir = next(tmp_path.glob("cartpole_ppo/*"))
    assert [p.name for p in list_checkpoints(run_dir)] == ["iter_000001"]  # nothing lost
    assert f"aborted; resume with: regrl train --resume {run_dir}" in capsys.readouterr().out


def test_rl_resume_falls_back_and_logs_it_to_tensorboard(tmp_path, fake_rllib, capsys):
    from regrl.trainers.run import train

    fake_rllib.extend([[400, 400], [400]])
    run_dir = train(rl_config(tmp_path, 2), progress=False).run_dir
    _truncate_file(run_dir / "checkpoints" / "iter_000002" / "algorithm_state.pkl")
    result = train(resume=run_dir, progress=False)
    assert FakeAlgo.restored == ["iter_000001"] and result.iteration == 2
    assert "from iter_000001 (iteration 1)" in capsys.readouterr().out
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("perf/resume_fallbacks")] == [(2, 1.0)]


def test_rl_resume_of_a_run_with_only_damaged_checkpoints_never_starts_ray(
    tmp_path, fake_rllib, monkeypatch
):
    import regrl.trainers.run as run

    fake_rllib.append([400])
    run_dir = run.train(rl_config(tmp_path, 1), progress=False).run_dir
    _garble_state(run_dir / "checkpoints" / "iter_000001")
    monkeypatch.setattr(session_module, "init_ray", lambda address=None: pytest.fail("Ray started"))
    with pytest.raises(CheckpointError, match="every checkpoint is damaged"):
        run.train(resume=run_dir, progress=False)


# ----------------------------------------------------------------------------- the Ray session
def test_ray_session_shuts_down_only_what_it_started(monkeypatch):
    import ray

    calls = []
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    for started in (True, False):
        monkeypatch.setattr(session_module, "init_ray", lambda address=None, s=started: s)
        with pytest.raises(KeyboardInterrupt):
            with session_module.ray_session():
                raise KeyboardInterrupt  # Ctrl-C mid-run
    assert calls == ["shutdown"]


def test_train_shuts_down_its_ray_session_when_building_fails(tmp_path, monkeypatch):
    import ray

    import regrl.trainers.run as run

    calls = []
    monkeypatch.setattr(session_module, "init_ray", lambda address=None: True)
    monkeypatch.setattr(run, "check_resources", lambda cfg, autoscaling: None)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))

    def broken(cfg):
        raise RuntimeError("env runner failed to start")

    monkeypatch.setattr(run, "build_algo", broken)
    with pytest.raises(RuntimeError, match="env runner failed"):
        run.train(rl_config(tmp_path, 1), progress=False)
    assert calls == ["shutdown"]


# ----------------------------------------------------------------------------- RLVR and SFT runs
LM_RUNS = {  # kind -> (config, the torch state file each checkpoint holds)
    "rlvr": (
        {
            "kind": "rlvr",
            "model": {"path": "tiny", "tiny_width": 16},
            "task": {"name": "arithmetic", "kwargs": {"digits": 1}},
            "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 4},
            "training": {"steps": 2, "micro_batch_size": 4},
            "eval": {"every": 0},
            "checkpoint": {"every": 1, "keep": 3},
        },
        "learner_state.pt",
    ),
    "sft": (
        {
            "kind": "sft",
            "model": {"path": "tiny", "tiny_width": 16},
            "data": {"task": {"name": "arithmetic", "kwargs": {"digits": 1}}, "n": 16},
            "training": {"epochs": 2, "batch_size": 8},
            "checkpoint": {"every": 1, "keep": 3},
        },
        "sft_state.pt",
    ),
}


def lm_run(tmp_path, kind):
    """A finished 2-step tiny RLVR (local mode, no Ray) or 2-epoch SFT run (seconds)."""
    from regrl.trainers.rlvr import config as rc
    from regrl.trainers.rlvr.loop import train_rlvr
    from regrl.trainers.rlvr.sft import train_sft

    raw, state_file = LM_RUNS[kind]
    cfg = rc.config_from_dict({**raw, "runs_root": str(tmp_path / "runs")}, "test")
    result = (train_rlvr if kind == "rlvr" else train_sft)(cfg, progress=False)
    return result.run_dir, state_file


@pytest.mark.parametrize("kind", sorted(LM_RUNS))
def test_lm_resume_falls_back_from_a_damaged_state_file(tmp_path, kind, capsys):
    run_dir, state_file = lm_run(tmp_path, kind)
    _truncate_file(run_dir / "checkpoints" / "iter_000002" / state_file)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"iter_000002 is damaged ({state_file} has" in out
    assert "falling back to iter_000001" in out
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("perf/resume_fallbacks")] == [(2, 1.0)]
    assert choose_checkpoint(run_dir).path.name == "iter_000002"  # rewritten, intact again


@pytest.mark.parametrize("kind", sorted(LM_RUNS))
def test_lm_resume_refuses_a_crafted_state_file(tmp_path, kind, capsys):
    from regrl.trainers.checkpoint import write_manifest

    run_dir, state_file = lm_run(tmp_path, kind)
    marker = tmp_path / "pwned"
    for ckpt in list_checkpoints(run_dir):
        torch.save(Payload(marker), ckpt / state_file)
        write_manifest(ckpt)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused to load" in errors[0] and state_file in errors[0]
    assert "Unsupported global: GLOBAL io.open" in errors[0] and "Traceback" not in err
    assert not marker.exists()


# ----------------------------------------------------------------------------- RIFT planner file
@pytest.mark.parametrize("content", ["truncated", "crafted"])
def test_damaged_or_crafted_planner_file_is_one_error_line(tmp_path, content, capsys):
    pytest.importorskip("metadrive")
    from regrl.agents.models.planner import Planner, PlannerConfig, save_planner

    path, marker = tmp_path / "planner.pt", tmp_path / "pwned"
    if content == "truncated":
        save_planner(path, Planner(PlannerConfig()))
        path.write_bytes(path.read_bytes()[:-100])
    else:
        torch.save({"config": {}, "state_dict": Payload(marker)}, path)
    code = main(
        ["validate", str(ROOT / "configs/rift_ci.yaml"), "--set", f"env.kwargs.planner={path}"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_BAD_INPUT and len(err) == 1
    assert err[0].startswith("error:") and "not a readable planner checkpoint" in err[0]
    assert not marker.exists()


@pytest.mark.slow
def test_killed_env_runner_iterations_are_not_counted(tmp_path, ray_session, monkeypatch, capsys):
    """Real RLlib (minutes on 2 cores): SIGKILL the only env runner after iteration 1; the
    iterations that sample nothing while Ray restarts it are reported and not counted. The
    fake-algorithm tests above cover the same loop path in seconds."""
    import signal

    import regrl.trainers.run as run

    killed, health = [], run.runner_health

    def health_then_kill(algo):
        out = health(algo)
        if not killed:
            pid = algo.env_runner_group.foreach_env_runner(
                lambda r: os.getpid(), local_env_runner=False
            )[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return out

    monkeypatch.setattr(run, "runner_health", health_then_kill)
    cfg = rl_config(tmp_path, 3)
    cfg = dataclasses.replace(
        cfg,
        resources=dataclasses.replace(
            cfg.resources, num_env_runners=1, num_cpus_per_env_runner=0.5
        ),
    )
    cfg = dataclasses.replace(
        cfg,
        training=dataclasses.replace(
            cfg.training, train_batch_size=200, minibatch_size=64, num_epochs=1
        ),
    )
    result = run.train(cfg)
    out = capsys.readouterr().out
    assert killed and result.iteration == 3
    assert "sampled 0 env steps" in out and not re.search(r"return\s+nan", out)
    acc = EventAccumulator(str(result.run_dir / "tb"))
    acc.Reload()
    events = acc.Scalars("env/env_steps")
    assert [e.step for e in events] == [1, 2, 3] and all(e.value > 0 for e in events)

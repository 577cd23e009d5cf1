"""Metric namespacing, progress lines and checkpoint bookkeeping (no Ray)."""

import io
import json

import pytest

from regrl.trainers.checkpoint import (
    STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    module_checkpoint_path,
    read_state,
    save_checkpoint,
)
from regrl.trainers.logging import Progress, namespace_metrics

RESULT = {
    "env_runners": {
        "episode_return_mean": 42.5,
        "episode_len_mean": 42.5,
        "num_env_steps_sampled": 1000,
        "num_episodes": 7,
    },
    "learners": {
        "default_policy": {
            "policy_loss": -0.1,
            "kl": 0.02,
            "clip_frac": 0.1,
            "entropy": 0.6,
            "weights_seq_no": 3.0,
            "num_module_steps_trained_lifetime": 500,
        },
        "__all_modules__": {"num_env_steps_trained": 1000},
    },
    "time_this_iter_s": 4.0,
    "config": {"lr": 0.1},
}


def test_namespace_metrics_single_module():
    m = namespace_metrics(RESULT)
    assert m["env/episode_return_mean"] == 42.5
    assert m["learner/policy_loss"] == -0.1 and m["learner/kl"] == 0.02
    assert m["perf/env_steps_per_s"] == 250.0
    assert not any("weights_seq_no" in k or "lifetime" in k or "config" in k for k in m)


def test_namespace_metrics_multi_module_keeps_module_ids():
    result = {"learners": {"p0": {"policy_loss": 1.0}, "p1": {"policy_loss": 2.0}}}
    assert namespace_metrics(result) == {
        "learner/p0/policy_loss": 1.0,
        "learner/p1/policy_loss": 2.0,
    }


def test_non_finite_values_are_dropped():
    result = {"env_runners": {"episode_return_mean": float("nan")}}
    assert "env/episode_return_mean" not in namespace_metrics(result)


def test_progress_plain_lines_when_not_a_tty():
    stream = io.StringIO()
    bar = Progress(10, enabled=True, stream=stream)
    bar.update(3, {"env/episode_return_mean": 12.5, "perf/iteration_s": 2.0}, 6000)
    bar.close()
    assert stream.getvalue() == "iter    3/10  env_steps     6000  return    12.50    2.00s\n"
    quiet = io.StringIO()
    Progress(10, enabled=False, stream=quiet).update(1, {}, 0)
    assert quiet.getvalue() == ""


def fake_save(path):
    from pathlib import Path

    Path(path).mkdir(parents=True)
    (Path(path) / "algorithm_state.pkl").write_text("x")


def test_checkpoints_are_atomic_pruned_and_ordered(tmp_path):
    for i in (2, 4, 6, 10):
        save_checkpoint(fake_save, tmp_path, i, {"env_steps": 100.0 * i}, keep=3)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["iter_000004", "iter_000006", "iter_000010"]
    assert read_state(latest_checkpoint(tmp_path)) == {"env_steps": 1000.0, "iteration": 10}
    # a checkpoint killed mid-write has no state file and is never picked up
    half = tmp_path / "checkpoints" / "iter_000012"
    half.mkdir()
    assert latest_checkpoint(tmp_path).name == "iter_000010"


def test_module_checkpoint_path_resolution(tmp_path):
    mod = (
        tmp_path
        / "checkpoints"
        / "iter_000003"
        / "learner_group"
        / "learner"
        / "rl_module"
        / "default_policy"
    )
    mod.mkdir(parents=True)
    (mod / "class_and_ctor_args.pkl").write_text("x")
    (mod.parents[3] / STATE_FILE).write_text(json.dumps({"iteration": 3}))
    assert module_checkpoint_path(tmp_path, "default_policy") == mod.resolve()
    assert module_checkpoint_path(mod, "default_policy") == mod.resolve()
    with pytest.raises(FileNotFoundError, match="no RLModule 'p1'"):
        module_checkpoint_path(tmp_path, "p1")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        module_checkpoint_path(tmp_path / "nope", "default_policy")


def test_progress_line_says_no_episode_instead_of_nan():
    """An iteration in which no episode finished (SMARL's 1000-decision episodes) shows '—',
    never 'nan'; a finished one shows its mean return."""
    from regrl.trainers.logging import Progress

    empty = Progress.line(1, 2, {"perf/iteration_s": 3.0}, 800)
    assert "nan" not in empty and "return        —" in empty
    done = Progress.line(2, 2, {"env/episode_return_mean": 50.54, "perf/iteration_s": 3.0}, 1600)
    assert "return    50.54" in done


def test_a_resume_that_fails_while_dropping_rows_keeps_the_whole_metrics_log(tmp_path, monkeypatch):
    """Catches ``purge_jsonl`` writing the kept rows in place: a failure midway (disk full, a
    kill) left a truncated ``metrics.jsonl`` instead of the log as it was."""
    from regrl import files
    from regrl.trainers.logging import purge_jsonl

    log = tmp_path / "metrics.jsonl"
    before = "".join(json.dumps({"step": s, "x": s}) + "\n" for s in range(5))
    log.write_text(before)

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        purge_jsonl(log, 2)
    assert log.read_text() == before
    monkeypatch.undo()
    purge_jsonl(log, 2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [0, 1]

"""The offline learner: config validation, data formats and bad data, the three tasks, every
plugin through the learner, TensorBoard, exact resume, and data-parallel training (two
torch.distributed processes, and two Ray Train workers)."""

import json
import math
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from regrl.agents.offline import PLUGINS
from regrl.trainers import harness
from regrl.trainers.checkpoint import latest_checkpoint, list_checkpoints
from regrl.trainers.config import ConfigError
from regrl.trainers.kinds import KINDS
from regrl.trainers.offline import (
    LEARNER_FILE,
    Worker,
    ddp_worker,
    fit,
    is_offline_config,
    load_offline_config,
    offline_config_from_dict,
    prepare_data,
    train_offline,
)

ROOT = Path(__file__).resolve().parents[2]


def blobs(n=240, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(classes, d))
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def config(tmp_path, data_path, **over):
    raw = {
        "kind": "offline",
        "name": "t",
        "runs_root": str(tmp_path / "runs"),
        "data": {"path": str(data_path), "val_fraction": 0.25},
        "model": {"hidden": [32, 32]},
        "training": {"epochs": 6, "batch_size": 32, "lr": 0.01},
        "checkpoint": {"every": 2, "keep": 2},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


@pytest.fixture(scope="module")
def blob_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "blobs.npz"
    x, y = blobs()
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def regression_file(tmp_path_factory):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = np.stack([x @ [1.0, -2.0, 0.5, 0.0], np.sin(x[:, 0])], 1).astype(np.float32)
    path = tmp_path_factory.mktemp("data") / "reg.npz"
    np.savez(path, obs=x, act=y)
    return path


# ---- config ----------------------------------------------------------------------------------
def test_shipped_config_validates():
    cfg = load_offline_config(ROOT / "configs" / "offline_digits.yaml")
    assert is_offline_config(yaml.safe_load((ROOT / "configs/offline_digits.yaml").read_text()))
    assert not is_offline_config({"env": {"name": "CartPole-v1"}})
    assert cfg.plugins[0].name == "elr" and cfg.plugins[0].params.lam == 3.0
    over = load_offline_config(
        ROOT / "configs/offline_digits.yaml",
        ["plugins=[{name: pskd, alpha_T: 0.5}]", "training.epochs=3"],
    )
    assert over.plugins[0].params.alpha_T == 0.5 and over.training.epochs == 3


@pytest.mark.parametrize(
    "over, match",
    [
        ({"training": {"epoch": 3}}, "did you mean 'epochs'"),
        ({"plugins": [{"name": "elrr"}]}, "Did you mean 'elr'"),
        ({"plugins": [{"name": "elr", "beta": 2.0}]}, r"plugins\[0\] \(elr\).*beta must be in"),
        ({"plugins": [{"name": "elr", "betta": 0.5}]}, "unknown key 'betta'"),
        ({"plugins": [{"name": "elr"}, {"name": "mixup"}]}, "cannot be combined"),
        ({"plugins": [{"name": "stablemax"}], "task": "regression"}, "does not apply to task"),
        ({"plugins": [{"name": "coteaching"}], "resources": {"num_workers": 2}}, "num_workers: 0"),
        ({"plugins": [{"name": "self_distill", "rounds": 9}]}, "exceeds training.epochs"),
        ({"data": {"path": ""}}, "data.path is required"),
        ({"task": "ranking"}, "must be one of"),
    ],
)
def test_config_errors(tmp_path, over, match):
    with pytest.raises(ConfigError, match=match):
        offline_config_from_dict(config(tmp_path, "d.npz", **over), "exp.yaml")


# ---- data ------------------------------------------------------------------------------------
def test_npz_parquet_jsonl_load_the_same(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y = blobs(n=20)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    pq.write_table(pa.table({"x": list(x), "y": y}), tmp_path / "d.parquet")
    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"x": r.tolist(), "y": int(c)}) + "\n" for r, c in zip(x, y))
    )
    loaded = [
        prepare_data(offline_config_from_dict(config(tmp_path, tmp_path / f"d.{s}")))
        for s in ("npz", "parquet", "jsonl")
    ]
    for d in loaded[1:]:
        torch.testing.assert_close(d.x_train, loaded[0].x_train)
        assert torch.equal(d.y_val, loaded[0].y_val) and d.out_dim == 3


def _bad(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "no such dataset file"),
        ("suffix", "cannot infer the format"),
        ("key", "missing key 'y'; the file has: x, labels"),
        ("nan", "key 'x' has NaN or infinite values .first at row 3"),
        ("range", "key 'y' has id 5 >= model.out_dim=3"),
        ("negative", "key 'y' has id -1 < 0"),
        ("fraction", "must hold integer ids"),
        ("length", "'x' has 10 rows but 'y' has 9"),
        ("ragged", "ragged or not numeric"),
    ],
)
def test_bad_data_names_file_and_key(tmp_path, case, match):
    x, y = np.zeros((10, 2), np.float32), np.arange(10) % 3
    out_dim = None
    if case == "missing":
        path = tmp_path / "none.npz"
    elif case == "suffix":
        path = tmp_path / "d.csv"
        path.write_text("1,2\n")
    elif case == "key":
        path = _bad(tmp_path, "d.npz", x=x, labels=y)
    elif case == "nan":
        x[3, 1] = np.nan
        path = _bad(tmp_path, "d.npz", x=x, y=y)
    elif case == "range":
        y[4], out_dim = 5, 3
        path = _bad(tmp_path, "d.npz", x=x, y=y)
    elif case == "negative":
        path = _bad(tmp_path, "d.npz", x=x, y=y - 1)
    elif case == "fraction":
        path = _bad(tmp_path, "d.npz", x=x, y=y + 0.5)
    elif case == "length":
        path = _bad(tmp_path, "d.npz", x=x, y=y[:9])
    else:
        path = tmp_path / "d.jsonl"
        path.write_text('{"x": [1, 2], "y": 0}\n{"x": [1], "y": 1}\n')
    cfg = offline_config_from_dict(config(tmp_path, path, model={"out_dim": out_dim}))
    with pytest.raises(ConfigError, match=match) as err:
        train_offline(cfg, progress=False)
    assert str(path) in str(err.value)
    assert not (tmp_path / "runs").exists()  # nothing is created for bad data


# ---- tasks, logging, checkpoints -------------------------------------------------------------
def test_classification_trains_logs_and_checkpoints(tmp_path, blob_file):
    cfg = offline_config_from_dict(
        config(tmp_path, blob_file, plugins=[{"name": "elr"}, {"name": "dispersive"}])
    )
    result = train_offline(cfg, progress=False)
    assert result.metrics["val/accuracy"] > 0.9
    run = result.run_dir
    assert result.epoch == 6 and not (run / "metrics.json").exists()
    summary = json.loads((run / "summary.json").read_text())  # the harness's finished marker
    assert summary["kind"] == "offline" and summary["metrics"] == result.metrics
    assert yaml.safe_load((run / "config.yaml").read_text())["plugins"][0] == {
        "name": "elr",
        "beta": 0.7,
        "lam": 3.0,
    }
    assert [c.name for c in list_checkpoints(run)] == ["iter_000004", "iter_000006"]
    assert {"learner.pt", "plugins_rank0.pt"} <= {p.name for p in latest_checkpoint(run).iterdir()}
    acc = EventAccumulator(str(run / "tb")).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "train/loss",
        "train/accuracy",
        "val/loss",
        "val/accuracy",
        "plugin/elr/penalty",
        "plugin/dispersive/loss",
        "perf/epoch_s",
    } <= tags
    losses = [e.value for e in acc.Scalars("train/task_loss")]
    assert len(losses) == 6 and losses[-1] < losses[0]


@pytest.mark.parametrize("loss", ["mse", "gaussian_nll"])
def test_regression_behaviour_cloning(tmp_path, regression_file, loss):
    cfg = offline_config_from_dict(
        config(
            tmp_path,
            regression_file,
            task="regression",
            data={"x_key": "obs", "y_key": "act"},
            training={"regression_loss": loss, "epochs": 8},
        )
    )
    result = train_offline(cfg, progress=False)
    assert result.metrics["val/mse"] < 0.15 * 2.6  # the targets' variance is about 2.6


@pytest.mark.parametrize("plugins", [[], [{"name": "stablemax"}]])
def test_token_sft_learns_next_token(tmp_path, plugins):
    rng = np.random.default_rng(0)
    V, T = 7, 6
    start = rng.integers(0, V, 300)
    seq = (start[:, None] + np.arange(T + 1)) % V  # next token = current + 1 (mod V)
    x, y = seq[:, :-1], seq[:, 1:].copy()
    y[::3, -2:] = -1  # padding
    np.savez(tmp_path / "sft.npz", tokens=x, targets=y)
    cfg = offline_config_from_dict(
        config(
            tmp_path,
            tmp_path / "sft.npz",
            task="tokens",
            plugins=plugins,
            data={"x_key": "tokens", "y_key": "targets"},
            training={"epochs": 5},
        )
    )
    result = train_offline(cfg, progress=False)
    assert result.metrics["val/accuracy"] > 0.95


def _weights(run_dir):
    return torch.load(latest_checkpoint(run_dir) / LEARNER_FILE, weights_only=False)["model"]


def test_resume_reproduces_the_uninterrupted_run(tmp_path, blob_file):
    plugins = [{"name": "elr"}, {"name": "nested_dropout", "sigma": 8.0}, {"name": "hft"}]
    cfg = offline_config_from_dict(
        config(tmp_path, blob_file, plugins=plugins, training={"epochs": 4}, checkpoint={"keep": 5})
    )
    full = train_offline(cfg, progress=False).run_dir
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "iter_000004")  # as if killed during epoch 3 or 4
    (cut / "summary.json").unlink()
    resumed = train_offline(resume=cut, progress=False)
    assert resumed.metrics["val/loss"] == pytest.approx(
        json.loads((full / "summary.json").read_text())["metrics"]["val/loss"], abs=1e-6
    )
    for key, value in _weights(full).items():
        torch.testing.assert_close(_weights(cut)[key], value, rtol=0, atol=0)
    steps = [e.step for e in EventAccumulator(str(cut / "tb")).Reload().Scalars("train/loss")]
    assert sorted(set(steps)) == [1, 2, 3, 4]


# ---- every plugin through the learner --------------------------------------------------------
SMOKE = {
    "ignite": ("regression", {}),
    "self_distill": ("classification", {"rounds": 2}),
    "coteaching": ("classification", {"num_gradual": 2, "forget_rate": 0.2}),
    "soft_equivariance": ("regression", {"rotation": 0.01, "reflection": 0.01}),
}


@pytest.mark.parametrize("name", sorted(PLUGINS.names()))
def test_plugin_smoke_through_learner(tmp_path, blob_file, regression_file, name):
    task, params = SMOKE.get(name, ("classification", {}))
    data = (
        {"path": str(regression_file), "x_key": "obs", "y_key": "act"}
        if task == "regression"
        else {}
    )
    if PLUGINS.get(name).needs_validation:  # STN, the noise-mask policy: a tuning split
        data = {**data, "tune_fraction": 0.2}
    cfg = offline_config_from_dict(
        config(
            tmp_path,
            blob_file,
            task=task,
            data=data,
            plugins=[{"name": name, **params}],
            training={"epochs": 4},
        )
    )
    metrics = train_offline(cfg, progress=False).metrics
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    if task == "classification":
        assert metrics["val/accuracy"] > 0.6, metrics  # chance is 1/3
    else:
        assert metrics["val/mse"] < 1.0, metrics


# ---- data parallel ---------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_TIMEOUT = timedelta(seconds=120)
"""A rank waiting on a peer that left the loop fails after this instead of hanging the test."""


def _ddp_entry(rank, world, port, raw, run_dir, stop=None):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=DDP_TIMEOUT)
    try:
        fit(offline_config_from_dict(raw), Path(run_dir), False, False, ddp_worker(), stop)
    finally:
        torch.distributed.destroy_process_group()


def test_data_parallel_two_processes(tmp_path, blob_file):
    """The DDP code path of the Ray Train workers, launched by torch.multiprocessing."""
    raw = config(
        tmp_path,
        blob_file,
        plugins=[{"name": "elr"}, {"name": "glad"}],
        resources={"num_workers": 2},
        training={"epochs": 4},
    )
    cfg = offline_config_from_dict(raw)
    run_dir = harness.open_run(KINDS.get("offline"), cfg, None)[0]
    torch.multiprocessing.spawn(_ddp_entry, args=(2, _free_port(), raw, str(run_dir)), nprocs=2)
    metrics = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["val/accuracy"] > 0.9
    files = {p.name for p in latest_checkpoint(run_dir).iterdir()}
    assert {"learner.pt", "plugins_rank0.pt", "plugins_rank1.pt"} <= files
    t0 = torch.load(latest_checkpoint(run_dir) / "plugins_rank0.pt", weights_only=False)
    seen0 = t0["plugins"]["elr"]["t"].sum(1) > 0
    assert seen0[0::2][: len(seen0) // 2].all() and not seen0[1::2].any()  # its shard only


class _StopAtPoll:
    """The driver's SIGTERM request (a GroupStop) as it is read: set from poll ``at`` on."""

    def __init__(self, at):
        self.at, self.polls = at, 0

    def requested(self):
        self.polls += 1
        return self.polls >= self.at


def test_data_parallel_group_stops_together_after_the_requested_epoch(tmp_path, blob_file):
    """Rank 0 alone reads the request; both ranks leave after epoch 3 and write its checkpoint
    (had rank 0 left alone, rank 1's next epoch would wait on it until the gloo timeout)."""
    raw = config(
        tmp_path,
        blob_file,
        resources={"num_workers": 2},
        training={"epochs": 8},
        checkpoint={"every": 100, "keep": 2},
    )
    cfg = offline_config_from_dict(raw)
    run_dir = harness.open_run(KINDS.get("offline"), cfg, None)[0]
    args = (2, _free_port(), raw, str(run_dir), _StopAtPoll(3))
    torch.multiprocessing.spawn(_ddp_entry, args=args, nprocs=2)
    assert [p.name for p in list_checkpoints(run_dir)] == ["iter_000003"]
    files = {p.name for p in latest_checkpoint(run_dir).iterdir()}
    assert {"learner.pt", "plugins_rank0.pt", "plugins_rank1.pt"} <= files
    steps = [json.loads(r)["step"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_worker_mean_single_process():
    assert Worker().mean({"a": 1.5}) == {"a": 1.5}


def test_ray_train_two_workers(tmp_path, blob_file, monkeypatch):
    """Also with a data path relative to the driver's directory (Ray Train workers chdir)."""
    import ray

    monkeypatch.chdir(Path(blob_file).parent)
    raw = config(
        tmp_path,
        blob_file,
        plugins=[{"name": "elr"}],
        resources={"num_workers": 2},
        training={"epochs": 2},
    )
    raw["data"]["path"] = Path(blob_file).name
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        cfg = offline_config_from_dict(raw)
        result = train_offline(cfg, progress=False)
    finally:
        ray.shutdown()
    assert result.metrics["val/accuracy"] > 0.6
    files = {p.name for p in latest_checkpoint(result.run_dir).iterdir()}
    assert {"plugins_rank0.pt", "plugins_rank1.pt"} <= files


def test_ctrl_c_checkpoints_the_last_epoch_and_resume_finishes(tmp_path, blob_file, monkeypatch):
    import regrl.trainers.offline as offline

    real, calls = offline._epoch, []

    def interrupt_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    cfg = offline_config_from_dict(
        config(tmp_path, blob_file, training={"epochs": 4}, checkpoint={"every": 10})
    )
    monkeypatch.setattr(offline, "_epoch", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        train_offline(cfg, progress=False)
    monkeypatch.setattr(offline, "_epoch", real)
    run_dir = next((tmp_path / "runs" / "t").iterdir())
    assert [c.name for c in list_checkpoints(run_dir)] == ["iter_000002"]
    result = train_offline(resume=run_dir, progress=False)
    assert result.metrics["val/accuracy"] > 0.9
    again = train_offline(resume=run_dir, progress=False)  # already finished: nothing to do
    assert again.metrics == json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert again.metrics == result.metrics and again.epoch == 4


def test_a_finished_run_of_before_summary_json_is_still_read(tmp_path, blob_file, capsys):
    """Offline runs written before the kind ran on the harness ended with metrics.json (with
    ``epoch``) and no summary.json: resuming one finds it finished, and regrl eval reads it."""
    from regrl.trainers.cli import main

    cfg = offline_config_from_dict(config(tmp_path, blob_file, training={"epochs": 2}))
    run_dir = train_offline(cfg, progress=False).run_dir
    old = {"val/loss": 0.25, "val/accuracy": 0.75, "epoch": 2}  # distinct from the real ones
    (run_dir / "summary.json").unlink()
    (run_dir / "metrics.json").write_text(json.dumps(old))
    again = train_offline(resume=run_dir, progress=False)
    assert again.metrics == {"val/loss": 0.25, "val/accuracy": 0.75} and again.epoch == 2
    capsys.readouterr()
    (run_dir / "summary.json").unlink()  # the resume marked it finished; an old run has none
    assert main(["eval", str(run_dir)]) == 0
    assert '"val/accuracy": 0.75' in capsys.readouterr().out

"""The offline learner's tuning split and validation step (the mechanism behind STN and the
policy-gradient noise mask): the split is held out of the training rows, seeded and disjoint,
and every training step is followed by one validation step on a tuning batch."""

from pathlib import Path

import numpy as np
import pytest
import torch

from regrl.agents.offline import Plugin, TaskInfo
from regrl.trainers.offline import (
    OfflineLearner,
    offline_config_from_dict,
    prepare_data,
    shard_indices,
)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    x = np.arange(200, dtype=np.float32)[:, None].repeat(3, axis=1)  # row i holds the value i
    y = rng.integers(0, 3, 200)
    path = tmp_path_factory.mktemp("tune") / "rows.npz"
    np.savez(path, x=x, y=y)
    return path


def cfg(path: Path, tune: float, seed: int = 0, plugins=()):
    return offline_config_from_dict(
        {
            "kind": "offline",
            "seed": seed,
            "data": {"path": str(path), "val_fraction": 0.2, "tune_fraction": tune},
            "model": {"hidden": [8]},
            "training": {"epochs": 2, "batch_size": 32, "lr": 0.01},
            "plugins": list(plugins),
        }
    )


def _rows(x: torch.Tensor) -> set:
    return set(x[:, 0].long().tolist())


def test_tuning_split_is_held_out_of_training_and_seeded(data_file):
    plain = prepare_data(cfg(data_file, 0.0))
    assert plain.x_tune is None and len(plain.x_train) == 160
    data = prepare_data(cfg(data_file, 0.25))
    assert len(data.x_tune) == 40 and len(data.x_train) == 120
    train, tune, val = _rows(data.x_train), _rows(data.x_tune), _rows(data.x_val)
    assert train | tune == _rows(plain.x_train)  # carved from the training rows only
    assert not train & tune and not tune & val
    assert _rows(prepare_data(cfg(data_file, 0.25)).x_tune) == tune  # same seed, same split
    assert _rows(prepare_data(cfg(data_file, 0.25, seed=1)).x_tune) != tune


def test_bad_tune_fraction_is_one_line():
    with pytest.raises(Exception, match=r"data.tune_fraction must be in \[0, 1\)"):
        offline_config_from_dict({"kind": "offline", "data": {"path": "x.npz", "tune_fraction": 1}})


class Recorder(Plugin):
    """Records what the learner hands to the validation step."""

    name = "recorder"
    needs_validation = True

    def __init__(self, info):
        super().__init__(None, info)
        self.seen, self.steps, self.weights = [], 0, []

    def after_step(self, model):
        self.steps += 1
        return {}

    def validation_step(self, model, batch, epoch):
        self.seen.append(_rows(batch["x"]))
        self.weights.append(model.head.weight.detach().clone())
        assert self.steps == len(self.seen)  # called after the step it follows
        return {"calls": torch.tensor(float(len(self.seen)))}


def test_every_training_step_is_followed_by_a_validation_step(data_file):
    c = cfg(data_file, 0.25)
    data = prepare_data(c)
    learner = OfflineLearner(c, data, torch.device("cpu"))
    rec = Recorder(TaskInfo("classification", len(data.x_train), 3, 2, 0))
    learner.plugins.append(rec)
    learner.tuners = [rec]
    metrics = learner.train_epoch(0, data, shard_indices(len(data.x_train), 0, 1), 32)
    assert rec.steps == len(rec.seen) == 4  # 120 training rows in batches of 32
    assert set().union(*rec.seen) == _rows(data.x_tune)  # 40 tuning rows: 32 + 8, cycled
    assert not set().union(*rec.seen) & _rows(data.x_train)
    assert metrics["plugin/recorder/calls"] == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert not torch.equal(rec.weights[0], rec.weights[1])  # the model moved in between


def test_each_epoch_reports_the_tuning_split_as_tune_metrics(data_file):
    """tune/loss and tune/accuracy are the model's loss and accuracy on the tuning rows (what a
    sweep selects on when the validation file is the test set), besides val/ on the val rows."""
    import torch.nn.functional as F

    from regrl.trainers.offline import Worker, _epoch

    c = cfg(data_file, 0.25)
    data = prepare_data(c)
    learner = OfflineLearner(c, data, torch.device("cpu"))
    metrics = _epoch(learner, data, shard_indices(len(data.x_train), 0, 1), 32, 0, Worker())
    learner.model.eval()
    with torch.no_grad():
        for prefix, x, y in (("tune", data.x_tune, data.y_tune), ("val", data.x_val, data.y_val)):
            out = learner.model(x)["out"]
            acc = float((out.argmax(-1) == y).float().mean())
            assert metrics[f"{prefix}/accuracy"] == pytest.approx(acc)
            assert metrics[f"{prefix}/loss"] == pytest.approx(float(F.cross_entropy(out, y)))
    plain = cfg(data_file, 0.0)
    plain_data = prepare_data(plain)
    shard = shard_indices(len(plain_data.x_train), 0, 1)
    assert not any(k.startswith("tune/") for k in _epoch(
        OfflineLearner(plain, plain_data, torch.device("cpu")), plain_data, shard, 32, 0, Worker()
    ))  # fmt: skip


def test_no_tuning_plugin_means_no_validation_steps(data_file):
    c = cfg(data_file, 0.25)
    data = prepare_data(c)
    learner = OfflineLearner(c, data, torch.device("cpu"))
    assert learner.tuners == [] and learner._tune_batches(0, data, 32) == []


def test_resume_with_tuning_plugins_reproduces_the_uninterrupted_run(tmp_path, data_file):
    import shutil

    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.offline import LEARNER_FILE, train_offline

    raw = cfg(data_file, 0.25, plugins=[{"name": "stn", "warmup_epochs": 0},
                                        {"name": "pg_noise_mask"}])  # fmt: skip
    from regrl.trainers.offline import offline_to_dict

    raw = offline_to_dict(raw)
    raw.update(runs_root=str(tmp_path / "runs"), checkpoint={"every": 1, "keep": 5})
    raw["training"]["epochs"] = 3
    full = train_offline(offline_config_from_dict(raw), progress=False).run_dir
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "iter_000003")
    (cut / "summary.json").unlink()
    train_offline(resume=cut, progress=False)

    def weights(run_dir):
        return torch.load(latest_checkpoint(run_dir) / LEARNER_FILE, weights_only=False)["model"]

    for key, value in weights(full).items():
        torch.testing.assert_close(weights(cut)[key], value, rtol=0, atol=0)


# ---- model.init_from: a pre-trained network as the run's start ------------------------------
def test_init_from_a_run_starts_from_its_weights_and_plugins_wrap_them(tmp_path, data_file):
    from regrl.trainers.offline import offline_to_dict, train_offline

    raw = offline_to_dict(cfg(data_file, 0.0))
    raw.update(runs_root=str(tmp_path / "runs"))
    pre = train_offline(offline_config_from_dict(raw), progress=False).run_dir
    trained = OfflineLearner(offline_config_from_dict(raw), prepare_data(cfg(data_file, 0.0)),
                             torch.device("cpu"))  # fmt: skip
    trained.restore(*_final_state(pre))
    raw["model"]["init_from"] = str(pre)
    c = offline_config_from_dict(raw)
    learner = OfflineLearner(c, prepare_data(c), torch.device("cpu"))
    for key, value in trained.model.state_dict().items():
        torch.testing.assert_close(learner.model.state_dict()[key], value, rtol=0, atol=0)
    raw["plugins"] = [{"name": "ftwt"}]  # a plugin that wraps the network wraps the loaded one
    wrapped = OfflineLearner(offline_config_from_dict(raw), prepare_data(c), torch.device("cpu"))
    torch.testing.assert_close(wrapped.model.head.weight, trained.model.head.weight)


def _final_state(run_dir):
    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.offline import LEARNER_FILE

    ckpt = latest_checkpoint(run_dir)
    state = torch.load(ckpt / LEARNER_FILE, weights_only=False)
    return state, torch.load(ckpt / "plugins_rank0.pt", weights_only=False)


@pytest.mark.parametrize("case", ["missing", "other_network", "no_checkpoint"])
def test_init_from_bad_input_is_one_line(tmp_path, data_file, case):
    from regrl.trainers.config import ConfigError
    from regrl.trainers.offline import offline_to_dict, train_offline

    raw = offline_to_dict(cfg(data_file, 0.0))
    raw.update(runs_root=str(tmp_path / "runs"))
    if case == "missing":
        raw["model"]["init_from"], match = str(tmp_path / "nope"), "no such run directory"
    elif case == "no_checkpoint":
        (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
        raw["model"]["init_from"], match = str(tmp_path / "empty"), "no complete checkpoint"
    else:
        pre = train_offline(offline_config_from_dict(raw), progress=False).run_dir
        raw["model"] = {"hidden": [16], "init_from": str(pre)}
        match = r"holds weights of another network \(size mismatch for trunk.0.weight"
    c = offline_config_from_dict(raw)
    with pytest.raises(ConfigError, match=match):
        OfflineLearner(c, prepare_data(c), torch.device("cpu"))

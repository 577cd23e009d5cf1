"""A learner actor of a data-parallel group killed mid-run: the run stops with one clear line
(RLlib restarts env runners, not learners, and DDP cannot go on with a rank missing), its last
checkpoint is intact, and ``--resume`` restores exactly the parameters an uninterrupted run with
the same seed has at that checkpoint. What RLlib restores: the RLModule weights, each learner's
optimizer state, the connector states and the iteration counters; what it does not: the env
runners' episodes in flight and their random state, so iterations after the checkpoint sample
other episodes than the uninterrupted run did."""

import numpy as np
import pytest
import ray
from ray.rllib.core.rl_module.rl_module import RLModule

from regrl.trainers.checkpoint import (
    RunAborted,
    latest_checkpoint,
    module_checkpoint_path,
    read_state,
)
from regrl.trainers.config import load_config
from regrl.trainers.run import RLSession, train
from tests.trainers.test_checkpoint_recovery import FakeAlgo, fake_rllib  # noqa: F401 (fixture)


def config(runs_root, iterations, every=1):
    return load_config(
        "configs/cartpole_ppo.yaml",
        [
            f"runs_root={runs_root}",
            "resources.num_learners=2",
            "resources.num_env_runners=0",
            "training.stop_return=null",
            f"training.iterations={iterations}",
            "training.train_batch_size=200",
            "training.minibatch_size=100",
            "training.num_epochs=1",
            f"checkpoint.every={every}",
        ],
    )


def weights(algo):
    return {k: np.asarray(v) for k, v in algo.learner_group.get_weights()["default_policy"].items()}


def saved_weights(run_dir):
    """The policy's parameters in a run's latest checkpoint, read from disk (no actor)."""
    path = module_checkpoint_path(latest_checkpoint(run_dir), "default_policy")
    state = RLModule.from_checkpoint(path).get_state()
    return {k: np.asarray(v) for k, v in state.items()}


class DyingAlgo(FakeAlgo):
    """Iteration 3 fails as a data-parallel update does when a peer learner died."""

    def train(self):
        if len(self.steps) == 1:
            raise ray.exceptions.RayError("gloo: Connection closed by peer [127.0.0.1]:19340")
        return super().train()


@pytest.mark.parametrize("dead", [1, 0])
def test_the_failed_update_of_a_dead_learner_is_one_line_and_not_saved(
    tmp_path,
    fake_rllib,  # noqa: F811 (the fixture imported above)
    monkeypatch,
    dead,
):
    """Without Ray: a RayError with a learner actor dead ends the run with RunAborted naming it,
    without checkpointing (the learner state went with the actor: RLlib's save fails); with all
    learners alive the error is not ours to explain and goes up unchanged."""
    import regrl.trainers.run as run

    monkeypatch.setattr(run, "dead_learners", lambda algo: dead)
    monkeypatch.setattr(run, "placement", lambda algo: {"env_runners": [], "learners": []})
    # what the fixture builds (it looks FakeAlgo up in its own module)
    monkeypatch.setattr("tests.trainers.test_checkpoint_recovery.FakeAlgo", DyingAlgo)
    fake_rllib.append([400, 400, 400])
    cfg = config(tmp_path, 5, every=10)
    expected = RunAborted if dead else ray.exceptions.RayError
    with pytest.raises(expected) as err:
        train(cfg, progress=False)
    if dead:
        assert str(err.value).startswith(
            "1 of 2 learner actors died in iteration 3 (gloo: Connection closed by peer"
        )
    (run_dir,) = (tmp_path / "cartpole_ppo").iterdir()
    assert latest_checkpoint(run_dir) is None  # iteration 2 unsaved: nothing half-written


@pytest.mark.slow  # three 2-learner runs on 2 cores (~70 s); the abort path is covered above
def test_a_killed_learner_stops_the_run_and_resume_restores_its_checkpoint(
    ray_session, tmp_path, monkeypatch, capsys
):
    step, restore = RLSession.step, RLSession.restore

    def killing_step(self, i):
        if i == 3:  # after iteration 2 and its checkpoint
            ray.kill(self.algo.learner_group._backend_executor.worker_group.workers[1].actor)
        return step(self, i)

    monkeypatch.setattr(RLSession, "step", killing_step)
    with pytest.raises(RunAborted, match=r"1 of 2 learner actors died in iteration 3 \(") as err:
        train(config(tmp_path / "killed", 3), progress=False)
    assert "cannot go on with fewer learners" in str(err.value)
    (run_dir,) = (tmp_path / "killed" / "cartpole_ppo").iterdir()
    assert f"aborted; resume with: regrl train --resume {run_dir}" in capsys.readouterr().out
    assert read_state(latest_checkpoint(run_dir))["iteration"] == 2

    monkeypatch.setattr(RLSession, "step", step)
    whole = train(config(tmp_path / "whole", 2), progress=False)  # same seed, uninterrupted
    assert whole.iteration == 2
    reference = saved_weights(whole.run_dir)
    assert saved_weights(run_dir).keys() == reference.keys()

    restored = {}

    def capture(self, ckpt, state):
        restore(self, ckpt, state)
        restored.update(weights(self.algo))

    monkeypatch.setattr(RLSession, "restore", capture)
    resumed = train(resume=run_dir, progress=False)  # iteration 3, with 2 new learner actors
    assert resumed.iteration == 3
    assert restored.keys() == reference.keys()
    for name, value in reference.items():  # same seed, same batches: the same numbers
        np.testing.assert_allclose(restored[name], value, rtol=0, atol=1e-6, err_msg=name)

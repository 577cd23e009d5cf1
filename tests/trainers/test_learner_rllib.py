"""RegrlLearner on RLlib's new API stack: stock-PPO-equivalent terms learn CartPole, and the
dual-clip + demo-KL, group-advantage and Lp-Reg configurations train with finite metrics.
One Ray session for the module; num_env_runners=0 keeps it on 2 cores."""

import json
import math
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from regrl.trainers.config import load_config
from regrl.trainers.run import train
from regrl.trainers.run_files import TB_DIR

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def cfg(name, tmp, *sets):
    return load_config(CONFIGS / name, [f"runs_root={tmp}", "resources.num_env_runners=0", *sets])


@pytest.fixture(scope="module")
def ppo_run(ray_session, tmp_path_factory):
    """CartPole with the stock-PPO-equivalent terms, until mean return >= 150 (budget 25)."""
    c = cfg(
        "cartpole_ppo.yaml",
        tmp_path_factory.mktemp("runs"),
        "training.iterations=25",
        "training.stop_return=150",
        "checkpoint.every=5",
    )
    start = time.time()
    result = train(c, progress=True)
    print(
        f"PPO-equivalent CartPole: {result.iteration} iterations, "
        f"{time.time() - start:.0f} s, return {result.metrics['env/episode_return_mean']:.1f}"
    )
    return result


def test_ppo_equivalent_learns_cartpole(ppo_run):
    assert ppo_run.metrics["env/episode_return_mean"] >= 150
    assert ppo_run.stopped_early and ppo_run.iteration <= 25


def test_tensorboard_scalars_and_config_text(ppo_run):
    acc = EventAccumulator(str(ppo_run.run_dir / TB_DIR))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in (
        "env/episode_return_mean",
        "learner/policy_loss",
        "learner/clip_frac",
        "learner/approx_kl",
        "learner/entropy",
        "learner/vf_loss",
        "perf/env_steps_per_s",
    ):
        assert tag in tags, tag
    steps = [e.step for e in acc.Scalars("env/episode_return_mean")]
    assert steps == list(range(1, ppo_run.iteration + 1))
    assert "config/text_summary" in acc.Tags()["tensors"]


def test_checkpoint_at_end_and_eval_report(ppo_run):
    from regrl.trainers.evaluate import evaluate

    ckpts = sorted(p.name for p in (ppo_run.run_dir / "checkpoints").iterdir())
    assert ckpts[-1] == f"iter_{ppo_run.iteration:06d}"
    report = evaluate(ppo_run.run_dir, episodes=3)
    saved = json.loads((ppo_run.run_dir / "eval.json").read_text())
    assert saved["episodes"] == 3 and len(saved["per_episode"]) == 3
    assert saved["eval/return_mean"] == report["eval/return_mean"]
    assert 1 <= saved["eval/return_min"] <= saved["eval/return_max"] <= 500
    assert (ppo_run.run_dir / "eval.png").stat().st_size > 1000


def test_dual_clip_demo_kl_logs_finite_kl(ppo_run, tmp_path):
    """KL to a frozen demonstrator: the trained PPO policy stands in for pi_BC."""
    c = cfg(
        "cartpole_dualclip_demokl.yaml",
        tmp_path,
        "training.iterations=2",
        "training.train_batch_size=1000",
        "training.stop_return=null",
        "objective.terms.3.name=demo_kl",
        f"objective.terms.3.checkpoint={ppo_run.run_dir}",
    )
    result = train(c, progress=False)
    m = result.metrics
    assert math.isfinite(m["learner/demo_kl"]) and m["learner/demo_kl"] > 0
    assert math.isfinite(m["learner/approx_kl"]) and "learner/dual_clip_frac" in m
    acc = EventAccumulator(str(result.run_dir / TB_DIR))
    acc.Reload()
    assert [e.step for e in acc.Scalars("learner/demo_kl")] == [1, 2]


def test_group_advantages_without_critic(tmp_path):
    c = cfg(
        "cartpole_grpo.yaml", tmp_path, "training.iterations=2", "training.train_batch_size=1000"
    )
    m = train(c, progress=False).metrics
    assert math.isfinite(m["learner/policy_loss"])
    assert "learner/vf_loss" not in m  # no value term configured


def test_lp_reg_term_regularises_low_probability_actions(tmp_path):
    c = cfg(
        "cartpole_ppo.yaml",
        tmp_path,
        "training.iterations=1",
        "training.train_batch_size=1000",
        "training.minibatch_size=1000",
        "training.num_epochs=2",
        "objective.terms.0.name=lp_reg",
        "objective.terms.0.rho=0.05",
    )
    m = train(c, progress=False).metrics
    assert m["learner/lp_reg_token_num"] >= 1
    assert math.isfinite(m["learner/kl_to_proxy"])


def test_adaptive_entropy_controller_runs_in_the_rllib_learner(tmp_path):
    """The stateful term in the RLlib backend: 2 epochs x >= 2 mini-batches, each below a
    target of 5 nats, so the coefficient used in the logged (last) mini-batch is a whole
    number >= 3 of deltas (0 if the learner never stepped the controller)."""
    c = cfg(
        "cartpole_ppo.yaml",
        tmp_path,
        "training.iterations=1",
        "training.train_batch_size=1000",
        "training.minibatch_size=500",
        "training.num_epochs=2",
        "objective.terms.2={name: adaptive_entropy, target: 5.0, delta: 0.001}",
    )
    m = train(c, progress=False).metrics
    steps = m["learner/adaptive_entropy_coeff"] / 0.001
    assert steps >= 3 - 1e-6 and abs(steps - round(steps)) < 1e-4, steps
    assert 0 < m["learner/adaptive_entropy"] < 5.0


def test_learner_metrics_are_per_iteration_means_over_mini_batches(tmp_path, monkeypatch):
    """Through RLlib's whole reduce chain (learner, learner group, algorithm): a probe metric
    that counts the learner's mini-batch updates reads as each iteration's mean, max and last
    value, and the second iteration does not average in the first (a lifetime mean, or the
    last mini-batch alone, as before, fail this)."""
    import regrl.trainers.rllib.learner as learner_mod

    count = [0]
    real = learner_mod.log_minibatch_metrics

    def probe(logger, module_id, metrics):
        count[0] += 1
        n = float(count[0])
        real(logger, module_id, dict(metrics, probe=n, probe_max=n, probe_coeff=n))

    monkeypatch.setattr(learner_mod, "log_minibatch_metrics", probe)
    c = cfg(
        "cartpole_ppo.yaml",
        tmp_path,
        "training.iterations=2",
        "training.train_batch_size=1000",
        "training.minibatch_size=500",
        "training.num_epochs=2",
    )
    run_dir = train(c, progress=False).run_dir
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    per_iter = count[0] // 2
    assert count[0] == 2 * per_iter and per_iter >= 4  # 2 epochs x >= 2 mini-batches
    for i, row in enumerate(rows[:2]):
        first, last = i * per_iter + 1, (i + 1) * per_iter
        assert row["learner/probe"] == pytest.approx((first + last) / 2)
        assert row["learner/probe_max"] == pytest.approx(last)
        assert row["learner/probe_coeff"] == pytest.approx(last)

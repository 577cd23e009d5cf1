"""SMARL end to end at toy scale: the reference command, one RLlib iteration of the shared
policy over 16 agents, and `regrl eval`'s closure comparison with table and figures."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.cli import main
from regrl.trainers.config import load_config
from regrl.trainers.run import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.npz"
    code = main(
        [
            "turbulence",
            "reference",
            "--out",
            str(out),
            "--n-dns",
            "32",
            "--n-les",
            "16",
            "--nu",
            "0.001",
            "--dt",
            "0.002",
            "--spinup-time",
            "1.0",
            "--average-time",
            "0.4",
            "--sample-every",
            "0.1",
            "--n-init",
            "4",
        ]
    )
    assert code == 0
    return out


def test_reference_command_writes_a_loadable_file(reference):
    ref = load_reference(reference)
    assert ref.provenance["spec"]["n_les"] == 16 and ref.omega_std > 0


def test_reference_command_rejects_bad_filter(tmp_path, capsys):
    code = main(
        [
            "turbulence",
            "reference",
            "--out",
            str(tmp_path / "r.npz"),
            "--n-dns",
            "32",
            "--n-les",
            "16",
            "--spinup-time",
            "0.01",
            "--average-time",
            "0.01",
            "--filter",
            "box",
        ]
    )
    assert code == 2 and "filter must be 'spectral' or 'gaussian'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def smarl_run(ray_session, reference, tmp_path_factory):
    cfg = load_config(
        CONFIGS / "smarl_turb2d.yaml",
        [
            f"runs_root={tmp_path_factory.mktemp('runs')}",
            f"env.kwargs.reference={reference}",
            "env.kwargs.episode_actions=4",
            "env.kwargs.steps_per_action=2",
            "training.iterations=1",
            "training.train_batch_size=32",
            "training.minibatch_size=32",
            "training.num_epochs=1",
            "resources.num_env_runners=0",
            "eval.kwargs={time_units: 0.2, spinup: 0.04, seeds: 2}",
        ],
    )
    return train(cfg, progress=False)


def test_shared_policy_trains_and_logs_turbulence_metrics(smarl_run):
    m = smarl_run.metrics
    for key in (
        "env/spectrum_error",
        "env/coeff_mean",
        "env/coeff_std",
        "env/diverged",
        "env/vorticity_kurtosis",
        "learner/policy_loss",
        "perf/env_steps_per_s",
    ):
        assert key in m and math.isfinite(m[key]), key
    assert (
        smarl_run.run_dir
        / "checkpoints"
        / "iter_000001"
        / "learner_group"
        / "learner"
        / "rl_module"
        / "shared"
    ).is_dir()


def test_eval_compares_closures(smarl_run, capsys):
    assert main(["eval", str(smarl_run.run_dir)]) == 0
    report = json.loads((smarl_run.run_dir / "eval.json").read_text())
    names = [r["name"] for r in report["closures"]]
    assert names == [
        "no closure",
        "Smagorinsky C_s=0.10",
        "Smagorinsky C_s=0.14",
        "Smagorinsky C_s=0.17",
        "Leith C_L=0.17",
        "dynamic Smagorinsky",
        "learned (smagorinsky)",
    ]
    for row in report["closures"]:
        assert row["simulations"] == 2
        if row["diverged"] == 0:
            assert math.isfinite(row["enstrophy_spectrum_error"]) and 0 <= row["pdf_hellinger"] <= 1
    table = (smarl_run.run_dir / "eval.md").read_text()
    assert table.count("\n") == 9 and "learned (smagorinsky)" in table
    assert (smarl_run.run_dir / "eval_turbulence.png").stat().st_size > 10_000


def test_rollout_reports_blow_ups_instead_of_raising(reference):
    from regrl.trainers.turbulence.smarl import markdown_table, rollout

    ref = load_reference(reference)
    nan_policy = lambda obs: np.full(obs.shape[:2], np.nan)  # noqa: E731
    row = rollout(
        ref,
        closure="smagorinsky",
        policy=nan_policy,
        seeds=2,
        time_units=0.1,
        spinup=0.02,
        steps_per_action=2,
    )
    assert row["diverged"] == 2 and all(t is not None and t > 0 for t in row["diverged_at"])
    assert math.isnan(row["enstrophy_spectrum_error"])
    table = markdown_table([dict(row, name="nan policy")])
    assert "| 2/2 (t = " in table


def _module(model_cfg, obs_dim=13):
    """Build the RLModule ``init_module_spec`` describes, as RLlib would (merged model config)."""
    from dataclasses import asdict

    from gymnasium.spaces import Box
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from regrl.trainers.rllib.init_module import init_module_spec

    spec = init_module_spec(model_cfg)
    spec.observation_space = Box(-10.0, 10.0, (obs_dim,), np.float32)
    spec.action_space = Box(-1.0, 1.0, (1,), np.float32)
    spec.model_config = (
        asdict(DefaultModelConfig(fcnet_hiddens=list(model_cfg.hidden))) | spec.model_config
    )
    return spec.build()


def test_initial_policy_has_the_configured_mean_and_std():
    import torch

    from regrl.trainers.config import ModelConfig

    torch.manual_seed(0)
    module = _module(ModelConfig(hidden=(32, 32), action_init_mean=0.3, action_init_std=0.1))
    obs = 3.0 * torch.randn(512, 13)
    with torch.no_grad():
        mean, log_std = module.forward_inference({"obs": obs})["action_dist_inputs"].chunk(2, -1)
    # RLlib's default init gives mean ≈ 0 ± 0.5 and std ≈ 1 over such inputs
    assert (mean - 0.3).abs().max() < 0.02
    assert torch.allclose(log_std.exp(), torch.full_like(log_std, 0.1), rtol=0.05)


def test_no_initial_policy_keys_keep_rllibs_default_module():
    from regrl.trainers.config import ModelConfig
    from regrl.trainers.rllib.init_module import init_module_spec

    assert init_module_spec(ModelConfig()) is None


def test_smarl_configs_select_the_initialised_module():
    from regrl.trainers.rllib.algo import build_algorithm_config
    from regrl.trainers.rllib.init_module import InitialisedPPOModule

    for name in ("smarl_demo.yaml", "smarl_turb2d.yaml"):
        cfg = load_config(CONFIGS / name)
        assert cfg.model.action_init_mean == 0.0 and cfg.model.action_init_std == 0.1
        spec = build_algorithm_config(cfg)._rl_module_spec
        assert spec.rl_module_specs["shared"].module_class is InitialisedPPOModule
        assert spec.rl_module_specs["shared"].model_config["action_init_std"] == 0.1

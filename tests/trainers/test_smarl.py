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


def tiny_smarl(runs_root, reference) -> list:
    """Overrides for a one-iteration SMARL run of 32 decisions in this process."""
    return [
        f"runs_root={runs_root}",
        f"env.kwargs.reference={reference}",
        "env.kwargs.episode_actions=4",
        "env.kwargs.steps_per_action=2",
        "training.iterations=1",
        "training.train_batch_size=32",
        "training.minibatch_size=32",
        "training.num_epochs=1",
        "resources.num_env_runners=0",
    ]


@pytest.fixture(scope="module")
def smarl_run(ray_session, reference, tmp_path_factory):
    cfg = load_config(
        CONFIGS / "smarl_turb2d.yaml",
        [
            *tiny_smarl(tmp_path_factory.mktemp("runs"), reference),
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
        "smagorinsky C_s=0.16",  # the family's best constant of the scan
        "learned (smagorinsky)",
    ]
    for row in report["closures"]:
        assert row["simulations"] == 2
        if row["diverged"] == 0:
            assert math.isfinite(row["enstrophy_spectrum_error"]) and 0 <= row["pdf_hellinger"] <= 1
    table = (smarl_run.run_dir / "eval.md").read_text()
    assert table.splitlines()[9].startswith("| learned (smagorinsky) |")
    assert ("paired over 2 simulations" in table) == (report["versus_best_constant"] is not None)
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


def test_paired_differences_match_simulations_when_one_diverged(reference):
    """A simulation that blows up leaves the per-simulation lists; pairing goes by the
    survivors' indices (zipping the lists paired simulation 2 of one row with 1 of the other)."""
    from regrl.trainers.turbulence.smarl import paired_differences, rollout

    ref = load_reference(reference)

    def first_sim_nan(obs):
        out = np.full(obs.shape[:2], 0.17**2)
        out[0] = np.nan
        return out

    kwargs = dict(closure="smagorinsky", seeds=3, time_units=0.1, spinup=0.02, steps_per_action=2)
    broken = rollout(ref, policy=first_sim_nan, **kwargs)
    base = rollout(ref, coeff=0.17**2, **kwargs)
    assert broken["diverged"] == 1 and broken["per_simulation"]["simulation"] == [1, 2]
    assert base["per_simulation"]["simulation"] == [0, 1, 2]
    key = "enstrophy_spectrum_error"
    got = paired_differences(broken, base, key)
    want = [broken["per_simulation"][key][i] - base["per_simulation"][key][i + 1] for i in (0, 1)]
    assert got == pytest.approx(want, abs=0) and len(got) == 2
    assert paired_differences(base, broken, key) == pytest.approx([-w for w in want], abs=0)
    old = {k: v for k, v in broken["per_simulation"].items() if k != "simulation"}
    with pytest.raises(ValueError, match="records no simulation indices"):
        paired_differences(dict(broken, per_simulation=old), base, key)
    lone = {k: v for k, v in base["per_simulation"].items() if k != "simulation"}
    assert (
        paired_differences(dict(base, per_simulation=lone), dict(base, per_simulation=lone), key)
        == [0.0] * 3
    )


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


def _perturbed_policy_file(smarl_run, tmp_path, mean_shift: float) -> Path:
    """The run's policy exported as a policy file, with the Gaussian mean shifted by
    ``mean_shift`` (output bias), so that a module that ignored the file is far from it."""
    import torch

    from regrl.trainers.rllib.policy_file import load_policy_state, save_policy

    path = tmp_path / "policy.pt"
    assert main(["export", str(smarl_run.run_dir), "--out", str(path)]) == 0
    state = load_policy_state(path)
    head = sorted(k for k in state if k.startswith("pi.") and k.endswith("bias"))[-1]
    state[head] = state[head] + torch.tensor([mean_shift, 0.0])
    prov = json.loads(path.with_suffix(".json").read_text())
    return save_policy(state, tmp_path / "shifted.pt", prov)


def test_exported_policy_file_evaluates_like_its_run(smarl_run, tmp_path, capsys):
    import torch

    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.evaluate import load_module
    from regrl.trainers.rllib.policy_file import load_policy
    from regrl.trainers.turbulence.smarl import actor_forward

    path = tmp_path / "p.pt"
    assert main(["export", str(smarl_run.run_dir), "--out", str(path), "--command", "x"]) == 0
    prov = json.loads(path.with_suffix(".json").read_text())
    assert prov["seed"] == 0 and prov["iteration"] == 1 and prov["command"] == "x"
    assert prov["config"]["env"]["name"] == "smarl_turb2d" and prov["commit"]
    torch.load(path, weights_only=True)  # tensors only, no pickled code
    module, cfg, _ = load_policy(path)
    ckpt_module = load_module(latest_checkpoint(smarl_run.run_dir), "shared")
    obs = torch.randn(64, module.observation_space.shape[0])
    with torch.no_grad():
        a = module.forward_inference({"obs": obs})["action_dist_inputs"]
        b = ckpt_module.forward_inference({"obs": obs})["action_dist_inputs"]
        actor_only = actor_forward(module)(obs)  # the evaluation's path: no critic encoder
    assert torch.equal(a, b) and torch.equal(actor_only, a)
    assert hasattr(module.encoder, "actor_encoder")  # so the actor-only path is the one taken
    out = tmp_path / "eval"
    assert main(["eval", str(path), "--out", str(out)]) == 0
    assert main(["eval", str(smarl_run.run_dir)]) == 0
    from_file = json.loads((out / "eval.json").read_text())["closures"][-1]
    from_run = json.loads((smarl_run.run_dir / "eval.json").read_text())["closures"][-1]
    assert from_file["name"] == "learned (smagorinsky)"
    for key in ("enstrophy_spectrum_error", "pdf_hellinger", "diverged"):
        assert from_file[key] == from_run[key], key
    assert "learned (smagorinsky)" in capsys.readouterr().out
    # a changed policy gives another learned row: the file's weights are the ones evaluated
    shifted = _perturbed_policy_file(smarl_run, tmp_path, 0.8)
    assert main(["eval", str(shifted), "--out", str(tmp_path / "e2")]) == 0
    moved = json.loads((tmp_path / "e2" / "eval.json").read_text())["closures"][-1]
    assert moved["enstrophy_spectrum_error"] != from_run["enstrophy_spectrum_error"]


def test_policy_file_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a policy")
    assert main(["eval", str(bad)]) == 2
    assert "FILE.json" in capsys.readouterr().err
    bad.with_suffix(".json").write_text(json.dumps({"config": {"env": {"name": "smarl_turb2d"}}}))
    assert main(["eval", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a weights-only policy file" in err


@pytest.mark.parametrize("init", [True, False])
def test_init_weights_and_demo_kl_toward_a_policy_file(smarl_run, reference, tmp_path, init):
    """π_BC = the run's policy with its mean shifted by 0.5 (σ = 0.1): started from it, the
    demo_kl term reads ≈ 0 after a step at lr 1e-9; started fresh it reads ≈ 0.5²/(2·0.1²)."""
    shifted = _perturbed_policy_file(smarl_run, tmp_path, 0.5)
    overrides = [
        *tiny_smarl(tmp_path / "runs", reference),
        "training.lr=1.0e-9",
        f"objective.terms.2={{name: demo_kl, coeff: 0.1, checkpoint: {shifted}}}",
    ]
    if init:
        overrides.append(f"model.init_weights={shifted}")
    result = train(load_config(CONFIGS / "smarl_turb2d.yaml", overrides), progress=False)
    kl = result.metrics["learner/demo_kl"]
    if init:
        assert kl < 1e-3
    else:
        assert 5.0 < kl < 25.0


def test_missing_init_weights_is_a_clear_error(tmp_path, capsys):
    code = main(
        [
            "train",
            str(CONFIGS / "smarl_demo.yaml"),
            "--set",
            f"runs_root={tmp_path}",
            "--set",
            f"model.init_weights={tmp_path / 'none.pt'}",
        ]
    )
    assert code == 2 and "policy file" in capsys.readouterr().err


def test_pretrained_policy_fits_the_least_squares_coefficients(tmp_path):
    """The supervised closure in the policy's parameterisation: targets C = 0.02 + 0.02·x₀
    (inside [0, 0.0578]) are fitted, and the file loads back as the env's policy."""
    from regrl.envs.turbulence.dataset import save_dataset
    from regrl.envs.turbulence.env import action_to_coefficient, coefficient_to_action
    from regrl.trainers.turbulence.pretrain import pretrain_policy

    c = np.array([0.0, 0.01, 0.0289, 0.05, 0.0578])
    assert np.allclose(action_to_coefficient(coefficient_to_action(c, (0, 0.0578)), (0, 0.0578)), c)
    assert coefficient_to_action(np.array([-0.1, 0.2]), (0, 0.0578)).tolist() == [-1.0, 1.0]
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (40, 16, 37)).astype(np.float32)
    cs2 = (0.02 + 0.02 * obs[..., 0]).astype(np.float32)
    split = np.r_[np.zeros(32, np.int64), np.ones(8, np.int64)]
    z = np.zeros((40, 4, 4), np.float32)
    data = {"omega": z, "pi": z, "m": z, "obs": obs, "cs2": cs2, "split": split}
    save_dataset(tmp_path / "d.npz", dict(data, spec=np.array("{}")))
    prov = pretrain_policy(
        tmp_path / "d.npz",
        CONFIGS / "smarl_demo.yaml",
        tmp_path / "bc.pt",
        local_config=CONFIGS / "closure_local.yaml",
        overrides=["model.hidden=[32, 32]"],
    )
    held = prov["metrics"]["heldout"]
    assert held["corr_cs2"] > 0.95 and abs(held["cs2_mean_predicted"] - 0.02) < 0.003
    assert prov["config"]["model"]["hidden"] == [32, 32]


def test_module_policy_maps_the_mean_and_squashes_sac_actions():
    """The deterministic action: the Gaussian mean for PPO's module, tanh(mean) for SAC's
    tanh-squashed Gaussian, then the env's map onto coeff_range."""
    import torch

    from regrl.trainers.turbulence.smarl import module_policy

    class Fixed:
        def forward_inference(self, batch):
            n = batch["obs"].shape[0]
            return {"action_dist_inputs": torch.tensor([[2.0, -1.0]]).repeat(n, 1)}

    obs = np.zeros((2, 16, 37), np.float32)
    plain = module_policy(Fixed(), (0.0, 0.0578))(obs)
    squashed = module_policy(Fixed(), (0.0, 0.0578), squashed=True)(obs)
    assert plain.shape == (2, 16) and np.allclose(plain, 0.0578)  # mean 2 clipped to a = 1
    assert np.allclose(squashed, 0.0289 * (1 + np.tanh(2.0)))


def test_versus_best_constant_pairs_the_simulations():
    """Paired differences to the best constant row (by pooled error), hand-computed t intervals:
    [0.010, 0.012, 0.011, 0.013] -> 0.0115 ± 3.182·0.001291/2 = ± 0.00205 (worse); a learned
    row equal to the best constant is not different; the worse constant is never the reference."""
    from regrl.trainers.turbulence.smarl import versus_best_constant

    def row(name, pooled, per):
        return {
            "name": name,
            "family": "smagorinsky" if name.startswith("Smagorinsky") else None,
            "diverged": 0,
            "enstrophy_spectrum_error": pooled,
            "per_simulation": {"enstrophy_spectrum_error": per, "tail_ratio": per},
        }

    best = [0.08, 0.07, 0.09, 0.08]
    rows = [
        row("Smagorinsky C_s=0.14", 0.11, [0.1, 0.1, 0.1, 0.1]),
        row("Smagorinsky C_s=0.17", 0.08, best),
        row(
            "learned (smagorinsky)",
            0.09,
            [b + d for b, d in zip(best, [0.01, 0.012, 0.011, 0.013])],
        ),
    ]
    text = versus_best_constant(rows)
    assert "Smagorinsky C_s=0.17" in text and "+0.0115 ± 0.0021" in text and text.endswith("worse")
    rows[-1] = row("learned (smagorinsky)", 0.08, list(best))
    assert versus_best_constant(rows).endswith("not different")
    rows[-1]["diverged"] = 1
    assert versus_best_constant(rows) is None


def test_compare_evaluates_a_learned_family_against_its_own_constants(monkeypatch):
    """A learned two-term closure is run beside the family's base (and best) constants, tagged
    with the family, and versus_best_constant pairs it with those rows only."""
    from regrl.envs.turbulence import families
    from regrl.trainers.turbulence import smarl

    calls = []

    def fake_rollout(ref, *, closure, coeff=None, policy=None, **kw):
        calls.append((closure, coeff, policy))
        err = 0.05 if closure == "smagorinsky_hyper" and policy is None else 0.07
        per = [err + d for d in (0.0, 0.001, 0.002)]
        return {
            "diverged": 0,
            "simulations": 3,
            "seconds_per_time_unit": 1.0,
            "enstrophy_spectrum_error": err,
            "per_simulation": {"enstrophy_spectrum_error": per, "tail_ratio": per},
        }

    monkeypatch.setattr(smarl, "rollout", fake_rollout)
    monkeypatch.setattr(smarl, "_dns_seconds_per_time_unit", lambda ref: None)
    fam = families.get_family("smagorinsky_hyper")
    rows = smarl.compare(
        None,
        lambda obs: obs,
        "smagorinsky_hyper",
        seeds=3,
        time_units=1.0,
        spinup=0.0,
        steps_per_action=10,
        agents_per_side=4,
        say=lambda m: None,
    )
    own = [r for r in rows if r["family"] == "smagorinsky_hyper"]
    assert [r["name"] for r in own][0] == fam.label(fam.classical)
    assert ("smagorinsky_hyper", fam.base(), None) in calls
    verdict = smarl.versus_best_constant(rows, "smagorinsky_hyper")
    assert fam.label(fam.classical) in verdict and "+0.0200 ± 0.0000" in verdict
    assert verdict.endswith("worse")
    smag = smarl.versus_best_constant(rows, "smagorinsky")  # the other family's rows
    assert "Smagorinsky C_s=" in smag and "+0.0000" in smag


def test_two_coefficient_family_trains_in_batched_paired_envs_and_evaluates(
    ray_session, reference, tmp_path
):
    """configs/smarl_hyper.yaml at toy scale: a 2-d action per agent, 2 LES per env with their
    lockstep baseline copies, one PPO iteration; `regrl eval` runs the family's constants and
    pairs the learned closure against them."""
    from regrl.envs.turbulence import families

    cfg = load_config(
        CONFIGS / "smarl_hyper.yaml",
        [
            *tiny_smarl(tmp_path / "runs", reference),
            "env.kwargs.sims=2",
            "env.kwargs.spinup=0.02",
            "eval.kwargs={time_units: 0.2, spinup: 0.04, seeds: 2}",
        ],
    )
    run = train(cfg, progress=False)
    assert math.isfinite(run.metrics["env/coeff1_mean"])  # the hyperviscosity coefficient
    assert math.isfinite(run.metrics["env/baseline_spectrum_error"])
    assert main(["eval", str(run.run_dir)]) == 0
    report = json.loads((run.run_dir / "eval.json").read_text())
    names = [r["name"] for r in report["closures"]]
    fam = families.get_family("smagorinsky_hyper")
    assert fam.label(fam.classical) in names and names[-1] == "learned (smagorinsky_hyper)"
    assert fam.label(fam.classical) in report["versus_best_constant"] or (
        fam.best and fam.label(fam.best) in report["versus_best_constant"]
    )


def test_module_policy_samples_the_gaussian_and_maps_two_coefficients():
    """sample_seed draws mean + std·ε per agent and coefficient (reproducible for a seed); a
    2-d action maps each coefficient onto its own range."""
    import torch

    from regrl.trainers.turbulence.smarl import module_policy

    class Fixed:  # means (0, 0.5), log-stds (log 0.2, log 0.2)
        def forward_inference(self, batch):
            n = batch["obs"].shape[0]
            row = torch.tensor([[0.0, 0.5, np.log(0.2), np.log(0.2)]])
            return {"action_dist_inputs": row.repeat(n, 1)}

    ranges = ((0.0, 0.01), (0.1, 0.3))
    obs = np.zeros((3, 16, 37), np.float32)
    mean = module_policy(Fixed(), ranges)(obs)
    assert mean.shape == (3, 16, 2) and np.allclose(mean, [0.005, 0.25])
    a = module_policy(Fixed(), ranges, sample_seed=4)(obs)
    b = module_policy(Fixed(), ranges, sample_seed=4)(obs)
    assert np.array_equal(a, b) and not np.allclose(a, mean)
    eps = np.random.default_rng(4).standard_normal((48, 2))
    expected = np.clip(np.array([0.0, 0.5]) + 0.2 * eps, -1, 1)
    lo, hi = np.array([0.0, 0.1]), np.array([0.01, 0.3])
    np.testing.assert_allclose(a.reshape(48, 2), lo + 0.5 * (expected + 1) * (hi - lo))


def _shipped_module():
    from regrl.trainers.rllib.policy_file import load_policy

    module, _, provenance = load_policy(
        Path(__file__).resolve().parents[2] / "data/turbulence/policies/smarl_ppo.pt"
    )
    return module, provenance


def test_plain_actor_is_the_rllib_actor():
    """The actor's layers taken out of the shipped PPO module give the module's own
    action-distribution inputs (means and log-stds, the head's log-std clamp included) to 1e-6
    on random observations, and ``module_policy`` maps the same means (and samples with the same
    log-stds) as the module's ``forward_inference`` would. The checks can fail: a Tanh swapped
    for a ReLU, the mean / log-std halves swapped, or a dropped clamp each move the outputs
    far beyond the tolerance."""
    import copy

    import torch

    from regrl.trainers.turbulence.smarl import coeff_range_of, module_policy, plain_actor

    module, provenance = _shipped_module()
    forward = plain_actor(module)
    assert forward is not None  # RLlib's default PPO module: the plain path is the one taken
    obs = 3.0 * torch.randn(256, module.observation_space.shape[0], generator=torch.manual_seed(0))

    def rllib(m, x):
        with torch.no_grad():
            return m.forward_inference({"obs": x})["action_dist_inputs"]

    with torch.no_grad():
        plain = forward(obs)
    torch.testing.assert_close(plain, rllib(module, obs), atol=1e-6, rtol=0)
    # the clamp: log-stds pushed past RLlib's bound come back at the bound, as the head's do
    wide = copy.deepcopy(module)
    with torch.no_grad():
        wide.pi.net.mlp[-1].bias[1:] += 50.0
        clamped = plain_actor(wide)(obs)
    torch.testing.assert_close(clamped, rllib(wide, obs), atol=1e-6, rtol=0)
    assert float(clamped[:, 1].max()) == float(wide.pi.log_std_clip_param_const)
    # plausible extraction bugs are far outside the tolerance
    layers = [*module.encoder.actor_encoder.net.mlp, *module.pi.net.mlp]
    relu = [torch.nn.ReLU() if isinstance(x, torch.nn.Tanh) else x for x in layers]
    with torch.no_grad():
        assert (torch.nn.Sequential(*relu)(obs) - plain).abs().max() > 1e-3
        assert (plain.flip(-1) - plain).abs().max() > 1e-3
        assert (torch.nn.Sequential(*layers)(obs)[:, 1] - clamped[:, 1]).abs().max() > 1.0
    # module_policy: the mean is the first half, the std the exp of the second
    coeff_range = coeff_range_of(provenance["config"]["env"]["kwargs"])
    obs3 = obs[:64].reshape(4, 16, -1).numpy()
    out = rllib(module, obs[:64]).double().numpy()
    lo, hi = coeff_range[0]
    mean = np.clip(out[:, 0], -1, 1)
    np.testing.assert_allclose(
        module_policy(module, coeff_range)(obs3).reshape(-1),
        lo + 0.5 * (mean + 1) * (hi - lo),
        atol=1e-9,
    )
    eps = np.random.default_rng(5).standard_normal((64, 1))[:, 0]
    drawn = np.clip(out[:, 0] + np.exp(out[:, 1]) * eps, -1, 1)
    np.testing.assert_allclose(
        module_policy(module, coeff_range, sample_seed=5)(obs3).reshape(-1),
        lo + 0.5 * (drawn + 1) * (hi - lo),
        atol=1e-9,
    )

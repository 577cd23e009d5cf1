"""Solver-in-the-loop fitting (trainers/turbulence/solver_loop.py): the loss pieces by hand, the
gradient through the unrolled LES against finite differences for every family, and the fit
moving the coefficient toward a reference that needs more (or less) dissipation."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from regrl.envs.turbulence import families
from regrl.trainers.turbulence import solver_loop
from regrl.trainers.turbulence.solver_loop import FitSpec, fit_constants, unroll_loss

D = torch.float64
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bounded_parameterisation_round_trips_and_stays_in_range():
    low, high = torch.tensor([0.0, 0.1], dtype=D), torch.tensor([0.05, 0.9], dtype=D)
    c = torch.tensor([0.0289, 0.5], dtype=D)
    torch.testing.assert_close(
        solver_loop.bounded(solver_loop.unbounded(c, low, high), low, high), c
    )
    far = solver_loop.bounded(torch.tensor([-50.0, 50.0], dtype=D), low, high)
    assert torch.all(far >= low) and torch.all(far <= high)
    with pytest.raises(ValueError, match="not strictly inside"):  # θ = −∞: no gradient
        solver_loop.unbounded(torch.tensor([0.0, 0.5], dtype=D), low, high)


def test_fit_start_moves_an_edge_base_inside_and_keeps_a_middle_one():
    """smagorinsky_hyper8's base C_s = 0 sits on its range's edge: the fit starts 5 % of the
    range inside, where σ' > 0, and a family whose base is its range's middle starts there."""
    for name in ("smagorinsky_hyper8", "jansen_held"):
        fam = families.get_family(name)
        low, high = (torch.tensor(b, dtype=D) for b in zip(*fam.default_range()))
        base = torch.tensor(fam.base(), dtype=D)
        start = solver_loop.fit_start(base, low, high)
        theta = solver_loop.unbounded(start, low, high)  # finite: no error
        assert torch.isfinite(theta).all()
        inside = (base - low > 0) & (high - base > 0)
        torch.testing.assert_close(start[inside], base[inside])  # the middle ones unchanged
    assert float(start[0]) == float(base[0])  # jansen_held's C_4 at its middle
    fam = families.get_family("smagorinsky_hyper8")
    low, high = (torch.tensor(b, dtype=D) for b in zip(*fam.default_range()))
    start = solver_loop.fit_start(torch.tensor(fam.base(), dtype=D), low, high)
    assert float(start[0]) == pytest.approx(0.05 * float(high[0]))


def test_log_spectrum_loss_and_soft_tails_by_hand():
    z_ref = torch.tensor([0.0, 1.0, 10.0, 0.0], dtype=D)
    z = torch.tensor([[[0.0, 10.0, 10.0, 5.0]], [[0.0, 10.0, 10.0, 5.0]]], dtype=D)
    # k = 1, 2 below the cut 3: (log10 10 − 0)² and 0 → mean 0.5
    assert float(solver_loop.log_spectrum_loss(z, z_ref, 3)) == pytest.approx(0.5)
    omega = torch.tensor([0.0, 1.0, 3.5, -4.0], dtype=D)
    soft = solver_loop.soft_tail_probability(omega, 1.0, 1e-3)
    assert float(soft) == pytest.approx(0.5)  # |ω| > 3 for two of four
    wide = solver_loop.soft_tail_probability(omega, 1.0, 0.5)
    expected = np.mean(1 / (1 + np.exp(-(np.abs([0.0, 1.0, 3.5, -4.0]) - 3) / 0.5)))
    assert float(wide) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(families.FAMILIES))
@pytest.mark.parametrize("target", ["spectrum", "spectrum+tails"])
def test_gradient_through_the_unroll_matches_finite_differences(ref, name, target):
    fam = families.get_family(name)
    spec = FitSpec(closure=name, target=target, sims=2, unroll=12, sample_every=4)
    base = torch.tensor(fam.base(), dtype=D)

    def loss(coeff):
        sim = solver_loop._les(ref, 2)
        sim.step(30)  # leave the smooth initial condition
        return unroll_loss(sim, coeff, spec, ref)

    coeff = base.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(coeff), coeff)
    for i in range(fam.size):
        h = torch.zeros_like(base)
        # a zero base coefficient (C_s = 0 of the order-8 family): a step on its range's scale
        h[i] = 1e-6 * (float(base[i]) or fam.default_range()[i][1])
        with torch.no_grad():
            fd = (loss(base + h) - loss(base - h)) / (2 * h[i])
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
    assert float(grad.abs().max()) > 0


@pytest.mark.parametrize("scale, direction", [(6.0, 1), (0.0, -1)])
def test_fit_moves_toward_a_reference_that_needs_more_or_less_dissipation(ref, scale, direction):
    """Replace the reference spectrum by the LES's own under C_s² = scale · base (6×: far more
    dissipation, 0: none): a few Adam steps move C_s² up, resp. down, from the base."""
    fam = families.get_family("smagorinsky")
    sim = solver_loop._les(ref, 4)
    zs = []
    with torch.no_grad():
        coeff = torch.full((4, 1, 1, 1), scale * fam.base()[0], dtype=D)
        for _ in range(40):
            families.advance(sim, fam, coeff, 5)
            zs.append(sim.enstrophy_spectrum().mean(0))
    target = torch.stack(zs).mean(0).numpy().copy()
    target[target <= 0] = 0.0
    shifted = dataclasses.replace(ref, enstrophy_spectrum=target)
    spec = FitSpec(
        closure="smagorinsky",
        sims=4,
        spinup=0.0,
        unroll=20,
        sample_every=5,
        iterations=6,
        lr=0.3,
        average_last=0.5,
    )
    result = fit_constants(shifted, spec, say=lambda m: None)
    assert len(result["history"]) == 6 and result["skipped_unrolls"] == 0
    moved = result["coeff"][0] - fam.base()[0]
    assert direction * moved > 0.1 * fam.base()[0]
    assert math.isclose(result["roots"][0] ** 2, result["coeff"][0], rel_tol=1e-12)


def test_fit_spec_refuses_bad_settings():
    with pytest.raises(ValueError, match="closure must be one of"):
        FitSpec(closure="smag")
    with pytest.raises(ValueError, match="target must be one of"):
        FitSpec(target="tails")
    with pytest.raises(ValueError, match="multiple of sample_every"):
        FitSpec(unroll=30, sample_every=20)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        FitSpec(iterations=0)


def test_fit_command_writes_the_fit_and_its_paired_evaluation(ref_path, tmp_path, capsys):
    import json

    from regrl.trainers.cli import main

    out = tmp_path / "fit"
    flags = {
        "--out": out,
        "--reference": ref_path,
        "--closure": "smagorinsky_hyper",
        "--sims": 2,
        "--spinup": 0.1,
        "--unroll": 10,
        "--sample-every": 5,
        "--iterations": 2,
        "--eval-sims": 2,
        "--eval-time": 0.2,
        "--eval-spinup": 0.1,
    }
    args = ["turbulence", "fit"] + [str(x) for kv in flags.items() for x in kv]
    assert main(args) == 0
    text = (out / "fit.md").read_text()
    assert "| fitted smagorinsky_hyper C_s=" in text and "paired over the simulations" in text
    result = json.loads((out / "fit.json").read_text())
    assert len(result["history"]) == 2 and len(result["roots"]) == 2
    capsys.readouterr()
    assert main(args + ["--closure", "smag"]) == 2
    assert "closure must be one of" in capsys.readouterr().err
    assert main(args + ["--eval-time", "nan"]) == 2
    assert "--eval-time" in capsys.readouterr().err
    assert main(args + ["--eval-sims", "1"]) == 0  # one simulation: no interval, no crash
    assert "n/a (one simulation)" in (out / "fit.md").read_text()


def test_policy_decider_maps_like_the_evaluation_and_passes_gradients(ref):
    """The differentiable decision of a policy network equals the evaluation's
    (``module_policy`` on ``observe_agents``), and the loss of an unroll reaches every layer
    of the actor."""
    from gymnasium import spaces

    from regrl.envs.turbulence.env import agent_points, observe_agents
    from regrl.trainers.config import load_config
    from regrl.trainers.rllib.policy_file import module_spec
    from regrl.trainers.turbulence.smarl import coeff_range_of, module_policy

    cfg = load_config(CONFIGS / "smarl_hyper.yaml", ["model.hidden=[16, 16]"])
    env_kw = dict(cfg.env.kwargs)
    torch.manual_seed(0)
    obs_space = spaces.Box(-10.0, 10.0, (13,), np.float32)
    module = module_spec(cfg, obs_space, spaces.Box(-1.0, 1.0, (2,), np.float32)).build()
    with torch.no_grad():  # a policy that is not constant, so the mapping is exercised
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    decide = solver_loop.policy_decider(module, env_kw, ref)
    sim = solver_loop._les(ref, 2)
    sim.step(20)
    got = decide(sim).detach().numpy()
    obs = observe_agents(sim, *agent_points(16, 4), np.log10(ref.enstrophy_spectrum[1:] + 1e-30))
    expected = module_policy(module, coeff_range_of(env_kw))(obs)
    np.testing.assert_allclose(got.reshape(2, 16, 2), expected, rtol=1e-5, atol=1e-9)
    assert got.std() > 0
    spec = FitSpec(closure="smagorinsky_hyper", sims=2, unroll=20, sample_every=10)
    unroll_loss(sim, decide, spec, ref).backward()
    actor = [p for n, p in module.named_parameters() if "vf" not in n and "critic" not in n]
    assert actor and all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor)


def test_fit_command_trains_a_policy_file_that_loads_like_an_exported_run(ref_path, tmp_path):
    from regrl.trainers.cli import main
    from regrl.trainers.rllib.policy_file import load_policy

    out = tmp_path / "pol"
    args = [
        "turbulence",
        "fit",
        "--out",
        str(out),
        "--reference",
        str(ref_path),
        "--policy-config",
        str(CONFIGS / "smarl_hyper.yaml"),
        "--sims",
        "2",
        "--spinup",
        "0.05",
        "--unroll",
        "20",
        "--iterations",
        "2",
        "--eval-sims",
        "0",
    ]
    assert main(args) == 0
    module, cfg, prov = load_policy(out / "policy.pt")  # what `regrl eval FILE.pt` does first
    assert cfg.env.kwargs["reference"] == str(ref_path) and cfg.env.kwargs["paired"] is True
    assert prov["solver_in_the_loop"]["spec"]["closure"] == "smagorinsky_hyper"
    assert prov["solver_in_the_loop"]["spec"]["sample_every"] == 10  # the decision interval
    assert main(["turbulence", "fit", "--out", str(out), "--policy-config", "nope.yaml"]) == 2


class _Damping(torch.nn.Module):
    """Π = a·ω̄ (in normalised units): a one-parameter field closure, computed in float64 so
    that finite differences resolve it (the CNN's float32 input cast is constant in a)."""

    def __init__(self, a: float):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a, dtype=D))

    def forward(self, x):
        return {"out": self.a * x.to(D)}


def _field_loss(ref, model, spec):
    from regrl.trainers.turbulence.closures import cnn_closure

    sim = solver_loop._les(ref, 2)
    sim.step(30)
    sgs = cnn_closure(model, 1.0, 1.0, differentiable=True)
    return solver_loop.field_unroll_loss(sim, sgs, spec, ref, every=2)


@pytest.mark.parametrize("target", ["spectrum", "spectrum+tails"])
def test_field_closure_gradient_through_the_unroll_matches_finite_differences(ref, target):
    """Catches Π left out of the graph (no_grad in the closure, a detached Π̂) or a gradient
    that does not match the forward pass (Π re-evaluated at the wrong interval)."""
    spec = FitSpec(target=target, sims=2, unroll=12, sample_every=4)
    model = _Damping(0.05)
    (grad,) = torch.autograd.grad(_field_loss(ref, model, spec), [model.a])
    h = 1e-3  # not smaller: the closure's float32 input rounds ω̄, noise ~1e-5 at h = 1e-6
    with torch.no_grad():
        model.a += h
        up = _field_loss(ref, model, spec)
        model.a -= 2 * h
        down = _field_loss(ref, model, spec)
    fd = (up - down) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
    assert float(grad.abs()) > 0


def test_field_closure_loss_is_the_family_loss_for_the_same_viscous_term(ref):
    """A field closure that returns the family's own Smagorinsky Π, added every step, gives
    the same unroll (and loss) as the family path: the field route adds Π as the solver adds
    its eddy-viscosity term (sign and factor of step_with_sgs)."""
    from regrl.envs.turbulence.sgs import eddy_viscosity_term
    from regrl.trainers.turbulence.closures import cnn_closure  # noqa: F401 (same import path)

    fam = families.get_family("smagorinsky")
    spec = FitSpec(closure="smagorinsky", sims=2, unroll=8, sample_every=4)
    c = torch.tensor(fam.base(), dtype=D)

    def start():
        sim = solver_loop._les(ref, 2)
        sim.step(30)
        return sim

    family_loss = unroll_loss(start(), c, spec, ref)

    def pi(sim):
        field = torch.full((sim.batch, sim.n, sim.n), float(c[0]), dtype=D)
        from regrl.envs.turbulence.closures import smagorinsky_viscosity

        return eddy_viscosity_term(sim, smagorinsky_viscosity(sim, field))

    field_loss = solver_loop.field_unroll_loss(start(), pi, dataclasses.replace(spec), ref, 1)
    assert float(field_loss) == pytest.approx(float(family_loss), rel=1e-3)


def test_fit_field_closure_fine_tunes_in_place_and_uses_the_anchor(ref):
    """With a heavy supervised anchor toward Π = 0.5·ω̄, the fine-tune moves a from 0 toward
    0.5 (the anchor enters the loss with the right sign), records the anchor's MSE, and edits
    the model in place; a blown-up unroll is never silently used."""
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(8, 16 * 16)).astype(np.float32)
    model = _Damping(0.0)
    spec = FitSpec(sims=2, spinup=0.0, unroll=8, sample_every=4, iterations=5, lr=0.05)
    out = solver_loop.fit_field_closure(
        ref,
        model,
        1.0,
        1.0,
        spec,
        every=2,
        anchor=(x, 0.5 * x),
        anchor_weight=100.0,
        say=lambda m: None,
    )
    assert len(out["history"]) == 5 and out["skipped_unrolls"] == 0
    assert 0.1 < model.a.item() <= 0.5
    mses = [h["anchor_mse"] for h in out["history"]]
    assert mses[-1] < mses[0]
    assert not model.training


def test_learned_correction_starts_at_its_base_family_and_moves_off_it(ref):
    """A correction Π ≡ 0 on top of ``family_step`` reproduces the family's constant unroll
    exactly (catches ``base`` ignored: the bare solver step would differ), a zeroed head gives
    Π ≡ 0, and a short fit with a base moves the head off zero (the loss reaches the output
    layer through the family's step)."""
    from regrl.agents.models.closure import ClosureCNN
    from regrl.envs.turbulence.sgs import step_with_sgs

    fam = families.get_family("smagorinsky_hyper")
    coeff = tuple(float(c) for c in fam.base())
    a, b = solver_loop._les(ref, 2), solver_loop._les(ref, 2)
    families.advance(a, fam, torch.tensor(coeff, dtype=D).expand(2, 1, 1, 2), 12)
    zero = lambda sim: torch.zeros(sim.batch, sim.n, sim.n, dtype=D)  # noqa: E731
    step_with_sgs(b, zero, 12, every=2, base=solver_loop.family_step(fam.name, coeff))
    torch.testing.assert_close(b.omega, a.omega, atol=1e-12, rtol=0)
    bare = solver_loop._les(ref, 2)
    step_with_sgs(bare, zero, 12, every=2)
    assert (bare.omega - a.omega).abs().max() > 1e-6

    torch.manual_seed(0)
    model = solver_loop.zero_output(ClosureCNN(hidden=(4,), activation="tanh"))
    assert model(torch.randn(2, 16 * 16))["out"].abs().max() == 0
    spec = FitSpec(sims=2, spinup=0.0, unroll=8, sample_every=4, iterations=3, lr=0.01)
    out = solver_loop.fit_field_closure(
        ref, model, 1.0, 1.0, spec, every=2, base=(fam.name, coeff), say=lambda m: None
    )
    assert len(out["history"]) == 3
    assert model.head.weight.abs().max() > 0
    with pytest.raises(ValueError, match="2 coefficients"):
        solver_loop.family_step(fam.name, (0.01,))


def test_rollout_adds_a_field_correction_to_its_family_constant(ref):
    """``rollout`` with a family constant and a zero field correction equals the constant's
    rollout (catches the constant dropped when a field closure is given), and a policy with a
    field closure is refused."""
    from regrl.trainers.turbulence.smarl import rollout

    fam = families.get_family("smagorinsky_hyper")
    coeff = [float(c) for c in fam.base()]
    kw = dict(seeds=2, time_units=0.04, spinup=0.0, agents_per_side=2, sample_every=0.01)
    plain = rollout(ref, closure=fam.name, coeff=coeff, **kw)
    zero = lambda sim: torch.zeros(sim.batch, sim.n, sim.n, dtype=D)  # noqa: E731
    both = rollout(ref, closure=fam.name, coeff=coeff, field_closure=zero, **kw)
    bare = rollout(ref, closure=None, field_closure=zero, **kw)
    key = "enstrophy_spectrum_error"
    assert both[key] == pytest.approx(plain[key], rel=1e-9)
    assert bare[key] != pytest.approx(plain[key], rel=1e-6)
    with pytest.raises(ValueError, match="not both"):
        rollout(ref, closure=fam.name, policy=lambda o: o, field_closure=zero, **kw)


@pytest.mark.parametrize(
    "scores, chosen",
    [
        ([3.0, 2.0, 1.0, 5.0], 2),  # the third check (after 4 updates) is best
        ([float("nan"), 2.0, 2.0, 3.0], 1),  # NaN counts as worst; ties keep the earlier
        ([0.5, 2.0, 1.0, 0.7], 0),  # nothing beats the start: the model ends where it began
    ],
)
def test_validation_keeps_the_best_checked_update(ref, scores, chosen):
    """``fit_field_closure(validate=...)``: scored before the first update and after every 2
    (5 updates: checks at 0, 2, 4 and the last, 5); the model ends with the parameters of the
    best-scoring check, not the last (catches the restore skipped, the wrong copy restored,
    the start not scored, or a NaN taken as best)."""
    seen, calls = [], iter(scores)

    def validate(model):
        assert not model.training  # scored as evaluated
        seen.append(model.a.item())
        return next(calls)

    model = _Damping(0.0)
    spec = FitSpec(sims=2, spinup=0.0, unroll=8, sample_every=4, iterations=5, lr=0.05)
    out = solver_loop.fit_field_closure(
        ref, model, 1.0, 1.0, spec, every=2, validate=validate, validate_every=2, say=lambda m: None
    )
    assert [c["updates"] for c in out["validation"]] == [0, 2, 4, 5]
    assert seen[0] == 0.0 and len(set(seen)) == 4  # every check saw another parameter
    assert out["selected_update"] == [0, 2, 4, 5][chosen]
    assert model.a.item() == seen[chosen]
    with pytest.raises(ValueError, match="validate_every must be >= 1"):
        solver_loop.fit_field_closure(
            ref, _Damping(0.0), 1.0, 1.0, spec, validate=validate, say=lambda m: None
        )


def test_rollout_from_given_states(ref):
    """``rollout(initial=...)`` starts from the given states: the reference's own first two
    initial conditions reproduce the default rollout, other states give another one, and a
    wrongly shaped array is refused."""
    from regrl.trainers.turbulence.smarl import rollout

    kw = dict(closure="smagorinsky", coeff=0.17**2, time_units=0.04, spinup=0.0)
    kw.update(agents_per_side=2, sample_every=0.01)
    plain = rollout(ref, seeds=2, **kw)
    same = rollout(ref, initial=ref.initial_conditions[:2], **kw)
    other = rollout(ref, initial=ref.initial_conditions[2:4], **kw)
    key = "enstrophy_spectrum_error"
    assert same[key] == pytest.approx(plain[key], rel=1e-12) and same["simulations"] == 2
    assert other[key] != pytest.approx(plain[key], rel=1e-6)
    with pytest.raises(ValueError, match="initial states must be"):
        rollout(ref, initial=ref.initial_conditions[:2, :8], **kw)


def test_spun_up_states_step_the_family_constant(ref):
    """``spun_up_states`` = the seed's initial conditions advanced by the family with its
    constant for the given time (catches the constant or the duration ignored)."""
    fam = families.get_family("smagorinsky_hyper")
    coeff = tuple(float(c) for c in fam.base())
    got = solver_loop.spun_up_states(ref, fam.name, coeff, 2, 3, 0.05)
    sim = solver_loop._les(ref, 2, 3)
    n = int(round(0.05 / sim.dt))
    families.advance(sim, fam, torch.tensor(coeff, dtype=D).expand(2, 1, 1, 2), n)
    np.testing.assert_allclose(got, sim.omega.numpy(), atol=1e-12, rtol=0)
    doubled = solver_loop.spun_up_states(ref, fam.name, (2 * coeff[0], coeff[1]), 2, 3, 0.05)
    assert np.abs(doubled - got).max() > 1e-8
    assert np.abs(got - solver_loop._les(ref, 2, 3).omega.numpy()).max() > 1e-6

"""Self-Tuning Networks: hand-computed layer, perturbation, entropy and dropout, and the
plugin's two phases (perturbed training forward, hyperparameter step on the tuning split)."""

import math

import numpy as np
import pytest
import torch

from regrl.agents.models import MLP
from regrl.agents.offline import (
    TaskInfo,
    get_plugin,
    hyper_objective,
    per_sample_dropout,
    perturb,
    perturbation_entropy,
    stn_linear,
)
from regrl.agents.offline.stn import constrain, unconstrain
from regrl.trainers.config import ConfigError
from regrl.trainers.offline import offline_config_from_dict, train_offline

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def inv_softplus(y: float) -> float:
    return math.log(math.expm1(y))


def test_stn_linear_hand_values_and_row_scaled_weights():
    x, h = t([[1.0, 2.0]]), t([[0.5]])
    w_elem, b_elem = t([[1.0, 0.0], [0.0, 1.0]]), t([0.1, 0.2])
    w_hyper, b_hyper = t([[1.0, 1.0], [2.0, -1.0]]), t([1.0, -1.0])
    v = t([[2.0], [4.0], [6.0], [-2.0]])  # V_w h = [1, 2], V_b h = [3, -1]
    out = stn_linear(x, h, w_elem, b_elem, w_hyper, b_hyper, v)
    # W_elem x + b_elem = [1.1, 2.2]; (V_w h) * W_hyper x = [1 * 3, 2 * 0]; (V_b h) * b_hyper = [3, 1]
    torch.testing.assert_close(out, t([[7.1, 3.2]]))
    # the same as the materialised W(h) = W_elem + diag(V_w h) W_hyper, b(h) = b_elem + ...
    w_h = w_elem + t([[1.0], [2.0]]) * w_hyper
    torch.testing.assert_close(out, x @ w_h.t() + b_elem + t([3.0, -1.0]) * b_hyper)


def test_stn_linear_rejects_a_misshaped_hypernet():
    with pytest.raises(ValueError, match=r"v must be \[4, 1\]"):
        stn_linear(t([[1.0, 2.0]]), t([[0.5]]), *(torch.zeros(2, 2, dtype=D),) * 1,
                   torch.zeros(2, dtype=D), torch.zeros(2, 2, dtype=D),
                   torch.zeros(2, dtype=D), torch.zeros(3, 1, dtype=D))  # fmt: skip


def test_perturbation_and_its_entropy():
    s = t([inv_softplus(0.5), inv_softplus(2.0)])
    torch.testing.assert_close(perturb(t([0.0, 1.0]), s, t([[2.0, -1.0]])), t([[1.0, -1.0]]))
    # H = sum_h log(sigma_h sqrt(2 pi e)) = 0.5 log(2 pi e) * 2 + log(0.5) + log(2)
    assert perturbation_entropy(s).item() == pytest.approx(math.log(2 * math.pi * math.e))
    s.requires_grad_(True)
    hyper_objective(t(1.0), s, tau=0.1).backward()
    # d/ds of -tau log softplus(s) = -tau sigmoid(s) / softplus(s): wider perturbation is rewarded
    sig = torch.sigmoid(s.detach())
    torch.testing.assert_close(s.grad, -0.1 * sig / t([0.5, 2.0]))


def test_per_sample_dropout_rates_and_inverted_scaling():
    a, p = t([[1.0, 2.0], [3.0, 4.0]]), t([0.5, 0.0])
    u = t([[0.4, 0.6], [0.0, 0.9]])
    torch.testing.assert_close(per_sample_dropout(a, p, u), t([[0.0, 4.0], [3.0, 4.0]]))


def test_constrain_round_trip():
    names = ("dropout", "input_noise")
    u = unconstrain([0.05, 0.3], names)
    torch.testing.assert_close(constrain(u, names), torch.tensor([0.05, 0.3]))
    with pytest.raises(ValueError, match="unknown STN hyperparameter"):
        constrain(u, ("weight_decay",))


def _plugin(**params):
    cls = get_plugin("stn")
    plugin = cls(cls.Params(**params), TaskInfo("classification", 10, 3, 2, 0))
    torch.manual_seed(0)
    model = plugin.wrap_model(MLP(4, 3, (8, 8)))
    plugin.setup(model, None, None)
    return plugin, model


def test_training_forward_is_perturbed_and_regularised_eval_is_the_best_response_at_lambda():
    _, model = _plugin(dropout=0.5, input_noise=0.5)
    x = torch.randn(6, 4)
    model.train()
    assert not torch.equal(model(x)["out"], model(x)["out"])
    model.eval()
    torch.testing.assert_close(model(x)["out"], model(x)["out"], rtol=0, atol=0)
    u = model.lam.expand(6, -1)
    torch.testing.assert_close(model(x)["out"], model.respond(x, u, regularise=False)["out"])


def test_the_mlp_is_copied_into_the_elementary_weights():
    torch.manual_seed(0)
    mlp = MLP(4, 3, (8,))
    plugin = get_plugin("stn")(get_plugin("stn").Params(), TaskInfo("classification", 10, 3, 2, 0))
    model = plugin.wrap_model(mlp)
    torch.testing.assert_close(model.layers[0].w_elem, mlp.trunk[0].weight)
    torch.testing.assert_close(model.layers[-1].b_elem, mlp.head.bias)
    with pytest.raises(ValueError, match="default MLP"):
        plugin.wrap_model(torch.nn.Linear(4, 3))


def test_hyper_step_follows_the_validation_gradient_and_leaves_the_weights_alone():
    plugin, model = _plugin(dropout=0.2, input_noise=None, tune_scales=False, hyper_every=1,
                            warmup_epochs=0, hyper_lr=0.01)  # fmt: skip
    weights = {k: v.clone() for k, v in model.state_dict().items() if k not in ("lam", "scale")}
    x, target = torch.randn(5, 4), torch.eye(3)[[0, 1, 2, 0, 1]]
    u = plugin.lam.detach().clone().requires_grad_(True)
    out = model.respond(x, u.expand(5, -1), regularise=False)["out"]
    loss = -(target * torch.log_softmax(out, -1)).sum(-1).mean()
    (grad,) = torch.autograd.grad(loss, u)
    before = plugin.lam.detach().clone()
    metrics = plugin.validation_step(model, {"x": x, "target": target}, epoch=0)
    # Adam's first step moves each coordinate by lr against the sign of its gradient
    torch.testing.assert_close(plugin.lam.detach(), before - 0.01 * grad.sign(), atol=1e-6, rtol=0)
    torch.testing.assert_close(model.lam, plugin.lam.detach())  # written into the network
    assert metrics["val_loss"].item() == pytest.approx(loss.item())
    for k, v in model.state_dict().items():
        if k in weights:
            torch.testing.assert_close(v, weights[k], rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())


def test_hyper_steps_wait_for_warmup_and_alternate():
    plugin, model = _plugin(hyper_every=2, warmup_epochs=1)
    batch = {"x": torch.randn(5, 4), "target": torch.eye(3)[[0, 1, 2, 0, 1]]}
    assert plugin.validation_step(model, batch, epoch=0) == {}  # warm-up
    assert plugin.validation_step(model, batch, epoch=1) != {}  # call 2: a hyper step
    assert plugin.validation_step(model, batch, epoch=1) == {}  # call 3: training only


@pytest.fixture(scope="module")
def blob_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 6))
    y = rng.integers(0, 3, 240)
    flip = rng.random(240) < 0.4  # noisy labels: a reason to regularise more
    y_noisy = np.where(flip, (y + 1) % 3, y)
    path = tmp_path_factory.mktemp("stn") / "blobs.npz"
    np.savez(path, x=(centers[y] + rng.normal(size=(240, 6))).astype(np.float32), y=y_noisy)
    return path


def _raw(tmp_path, path, **data):
    return {
        "kind": "offline",
        "runs_root": str(tmp_path / "runs"),
        "data": {"path": str(path), "val_fraction": 0.2, **data},
        "model": {"hidden": [16, 16]},
        "training": {"epochs": 6, "batch_size": 32, "lr": 0.01},
        "plugins": [{"name": "stn", "warmup_epochs": 1, "hyper_lr": 0.05}],
    }


def test_stn_needs_a_tuning_split(tmp_path, blob_file):
    with pytest.raises(ConfigError, match="'stn' needs a tuning split.*data.tune_fraction"):
        offline_config_from_dict(_raw(tmp_path, blob_file))
    raw = _raw(tmp_path, blob_file, tune_fraction=0.2)
    raw["plugins"].append({"name": "lipschitz"})
    with pytest.raises(ConfigError, match="cannot be combined"):
        offline_config_from_dict(raw)


def test_learner_tunes_the_hyperparameters_online(tmp_path, blob_file):
    cfg = offline_config_from_dict(_raw(tmp_path, blob_file, tune_fraction=0.2))
    metrics = train_offline(cfg, progress=False).metrics
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    # 5 epochs x 5 steps / 2 = 12 Adam steps moved both hyperparameters off their start, 0.05
    assert abs(metrics["plugin/stn/dropout"] - 0.05) > 1e-3, metrics
    assert abs(metrics["plugin/stn/input_noise"] - 0.05) > 1e-3, metrics
    assert "plugin/stn/val_loss" in metrics

"""``regrl turbulence pretrain-policy``: the supervised local-coefficient closure trained directly
in the SMARL policy's parameterisation, written as a policy file (π_BC of demonstration-regularised
SMARL).

Demonstration-regularised RL (Tiapkin et al., ICLR 2024, arXiv 2310.17303) starts from and
regularises toward a behaviour-cloned policy π_BC. Here the demonstrations are the least-squares
local Smagorinsky coefficients of the filtered DNS (``regrl turbulence dataset``, the targets of
``configs/closure_local.yaml``), and π_BC(a|s) = N(μ_θ(s), σ₀²): the RL module of the SMARL config
(same trunk, same Gaussian head), its mean regressed on the coefficient mapped to the env's action
a = 2(C − low)/(high − low) − 1 (clipped to [−1, 1]), its log σ held at log ``action_init_std``.
The optimiser settings (epochs, batch size, lr, weight decay) are those of closure_local.yaml.
Fitting the RL module itself, instead of converting closure_local's tanh-output MLP, makes the
policy file exactly the supervised closure, with nothing lost in a conversion.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from gymnasium import spaces

from regrl.envs.turbulence.dataset import load_dataset
from regrl.envs.turbulence.env import action_to_coefficient, coefficient_to_action
from regrl.trainers.turbulence.smarl import coeff_range_of


def _pairs(data: Dict[str, np.ndarray], split: int, coeff_range):
    rows = data["split"] == split
    obs = data["obs"][rows]
    x = torch.as_tensor(obs.reshape(-1, obs.shape[-1]), dtype=torch.float32)
    a = coefficient_to_action(data["cs2"][rows].reshape(-1), coeff_range)
    return x, torch.as_tensor(a, dtype=torch.float32)


def fit_mean(module, x, a, *, log_std: float, epochs: int, batch: int, lr: float, wd: float, seed):
    """Regress the Gaussian mean of ``module`` on actions ``a`` (MSE) and hold its log σ at
    ``log_std``; returns the last epoch's mean loss."""
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=wd)
    loss_value = float("nan")
    for _ in range(int(epochs)):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(int(batch)):
            out = module.forward_train({"obs": x[idx]})["action_dist_inputs"]
            loss = torch.mean((out[:, 0] - a[idx]) ** 2) + torch.mean((out[:, 1] - log_std) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        loss_value = total / len(x)
    return loss_value


def scores(module, x, a, coeff_range) -> Dict[str, float]:
    """Held-out fit of the policy mean: MSE in actions, correlation and means of C."""
    with torch.no_grad():
        mean = module.forward_inference({"obs": x})["action_dist_inputs"][:, 0].numpy()
    c_pred = action_to_coefficient(mean, coeff_range)
    c_true = action_to_coefficient(a.numpy(), coeff_range)
    corr = np.corrcoef(c_pred, c_true)[0, 1] if c_pred.std() > 0 and c_true.std() > 0 else 0.0
    return {
        "action_mse": float(np.mean((np.clip(mean, -1, 1) - a.numpy()) ** 2)),
        "corr_cs2": float(corr),
        "cs2_mean_predicted": float(c_pred.mean()),
        "cs2_mean_target": float(c_true.mean()),
    }


def pretrain_policy(
    dataset: Path,
    config: Path,
    out: Path,
    *,
    local_config: Path = Path("configs/closure_local.yaml"),
    seed: int = 0,
    overrides: Sequence[str] = (),
    command: Optional[str] = None,
) -> Dict[str, object]:
    """Fit π_BC (module docstring) and write it as a policy file; returns its provenance."""
    # lazy: ray.rllib (through policy_file) takes seconds; not at `regrl turbulence --help`
    from regrl.files import package_commit
    from regrl.trainers.config import load_config, to_dict
    from regrl.trainers.offline import load_offline_config
    from regrl.trainers.rllib.policy_file import module_spec, save_policy

    cfg = load_config(config, list(overrides))
    local = load_offline_config(local_config)
    coeff_range = coeff_range_of(cfg.env.kwargs)
    data = load_dataset(dataset)
    x, a = _pairs(data, 0, coeff_range)
    x_held, a_held = _pairs(data, 1, coeff_range)
    torch.manual_seed(int(seed))

    obs_space = spaces.Box(-10.0, 10.0, (x.shape[1],), np.float32)
    module = module_spec(cfg, obs_space, spaces.Box(-1.0, 1.0, (1,), np.float32)).build()
    t = local.training
    log_std = math.log(cfg.model.action_init_std or 1.0)
    loss = fit_mean(
        module, x, a, log_std=log_std, epochs=t.epochs, batch=t.batch_size, lr=t.lr,
        wd=t.weight_decay, seed=seed,
    )  # fmt: skip
    module.eval()
    metrics = {"train_loss": loss, "train": scores(module, x, a, coeff_range)}
    if len(x_held):
        metrics["heldout"] = scores(module, x_held, a_held, coeff_range)
    cfg_dict = to_dict(cfg)
    cfg_dict["seed"] = int(seed)
    provenance = {
        "config": cfg_dict,
        "seed": int(seed),
        "commit": package_commit() or "unknown",
        "command": command or "regrl turbulence pretrain-policy",
        "dataset": str(dataset),
        "dataset_spec": json.loads(str(data["spec"])),  # DatasetSpec + physics of the DNS
        "local_config": str(local_config),
        "training": {
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "lr": t.lr,
            "wd": t.weight_decay,
        },
        "metrics": metrics,
    }
    save_policy(module.state_dict(), out, provenance)
    return provenance

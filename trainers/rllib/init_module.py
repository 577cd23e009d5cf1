"""PPO's default RLModule with a chosen initial Gaussian policy: mean and standard deviation of
the (normalised) actions set by ``model.action_init_mean`` / ``model.action_init_std``, or all
weights from a policy file (``model.init_weights``, ``trainers/rllib/policy_file.py``).

Why: RLlib initialises the log-std output near 0, i.e. exploration noise σ ≈ 1 = half of the
normalised action range, and the mean near 0. SMARL (Mojgani et al. 2023, arXiv 2312.00907;
Korali's V-RACER) starts with noise ≈ 0.05 of the action range; in the turbulence env a large
noise spends most samples on coefficients far from any useful closure (docs/smarl.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule

from regrl.trainers.rllib.weights import load_into, load_policy_state

INIT_KEYS = ("action_init_mean", "action_init_std", "init_weights")
WEIGHT_SCALE = 0.01  # the state-dependent part of the mean starts ~100x below the bias


def init_gaussian_head(
    linear: torch.nn.Linear, mean: Optional[float], std: Optional[float]
) -> None:
    """Set the last layer of a diagonal-Gaussian head, whose outputs are [mean | log σ]: weights
    scaled by ``WEIGHT_SCALE`` and biases ``mean`` and ``log std`` (None leaves that half)."""
    half = linear.out_features // 2
    with torch.no_grad():
        if mean is not None:
            linear.weight[:half].mul_(WEIGHT_SCALE)
            linear.bias[:half].fill_(float(mean))
        if std is not None:
            linear.weight[half:].mul_(WEIGHT_SCALE)
            linear.bias[half:].fill_(math.log(float(std)))


class InitialisedPPOModule(DefaultPPOTorchRLModule):
    """``DefaultPPOTorchRLModule`` whose policy head starts at the configured mean and std."""

    def setup(self):
        super().setup()
        if self.inference_only and not hasattr(self, "pi"):
            return
        layers = [m for m in self.pi.modules() if isinstance(m, torch.nn.Linear)]
        cfg = self.model_config or {}
        init_gaussian_head(layers[-1], cfg.get("action_init_mean"), cfg.get("action_init_std"))
        if cfg.get("init_weights"):  # a policy file: every actor starts from the same weights
            load_into(self, load_policy_state(cfg["init_weights"]), cfg["init_weights"])


def init_module_spec(model_cfg):
    """RLModuleSpec of ``InitialisedPPOModule`` when the config asks for an initial action
    distribution, else None (RLlib's default module)."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    values = {k: getattr(model_cfg, k) for k in INIT_KEYS}
    if all(v is None for v in values.values()):
        return None
    if values["init_weights"]:  # absolute: the actors that build the module may run elsewhere
        path = Path(values["init_weights"]).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"model.init_weights: policy file {path} not found")
        values["init_weights"] = str(path)
    return RLModuleSpec(module_class=InitialisedPPOModule, model_config=values)

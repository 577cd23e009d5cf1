"""Policy files: a trained RLModule's weights as one small weights-only ``.pt`` file plus a JSON
sidecar with its provenance (experiment config, seed, commit, command, metrics).

Why not ship an RLlib checkpoint: it is a tree of pickles (``class_and_ctor_args.pkl``) that
runs code when loaded. A policy file holds tensors only (``torch.load(weights_only=True)``); the
module is rebuilt from the config in the sidecar, so ``regrl eval FILE.pt`` evaluates it and
``model.init_weights`` / the ``demo_kl`` term start from or regularise toward it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from regrl.files import atomic_output, package_commit
from regrl.trainers.rllib.weights import SUFFIX, load_into, load_policy_state
from regrl.trainers.run_files import EVAL_FILE, SUMMARY_FILE


def provenance_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def is_policy_file(path) -> bool:
    """A ``.pt`` file with its JSON sidecar."""
    p = Path(path)
    return p.suffix == SUFFIX and p.is_file() and provenance_path(p).is_file()


def save_policy(state: Mapping[str, torch.Tensor], path: Path, provenance: Dict[str, Any]) -> Path:
    """Write the module ``state`` (name -> tensor) to ``path`` and ``provenance`` (must hold the
    experiment ``config`` dict) next to it as JSON."""
    if "config" not in provenance:
        raise ValueError("policy provenance needs the experiment 'config' dict")
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"policy file must end in {SUFFIX}, got {path}")
    tensors = {k: v.detach().cpu().clone() for k, v in state.items()}
    # each file replaces an existing one only when complete (an interrupted export loses nothing)
    with atomic_output(path) as fh:
        torch.save(tensors, fh)
    with atomic_output(provenance_path(path)) as fh:
        fh.write((json.dumps(provenance, indent=2, default=str) + "\n").encode())
    return path


def read_provenance(path) -> Dict[str, Any]:
    side = provenance_path(Path(path))
    if not side.is_file():
        raise FileNotFoundError(f"policy file {path} has no provenance file {side}")
    return json.loads(side.read_text())


def module_spec(cfg, observation_space, action_space):
    """RLModuleSpec of the module ``regrl train`` builds for ``cfg`` (RLlib's default PPO MLP,
    or ``InitialisedPPOModule`` with the configured initial policy), with explicit spaces."""
    # lazy: ray.rllib takes seconds to import; only building a module needs it
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
        DefaultPPOTorchRLModule,
    )
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from regrl.trainers.rllib.init_module import init_module_spec

    m = cfg.model
    base = dataclasses.asdict(
        DefaultModelConfig(
            fcnet_hiddens=list(m.hidden),
            fcnet_activation=m.activation,
            vf_share_layers=m.share_layers,
        )
    )
    init = init_module_spec(m)
    cls = init.module_class if init is not None else DefaultPPOTorchRLModule
    extra = dict(init.model_config) if init is not None else {}
    extra.pop("init_weights", None)  # the caller loads the weights it wants
    return RLModuleSpec(
        module_class=cls,
        observation_space=observation_space,
        action_space=action_space,
        model_config={**base, **extra},
    )


def load_policy(path) -> Tuple[torch.nn.Module, Any, Dict[str, Any]]:
    """(module in eval mode, experiment config, provenance) of a policy file; the module is
    rebuilt from the config in the sidecar (its env gives the spaces)."""
    # lazy: the env registry imports the domains, which weights-only readers do not need
    from regrl.trainers.config import config_from_dict
    from regrl.trainers.envs import env_entry, make_env

    prov = read_provenance(path)
    cfg = config_from_dict(prov["config"], source=str(provenance_path(Path(path))))
    env = make_env(cfg.env.name, dict(cfg.env.kwargs))
    if env_entry(cfg.env.name).multi_agent:
        agent = env.possible_agents[0]
        spaces = env.observation_space(agent), env.action_space(agent)
    else:
        spaces = env.observation_space, env.action_space
    env.close()
    module = module_spec(cfg, *spaces).build()
    load_into(module, load_policy_state(path), path)
    module.eval()
    return module, cfg, prov


def export_run(run_dir: Path, out: Path, command: Optional[str] = None) -> Path:
    """Policy file of a run's latest checkpoint (the env's module), with the run's config,
    seed, iteration, the checkout's commit, the training command and the run's final metrics
    (summary.json) and evaluation (eval.json) when present."""
    # lazy: ray.rllib (seconds) and the run-directory layer, for exports only
    from ray.rllib.core.rl_module.rl_module import RLModule

    from regrl.trainers.checkpoint import latest_checkpoint, module_checkpoint_path, read_state
    from regrl.trainers.config import to_dict
    from regrl.trainers.envs import env_entry
    from regrl.trainers.kinds import load_run_config

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, "rl")
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise ValueError(f"{run_dir} has no complete checkpoint to export")
    module_id = env_entry(cfg.env.name).module_id
    module = RLModule.from_checkpoint(module_checkpoint_path(ckpt, module_id))
    extra = {}
    for name in (SUMMARY_FILE, EVAL_FILE):
        if (run_dir / name).is_file():
            extra[name.removesuffix(".json")] = json.loads((run_dir / name).read_text())
    provenance = {
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "iteration": int(read_state(ckpt)["iteration"]),
        "commit": package_commit() or "unknown",  # regrl's checkout, not the working dir
        "command": command or f"regrl train <config of {run_dir}>",
        "run_dir": str(run_dir),
        **extra,
    }
    return save_policy(module.state_dict(), out, provenance)

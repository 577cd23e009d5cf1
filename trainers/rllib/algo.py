"""ExperimentConfig -> RLlib ``AlgorithmConfig`` (PPO's sampling loop with RegrlLearner)."""

from __future__ import annotations

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.tune.registry import register_env

from regrl.agents.objectives.terms import needs
from regrl.trainers.config import ConfigError, ExperimentConfig, to_dict
from regrl.trainers.envs import ENVS, MODULE_SPECS, env_entry, make_env
from regrl.trainers.rllib.callbacks import RegrlCallbacks
from regrl.trainers.rllib.data_parallel import RegrlLearnerGroup
from regrl.trainers.rllib.init_module import init_module_spec
from regrl.trainers.rllib.learner import CONFIG_KEY, RegrlLearner


def _make_rllib_env(name: str, env_ctx):
    env = make_env(name, dict(env_ctx))
    if env_entry(name).multi_agent:
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

        return ParallelPettingZooEnv(env)
    return env


def rllib_env_id(name: str) -> str:
    """Register regrl's own environments with Ray (idempotent); gymnasium ids pass through."""
    if name not in ENVS:
        return name
    env_id = f"regrl/{name}"
    register_env(env_id, lambda env_ctx, _name=name: _make_rllib_env(_name, env_ctx))
    return env_id


def _custom_module(
    config: PPOConfig, cfg: ExperimentConfig, module_id: str, multi_agent: bool
) -> PPOConfig:
    spec = MODULE_SPECS.get(cfg.env.name)(cfg) if cfg.env.name in MODULE_SPECS else None
    if spec is None and cfg.model.trainable is not None:  # an MLP, or RIFT in raw mode
        raise ConfigError(
            "model.trainable applies to RIFT's candidate scorer (rift_metadrive in candidate "
            f"mode) only, not {cfg.env.name} with {dict(cfg.env.kwargs).get('action_mode')} "
            "actions: there the whole MLP trains (remove model.trainable)"
        )
    if spec is None:  # RLlib's default MLP, with the configured initial policy if any
        spec = init_module_spec(cfg.model)
    if spec is None:
        return config
    if multi_agent:
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

        spec = MultiRLModuleSpec(rl_module_specs={module_id: spec})
    return config.rl_module(rl_module_spec=spec)


def _shared_policy(config: PPOConfig, module_id: str) -> PPOConfig:
    """Parameter sharing: every agent of a multi-agent env maps to one module."""
    return config.multi_agent(
        policies={module_id}, policy_mapping_fn=lambda agent_id, *a, **kw: module_id
    )


class RegrlPPOConfig(PPOConfig):
    """PPO's config whose learner group shards whole episode groups (:mod:`.data_parallel`)."""

    def build_learner_group(
        self, *, env=None, spaces=None, rl_module_spec=None, placement_group=None
    ):
        if rl_module_spec is None:
            rl_module_spec = self.get_multi_rl_module_spec(env=env, spaces=spaces)
        return RegrlLearnerGroup(
            config=self.copy(), module_spec=rl_module_spec, placement_group=placement_group
        )


def build_algorithm_config(cfg: ExperimentConfig) -> PPOConfig:
    t, r, m = cfg.training, cfg.resources, cfg.model
    learners = max(1, r.num_learners)  # batch sizes are totals: each learner takes 1/learners
    critic = needs(cfg.objective.terms, "needs_values")
    adv = cfg.objective.advantages
    group = adv.estimator == "group"
    entry = env_entry(cfg.env.name)
    config = (
        RegrlPPOConfig()
        .environment(env=rllib_env_id(cfg.env.name), env_config=dict(cfg.env.kwargs))
        .env_runners(
            num_env_runners=r.num_env_runners,
            num_envs_per_env_runner=r.num_envs_per_env_runner,
            num_cpus_per_env_runner=r.num_cpus_per_env_runner,
            custom_resources_per_env_runner=dict(r.env_runner_resources),
            sample_timeout_s=r.sample_timeout_s,
            # group-relative advantages compare whole episodes
            batch_mode="complete_episodes" if group else "truncate_episodes",
        )
        .learners(
            num_learners=r.num_learners,
            num_gpus_per_learner=r.num_gpus_per_learner,
            custom_resources_per_learner=dict(r.learner_resources),
            learner_class=RegrlLearner,
            learner_config_dict={CONFIG_KEY: to_dict(cfg)},
        )
        .training(
            lr=t.lr,
            train_batch_size_per_learner=t.train_batch_size // learners,
            minibatch_size=t.minibatch_size // learners,
            num_epochs=t.num_epochs,
            gamma=adv.gamma,
            lambda_=adv.lam,
            grad_clip=t.grad_clip,
            use_kl_loss=False,
            entropy_coeff=0.0,  # both are objective terms here
        )
        .rl_module(
            model_config=DefaultModelConfig(
                fcnet_hiddens=list(m.hidden),
                fcnet_activation=m.activation,
                vf_share_layers=m.share_layers,
            )
        )
        .fault_tolerance(
            restart_failed_env_runners=True, max_num_env_runner_restarts=r.max_env_runner_restarts
        )
        # a learner actor's module is wrapped in DDP. Without a critic term (GRPO) the value
        # head gets no gradient, which DDP must be told to expect; with one, the loss reads
        # the values outside forward() (as RLlib's PPO does), so DDP must not look for unused
        # parameters after forward()
        .framework(torch_ddp_kwargs={"find_unused_parameters": not critic})
        .callbacks(RegrlCallbacks)
        .debugging(seed=cfg.seed, log_level="ERROR")
    )
    config = _custom_module(config, cfg, entry.module_id, entry.multi_agent)
    return _shared_policy(config, entry.module_id) if entry.multi_agent else config

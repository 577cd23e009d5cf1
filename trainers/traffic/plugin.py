"""Everything the RIFT domain registers into the core's tables, in one place (the core names
this module in :data:`regrl.trainers.plugins.DOMAIN_PLUGINS` and imports it on its first lookup)."""

from regrl.envs.traffic.env import TrafficEnv
from regrl.trainers.envs import MODULE_SPECS, register_env
from regrl.trainers.evaluate import EVALUATORS
from regrl.trainers.kinds import register_kind
from regrl.trainers.traffic.env_factory import make_rift_env
from regrl.trainers.traffic.evaluation import evaluate_run
from regrl.trainers.traffic.names import PRETRAIN_KIND, RIFT_ENV, RIFT_STAGE2_ENV
from regrl.trainers.traffic.pretrain import PlannerDriver


def rift_module_spec(cfg):
    """:func:`regrl.trainers.traffic.scorer_module.rift_module_spec`, imported when an RLlib run
    builds its module: this plugin is loaded by ``regrl validate``, which imports no RLlib."""
    from regrl.trainers.traffic.scorer_module import rift_module_spec as spec

    return spec(cfg)


register_env(
    RIFT_ENV,
    "RIFT: critical background vehicles in MetaDrive (candidate choice or raw control)",
    TrafficEnv,
    multi_agent=True,
    module_id="cbv",
    main_thread_only=True,
)
register_env(
    RIFT_STAGE2_ENV,
    "RIFT stage 2: rift_traffic whose candidates come from the stage-1 planner "
    "(env.kwargs.planner); action_mode raw for PPO from scratch",
    make_rift_env,
    multi_agent=True,
    module_id="cbv",
    main_thread_only=True,
)
MODULE_SPECS.register(RIFT_STAGE2_ENV, "RIFT candidate scorer on the frozen stage-1 planner")(
    rift_module_spec
)
EVALUATORS.register(RIFT_STAGE2_ENV, "RIFT CBV metrics: CPK, ORR, UC, RP, SW, WD, ego RC/crash")(
    evaluate_run
)
register_kind(PRETRAIN_KIND, "RIFT stage 1: imitation pre-training of the trajectory planner")(
    PlannerDriver
)

"""Everything the SMARL domain registers into the core's tables, in one place (the core names
this module in :data:`regrl.trainers.plugins.DOMAIN_PLUGINS` and imports it on its first lookup)."""

from regrl.envs.turbulence.env import TurbulenceEnv
from regrl.trainers.envs import register_env
from regrl.trainers.evaluate import EVALUATORS
from regrl.trainers.turbulence.smarl import evaluate_run

register_env(
    "smarl_turb2d",
    "SMARL: agents set local Smagorinsky/Leith coefficients of a 2D-turbulence LES",
    TurbulenceEnv,
    multi_agent=True,
    module_id="shared",
)
EVALUATORS.register("smarl_turb2d", "closure comparison against the filtered-DNS reference")(
    evaluate_run
)

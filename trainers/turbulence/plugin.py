"""Everything the SMARL domain registers into the core's tables, in one place (the core names
this module in :data:`trainers.plugins.DOMAIN_PLUGINS` and imports it on its first lookup)."""
from envs.turbulence.env import TurbulenceEnv
from trainers.envs import register_env
from trainers.evaluate import EVALUATORS
from trainers.turbulence.smarl import evaluate_run

register_env("smarl_turb2d",
             "SMARL: agents set local Smagorinsky/Leith coefficients of a 2D-turbulence LES",
             TurbulenceEnv, multi_agent=True, module_id="shared")
EVALUATORS.register("smarl_turb2d", "closure comparison against the filtered-DNS reference")(
    evaluate_run)

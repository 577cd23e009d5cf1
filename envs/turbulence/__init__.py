"""2D turbulence for SMARL (Mojgani et al. 2023, arXiv 2312.00907): pseudo-spectral solver,
eddy-viscosity closures and the multi-agent environment."""

from regrl.envs.turbulence.closures import (
    dynamic_smagorinsky_cs2,
    leith_viscosity,
    smagorinsky_viscosity,
    upsample_agent_actions,
)

# --- environment exports (parallel_env) go below this line ---
from regrl.envs.turbulence.env import TurbulenceEnv, parallel_env
from regrl.envs.turbulence.solver import Turbulence2D, gaussian_filter, spectral_filter

__all__ = [
    "Turbulence2D",
    "TurbulenceEnv",
    "dynamic_smagorinsky_cs2",
    "gaussian_filter",
    "leith_viscosity",
    "parallel_env",
    "smagorinsky_viscosity",
    "spectral_filter",
    "upsample_agent_actions",
]

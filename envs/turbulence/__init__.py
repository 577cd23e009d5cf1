"""2D turbulence for SMARL (Mojgani et al. 2023, arXiv 2312.00907): pseudo-spectral solver,
eddy-viscosity closures and the multi-agent environment."""
from envs.turbulence.closures import dynamic_smagorinsky_cs2, leith_viscosity
from envs.turbulence.closures import smagorinsky_viscosity, upsample_agent_actions
from envs.turbulence.solver import Turbulence2D, gaussian_filter, spectral_filter

# --- environment exports (parallel_env) go below this line ---
from envs.turbulence.env import TurbulenceEnv, parallel_env

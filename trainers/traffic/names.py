"""Names of the RIFT domain that code checking a run directory needs before torch or RLlib
load: ``regrl traffic compare`` checks its arguments with them (trainers/traffic/cli.py),
the domain's plugin registers them (trainers/traffic/plugin.py) and stage 1 writes them
(trainers/traffic/pretrain.py). No imports."""

PLANNER_FILE = "planner.pt"
"""The stage-1 planner checkpoint: in a planner run directory, and what ``export`` copies."""
PRETRAIN_KIND = "planner"
"""``kind`` of a stage-1 planner config (and of its run's config.yaml)."""
RIFT_ENV = "rift_traffic"
"""The RIFT environment: critical background vehicles in MetaDrive."""
RIFT_STAGE2_ENV = "rift_metadrive"
"""RIFT stage 2: ``rift_traffic`` whose candidates come from the stage-1 planner."""
RIFT_ENVS = (RIFT_ENV, RIFT_STAGE2_ENV)
"""Environments of RIFT RL runs (what ``regrl traffic compare`` accepts besides planner runs)."""

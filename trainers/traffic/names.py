"""Names of the RIFT domain that code checking a run directory needs before torch or RLlib
load: ``regrl traffic compare`` checks its arguments with them (trainers/traffic/cli.py) and
stage 1 writes them (trainers/traffic/pretrain.py). No imports."""

PLANNER_FILE = "planner.pt"
"""The stage-1 planner checkpoint: in a planner run directory, and what ``export`` copies."""
PRETRAIN_KIND = "planner"
"""``kind`` of a stage-1 planner config (and of its run's config.yaml)."""

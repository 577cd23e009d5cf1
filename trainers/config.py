"""The names ``regrl.trainers.config`` has always offered, for existing imports.

The config code lives in small modules, one job each; new code imports the module that defines
a name:

- :mod:`regrl.trainers.config_kernel`: a plain mapping <-> a frozen config dataclass
  (``parse``, ``to_dict``, named lists), with errors that name the key;
- :mod:`regrl.trainers.config_yaml`: the hardened YAML reader (``read_yaml``,
  ``load_yaml_text``, size and nesting caps);
- :mod:`regrl.trainers.config_overrides`: ``--set`` (the flag, ``apply_overrides``);
- :mod:`regrl.trainers.config_base`: the fields every kind shares (``RunConfig``,
  ``LearnerResources``, ``CheckpointConfig``);
- :mod:`regrl.trainers.config_objective`: ``objective:`` of kind rl and kind rlvr
  (``ObjectiveConfig``, ``TermSpec``, ``AdvantageConfig``);
- :mod:`regrl.trainers.config_rl`: the schema of kind rl (``ExperimentConfig``,
  ``load_config``); the other kinds' schemas live with their kinds.
"""

from regrl.trainers.checks import ConfigError, short_repr
from regrl.trainers.config_base import CheckpointConfig, LearnerResources, RunConfig
from regrl.trainers.config_kernel import NamedSpec, named_list, parse, to_dict
from regrl.trainers.config_objective import AdvantageConfig, ObjectiveConfig, TermSpec
from regrl.trainers.config_overrides import apply_overrides, parse_override
from regrl.trainers.config_rl import (
    DEFAULT_SAMPLE_TIMEOUT_S,
    EnvConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    ResourcesConfig,
    TrainingConfig,
    config_from_dict,
    load_config,
)
from regrl.trainers.config_yaml import MAX_CONFIG_BYTES, load_yaml_text, read_yaml

__all__ = [
    "DEFAULT_SAMPLE_TIMEOUT_S",
    "MAX_CONFIG_BYTES",
    "AdvantageConfig",
    "CheckpointConfig",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "ExperimentConfig",
    "LearnerResources",
    "ModelConfig",
    "NamedSpec",
    "ObjectiveConfig",
    "ResourcesConfig",
    "RunConfig",
    "TermSpec",
    "TrainingConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "load_yaml_text",
    "named_list",
    "parse",
    "parse_override",
    "read_yaml",
    "short_repr",
    "to_dict",
]

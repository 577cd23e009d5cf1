"""cluster.yaml passes Ray's own launcher validation, and a typo in it is caught."""
import copy
from pathlib import Path

import pytest
import yaml
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = yaml.safe_load((Path(__file__).resolve().parents[1] / "cluster.yaml").read_text())


def test_cluster_yaml_validates():
    full = prepare_config(copy.deepcopy(CLUSTER))  # merges provider defaults, no cloud calls
    validate_config(full)
    assert full["available_node_types"]["gpu_worker"]["resources"]["GPU"] == 1
    assert "--dashboard-host=127.0.0.1" in " ".join(full["head_start_ray_commands"])


def test_cluster_yaml_typo_is_caught():
    bad = copy.deepcopy(CLUSTER)
    bad["available_node_types"]["head"]["min_wrkers"] = 0
    with pytest.raises(ValidationError, match="min_wrkers"):
        validate_config(prepare_config(bad))

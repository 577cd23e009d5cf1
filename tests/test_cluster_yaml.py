"""cluster.yaml (AWS) and configs/cluster/local.yaml (on-premises) pass Ray's own launcher
validation, and a typo in either is caught."""

import copy
from pathlib import Path

import pytest
import yaml
from jsonschema import ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
AWS = yaml.safe_load((ROOT / "cluster.yaml").read_text())
LOCAL = yaml.safe_load((ROOT / "configs" / "cluster" / "local.yaml").read_text())


def test_cluster_yaml_validates():
    full = prepare_config(copy.deepcopy(AWS))  # merges provider defaults, no cloud calls
    validate_config(full)
    types = full["available_node_types"]
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert types["gpu_worker"]["resources"]["learner_slot"] == 1
    assert types["cpu_worker"]["resources"]["env_runner_slot"] >= 1
    assert "--dashboard-host=127.0.0.1" in " ".join(full["head_start_ray_commands"])
    ingress = full["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in ingress] == [(22, 22)]  # SSH only


def test_local_cluster_yaml_validates():
    full = prepare_config(copy.deepcopy(LOCAL))
    validate_config(full)
    assert list(full["available_node_types"]) == ["local.cluster.node"]
    assert "env_runner_slot" in " ".join(full["worker_start_ray_commands"])


@pytest.mark.parametrize("config,section", [(AWS, "available_node_types"), (LOCAL, None)])
def test_cluster_yaml_typo_is_caught(config, section):
    bad = copy.deepcopy(config)
    if section:
        bad[section]["head"]["min_wrkers"] = 0
    else:
        bad["idle_timout_minutes"] = 5
    with pytest.raises(ValidationError, match="min_wrkers|idle_timout_minutes"):
        validate_config(prepare_config(bad))

"""deploy/kuberay/rayjob.yaml without Kubernetes: only fields of KubeRay's ray.io/v1 API
(RayJobSpec, RayClusterSpec, AutoscalerOptions, Head/WorkerGroupSpec, as in KubeRay's CRD API
reference; no schema package exists), autoscaler v2, every worker group offering exactly the
resources and limits of its cluster.yaml node type, and an entrypoint that is a `regrl train`
of a config whose every actor fits one of those groups."""

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import ray
import yaml

from regrl.trainers.config import load_config
from regrl.trainers.feasibility import Demand, unmet
from regrl.trainers.run import actor_demands

ROOT = Path(__file__).resolve().parents[2]
RAYJOB = ROOT / "deploy" / "kuberay" / "rayjob.yaml"
CLUSTER = yaml.safe_load((ROOT / "cluster.yaml").read_text())

# the fields this file may use, per KubeRay ray.io/v1 type (a typo is an error here, while the
# API server would drop an unknown field silently)
FIELDS = {
    "RayJobSpec": {
        "entrypoint", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished", "rayClusterSpec",
        "runtimeEnvYAML", "submissionMode", "activeDeadlineSeconds", "backoffLimit",
    },
    "RayClusterSpec": {
        "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec",
        "workerGroupSpecs",
    },
    "AutoscalerOptions": {
        "version", "idleTimeoutSeconds", "upscalingMode", "resources", "image",
        "imagePullPolicy", "env", "envFrom", "securityContext", "volumeMounts",
    },
    "HeadGroupSpec": {"rayStartParams", "template", "serviceType", "headService"},
    "WorkerGroupSpec": {
        "groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template",
        "numOfHosts", "scaleStrategy", "suspend",
    },
}  # fmt: skip


def documents():
    return list(yaml.safe_load_all(RAYJOB.read_text()))


def rayjob(docs=None):
    (job,) = [d for d in docs or documents() if d["kind"] == "RayJob"]
    return job


def unknown_fields(job) -> list:
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    parts = [
        ("RayJobSpec", spec),
        ("RayClusterSpec", cluster),
        ("AutoscalerOptions", cluster["autoscalerOptions"]),
        ("HeadGroupSpec", cluster["headGroupSpec"]),
        *[("WorkerGroupSpec", g) for g in cluster["workerGroupSpecs"]],
    ]
    return [f"{kind}.{key}" for kind, body in parts for key in sorted(set(body) - FIELDS[kind])]


def cpus(quantity: str) -> float:
    """A Kubernetes CPU quantity ("4", "500m") in CPUs."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def offered(group) -> dict:
    """What Ray sees on a pod of ``group``: num-cpus, the GPU limit (KubeRay's num-gpus) and
    the custom resources of rayStartParams (a JSON object inside a JSON string)."""
    params = group["rayStartParams"]
    (container,) = group["template"]["spec"]["containers"]
    limits = container["resources"]["limits"]
    out = {"CPU": float(params["num-cpus"])}
    if "nvidia.com/gpu" in limits:
        out["GPU"] = float(limits["nvidia.com/gpu"])
    if "resources" in params:
        out.update(json.loads(json.loads(params["resources"])))
    return out


def test_manifest_uses_known_fields_and_autoscaler_v2():
    docs = documents()
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "RayJob"]
    job = rayjob(docs)
    assert job["apiVersion"] == "ray.io/v1"
    assert unknown_fields(job) == []
    spec, cluster = job["spec"], job["spec"]["rayClusterSpec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["version"] == "v2"
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:  # KubeRay wants every rayStartParams value as a string
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), group
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert len(images) == 1  # one image (one Ray, one regrl) on every pod
    # the runs volume the head mounts is the claim of the first document
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][0]["persistentVolumeClaim"]["claimName"] == docs[0]["metadata"]["name"]
    assert "/home/ray/runs" in spec["entrypoint"]


def test_a_typo_is_caught():
    job = rayjob()
    bad = copy.deepcopy(job)
    bad["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 6
    bad["spec"]["rayClusterSpec"]["autoscalerOptions"]["idleTimeoutSecond"] = 60
    assert unknown_fields(bad) == [
        "AutoscalerOptions.idleTimeoutSecond",
        "WorkerGroupSpec.maxReplica",
    ]


def test_groups_match_cluster_yaml_node_types():
    cluster = rayjob()["spec"]["rayClusterSpec"]
    types = CLUSTER["available_node_types"]
    head = cluster["headGroupSpec"]
    assert offered({**head, "rayStartParams": head["rayStartParams"]}) == {
        k: float(v) for k, v in types[CLUSTER["head_node_type"]]["resources"].items()
    }
    groups = {g["groupName"].replace("-", "_"): g for g in cluster["workerGroupSpecs"]}
    workers = {n for n in types if n != CLUSTER["head_node_type"]}
    assert set(groups) == workers
    for name, group in groups.items():
        node = types[name]
        assert offered(group) == {k: float(v) for k, v in node["resources"].items()}, name
        assert (group["minReplicas"], group["maxReplicas"]) == (
            node["min_workers"],
            node["max_workers"],
        )
        assert group["replicas"] == node["min_workers"]  # start from the minimum
    assert (
        cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 60 * CLUSTER["idle_timeout_minutes"]
    )
    for group in [head, *cluster["workerGroupSpecs"]]:  # Ray's CPUs = the pod's CPU limit
        (container,) = group["template"]["spec"]["containers"]
        res = container["resources"]
        assert cpus(res["limits"]["cpu"]) == float(group["rayStartParams"]["num-cpus"])
        assert cpus(res["requests"]["cpu"]) <= cpus(res["limits"]["cpu"])
        gpu = "nvidia.com/gpu"
        assert res["requests"].get(gpu) == res["limits"].get(gpu)  # Kubernetes requires it


def test_ray_version_is_the_installed_one_and_the_image_base():
    cluster = rayjob()["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    base = re.search(
        r"^FROM rayproject/ray:(\S+)", (RAYJOB.parent / "Dockerfile").read_text(), re.M
    )
    assert base and base.group(1).startswith(ray.__version__ + "-")


def test_entrypoint_is_regrl_train_of_a_config_that_fits_the_groups():
    job = rayjob()
    cd, train = job["spec"]["entrypoint"].split("&&")
    assert shlex.split(cd) == ["cd", "/home/ray/regrl"]  # the Dockerfile's checkout
    argv = shlex.split(train)
    assert argv[:2] == ["regrl", "train"]
    assert argv[argv.index("--address") + 1] == "auto"
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    cfg = load_config(ROOT / argv[2], sets)
    cluster = job["spec"]["rayClusterSpec"]
    groups = [offered(g) for g in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]]
    for demand in actor_demands(cfg):  # each actor's bundle fits one group's pod
        if demand.count:
            assert any(unmet([Demand(demand.what, 1, demand.bundle)], [g]) == [] for g in groups)
    # and the autoscaler can reach the whole run within the groups' maxReplicas
    pods = [offered(cluster["headGroupSpec"])] + [
        offered(g) for g in cluster["workerGroupSpecs"] for _ in range(g["maxReplicas"])
    ]
    assert unmet(actor_demands(cfg), pods) == []


@pytest.mark.parametrize("field", ["num-cpus", "resources"])
def test_a_group_that_drifts_from_cluster_yaml_is_caught(field):
    job = rayjob()
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    params = group["rayStartParams"]
    params[field] = "12" if field == "num-cpus" else '"{\\"env_runner_slot\\": 8}"'
    node = CLUSTER["available_node_types"][group["groupName"].replace("-", "_")]
    assert offered(group) != {k: float(v) for k, v in node["resources"].items()}

"""The Ray autoscaler (v2, what ``ray up`` runs since Ray 2.50) starting cluster.yaml's node types
on demand, on this machine: Ray's fake multi-node provider launches each "node" as a raylet
process. Nothing runs at start but the head; a learner's demand (1 GPU + ``learner_slot``)
starts a ``gpu_worker``, the actor lands there with GPU 0 and RLlib would put it on ``cuda:0``;
idle nodes go again; a real ``regrl train --address`` gets a ``cpu_worker`` started for its
env runner, and (``make test-all`` only: slow) when that node's raylet is killed mid-run the
autoscaler starts another and the run finishes. The head runs in its own process group, which
teardown kills (never ``ray stop``: it would kill every Ray process of the machine)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray
import yaml
from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID
from ray.autoscaler._private.util import prepare_config, validate_config

pytestmark = pytest.mark.autoscaling

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
CLUSTER = yaml.safe_load((ROOT / "cluster.yaml").read_text())
HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head's type
IDLE_S = 6.0
LAUNCH_TIMEOUT_S = 180.0  # a node start is a few raylet processes: ~20 s here under load
# a lost node is declared dead by the GCS's health checks, the env runner's restart waits for
# that, and only then does its demand reach the autoscaler: three waits in a row under load
REPLACE_TIMEOUT_S = 420.0
ITERATIONS = 40  # of the lost-worker run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_config(gcs_address: str) -> dict:
    """cluster.yaml's node types and limits on the fake provider (autoscaler v2), with a short
    idle timeout; the head type keeps cluster.yaml's head resources."""
    types = {
        name: {
            "resources": dict(t["resources"]),
            "node_config": {},
            "min_workers": t.get("min_workers", 0),
            "max_workers": t.get("max_workers", 0),
        }
        for name, t in CLUSTER["available_node_types"].items()
        if name != CLUSTER["head_node_type"]
    }
    head = CLUSTER["available_node_types"][CLUSTER["head_node_type"]]
    types[HEAD_TYPE] = {"resources": dict(head["resources"]), "node_config": {}, "max_workers": 0}
    return {
        "cluster_name": "regrl-fake",
        "max_workers": CLUSTER["max_workers"],
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_S / 60,
        "provider": {
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
            "gcs_address": gcs_address,
            "launch_multiple": True,  # what Ray's AutoscalingCluster sets for v2
            "head_node_id": FAKE_HEAD_NODE_ID,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": types,
        "head_node_type": HEAD_TYPE,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@pytest.fixture(scope="module")
def cluster():
    tmp = Path(tempfile.mkdtemp(prefix="regrl-as-"))  # short: Ray's socket paths are <= 107 bytes
    gcs = f"127.0.0.1:{_free_port()}"
    config = fake_config(gcs)
    path = tmp / "autoscaling.json"
    path.write_text(json.dumps(config))
    head = dict(config["available_node_types"][HEAD_TYPE]["resources"])
    env = dict(
        os.environ,
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_FAKE_CLUSTER="1",
        AUTOSCALER_UPDATE_INTERVAL_S="1",
        RAY_enable_autoscaler_v2="1",
        RAY_CLOUD_INSTANCE_ID=FAKE_HEAD_NODE_ID,
        RAY_OVERRIDE_NODE_ID_FOR_TESTING=FAKE_HEAD_NODE_ID,
        # a cluster with an autoscaler turns Ray 2.60's token authentication on; on loopback
        # the test's drivers connect without one (tests/cluster/test_job_submit.py uses one)
        RAY_AUTH_MODE="disabled",
    )
    start = [
        RAY,
        "start",
        "--head",
        "--block",
        f"--port={gcs.rsplit(':', 1)[1]}",
        f"--num-cpus={int(head.pop('CPU', 0))}",
        f"--autoscaling-config={path}",
        f"--temp-dir={tmp / 'ray'}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    if head:
        start.append(f"--resources={json.dumps(head)}")
    log = open(tmp / "head.log", "w")
    # --block in its own session: the autoscaler's fake nodes are its descendants, so killing
    # this process group stops the head and every node it started, and nothing else
    proc = subprocess.Popen(start, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (tmp / "head.log").read_text():
            assert proc.poll() is None, (tmp / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the head did not start in 180 s"
            time.sleep(1)
        ray.init(address=gcs, logging_level="ERROR")
        yield {"config": config, "gcs": gcs, "env": env, "log": tmp / "head.log"}
    finally:
        ray.shutdown()
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def alive_nodes() -> list:
    return [n for n in ray.nodes() if n["Alive"]]


def _autoscaler_log_tail(head_log: Path, lines: int = 40) -> str:
    """The end of the autoscaler's own log (monitor.log of the head's session), for a failure
    message: what it saw and launched, which the driver's output does not say."""
    logs = sorted((head_log.parent / "ray").glob("session_*/logs/monitor.log"))
    if not logs:
        return "(no monitor.log)"
    return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])


def wait_for(condition, timeout: float, what: str, head_log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(1)
    nodes = [(n["NodeID"][-6:], sorted(n["Resources"])) for n in alive_nodes()]
    tail = f"\nautoscaler log:\n{_autoscaler_log_tail(head_log)}" if head_log else ""
    raise AssertionError(f"{what}: not within {timeout:.0f} s; alive nodes: {nodes}{tail}")


@ray.remote
class Probe:
    """Where an actor landed, its GPU ids, and the torch device RLlib would give a learner
    with one GPU there (``torch.cuda.is_available`` faked: this machine has no CUDA)."""

    def where(self):
        import torch
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.utils.framework import get_device

        torch.cuda.is_available = lambda: True
        torch.cuda.device_count = lambda: 1
        device = get_device(PPOConfig().learners(num_gpus_per_learner=1), 1)
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "gpu_ids": ray.get_gpu_ids(),
            "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device": str(device),
        }


def test_the_fake_config_is_a_valid_launcher_config(cluster):
    validate_config(prepare_config(json.loads(json.dumps(cluster["config"]))))


def test_a_learner_demand_starts_a_gpu_worker_that_goes_again_when_idle(cluster):
    assert len(alive_nodes()) == 1  # the head only: workers start on demand
    gpu_worker = CLUSTER["available_node_types"]["gpu_worker"]["resources"]
    began = time.monotonic()
    probe = Probe.options(num_cpus=0, num_gpus=1, resources={"learner_slot": 1}).remote()
    where = ray.get(probe.where.remote(), timeout=LAUNCH_TIMEOUT_S)
    launched_s = time.monotonic() - began
    (node,) = [n for n in alive_nodes() if n["NodeID"] == where["node"]]
    offered = {k: v for k, v in node["Resources"].items() if k in gpu_worker}
    assert offered == {k: float(v) for k, v in gpu_worker.items()}  # a gpu_worker node
    assert where["node"] != ray.get_runtime_context().get_node_id()  # not the head
    assert where["gpu_ids"] == [0] and where["cuda_visible"] == "0"
    assert where["device"] == "cuda:0"
    print(f"gpu_worker launched and actor placed in {launched_s:.0f} s")

    ray.kill(probe)
    wait_for(lambda: len(alive_nodes()) == 1, IDLE_S + 120, "the idle gpu_worker to go")


def test_regrl_train_env_runners_start_a_cpu_worker(cluster, tmp_path):
    """A real ``regrl train --address`` (a separate driver): its env runner asks for an
    ``env_runner_slot``, which only ``cpu_worker`` nodes offer, so the autoscaler starts one
    and the runner holds a slot there while the run lives; the node goes when idle."""
    wait_for(lambda: len(alive_nodes()) == 1, IDLE_S + 120, "a cluster of the head only")
    sets = {
        "runs_root": tmp_path,
        "training.iterations": 2,
        "training.stop_return": "null",
        "training.train_batch_size": 200,
        "training.minibatch_size": 100,
        "training.num_epochs": 1,
        "resources.num_env_runners": 1,
        "resources.env_runner_resources": "{env_runner_slot: 1}",
        "checkpoint.every": 1,
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "regrl.trainers.cli", "train", "configs/cartpole_ppo.yaml"]
    proc = subprocess.Popen(
        [*cmd, *args, "--address", cluster["gcs"], "--quiet"],
        cwd=ROOT,
        env=cluster["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # a slot taken on the cluster = the runner is on a cpu_worker (no other type has one)
        held = wait_for(
            lambda: (
                proc.poll() is not None
                or ray.available_resources().get("env_runner_slot", 0.0)
                < ray.cluster_resources().get("env_runner_slot", 0.0)
            ),
            LAUNCH_TIMEOUT_S,
            "an env runner on a cpu_worker",
        )
        assert held is True and proc.poll() is None, proc.communicate()[0][-3000:]
        slots = CLUSTER["available_node_types"]["cpu_worker"]["resources"]["env_runner_slot"]
        assert ray.cluster_resources()["env_runner_slot"] == slots  # one cpu_worker node
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    (waiting,) = [line for line in out.splitlines() if "waiting for the autoscaler" in line]
    assert "env_runner_slot" in waiting  # says what it waits for
    assert list(tmp_path.glob("cartpole_ppo/*/checkpoints/iter_000002")), out[-3000:]
    wait_for(lambda: len(alive_nodes()) == 1, IDLE_S + 120, "the idle cpu_worker to go")


def _raylet_pids(node_id: str) -> list:
    """The raylet process of one (fake) node, by its node id on the command line."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "raylet/raylet" in cmd and f"--node_id={node_id}" in cmd:
            pids.append(int(proc.name))
    return pids


# ~60 s of a 40-iteration run. Its two halves run fast in make test: a lost worker node's
# env runners restarted and training going on (test_multinode.py::
# test_removed_worker_node_training_continues_on_the_other), and an env runner's demand
# starting a cpu_worker for a real regrl train --address (the test above).
@pytest.mark.slow
def test_a_lost_cpu_worker_is_replaced_and_training_goes_on(cluster, tmp_path):
    """SIGKILL the raylet of the cpu_worker hosting the env runners mid-run: RLlib restarts the
    runners, their demand makes the autoscaler start another cpu_worker, the run finishes."""
    wait_for(lambda: len(alive_nodes()) == 1, IDLE_S + 120, "a cluster of the head only")
    sets = {
        "runs_root": tmp_path,
        # long enough that the run is still sampling when its node dies: a CartPole iteration
        # of 200 steps takes ~0.3 s, and a short run could finish on in-flight samples before
        # RLlib restarts the runner (seen in CI: 6 iterations were done 2 s after the kill)
        "training.iterations": ITERATIONS,
        "training.stop_return": "null",
        "training.train_batch_size": 200,
        "training.minibatch_size": 100,
        "training.num_epochs": 1,
        "resources.num_env_runners": 1,
        "resources.env_runner_resources": "{env_runner_slot: 1}",
        "checkpoint.every": 1,
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "regrl.trainers.cli", "train", "configs/cartpole_ppo.yaml"]
    proc = subprocess.Popen(
        [*cmd, *args, "--address", cluster["gcs"], "--quiet"],
        cwd=ROOT,
        env=cluster["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: proc.poll() is not None or list(tmp_path.glob("cartpole_ppo/*/metrics.jsonl")),
            LAUNCH_TIMEOUT_S,
            "iteration 1",
        )
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        (first,) = [n["NodeID"] for n in alive_nodes() if "env_runner_slot" in n["Resources"]]
        pids = _raylet_pids(first)
        assert pids, "the cpu_worker's raylet"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        replaced = wait_for(
            lambda: (
                proc.poll() is not None
                or [
                    n["NodeID"]
                    for n in alive_nodes()
                    if "env_runner_slot" in n["Resources"] and n["NodeID"] != first
                ]
            ),
            REPLACE_TIMEOUT_S,
            "a new cpu_worker",
            cluster["log"],
        )
        assert replaced is not True, f"the run ended first: {proc.communicate()[0][-3000:]}"
        print(f"a new cpu_worker {time.monotonic() - killed:.0f} s after the kill")
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    assert replaced and first not in replaced
    (run_dir,) = (tmp_path / "cartpole_ppo").iterdir()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "env/env_steps" in r] == list(range(1, ITERATIONS + 1))
    assert max(r.get("perf/env_runner_restarts", 0) for r in rows) >= 1

"""``ray job submit -- regrl train ... --address auto`` against a head node started with
``ray start --head`` (dashboard/job server on loopback), as on a cluster head."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip(
    "aiohttp", reason="the job server needs ray[default] (pip install -e .[cluster])"
)
ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
TEARDOWN_GRACE_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    # Ray 2.60 clusters use token authentication; the submitter must present the same token.
    env = dict(
        os.environ,
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),
    )
    gcs, dash = _free_port(), _free_port()
    tmp = tmp_path_factory.mktemp("ray")
    start = [
        RAY,
        "start",
        "--head",
        "--block",
        f"--port={gcs}",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        # the node's agents get free ports too: their defaults are fixed (dashboard agent
        # 52365, ...), and another Ray instance on the machine (a user's training, ray.init
        # in another job) holding them leaves this head without a job agent ("No available
        # agent to submit job" for as long as one waits: seen with a sweep running beside)
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
        f"--temp-dir={tmp}",
        "--disable-usage-stats",
    ]
    # --block in its own session: teardown stops this head only (never `ray stop`, which would
    # kill every Ray process of the machine, a user's training included)
    proc = subprocess.Popen(
        start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{dash}"
    try:
        _wait_for_job_server(url, env, proc)
        yield env, f"127.0.0.1:{gcs}", url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            # `ray start --block` stops its processes one by one on SIGTERM (~30 s here);
            # the head's state is this test's temp dir, so a SIGKILL after a grace loses nothing
            proc.wait(timeout=TEARDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_for_job_server(url, env, proc, timeout=180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "ray start --head exited early"
        out = subprocess.run(
            [RAY, "job", "list", "--address", url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode == 0:
            return
        time.sleep(2)
    raise TimeoutError(f"no job server at {url} after {timeout:.0f} s")


NO_AGENT = "No available agent to submit job"
AGENT_WAIT_S = 300  # the agent registers within seconds on an idle machine; > 2 min was seen
# with a second Ray cluster training on the same 2 cores


def test_ray_job_submit_runs_regrl_train(head, tmp_path):
    env, gcs, dashboard = head
    # the job server starts the entrypoint with RAY_ADDRESS set: `--address auto` joins it
    cmd = [
        RAY,
        "job",
        "submit",
        "--address",
        dashboard,
        "--working-dir",
        str(ROOT),
        "--runtime-env-json",
        json.dumps({"excludes": [".venv", "runs", "data", ".git"]}),
        "--",
        sys.executable,
        "-m",
        "regrl.trainers.cli",
        "train",
        "configs/cartpole_ppo.yaml",
        "--address",
        "auto",
        "--quiet",
        "--set",
        "training.iterations=1",
        "--set",
        "training.train_batch_size=400",
        "--set",
        "training.minibatch_size=100",
        "--set",
        "resources.num_env_runners=1",
        "--set",
        f"runs_root={tmp_path}",
    ]
    start = time.time()
    while True:
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        log = out.stdout + out.stderr
        # `ray job list` answers before the node's job agent has registered; Ray then refuses
        # the submission with this message and asks to try again (seen under CPU load)
        if out.returncode == 0 or NO_AGENT not in log or time.time() - start > AGENT_WAIT_S:
            break
        time.sleep(5)
    assert out.returncode == 0, log
    assert "succeeded" in log and "done: 1 iterations" in log, log
    assert list(tmp_path.glob("cartpole_ppo/*/checkpoints/iter_*1")), log
    assert time.time() - start < 600

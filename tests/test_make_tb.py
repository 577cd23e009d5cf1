"""`make tb` starts TensorBoard (it has no authentication) listening on loopback only.

The command is taken from the Makefile itself (`make -n tb`), so the test runs exactly what
users run, on a free port and a temporary log directory.
"""

import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tb_command(port: int, logdir: Path) -> list:
    """The tensorboard line `make tb` would run (the setup prerequisite's lines, if the venv
    is stale, come first and are dropped)."""
    out = subprocess.run(
        ["make", "-s", "-n", "tb", f"TB_PORT={port}", f"TB_LOGDIR={logdir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if "tensorboard" in ln.split(" ", 1)[0]]
    assert lines, f"make -n tb printed no tensorboard command:\n{out}"
    return shlex.split(lines[-1])


def _listening(proc: subprocess.Popen, port: int) -> list:
    """Local addresses the process (or a child) listens on at ``port``."""
    procs = [psutil.Process(proc.pid)]
    procs += procs[0].children(recursive=True)
    return [
        c.laddr.ip
        for p in procs
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_tb_listens_on_loopback_only(tmp_path):
    port = _free_port()
    cmd = _tb_command(port, tmp_path)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, addrs = time.monotonic() + START_TIMEOUT_S, []
        while not addrs and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"`{shlex.join(cmd)}` exited with {proc.returncode}:\n"
                    f"{proc.stdout.read()[-2000:]}"
                )
            addrs = _listening(proc, port)
            time.sleep(0.2)
        assert addrs, f"tensorboard did not listen on port {port} within {START_TIMEOUT_S} s"
        assert set(addrs) == {"127.0.0.1"}, f"listens on {addrs}, not only on 127.0.0.1"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(12).startswith(b"HTTP/1.")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""`make run` (scripts/run.sh): the API and the job worker side by side, sharing one Prometheus
multiprocess folder, so every app server's /metrics adds up the job worker's counters too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.sqlite  # one pass is enough: it runs on its own SQLite file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
                todo.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
@pytest.mark.timeout(240)
def test_run_gives_the_server_and_the_worker_one_metrics_folder(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "STRIPE_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PORT=str(port),
        HOST="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
        SECRET_KEY="run-script-test",
        LOYALTY_JOBS_FILE=str(tmp_path / "jobs.sqlite3"),
    )
    stale = ROOT / "instance" / "prometheus" / "counter_999999.db"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"")  # a dead process's counters, left from an earlier run
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        answered = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # counted once answered: the request's counter is written before its response
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3):
                    answered = True
                    break
            except OSError:
                time.sleep(0.5)
        assert answered, (tmp_path / "run.log").read_text()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        healthz = [
            line
            for line in metrics.splitlines()
            if line.startswith("loyalty_http_requests_total{") and 'route="/healthz"' in line
        ]
        assert healthz, metrics
        assert not stale.exists()  # run.sh starts the folder empty
        children = {pid: _cmdline(pid) for pid in _descendants(proc.pid)}
        worker = [pid for pid, cmd in children.items() if "loyalty worker" in cmd]
        server = [pid for pid, cmd in children.items() if "gunicorn" in cmd]
        assert worker and server, children
        folders = {_environ(pid).get("PROMETHEUS_MULTIPROC_DIR") for pid in worker + server}
        assert folders == {str(ROOT / "instance" / "prometheus")}
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as in a terminal
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

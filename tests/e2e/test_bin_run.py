"""bin/run as a person starts it, on ports of its own: it answers a burst of agents, and every
process it starts stops with it, on SIGTERM or when one of them dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from countersign.localredis import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

# What bin/run must choose for itself: none of the suite's settings leak into it.
_NOT_INHERITED = ("DEBUG", "DATABASE_URL", "SITE_URL", "EMAIL_BACKEND", "EMAIL_FILE_PATH", "PORT", "REDIS_URL")


class BinRun:
    """bin/run in a session of its own (so that every process it starts can be found), with its
    data in `var_dir` (the second start on the same directory reuses the demo data)."""

    def __init__(self, var_dir: Path):
        self.var_dir = var_dir
        self.port = free_port()
        self.redis_port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        env.update(
            PORT=str(self.port),
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            COUNTERSIGN_VAR_DIR=str(var_dir),
        )
        self.log_path = var_dir / "bin-run.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(ROOT / "bin" / "run")],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_running(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while "Countersign is running" not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"bin/run did not start:\n{self.log_path.read_text()[-4000:]}")
            time.sleep(0.3)

    def processes(self) -> dict[int, str]:
        """The live processes of bin/run's session (zombies, already dead, are not counted)."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
            if int(session) == self.process.pid and state != "Z":
                found[int(entry.name)] = cmdline.strip()
        return found

    def wait_for_exit(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"bin/run did not stop within {timeout} s:\n{self.log_path.read_text()[-4000:]}")

    def cleanup(self) -> None:
        # Whatever a failed test left behind: only the processes of this bin/run's own session.
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        self.log.close()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _assert_all_stopped(run: BinRun) -> None:
    deadline = time.monotonic() + 10
    while run.processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.processes() == {}, "still running after bin/run stopped"
    assert not _answers(run.port), f"the web port {run.port} still answers"
    assert not _answers(run.redis_port), f"the Redis port {run.redis_port} still answers"


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bin-run-var")


@pytest.fixture
def bin_run(var_dir):
    run = BinRun(var_dir)
    yield run
    run.cleanup()


def _post_concurrently(run: BinRun, n: int) -> list:
    token = (run.var_dir / "demo_agent_token").read_text().strip()
    with sqlite3.connect(run.var_dir / "countersign.sqlite3") as db:
        tickets = db.execute("SELECT id, tags FROM demo_ticket ORDER BY id LIMIT ?", (n,)).fetchall()
    stamp = time.time_ns()
    start = threading.Barrier(n)
    answers: list = [None] * n

    def post(i: int) -> None:
        ticket_id, tags = tickets[i]
        body = {
            "workflow": "ticket-triage",
            "run": f"burst-{stamp}",
            "operation_id": f"burst-{stamp}-{i}",
            "record_type": "ticket",
            "records": [{"id": ticket_id, "expected": {"tags": tags}}],
            "values": {"tags": "billing"},
            "risk": 0.9,
            "confidence": 0.9,
            "reasoning": "A burst of agents at once.",
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{run.port}/api/v1/changes",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        start.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers[i] = response.status
        except urllib.error.HTTPError as exc:
            answers[i] = exc.code
        except OSError as exc:
            answers[i] = repr(exc)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def test_fifty_agents_at_once_all_get_an_answer_and_sigterm_stops_every_process(bin_run):
    bin_run.wait_until_running()
    started = bin_run.processes()
    commands = " ".join(started.values())
    assert "celery" in commands and "gunicorn" in commands and "-server" in commands  # redis-/valkey-server
    assert _answers(bin_run.port) and _answers(bin_run.redis_port)

    answers = _post_concurrently(bin_run, 50)
    assert answers == [201] * 50

    # Pages and their static files are served (whitenoise: DEBUG is off).
    base = f"http://127.0.0.1:{bin_run.port}"
    with urllib.request.urlopen(f"{base}/login/", timeout=10) as login:
        assert login.status == 200 and b"countersign.css" in login.read()
    with urllib.request.urlopen(f"{base}/static/countersign.css", timeout=10) as css:
        assert css.status == 200
    # DEBUG is off: a missing page lists no URL patterns.
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{bin_run.port}/no-such-page/", timeout=10)
    assert missing.value.code == 404 and b"URLconf" not in missing.value.read()

    os.kill(bin_run.process.pid, signal.SIGTERM)
    bin_run.wait_for_exit()
    _assert_all_stopped(bin_run)


def test_when_one_process_dies_bin_run_stops_the_others(bin_run):
    bin_run.wait_until_running()
    worker = next(
        pid
        for pid, command in bin_run.processes().items()
        if "celery" in command and " worker" in command and _parent(pid) == bin_run.process.pid
    )
    os.kill(worker, signal.SIGKILL)
    assert bin_run.wait_for_exit() != 0
    _assert_all_stopped(bin_run)
    assert "stopping the others" in bin_run.log_path.read_text()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_ctrl_c_stops_every_process(bin_run):
    bin_run.wait_until_running()
    # Ctrl-C in a terminal signals the foreground process group: bin/run's own.
    os.killpg(bin_run.process.pid, signal.SIGINT)
    bin_run.wait_for_exit()
    _assert_all_stopped(bin_run)

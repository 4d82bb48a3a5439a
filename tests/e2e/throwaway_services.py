"""Services that a test may kill and bring back, each its own on a free port of 127.0.0.1: an MLflow tracking
server (SQLite, local artifacts), a Redis server (append-only file, so a ``kill -9`` loses nothing written)
and moto's S3 server (in this process: its buckets outlive a stop).

Never the machine's shared ones (its Redis on 6379 serves other tests). Each process leads its own process
group and is stopped by its PID. A missing ``redis-server`` skips the test with the reason, except in CI
(``CI=true``), where it must run.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlops_dev.processes import ManagedProcess, start_process
from tests.airflow_rest import free_port

VENV_BIN = Path(sys.executable).parent
STARTUP_SECONDS = 180


def require_binary(name: str, install: str) -> str:
    """The path of ``name``; skips the test without it (fails in CI, where ``.ci/run`` installs it)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed ({install})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run this test")
        pytest.skip(reason)
    return path


def python_environment(folder: Path) -> dict[str, str]:
    """The environment for Python servers started by tests: with ``PYTHONDONTWRITEBYTECODE`` set (this
    sandbox sets it) every process compiles every import again; a bytecode cache of the test's own (outside
    the venv) pays that once. Without it, the venv's own caches are used as they are."""
    environment = dict(os.environ)
    if environment.get("PYTHONDONTWRITEBYTECODE"):
        environment["PYTHONDONTWRITEBYTECODE"] = ""
        environment["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return environment


def _wait(ready, process: ManagedProcess, what: str, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            raise RuntimeError(f"{what} exited: {process.log_tail()}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s: {process.log_tail()}")


class _Restartable:
    """A server process that :meth:`kill` stops with ``SIGKILL`` (a crash) and :meth:`start` brings back on the
    same port with the same data."""

    name = "server"

    def __init__(self, folder: Path, environment: dict[str, str]) -> None:
        self.folder = folder
        self.environment = environment
        self.port = free_port()
        self.process: ManagedProcess | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, wait: bool = True) -> None:
        self.process = start_process(self.name, self.command(), env=self.environment, log_dir=self.folder)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        assert self.process is not None
        _wait(self.ready, self.process, f"{self.name} on port {self.port}")

    def kill(self) -> None:
        """``kill -9`` the whole process group, and wait until the port refuses connections."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.popen.wait(timeout=30)
        self.process = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop for good at the end of the test."""
        if self.process is not None:
            self.process.stop(grace=5)
            self.process = None


class MlflowServer(_Restartable):
    """``mlflow server`` on SQLite with artifacts served from a local folder (``mlflow-artifacts:/``)."""

    name = "mlflow"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.folder / "artifacts"),
        ]

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
            return response.status == 200


class RedisServer(_Restartable):
    """``redis-server`` with an append-only file synced on every write: a ``kill -9`` keeps what was written."""

    name = "redis"

    def __init__(self, folder: Path, environment: dict[str, str]) -> None:
        self.binary = require_binary("redis-server", "apt-get install -y redis-server")
        super().__init__(folder, environment)

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")

    def keys(self, pattern: str) -> int:
        """How many keys match ``pattern``."""
        import redis

        return sum(
            1 for _ in redis.Redis(port=self.port, socket_timeout=10).scan_iter(match=pattern, count=1000)
        )


class RestartableS3:
    """moto's S3 server in this process on a fixed port; :meth:`kill` closes it (connections are refused), and
    :meth:`start` opens it again with every bucket and object as it was (moto keeps one store per process)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def reset(self) -> None:
        """Empty moto's store: buckets another test of this process left are not ours."""
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10
        )

    def kill(self) -> None:
        if self.server is None:
            return
        self.server.stop()
        # stop() ends the serving loop but leaves the socket listening (connections would hang): close it.
        self.server._server.server_close()
        self.server = None

    def stop(self) -> None:
        self.kill()

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # pragma: allowlist secret
            region_name="us-east-1",
        )

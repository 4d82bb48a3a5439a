"""A real Prometheus Pushgateway (Debian's ``prometheus-pushgateway``) on a free port of 127.0.0.1 for tests.

Each gateway gets its own persistence file in the test's folder and is stopped (by its PID) afterwards. Without
the binary the test is skipped with a reason, except in CI (``CI=true``), where ``.ci/run`` installs it and the
test must run.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.airflow_rest import free_port

BINARY = "prometheus-pushgateway"


def require_binary() -> str:
    """The gateway's path; skips (fails in CI) when it is not installed."""
    path = shutil.which(BINARY)
    if path is None:
        reason = f"{BINARY} is not installed (apt-get install -y prometheus-pushgateway)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run installs it in CI")
        pytest.skip(reason)
    return path


def get(url: str, auth: tuple[str, str] | None = None) -> str:
    """The body of a GET, with HTTP basic auth when ``auth`` is given."""
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


@contextmanager
def running_pushgateway(folder: Path, web_config: str | None = None, auth: tuple[str, str] | None = None):
    """Start a gateway storing into ``folder``; yield ``(host, port)``; stop it.

    :param web_config: the text of a ``--web.config.file`` (basic auth users), if any.
    :param auth: the credentials that config accepts, to probe readiness.
    """
    binary = require_binary()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={folder / 'pushgateway.data'}",
    ]
    if web_config is not None:
        (folder / "web.yml").write_text(web_config)
        command.append(f"--web.config.file={folder / 'web.yml'}")
    log = (folder / "pushgateway.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process, folder, auth)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen, folder: Path, auth: tuple[str, str] | None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{BINARY} exited: {(folder / 'pushgateway.log').read_text()[-2000:]}")
        try:
            get(f"{url}/-/ready", auth)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{BINARY} on {url} was not ready in 30 s")


def series(metrics_text: str, name: str) -> dict[frozenset, float]:
    """The series of ``name`` in a /metrics page: {frozenset of (label, value)}: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name:
                found[frozenset(sample.labels.items())] = sample.value
    return found

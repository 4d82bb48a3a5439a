"""`mlops-ops settings apply` against a real, migrated Airflow metadata database (SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlops_ops.cli import main
from mlops_ops.settings_file import apply_settings, load_settings_file, parse_settings

pytestmark = pytest.mark.integration

REPO_SETTINGS = Path(__file__).resolve().parents[2] / "airflow_settings.yaml"
BIN = Path(sys.executable).parent


def orm_state() -> dict:
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return {
            "connections": {
                conn.conn_id: (conn.conn_type, conn.host, conn.extra_dejson, conn.password)
                for conn in session.scalars(select(Connection))
            },
            "pools": {pool.pool: (pool.slots, pool.description) for pool in session.scalars(select(Pool))},
            "variables": {var.key: var.val for var in session.scalars(select(Variable))},
        }


def summary_lines(output: str) -> list[str]:
    return [
        line for line in output.splitlines() if line.split(":")[0] in ("connections", "pools", "variables")
    ]


ALL_UNCHANGED = [
    "connections: 0 created, 0 updated, 2 unchanged (unchanged: mlflow_default, aws_default)",
    "pools: 0 created, 0 updated, 2 unchanged (unchanged: gpu, registry)",
    "variables: 0 created, 0 updated, 1 unchanged (unchanged: mlops_promotion_policy)",
]


def test_apply_repo_settings_then_again_changes_nothing(airflow_db, capsys):
    assert main(["settings", "apply", str(REPO_SETTINGS)]) == 0
    first = capsys.readouterr().out
    state = orm_state()

    assert first.startswith(f"Applied {REPO_SETTINGS} to sqlite:///{airflow_db}")
    assert state["pools"]["gpu"] == (1, "GPU training slots: one training task per GPU")
    assert state["connections"]["mlflow_default"] == ("mlflow", None, {}, None)
    assert state["connections"]["aws_default"] == ("aws", None, {"region_name": "us-east-1"}, None)
    assert state["pools"]["registry"][0] == 1
    assert state["variables"]["mlops_promotion_policy"] == "manual"

    assert main(["settings", "apply", str(REPO_SETTINGS)]) == 0

    assert summary_lines(capsys.readouterr().out) == ALL_UNCHANGED
    assert orm_state() == state  # no duplicates, nothing rewritten


def test_new_entries_are_created_and_changed_ones_updated(airflow_db, tmp_path, capsys):
    suffix = uuid.uuid4().hex[:8]
    settings_file = tmp_path / "airflow_settings.yaml"
    settings_file.write_text(
        REPO_SETTINGS.read_text().replace("gpu", f"gpu_{suffix}").replace("registry", f"registry_{suffix}")
    )

    assert main(["settings", "apply", str(settings_file)]) == 0
    assert (
        f"pools: 2 created, 0 updated, 0 unchanged (created: gpu_{suffix}, registry_{suffix})"
        in capsys.readouterr().out
    )

    settings_file.write_text(
        settings_file.read_text().replace(
            'pool_slot: 1\n      pool_description: "GPU', 'pool_slot: 4\n      pool_description: "GPU'
        )
    )
    assert main(["settings", "apply", str(settings_file)]) == 0

    assert f"pools: 0 created, 1 updated, 1 unchanged (updated: gpu_{suffix} [pool_slot]" in (
        capsys.readouterr().out
    )
    assert orm_state()["pools"][f"gpu_{suffix}"][0] == 4


def test_every_connection_field_is_updated_from_the_environment(airflow_db):
    conn_id = f"warehouse_{uuid.uuid4().hex[:8]}"
    settings = parse_settings(
        {
            "airflow": {
                "connections": [
                    {
                        "conn_id": conn_id,
                        "conn_type": "postgres",
                        "conn_host": "${DB_HOST}",
                        "conn_password": "${DB_PASSWORD}",
                        "conn_port": "${DB_PORT:-5432}",
                        "conn_extra": {"sslmode": "${SSLMODE:-require}"},
                    }
                ],
                "variables": [{"variable_name": conn_id, "variable_value": {"port": "${DB_PORT:-5432}"}}],
            }
        }
    )

    report = apply_settings(settings, environ={"DB_HOST": "db1", "DB_PASSWORD": "s3cret"})
    assert report.connections.created == (conn_id,)
    report = apply_settings(
        settings, environ={"DB_HOST": "db2", "DB_PASSWORD": "s3cret", "AIRFLOW_VAR_" + conn_id.upper(): "x"}
    )

    assert report.connections.changed_fields == {conn_id: ("conn_host",)}
    assert report.variables.unchanged == (conn_id,)
    [warning] = report.warnings
    assert warning.startswith(f"variable {conn_id!r} is also set by AIRFLOW_VAR_{conn_id.upper()}")
    state = orm_state()
    assert state["connections"][conn_id] == ("postgres", "db2", {"sslmode": "require"}, "s3cret")
    assert json.loads(state["variables"][conn_id]) == {"port": "5432"}


@pytest.fixture
def fernet_key(monkeypatch):
    """A Fernet key for this test alone: Airflow caches its Fernet object, so the cache is cleared around it."""
    from airflow.models.crypto import get_fernet
    from cryptography.fernet import Fernet

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    get_fernet.cache_clear()
    yield
    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY")
    get_fernet.cache_clear()


def _stored_and_read(name: str) -> tuple[tuple[str, ...], tuple]:
    """The stored password, extra and variable value of ``name``, each checked encrypted, and the same read
    through the ORM (decrypted)."""
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        connection = session.scalar(select(Connection).where(Connection.conn_id == name))
        variable = session.scalar(select(Variable).where(Variable.key == name))
        assert (connection.is_encrypted, connection.is_extra_encrypted, variable.is_encrypted) == (True,) * 3
        stored = (connection._password, connection._extra, variable._val)
        return stored, (connection.password, connection.extra_dejson, variable.val)


def test_secrets_are_stored_encrypted_and_compared_decrypted(airflow_db, fernet_key):
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    name = f"vault_{uuid.uuid4().hex[:8]}"
    document = {
        "airflow": {
            "connections": [
                {"conn_id": name, "conn_type": "postgres", "conn_password": "${PW}", "conn_extra": {"k": "v"}}
            ],
            "variables": [{"variable_name": name, "variable_value": "${TOKEN}"}],
        }
    }
    settings = parse_settings(document)
    try:
        apply_settings(settings, environ={"PW": "first-password", "TOKEN": "first-token"})
        again = apply_settings(settings, environ={"PW": "first-password", "TOKEN": "first-token"})
        changed = apply_settings(settings, environ={"PW": "second-password", "TOKEN": "second-token"})
        stored, read = _stored_and_read(name)
    finally:
        # The database outlives this test's key: entries it could no longer decrypt would break the next tests.
        with create_session() as session:
            session.execute(delete(Connection).where(Connection.conn_id == name))
            session.execute(delete(Variable).where(Variable.key == name))

    # Compared decrypted: the same values are unchanged although each encryption differs (Fernet is salted).
    assert (again.connections.unchanged, again.variables.unchanged) == ((name,), (name,))
    assert changed.connections.changed_fields == {name: ("conn_password",)}
    assert changed.variables.changed_fields == {name: ("variable_value",)}
    assert read == ("second-password", {"k": "v"}, "second-token")
    assert not any(
        secret in value for value in stored for secret in ("second-password", "second-token", '"k"')
    )


def test_an_invalid_entry_writes_nothing(airflow_db, tmp_path, capsys):
    pool = f"never_{uuid.uuid4().hex[:8]}"
    settings_file = tmp_path / "airflow_settings.yaml"
    settings_file.write_text(
        "airflow:\n"
        f"  pools: [{{pool_name: {pool}, pool_slot: 1}}]\n"
        "  connections: [{conn_id: 'has spaces', conn_type: http}]\n"
    )

    assert main(["settings", "apply", str(settings_file)]) == 2

    assert "airflow.connections[0].conn_id (has spaces): at most 250 letters" in capsys.readouterr().err
    assert pool not in orm_state()["pools"]


def test_console_script_and_airflow_cli_see_the_same_database(airflow_db):
    apply_settings(load_settings_file(REPO_SETTINGS))  # the state the script must find unchanged
    env = os.environ.copy()

    result = subprocess.run(
        [str(BIN / "mlops-ops"), "settings", "apply", str(REPO_SETTINGS)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert summary_lines(result.stdout) == ALL_UNCHANGED
    assert str(airflow_db) in result.stdout

    pools = subprocess.run(
        [str(BIN / "airflow"), "pools", "get", "gpu", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    [gpu] = json.loads(pools.stdout[pools.stdout.index("[") :])
    assert (gpu["pool"], int(gpu["slots"])) == ("gpu", 1)

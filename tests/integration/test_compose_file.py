"""docker-compose.yaml is a valid compose file (Debian's docker-compose validates it without an engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_file_validates_with_the_example_environment():
    completed = subprocess.run(
        ["docker-compose", "--env-file", ".env.example", "-f", "docker-compose.yaml", "config", "-q"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr


def test_compose_file_keeps_secrets_in_the_environment():
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    for variable in ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "MINIO_ROOT_PASSWORD", "AIRFLOW_JWT_SECRET"):
        assert "${" + variable + ":?" in text, f"{variable} must come from .env and be required"
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()

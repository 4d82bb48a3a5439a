"""docker-compose.yaml is a valid compose file (Debian's docker-compose validates it without an engine) and
has the production topology: Airflow on PostgreSQL with Celery workers per queue, MLflow on S3, the settings
profile applied at init."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)


def _compose(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker-compose", "--env-file", ".env.example", "-f", "docker-compose.yaml", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )


def _text(command: str | list[str]) -> str:
    return command if isinstance(command, str) else " ".join(command)


@pytest.fixture(scope="module")
def services() -> dict:
    # The file as compose reads it: anchors merged, ${...} expanded from .env.example.
    completed = _compose("config")
    assert completed.returncode == 0, completed.stderr
    return yaml.safe_load(completed.stdout)["services"]


@needs_compose
def test_compose_file_validates_with_the_example_environment():
    completed = _compose("config", "-q")
    assert completed.returncode == 0, completed.stderr


@needs_compose
def test_compose_file_has_every_service_of_the_production_stack(services):
    assert set(services) == {
        "postgres",
        "redis",
        "minio",
        "minio-buckets",
        "pushgateway",
        "mlflow",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-worker-gpu",
    }
    for name, service in services.items():
        if name.startswith("airflow-"):
            assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
            assert service["environment"]["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
            assert "@postgres/airflow" in service["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name


@needs_compose
def test_each_celery_worker_consumes_its_queue_and_the_gpu_worker_reserves_nvidia_devices(services):
    def queues(service: dict) -> list[str]:
        command = service["command"]
        command = command.split() if isinstance(command, str) else command
        return command[command.index("--queues") + 1].split(",")

    assert queues(services["airflow-worker"]) == ["default"]
    assert queues(services["airflow-worker-gpu"]) == ["gpu"]
    assert services["airflow-worker"]["environment"]["MLOPS_GPU_QUEUE"] == "gpu"
    (device,) = services["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "deploy" not in services["airflow-worker"]


@needs_compose
def test_init_applies_the_production_profile_and_mlflow_keeps_artifacts_on_s3(services):
    init = _text(services["airflow-init"]["command"])
    assert "airflow db migrate" in init
    assert "mlops-ops settings apply --profile production" in init
    assert (PROJECT_ROOT / "airflow_settings.production.yaml").is_file()
    mlflow = _text(services["mlflow"]["command"])
    assert "--backend-store-uri postgresql+psycopg2://" in mlflow and "@postgres/mlflow" in mlflow
    assert "--artifacts-destination s3://" in mlflow
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    buckets = _text(services["minio-buckets"]["entrypoint"])
    assert "mc mb --ignore-existing local/mlops local/mlflow" in buckets


def test_compose_file_keeps_secrets_in_the_environment():
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    for variable in (
        "POSTGRES_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "MINIO_ROOT_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_SECRET_KEY",
        "MLFLOW_AIRFLOW_PASSWORD",
        "MLFLOW_SECRET_KEY",
    ):
        assert "${" + variable + ":?" in text, f"{variable} must come from .env and be required"
        assert f"{variable}=" in (PROJECT_ROOT / ".env.example").read_text(), (
            f"{variable} not in .env.example"
        )
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()


@needs_compose
def test_the_pushgateway_connection_of_the_production_profile_reaches_the_pushgateway_service(services):
    from urllib.parse import urlsplit

    from mlops_ops.settings_file import load_settings_with_profile

    environment = {key: str(value) for key, value in services["airflow-init"]["environment"].items()}
    settings = load_settings_with_profile(PROJECT_ROOT / "airflow_settings.yaml", "production")
    connections = {c.conn_id: c for c in settings.resolve(environment).connections}
    gateway = urlsplit(connections["pushgateway"].host)
    assert connections["pushgateway"].conn_type == "prometheus_pushgateway"
    assert gateway.hostname == "pushgateway" and gateway.hostname in services
    # prom/pushgateway listens on 9091 inside its container.
    assert gateway.port == 9091
    assert "9091/-/healthy" in _text(services["pushgateway"]["healthcheck"]["test"])


@needs_compose
def test_mlflow_runs_its_basic_auth_app_with_the_airflow_service_account_as_admin(services):
    mlflow = services["mlflow"]
    # The Airflow image's entrypoint would turn `mlflow server ...` into `airflow mlflow server ...`.
    assert mlflow["entrypoint"][-1] == "mlflow"
    command = _text(mlflow["command"]).split()
    assert command[0] == "server"
    assert command[command.index("--app-name") + 1] == "basic-auth"
    # The workers call it mlflow:5000; MLflow's host check accepts only localhost unless told.
    assert "mlflow:5000" in command[command.index("--allowed-hosts") + 1].split(",")
    # No password on the command line: libpq reads PGPASSWORD.
    assert "change-me" not in " ".join(command)
    environment = mlflow["environment"]
    assert environment["MLFLOW_AUTH_ADMIN_USERNAME"] == "mlops-airflow"
    assert environment["MLFLOW_AUTH_ADMIN_PASSWORD"] and environment["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    (mount,) = mlflow["volumes"]
    assert _text(mount).endswith(f":{environment['MLFLOW_AUTH_CONFIG_PATH']}:ro")
    config = (PROJECT_ROOT / "docker" / "mlflow-basic-auth.ini").read_text()
    assert "default_permission = READ" in config and "admin_password" not in config
    database = config.split("database_uri = ", 1)[1].split()[0]
    assert database.rsplit("/", 1)[1] in (PROJECT_ROOT / "docker" / "postgres-init.sql").read_text()

    # The production profile writes the same account into mlflow_default; only airflow-init has its password
    # in the environment, every other Airflow container reads it from the connection.
    from mlops_ops.settings_file import load_settings_with_profile

    init = {key: str(value) for key, value in services["airflow-init"]["environment"].items()}
    settings = load_settings_with_profile(PROJECT_ROOT / "airflow_settings.yaml", "production")
    connection = {c.conn_id: c for c in settings.resolve(init).connections}["mlflow_default"]
    assert (connection.host, connection.login) == ("http://mlflow:5000", "mlops-airflow")
    assert connection.password == environment["MLFLOW_AUTH_ADMIN_PASSWORD"]
    for name, service in services.items():
        if name.startswith("airflow-") and name != "airflow-init":
            assert "MLOPS_MLFLOW_PASSWORD" not in service["environment"], name


@needs_compose
def test_only_airflow_publishes_a_port_beyond_this_machine(services):
    def host_and_port(port: dict | str) -> tuple[str | None, int]:
        # docker-compose 1.29 writes a port with a host address in the short form: 127.0.0.1:5000:5000/tcp.
        if isinstance(port, dict):
            return port.get("host_ip"), int(port["published"])
        parts = port.split("/")[0].split(":")
        return (parts[0] if len(parts) == 3 else None), int(parts[-2])

    published = {
        name: [host_and_port(port) for port in service.get("ports", [])] for name, service in services.items()
    }
    assert published["mlflow"] == [("127.0.0.1", 5000)]
    assert published["minio"] == [("127.0.0.1", 9001)]  # the console
    assert published["pushgateway"] == [("127.0.0.1", 9091)]
    everywhere = {name for name, ports in published.items() for host, _ in ports if host in (None, "0.0.0.0")}
    assert everywhere == {"airflow-apiserver"}

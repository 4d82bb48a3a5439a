"""docker-compose.yaml is a valid compose file (Debian's docker-compose validates it without an engine), has the
production topology (Airflow on PostgreSQL with Celery workers per queue, MLflow on S3, the settings profile
applied at init), and would start as written: every service's command is checked against the entrypoint of the
image it runs (a table below, one row per image), every Airflow command against Airflow's own CLI parser, and
MLflow's against MLflow's."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
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
        "s3",
        "s3-buckets",
        "mlflow-reader",
        "pushgateway",
        "mlflow",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-worker-gpu",
        "stream-scorer",
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
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:8333"
    assert services["airflow-worker"]["environment"]["AWS_ENDPOINT_URL"] == "http://s3:8333"
    buckets = services["s3-buckets"]["command"]
    assert buckets[:2] == ["python", "/opt/mlops-ops/create_buckets.py"] and set(buckets[2:]) == {
        "mlops",
        "mlflow",
    }


def test_compose_file_keeps_secrets_in_the_environment():
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    for variable in (
        "POSTGRES_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "S3_SECRET_ACCESS_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_SECRET_KEY",
        "MLFLOW_AIRFLOW_PASSWORD",
        "MLFLOW_SECRET_KEY",
        "MLFLOW_READER_PASSWORD",
        "MLOPS_PUBLIC_KEY",
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
    assert published["s3"] == [("127.0.0.1", 8333)]  # the S3 endpoint
    assert published["pushgateway"] == [("127.0.0.1", 9091)]
    everywhere = {name for name, ports in published.items() for host, _ in ports if host in (None, "0.0.0.0")}
    assert everywhere == {"airflow-apiserver"}


# --- Would it start as written? ---------------------------------------------------------------------------------

#: Each image the stack runs, by repository, and what its entrypoint does with a service's ``command``, read from
#: the image's Dockerfile and entrypoint script at the pinned version:
#:   ``airflow``  apache/airflow (our image is built FROM it): ``bash ...`` and ``python ...`` run as given; any
#:                other first word becomes ``airflow <command>``, so it must be an Airflow subcommand.
#:   ``exec``     the official postgres and redis images' docker-entrypoint.sh: no command runs the server; a
#:                command starting with ``-`` is passed to the server; anything else runs as given.
#:   ``weed``     chrislusf/seaweedfs's /entrypoint.sh: master|volume|server|filer|s3 get the image's default
#:                flags, anything else runs as ``weed <command>``.
#:   ``flags``    prom/pushgateway: ENTRYPOINT ["/bin/pushgateway"], the command is its flags.
#: ``programs`` are the executables a service may name in its own ``entrypoint`` (or ``exec`` in a shell one).
IMAGES = {
    "mlops-ops-airflow": {
        "rule": "airflow",
        "programs": {"/usr/bin/dumb-init", "bash", "python", "airflow", "mlflow", "mlops-ops"},
    },
    "postgres": {"rule": "exec", "programs": {"docker-entrypoint.sh", "postgres", "bash"}},
    "redis": {"rule": "exec", "programs": {"docker-entrypoint.sh", "redis-server", "sh"}},
    "chrislusf/seaweedfs": {"rule": "weed", "programs": {"/bin/sh", "/usr/bin/weed", "/entrypoint.sh"}},
    "prom/pushgateway": {"rule": "flags", "programs": {"/bin/pushgateway"}},
}
WEED_SUBCOMMANDS = {"master", "volume", "server", "filer", "s3", "shell", "version"}
SHELLS = {"/bin/sh", "sh", "bash", "/bin/bash"}
#: Shell builtins a script may run before it execs the service's program.
BUILTINS = {"printf", "echo", "test", "export", "cd"}


def _words(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else list(command)


def _repository(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def _shell_script(words: list[str]) -> str | None:
    """The script of ``sh -c SCRIPT`` / ``bash -ec SCRIPT``, else None."""
    if len(words) >= 3 and words[0] in SHELLS and re.fullmatch(r"-[a-z]*c", words[1]):
        return words[2]
    return None


def _launched(service: dict) -> tuple[list[str], list[list[str]]]:
    """The program words the service's entrypoint starts (entrypoint + command, shell scripts opened at their
    ``exec`` or ``&&`` steps), and the ``airflow ...`` command lines among them."""
    entrypoint, command = _words(service.get("entrypoint")), _words(service.get("command"))
    words = entrypoint + command if entrypoint else command
    script = _shell_script(words) or (
        command[0] if entrypoint and entrypoint[0] in SHELLS and command and len(entrypoint) == 2 else None
    )
    steps = [shlex.split(step) for step in re.split(r"&&|;", script)] if script else [words]
    steps = [step[1:] if step[0] == "exec" else step for step in steps if step]
    steps = [step for step in steps if step]
    airflow = [step[1:] for step in steps if step[0] == "airflow"]
    return [step[0] for step in steps if step[0] not in BUILTINS], airflow


def _entrypoint_problems(name: str, service: dict) -> list[str]:
    image = _repository(service["image"])
    assert image in IMAGES, f"{name}: image {image} has no row in IMAGES (add its entrypoint's behaviour)"
    row, problems = IMAGES[image], []
    entrypoint, command = _words(service.get("entrypoint")), _words(service.get("command"))
    if entrypoint:
        # The service sets its own entrypoint: every program it starts must exist in the image.
        if entrypoint[0] in SHELLS and _shell_script(entrypoint + command[:1]) and len(command) > 1:
            # `sh -c` runs its first argument only: the other words become $0, $1...
            problems.append(f"{name}: {entrypoint} runs only {command[0]!r} of {command}")
        programs, _ = _launched(service)
        problems += [
            f"{name}: {program} is not in {image}" for program in programs if program not in row["programs"]
        ]
        if entrypoint[0] == "/usr/bin/dumb-init":
            problems += [
                f"{name}: dumb-init runs {program}"
                for program in entrypoint[2:3]
                if program not in row["programs"]
            ]
        return problems
    first = command[0] if command else None
    if row["rule"] == "airflow":
        if first is None:
            problems.append(f"{name}: the Airflow image needs a command")
        elif first in {"bash", "python"}:
            programs, _ = _launched(service)
            problems += [
                f"{name}: {p} is not in {image}" for p in programs if p not in row["programs"] | {"-"}
            ]
        # Anything else is `airflow <command>`: checked against Airflow's parser in the next test.
    elif row["rule"] == "weed" and first not in WEED_SUBCOMMANDS:
        problems.append(f"{name}: seaweedfs's entrypoint would run `weed {first}`")
    elif row["rule"] == "flags" and any(not word.startswith("-") for word in command):
        problems.append(f"{name}: {image}'s entrypoint takes flags only, got {command}")
    return problems


@needs_compose
def test_every_service_command_is_valid_for_its_images_entrypoint(services):
    problems = [
        problem for name, service in services.items() for problem in _entrypoint_problems(name, service)
    ]
    assert problems == []


def test_the_entrypoint_rules_catch_the_mistakes_the_stack_once_made():
    """The table is no formality: the old compose file's mlflow and minio services fail it."""
    airflow_image = {"image": "mlops-ops-airflow:local"}
    assert _entrypoint_problems("airflow-worker", {**airflow_image, "command": "celery worker"}) == []
    # `mlflow server` on the Airflow image without an entrypoint: `airflow mlflow server` (next test's parser).
    assert _airflow_parse_errors({"CeleryExecutor"}, [["mlflow", "server"]])
    assert _entrypoint_problems(
        "mlflow", {**airflow_image, "entrypoint": ["/usr/bin/dumb-init", "--", "mlfow"], "command": "server"}
    )
    assert _entrypoint_problems("s3", {"image": "chrislusf/seaweedfs:3.80", "command": "mc ready local"})
    assert _entrypoint_problems(
        "pushgateway", {"image": "prom/pushgateway:v1.11.0", "command": "pushgateway"}
    )
    assert _entrypoint_problems(
        "s3",
        {
            "image": "chrislusf/seaweedfs:3.80",
            "entrypoint": ["/bin/sh", "-ec"],
            "command": "exec minio server",
        },
    )
    with pytest.raises(AssertionError, match="no row in IMAGES"):
        _entrypoint_problems(
            "minio", {"image": "minio/minio:RELEASE.2025-01-01T00-00-00Z", "command": "server"}
        )


_AIRFLOW_PARSER_PROBE = """
import json, sys
from airflow.cli.cli_parser import get_parser
errors = []
for words in json.loads(sys.argv[1]):
    try:
        get_parser().parse_args(words)
    except SystemExit:
        errors.append(words)
print(json.dumps(errors))
"""


def _airflow_parse_errors(
    executors: set[str], commands: list[list[str]], auth_manager: str = ""
) -> list[list[str]]:
    """The commands Airflow's CLI refuses, parsed in a process configured as the containers are (the Celery
    executor brings the ``celery`` group, the FAB auth manager the ``users`` group)."""
    (executor,) = executors
    environment = {**os.environ, "AIRFLOW__CORE__EXECUTOR": executor}
    if auth_manager:
        environment["AIRFLOW__CORE__AUTH_MANAGER"] = auth_manager
    completed = subprocess.run(
        [sys.executable, "-c", _AIRFLOW_PARSER_PROBE, json.dumps(commands)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@needs_compose
def test_every_airflow_command_of_the_stack_parses_with_airflows_own_cli(services):
    commands, executors, auth_managers = [], set(), set()
    for service in services.values():
        if _repository(service["image"]) != "mlops-ops-airflow" or service.get("entrypoint"):
            continue
        words = _words(service["command"])
        if words[0] in {"bash", "python"}:
            commands += _launched(service)[1]
        else:
            commands.append(words)
        healthcheck = service.get("healthcheck", {}).get("test", [])
        if healthcheck[:1] == ["CMD-SHELL"] and healthcheck[1].startswith("airflow "):
            commands.append(shlex.split(healthcheck[1].replace("$${HOSTNAME}", "host"))[1:])
        if "AIRFLOW__CORE__EXECUTOR" in service.get("environment", {}):
            executors.add(service["environment"]["AIRFLOW__CORE__EXECUTOR"])
            auth_managers.add(service["environment"]["AIRFLOW__CORE__AUTH_MANAGER"])
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "celery", "db", "users", "jobs"} <= {
        words[0] for words in commands
    }
    (auth_manager,) = auth_managers
    assert auth_manager == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    assert _airflow_parse_errors(executors, commands, auth_manager) == []


@needs_compose
def test_mlflow_and_mlops_ops_commands_parse_with_their_own_clis(services):
    from urllib.parse import urlsplit

    from mlflow.cli import server

    words = _words(services["mlflow"]["command"])
    assert words[0] == "server"
    context = server.make_context("server", words[1:])  # raises on an unknown option or a bad value
    assert context.params["app_name"] == "basic-auth" and context.params["port"] == 5000

    from mlops_ops.cli import build_parser

    init = [step for step in _launched(services["airflow-init"])[0]]
    assert init == ["airflow", "airflow", "mlops-ops"]
    script = _shell_script(_words(services["airflow-init"]["command"]))
    (settings,) = [shlex.split(step) for step in script.split("&&") if step.split()[0] == "mlops-ops"]
    build_parser().parse_args(settings[1:])

    # The stream scorer runs the mlops-ops CLI under dumb-init (the Airflow entrypoint would prefix `airflow`).
    scorer = services["stream-scorer"]
    assert scorer["entrypoint"] == ["/usr/bin/dumb-init", "--", "mlops-ops"]
    stream = build_parser().parse_args(_words(scorer["command"]))
    assert stream.handler.__name__ == "_stream"
    assert urlsplit(stream.source).hostname == "redis" and "redis" in services
    # No --consumer: each replica's consumer name is its own host name, so the replicas are distinct consumers.
    assert stream.consumer is None and scorer["deploy"]["replicas"] == 2
    assert str(stream.metrics_port) in _text(scorer["healthcheck"]["test"])
    # Not an Airflow process: its connections come from its environment, each parseable JSON.
    for conn_id in (stream.mlflow_conn_id, stream.feast_conn_id, stream.trust_conn_id):
        connection = json.loads(scorer["environment"][f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert connection["conn_type"] in {"mlflow", "feast", "mlops_trust"}, conn_id
    assert json.loads(scorer["environment"]["AIRFLOW_CONN_MLFLOW_DEFAULT"])["host"] == "http://mlflow:5000"


@needs_compose
def test_the_stream_scorers_read_as_mlflows_reader_and_verify_without_the_signing_key(services):
    scorer = services["stream-scorer"]["environment"]
    mlflow = json.loads(scorer["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    reader = services["mlflow-reader"]
    assert mlflow["login"] == reader["environment"]["MLFLOW_READER_USER"] == "mlops-reader"
    assert mlflow["password"] == reader["environment"]["MLFLOW_READER_PASSWORD"]
    assert mlflow["login"] != services["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_USERNAME"]
    trust = json.loads(scorer["AIRFLOW_CONN_MLOPS_TRUST_DEFAULT"])
    example = dict(
        line.split("=", 1) for line in (PROJECT_ROOT / ".env.example").read_text().splitlines() if "=" in line
    )
    assert "password" not in trust and example["MLOPS_SIGNING_KEY"] not in json.dumps(scorer)
    assert example["MLOPS_PUBLIC_KEY"] in trust["extra"]["verification_keys"].split(",")
    assert trust["extra"]["alias_log"].endswith("@postgres/airflow")
    # The account exists before they start: mlflow-reader runs docker/create_mlflow_reader.py once MLflow is up
    # (tests/integration/test_mlflow_auth.py runs that script against a real MLflow with basic auth).
    assert reader["command"] == ["python", "/opt/mlops-ops/create_mlflow_reader.py"]
    assert _text(reader["volumes"][0]).startswith(str(PROJECT_ROOT / "docker" / "create_mlflow_reader.py"))
    assert reader["depends_on"]["mlflow"]["condition"] == "service_healthy"
    waits = services["stream-scorer"]["depends_on"]
    assert waits["mlflow-reader"]["condition"] == "service_completed_successfully"


@needs_compose
def test_every_image_is_pinned_to_a_version_and_our_own_is_built_never_pulled(services):
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"
        if repository == "mlops-ops-airflow":
            assert service["build"]["context"] and service.get("pull_policy") == "build", name
        else:
            assert re.search(r"\d", tag), f"{name}: {image} names no version"
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert base.startswith("apache/airflow:3.3.") and "latest" not in base


#: Services that run to completion (init jobs); every other one is long-running.
ONE_SHOT = {"airflow-init", "s3-buckets", "mlflow-reader"}


@needs_compose
def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert "restart" not in service, f"{name} runs once"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") in {"always", "unless-stopped"}, f"{name} has no restart policy"


@needs_compose
def test_airflow_containers_share_logs_and_the_mlops_home_and_workers_wait_for_the_buckets(services):
    for name, service in services.items():
        if not name.startswith("airflow-"):
            continue
        mounts = {_text(volume).split(":")[1]: _text(volume).split(":")[0] for volume in service["volumes"]}
        assert mounts.get("/opt/airflow/logs") and mounts.get("/opt/mlops"), name
        assert service["environment"]["MLOPS_HOME"] == "/opt/mlops", name
        assert service["environment"]["MLOPS_FEATURE_ROOT"].startswith("/opt/mlops/"), name
    assert (
        services["airflow-init"]["depends_on"]["s3-buckets"]["condition"] == "service_completed_successfully"
    )
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "chown -R airflow:root /opt/mlops" in dockerfile  # a new named volume takes the folder's owner


def test_the_bucket_script_creates_missing_buckets_and_leaves_existing_ones(monkeypatch):
    """docker/create_buckets.py against moto's S3 server, as s3-buckets runs it against SeaweedFS."""
    import importlib.util

    from tests.moto_s3 import moto_s3

    with moto_s3(monkeypatch, "mlflow") as (endpoint, client):
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")  # pragma: allowlist secret
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        spec = importlib.util.spec_from_file_location(
            "create_buckets", PROJECT_ROOT / "docker" / "create_buckets.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.create_buckets(["mlops", "mlflow"], wait_seconds=10) == ["mlops"]
        assert module.create_buckets(["mlops", "mlflow"], wait_seconds=10) == []
        assert {bucket["Name"] for bucket in client.list_buckets()["Buckets"]} == {"mlops", "mlflow"}

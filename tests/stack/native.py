"""The production topology of docker-compose.yaml, started natively on one machine from the project's venv.

Airflow 3 with the CeleryExecutor: a fresh metadata database on the local PostgreSQL, Redis as the broker
(keys under a prefix of this stack's own), PostgreSQL as the result backend; API server, scheduler,
dag-processor, triggerer, and two Celery workers, one on queue ``default`` and one on queue ``gpu``. MLflow's
tracking server on its own PostgreSQL database with artifacts on S3, served by moto's server on 127.0.0.1,
behind MLflow's basic-auth app (users in a PostgreSQL database of their own, as in compose): Airflow writes as
the service account of ``mlflow_default``, people read as ``viewer`` (:mod:`mlops_dev.mlflow_auth`).
Settings come from ``mlops-ops settings apply --profile production``, as compose's airflow-init applies them.

Every process runs in its own process group and is stopped by PID; every port is a free one; both databases
and the Redis keys are removed at the end. Used by the ``stack`` tests' fixture, and by hand::

    uv run python -m tests.stack.native     # starts it, prints the URLs and the login, Ctrl-C stops it
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlops_dev.mlflow_auth import ensure_viewer, prepare_mlflow_auth
from mlops_dev.processes import ManagedProcess, process_group_alive, start_process
from mlops_ops.core.signing import SigningKey
from tests.airflow_rest import Airflow, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: A DAG bundle of test-only DAGs beside the project's dags/ (see ``dags/gpu_pool_probe.py``).
PROBE_DAGS = Path(__file__).resolve().parent / "dags"
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)
STARTUP_SECONDS = 240
USER, PASSWORD = "admin", "admin-stack"
BUCKETS = ("mlflow", "mlops")
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "stack",
    "AWS_SECRET_ACCESS_KEY": "stack",
    "AWS_DEFAULT_REGION": "us-east-1",
}
WORKERS = {"default": "default", "gpu": "gpu"}  # worker name -> the Celery queue it consumes
#: The stream scorers (compose's stream-scorer replicas): consumers of one group.
STREAM_SCORERS = 2


class StackUnavailable(RuntimeError):
    """A service the stack needs (PostgreSQL, Redis) does not answer on this machine."""


def missing_services() -> list[str]:
    """The services that do not accept a TCP connection on 127.0.0.1, e.g. ``["Redis on 127.0.0.1:6379"]``."""
    missing = []
    for name, (host, port) in {
        "PostgreSQL": (POSTGRES["host"], POSTGRES["port"]),
        "Redis": REDIS,
    }.items():
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError:
            missing.append(f"{name} on {host}:{port}")
    return missing


class NativeStack:
    """The stack's processes, databases and buckets; :meth:`start` brings it up, :meth:`stop` removes it.

    :param work_dir: where AIRFLOW_HOME, MLOPS_HOME and every process's log go.
    :param project: the Airflow project (``dags/``, ``include/``, the settings files).
    """

    def __init__(self, work_dir: Path, project: Path = PROJECT_ROOT) -> None:
        self.work_dir = work_dir
        self.project = project
        # Unique per stack: two test runs (or CI beside a developer) share this machine's PostgreSQL and Redis.
        self.name = f"mlops_stack_{os.getpid()}_{secrets.token_hex(3)}"
        self.databases = {
            "airflow": f"{self.name}_airflow",
            "mlflow": f"{self.name}_mlflow",
            "mlflow_auth": f"{self.name}_mlflow_auth",
        }
        self.logs = work_dir / "logs"
        self.processes: dict[str, ManagedProcess] = {}
        self.created_databases: list[str] = []
        self.ports = {
            service: free_port()
            for service in (
                "api",
                "mlflow",
                "s3",
                "worker_log_default",
                "worker_log_gpu",
                "trigger_log",
                *(f"scorer_metrics_{index}" for index in range(STREAM_SCORERS)),
            )
        }
        # The stream scorers' streams, under this stack's key prefix (removed at stop), one hash tag.
        self.streams = {
            kind: f"{self.name}:{{flights}}:{kind}" for kind in ("events", "predictions", "dead-letters")
        }
        self.airflow_url = f"http://127.0.0.1:{self.ports['api']}"
        self.mlflow_url = f"http://127.0.0.1:{self.ports['mlflow']}"
        self.s3_endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.env = self._environment()
        # MLflow's users and permissions on PostgreSQL, as compose keeps them; the passwords in work_dir.
        self.mlflow_auth = prepare_mlflow_auth(
            work_dir / "mlflow-auth", database_uri=self._database_url(self.databases["mlflow_auth"])
        )
        # The deployment's signing key (compose: MLOPS_SIGNING_KEY in .env), written into mlops_trust_default.
        self.signing_key = SigningKey.generate()

    # --- environment ------------------------------------------------------------------------------------

    def _database_url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"

    def _environment(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        passwords = self.work_dir / "passwords.json"
        environment = {
            key: value
            for key, value in os.environ.items()
            # The test session's own Airflow and MLflow settings must not leak into the stack's processes.
            if not key.startswith(("AIRFLOW", "MLFLOW_", "MLOPS_", "AWS_"))
        }
        airflow_db = self.databases["airflow"]
        environment.update(
            {
                "AIRFLOW_HOME": str(self.work_dir / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.project / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.project / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._database_url(airflow_db),
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
                # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; name the driver that is installed.
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self._database_url(airflow_db),
                # Queues and results of this stack live under its own key prefix in the shared Redis.
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{self.name}:",
                # Each worker imports the operators' libraries once, before it forks its pool, as compose does.
                "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "mlops_ops.preload.CELERY_CONFIG",
                # The scheduler signs the workers' execution-API tokens and the API server checks them:
                # separate processes must share the secrets that `airflow standalone` keeps in one.
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__PORT": str(self.ports["api"]),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                # Two cores shared with other work: few task processes, one parsing process.
                "AIRFLOW__CORE__PARALLELISM": "6",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # Parsed once at start; nothing edits a DAG file afterwards (the default re-parses every 30 s).
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "900",
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                    [
                        {
                            "name": "dags-folder",
                            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                            "kwargs": {"path": str(self.project / "dags")},
                        },
                        {
                            "name": "stack-probes",
                            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                            "kwargs": {"path": str(PROBE_DAGS)},
                        },
                    ]
                ),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["trigger_log"]),
                # Training goes to the gpu queue: the retrain DAG reads this when it is parsed.
                "MLOPS_GPU_QUEUE": "gpu",
                "MLFLOW_TRACKING_URI": self.mlflow_url,
                "MLOPS_HOME": str(self.work_dir / "mlops"),
                "MLOPS_DATA_ROOT": "s3://mlops/data",
                # Read by the production profile for the mlops_postgres and redis_default connections.
                "MLOPS_POSTGRES_HOST": POSTGRES["host"],
                "MLOPS_POSTGRES_USER": POSTGRES["user"],
                "MLOPS_POSTGRES_DB": airflow_db,
                "MLOPS_REDIS_HOST": REDIS[0],
                # The Feast online store on Redis: keys suffixed by this stack's project, removed at stop.
                "MLOPS_FEAST_PROJECT": self.name,
                # The stream scorers' streams (database 0, under the stack's prefix), read by stream_compaction.
                "MLOPS_STREAM_REDIS_DB": "0",
                "MLOPS_STREAM_OUTPUT": self.streams["predictions"],
                "AWS_ENDPOINT_URL": self.s3_endpoint,
                **S3_CREDENTIALS,
                "GX_ANALYTICS_ENABLED": "false",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(self.project), os.environ.get("PYTHONPATH", "")])
                ),
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        passwords.write_text(json.dumps({USER: PASSWORD}))
        return environment

    def _worker_environment(self, worker: str) -> dict[str, str]:
        return {
            **self.env,
            # On one machine both workers share a host name; this tells their task instances apart
            # (the `hostname` field) as separate machines would.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.stack.hostname.worker_hostname",
            "MLOPS_STACK_WORKER": worker,
            # Each worker serves its task logs on a port of its own.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports[f"worker_log_{worker}"]),
        }

    # --- life cycle -------------------------------------------------------------------------------------

    def start(self) -> Airflow:
        """Create the databases and buckets, migrate, apply the production settings, start every process,
        and wait until all of them are ready.

        :return: a logged-in REST client of the stack's API server.
        :raises StackUnavailable: when PostgreSQL or Redis does not answer.
        """
        missing = missing_services()
        if missing:
            raise StackUnavailable(", ".join(missing) + " not reachable")
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Airflow:
        self._create_databases()
        self._start_process("s3", ["moto_server", "-H", "127.0.0.1", "-p", str(self.ports["s3"])])
        self._wait_http(f"{self.s3_endpoint}/", "moto's S3 server")
        self._create_buckets()
        self._start_process(
            "mlflow",
            [
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports["mlflow"]),
                "--workers",
                "1",
                "--backend-store-uri",
                self._database_url(self.databases["mlflow"]),
                "--artifacts-destination",
                "s3://mlflow/artifacts",
                *self.mlflow_auth.server_arguments(),
            ],
            env={
                **self.env,
                "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
                **self.mlflow_auth.server_environment(),
            },
        )
        self._run(["airflow", "db", "migrate"], "migrate")
        service = self.mlflow_auth.service
        self._run(
            [
                "mlops-ops",
                "settings",
                "apply",
                "--profile",
                "production",
                str(self.project / "airflow_settings.yaml"),
            ],
            "settings",
            # Only the settings step sees the service account: the workers get it from mlflow_default.
            env={
                **self.env,
                "MLOPS_MLFLOW_USER": service.username,
                "MLOPS_MLFLOW_PASSWORD": service.password,
                # The trust connection: this stack's signing key, its alias log a table of the metadata database.
                "MLOPS_SIGNING_KEY": self.signing_key.to_base64(),
                "MLOPS_ALIAS_LOG_URL": self._database_url(self.databases["airflow"]),
            },
        )
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            self._start_process(component, ["airflow", component])
        for worker, queue in WORKERS.items():
            self._start_process(
                f"worker-{worker}",
                [
                    "airflow",
                    "celery",
                    "worker",
                    "--queues",
                    queue,
                    "--concurrency",
                    "2",
                    "--celery-hostname",
                    f"{worker}@{self.name}",
                ],
                env=self._worker_environment(worker),
            )
        client = Airflow(self.airflow_url)
        self._wait(
            lambda: all(
                part["status"] == "healthy"
                for part in client.request("GET", "/api/v2/monitor/health").values()
            ),
            "the API server, scheduler, dag-processor and triggerer to be healthy",
        )
        self._wait_http(f"{self.mlflow_url}/health", "the MLflow server")
        ensure_viewer(self.mlflow_url, self.mlflow_auth)
        for worker in WORKERS:
            self._wait(
                lambda worker=worker: " ready." in self.processes[f"worker-{worker}"].log_tail(100_000),
                f"the {worker} Celery worker to be ready",
            )
        self._start_stream_scorers()
        client.login(USER, PASSWORD)
        return client

    def _start_stream_scorers(self) -> None:
        """``mlops-ops stream`` for flight_delay, as compose's stream-scorer service, with a deployment's least
        privileges: MLflow's read-only account, the trust rules' public key and alias log, not the signing key.
        They wait for a champion; the lifecycle's stream step sends them a day of flights."""
        from include.flights.serving import SERVE_ARGUMENTS

        environment = {
            **self.env,
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(
                {
                    "conn_type": "mlflow",
                    "host": self.mlflow_url,
                    "login": self.mlflow_auth.viewer.username,
                    "password": self.mlflow_auth.viewer.password,
                }
            ),
            "AIRFLOW_CONN_FEAST_DEFAULT": json.dumps(
                {
                    "conn_type": "feast",
                    "host": "include/flights/feature_repo",
                    "extra": {
                        "project": self.name,
                        "online_store": {"type": "redis", "connection_string": f"{REDIS[0]}:{REDIS[1]},db=0"},
                    },
                }
            ),
            "AIRFLOW_CONN_MLOPS_TRUST_DEFAULT": json.dumps(
                {
                    "conn_type": "mlops_trust",
                    "extra": {
                        "alias_log": self._database_url(self.databases["airflow"]),
                        "verification_keys": [self.signing_key.public_text],
                    },
                }
            ),
        }
        for index in range(STREAM_SCORERS):
            self._start_process(
                f"stream-scorer-{index}",
                [
                    "mlops-ops",
                    "stream",
                    "--source",
                    f"redis://{REDIS[0]}:{REDIS[1]}/0",
                    "--stream",
                    self.streams["events"],
                    "--group",
                    "scorers",
                    "--consumer",
                    f"scorer-{index}",
                    "--output",
                    self.streams["predictions"],
                    "--dead-letter",
                    self.streams["dead-letters"],
                    "--key-columns",
                    "year,month,day,carrier,flight,origin",
                    "--metrics-port",
                    str(self.ports[f"scorer_metrics_{index}"]),
                    "--poll-seconds",
                    "2",
                    *SERVE_ARGUMENTS,
                ],
                env=environment,
            )

    def scorer_metrics(self) -> list[str]:
        """The Prometheus text of each stream scorer's metrics endpoint."""
        texts = []
        for index in range(STREAM_SCORERS):
            url = f"http://127.0.0.1:{self.ports[f'scorer_metrics_{index}']}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                texts.append(response.read().decode())
        return texts

    def stop(self) -> None:
        """Stop every process (workers first, so no task is left half-run), drop the databases, remove the
        Redis keys. Safe to call twice and after a failed :meth:`start`."""
        # All groups are asked at once and given one grace period together: stopping them one by one would
        # add up the grace periods.
        for process in self.processes.values():
            try:
                os.killpg(process.pid, process.stop_signal)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            process_group_alive(process.pid) for process in self.processes.values()
        ):
            time.sleep(0.2)
        while self.processes:
            _, process = self.processes.popitem()
            process.stop(grace=0)  # SIGKILLs what is left, and reaps the leader
        self._drop_databases()
        self._remove_redis_keys()

    # --- pieces -----------------------------------------------------------------------------------------

    def _start_process(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        executable = str(VENV_BIN / argv[0]) if (VENV_BIN / argv[0]).exists() else argv[0]
        self.processes[name] = start_process(
            name, [executable, *argv[1:]], env=env or self.env, log_dir=self.logs, stop_signal=signal.SIGTERM
        )

    def _run(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
        log = self.logs / f"{name}.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            completed = subprocess.run(
                [str(VENV_BIN / argv[0]), *argv[1:]],
                env=env or self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=STARTUP_SECONDS,
                start_new_session=True,
            )
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({completed.returncode}):\n{log.read_text()[-4000:]}"
            )

    def _wait(self, condition, what: str, timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [name for name, process in self.processes.items() if not process.running()]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}")
            try:
                if condition():
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    def _wait_http(self, url: str, what: str) -> None:
        def answers() -> bool:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200

        self._wait(answers, what)

    def _postgres(self):
        import psycopg2

        connection = psycopg2.connect(dbname="postgres", connect_timeout=5, **POSTGRES)
        connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        return connection

    def _create_databases(self) -> None:
        connection = self._postgres()
        try:
            with connection.cursor() as cursor:
                for database in self.databases.values():
                    cursor.execute(f'CREATE DATABASE "{database}"')
                    self.created_databases.append(database)
        finally:
            connection.close()

    def _drop_databases(self) -> None:
        if not self.created_databases:
            return
        connection = self._postgres()
        try:
            with connection.cursor() as cursor:
                while self.created_databases:
                    # FORCE ends connections a killed process may have left (PostgreSQL 13+).
                    cursor.execute(f'DROP DATABASE IF EXISTS "{self.created_databases.pop()}" WITH (FORCE)')
        finally:
            connection.close()

    def _remove_redis_keys(self) -> None:
        import redis

        try:
            client = redis.Redis(host=REDIS[0], port=REDIS[1], socket_timeout=5)
            keys = list(client.scan_iter(match=f"{self.name}:*", count=1000))
            keys += list(client.scan_iter(match=f"*{self.name}", count=1000))  # Feast's online rows
            # Celery's fanout channels are not prefixed by the key prefix when unused; only ours are named so.
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass

    def s3_client(self):
        """A boto3 S3 client of the stack's moto server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def _create_buckets(self) -> None:
        s3 = self.s3_client()
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket)

    def log_tails(self, characters: int = 3000) -> str:
        """The end of every process's log, and of every task log that reports an error, for a failure report."""
        task_logs = sorted((self.work_dir / "airflow" / "logs").glob("dag_id=*/run_id=*/task_id=*/*.log"))
        failed_tasks = [log for log in task_logs if '"level":"error"' in log.read_text(errors="replace")]
        parts = []
        for log in sorted(self.logs.glob("*.log")) + failed_tasks:
            text = log.read_text(errors="replace")[-characters:]
            name = log.relative_to(self.work_dir)
            parts.append(f"===== {name} (last {characters} characters) =====\n{text}")
        return "\n".join(parts)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Start the stack, print where it is, and stop it on Ctrl-C or SIGTERM."""
    import tempfile

    work_dir = Path(tempfile.mkdtemp(prefix="mlops-stack-"))
    stack = NativeStack(work_dir)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as cleanly as Ctrl-C
    try:
        stack.start()
        print(
            f"Airflow  {stack.airflow_url}  (user {USER}, password {PASSWORD})\n"
            f"MLflow   {stack.mlflow_url}  (user {stack.mlflow_auth.viewer.username}, read-only, password in "
            f"{stack.mlflow_auth.viewer.password_file})\n"
            f"S3       {stack.s3_endpoint} (moto)\nlogs     {stack.logs}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

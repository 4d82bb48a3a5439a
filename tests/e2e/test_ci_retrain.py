"""``mlops-ops ci retrain`` as a CI job runs it, against a real ``airflow standalone`` (scheduler, triggerer,
dag-processor, API server with the simple auth manager): each exit status from real runs of a team's retrain DAG.

The team's project is a git checkout of the wine cultivar example (``examples/wine_cultivar``: scikit-learn's wine
data, a multiclass model that trains in seconds), and the standalone's DAG folder is that checkout's ``dags/``.
``MLOPS_CODE_REVISION`` is left empty, so the workers run what the checkout's HEAD is (``lineage.code_revision``),
as a deployment that syncs its DAG bundle from git does. Committing a change there deploys a new revision: one
that lowers the learning rate a thousandfold makes a model that is really worse, which the example's own gate
policy refuses against the champion (no threshold is bent for the test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.airflow_rest import RUN_SECONDS, free_port
from tests.e2e.standalone import ADMIN_PASSWORD, PROJECT_ROOT, VENV_BIN, airflow_standalone

pytestmark = pytest.mark.e2e

MODEL = "wine_cultivar"
DAG = "wine_retrain"
EXAMPLE = PROJECT_ROOT / "examples" / "wine_cultivar"
#: What a CI job's one call may take here: a retrain of the wine model is a few task processes.
CLI_SECONDS = 420


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _commit(checkout: Path, message: str) -> str:
    _git(checkout, "add", "-A")
    _git(checkout, "commit", "-q", "-m", message)
    return _git(checkout, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The team's project: a git checkout of the wine example, whose first commit is the example as it is."""
    checkout = tmp_path_factory.mktemp("wine_project")
    for part in ("dags", "config"):
        shutil.copytree(EXAMPLE / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / ".gitignore").write_text("__pycache__/\n")
    _git(checkout, "init", "-q")
    _commit(checkout, "the wine cultivar model")
    return checkout


@pytest.fixture(scope="module")
def airflow(project, tmp_path_factory):
    """The standalone on the project's DAGs, every sample landed, ``wine_promote`` on (a registered challenger
    that passed its gate becomes the champion), ``wine_retrain`` still paused."""
    extra = {"AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"), "MLOPS_CODE_REVISION": ""}
    home = tmp_path_factory.mktemp("ci_standalone")
    with airflow_standalone(home, {"wine_land", DAG, "wine_promote"}, extra) as (client, environment):
        client.unpause("wine_land")
        assert client.wait_run("wine_land", client.trigger("wine_land", {"through_day": 8})) == "success"
        client.unpause("wine_promote")
        yield client, environment


def ci_retrain(client, *arguments: str, **variables: str) -> tuple[int, str, str]:
    """Run ``mlops-ops ci retrain`` as a CI job would: credentials and URL in its environment only."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_", "MLOPS_AIRFLOW"))
    }
    environment.update(
        {
            "AIRFLOW_URL": client.base_url,
            "AIRFLOW_USERNAME": "admin",
            "AIRFLOW_PASSWORD": ADMIN_PASSWORD,
            **variables,
        }
    )
    finished = subprocess.run(
        [
            str(VENV_BIN / "mlops-ops"),
            "ci",
            "retrain",
            "--model",
            MODEL,
            "--dag-id",
            DAG,
            "--poll-seconds",
            "2",
        ]
        + list(arguments),
        env=environment,
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
    )
    print(f"$ mlops-ops ci retrain {' '.join(arguments)}  -> exit {finished.returncode}")
    print(finished.stdout + finished.stderr)
    return finished.returncode, finished.stdout, finished.stderr


def _registry(environment):
    import mlflow

    uri = f"sqlite:///{environment['MLOPS_HOME']}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_revision_the_workers_run_passes_and_its_version_carries_the_revision(airflow, project, tmp_path):
    client, environment = airflow
    revision = _git(project, "rev-parse", "HEAD")
    summary = tmp_path / "outcome.json"

    status, out, err = ci_retrain(client, "--code-revision", revision, "--unpause", "--json", str(summary))

    assert status == 0, out + err
    assert f"registered {MODEL} v1 (alias challenger)" in out and f"mlops.code_revision={revision}" in out
    assert "unpaused DAG wine_retrain (--unpause)" in out
    outcome = json.loads(summary.read_text())
    assert outcome["status"] == "registered" and outcome["registered_version"] == "1"
    assert outcome["task_states"] == dict.fromkeys(
        ("wait_for_data", "train", "evaluate_gate", "register"), "success"
    )
    tags = _registry(environment).get_model_version(MODEL, "1").tags
    assert tags["mlops.code_revision"] == revision
    # The wine DAG records no trigger reason on the version (it has no reason param); the run's conf holds it.
    (run,) = [r for r in client.runs(DAG) if r["dag_run_id"] == outcome["run_id"]]
    assert run["conf"] == {"code_revision": revision, "force": False, "reason": f"ci: {MODEL} at {revision}"}
    assert ADMIN_PASSWORD not in out + err


def test_a_revision_whose_model_is_worse_is_refused_by_the_gate(airflow, project):
    client, environment = airflow
    # The passing challenger became the champion (wine_promote, on its asset event): the one to beat.
    client.wait_for(
        lambda: _registry(environment).get_registered_model(MODEL).aliases.get("champion") == 1,
        RUN_SECONDS,
        "wine_promote to make v1 the champion",
    )
    spec = project / "config" / "model_spec.yaml"
    spec.write_text(spec.read_text().replace("  max_iter: 60\n", "  max_iter: 60\n  learning_rate: 0.0001\n"))
    worse = _commit(project, "a learning rate a thousand times lower")

    # --force: the data is the champion's; only the code changed.
    status, out, err = ci_retrain(client, "--code-revision", worse, "--force")

    assert status == 3, out + err
    assert f"the gate refused the challenger of {MODEL} for revision {worse}" in out
    assert "against champion v1" in out
    assert "failed: f1_macro >= floor:" in out and "(must be >= 0.8000)" in out
    assert "failed: f1_macro regression vs champion:" in out
    assert any(line.split()[:1] == ["f1_macro"] for line in out.splitlines())  # challenger vs champion
    assert _registry(environment).get_registered_model(MODEL).aliases == {"champion": 1, "challenger": 1}


def test_a_revision_the_workers_do_not_run_fails_the_train_task(airflow, project):
    client, _ = airflow
    # HEAD moved on: the first revision (the CI job's older commit) is not what the workers run any more.
    first = _git(project, "rev-list", "--max-parents=0", "HEAD")[:12]

    status, out, err = ci_retrain(client, "--code-revision", first, "--force")

    assert status == 4, out + err
    assert "failed at task train: " in out
    assert f"not the requested {first!r}" in out and "the workers run code revision" in out


def test_no_new_data_and_no_force_ends_the_run_without_training(airflow, project):
    client, _ = airflow
    head = _git(project, "rev-parse", "HEAD")

    status, out, err = ci_retrain(client, "--code-revision", head)

    assert status == 5, out + err
    assert "wait_for_data waits for a data version the current models were not trained on" in out
    assert "no training: wait_for_data was skipped" in out
    (run,) = [
        r for r in client.runs(DAG) if r["conf"].get("code_revision") == head and not r["conf"]["force"]
    ]
    assert client.task_states(DAG, run["dag_run_id"])["train"] == "skipped"


def test_a_wrong_token_is_refused_naming_the_endpoint(airflow):
    client, _ = airflow
    status, out, err = ci_retrain(
        client,
        "--code-revision",
        "abc1234",
        AIRFLOW_TOKEN="not-a-jwt",
        AIRFLOW_USERNAME="",
        AIRFLOW_PASSWORD="",
    )
    assert status == 6, out + err
    # Airflow 3 answers an invalid JWT with 403 (401 is for none, or an expired one).
    assert f"GET {client.base_url}/api/v2/dags/{DAG} answered 403 (Invalid JWT token)" in err
    assert "not-a-jwt" not in out + err


def test_an_unreachable_airflow_and_a_timeout_each_give_one_line(airflow, project):
    client, _ = airflow
    url = f"http://127.0.0.1:{free_port()}"
    status, out, err = ci_retrain(client, "--code-revision", "abc1234", "--airflow-url", url)
    assert status == 7, out + err
    # The first call is the login: the credentials are a username and password here.
    assert out == "" and err.splitlines() == [
        f"error: Airflow unreachable: POST {url}/auth/token failed ([Errno 111] Connection refused)"
    ]

    # A run that goes on past --timeout (it fails at train soon after: the workers run another revision).
    status, out, err = ci_retrain(client, "--code-revision", "abc1234", "--force", "--timeout", "1")
    assert status == 8, out + err
    (line,) = err.splitlines()
    assert line.startswith("error: timed out after 1 s following run ") and line.endswith(
        "it goes on in Airflow"
    )

"""Test-wide settings: an isolated Airflow home and mlops home per test session.

Airflow reads its configuration when ``airflow`` is first imported, so the environment is set here, at
import time of the root conftest, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The closing lines of every run: skipped tests grouped by what is missing, with the command that installs it.
pytest_plugins = ["tests.skip_summary"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-ops-tests-"))

os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__PARALLELISM"] = "4"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["MLOPS_HOME"] = str(_SESSION_DIR / "mlops")
# Most tests run the embedded profile; a test of the production profile removes it (monkeypatch.delenv).
os.environ["MLOPS_PROFILE"] = "embedded"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLOPS_DATA_ROOT", None)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# One OpenMP thread per process (scikit-learn's gradient boosting; inherited by Airflow's task processes): the
# suite runs on 2 pytest-xdist workers on 2 cores, and OpenMP threads spinning at their barriers against the
# other worker made a 20-tree fit take 47 s instead of 1 s under load.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The project root holds include/ (the reference use case), importable as in an Astro project.
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


#: The reference project's feature repository, as the embedded profile (mlops_dev/embedded.py) names it.
REFERENCE_FEATURE_REPO = PROJECT_ROOT / "include" / "flights" / "feature_repo"


@pytest.fixture(scope="module", autouse=True)
def _reference_feature_repo(request: pytest.FixtureRequest):
    """Outside the unit tier the tests run the flights reference project, whose FeastHook finds its feature
    repository by ``MLOPS_FEAST_REPO`` as ``make up`` sets it. The unit tier gets none: a unit test that reached a
    feature store without saying which would fail rather than read the flights repository."""
    in_unit_tier = Path(request.path).is_relative_to(Path(__file__).parent / "unit")
    if in_unit_tier or os.environ.get("MLOPS_FEAST_REPO"):
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_FEAST_REPO", str(REFERENCE_FEATURE_REPO))
        yield


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) in the session's Airflow home."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return Path(os.environ["AIRFLOW_HOME"])


#: The modules that take minutes (real Airflow schedulers, trainings, a browser), longest first, as measured in
#: a full run on the 2-core machine. ``make test`` runs modules on 2 pytest-xdist workers (``--dist loadfile``
#: with ``--no-loadscope-reorder``, so this order is the dispatch order): starting the long ones first keeps
#: them from being dealt out last, when one worker would run a 10-minute module alone while the other idles.
LONGEST_MODULES = (
    "tests/e2e/test_browser.py",
    "tests/e2e/test_fault_injection.py",
    "tests/integration/test_production_stack.py",
    "tests/e2e/test_real_scheduler.py",
    "tests/e2e/test_service_down.py",
    "tests/integration/test_local_stack.py",
    "tests/e2e/test_batch_score.py",
    "tests/e2e/test_retrain.py",
    "tests/integration/test_scoring_crash.py",
    "tests/e2e/test_ci_retrain.py",
    "tests/e2e/test_monitor.py",
    "tests/e2e/test_bad_input_scoring.py",
    "tests/integration/test_registry_backup.py",
    "tests/integration/test_stream_faults.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest modules first (a stable sort: the order inside each module and of the rest is kept)."""
    rank = {module: position for position, module in enumerate(LONGEST_MODULES)}

    def position(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return rank.get(module, len(LONGEST_MODULES))

    items.sort(key=position)

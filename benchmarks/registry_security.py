"""What the trusted loader adds to every load of a model, and what a registry backup and restore cost.

A real flight-delay model (scikit-learn pipeline on 20,000 January 2013 flights) is logged in both formats a
version may have: skops (TrainOperator's default for scikit-learn) and cloudpickle (allowed per model by the
deployment). Each is signed as RegisterOperator signs it, downloaded once, then loaded ``REPEATS`` times both
ways in the same run: MLflow's own ``mlflow.sklearn.load_model`` (the baseline: what was loaded before, trusting
the artifact) and :func:`~mlops_ops.core.model_artifacts.load_trusted` (signature, digest, allow-list scan of
every file, the model file by its content). The overhead is set against what a batch-scoring task does with
the model in the same process: load it and score one day of flights (February 12, 2013) — a lower bound of a
``batch_score`` run, which also starts Airflow tasks, reads and writes Parquet. Then a registry of
``VERSIONS`` versions with aliases and history is exported to a local folder and imported into an empty MLflow,
timed, and the restored registry compared with the source.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

VERSIONS = 10
REPEATS = 3
ROWS = 20_000


def _spec():
    """The reference model spec without its feature-store columns (schedule and weather features only)."""
    import yaml

    from include.flights.features import without_feature_store
    from mlops_ops.core.modelspec import ModelSpec

    path = Path(__file__).resolve().parent.parent / "include" / "flights" / "model_spec.yaml"
    return ModelSpec.from_dict(without_feature_store(yaml.safe_load(path.read_text())))


def _fit():
    from include.flights.data import flights
    from mlops_ops.core import training

    spec = _spec()
    frame = training.prepare(flights(1).head(ROWS), spec)
    frame = frame[frame[spec.target].notna()]
    model = training.build_estimator(spec, dict(spec.params), seed=7)
    features = training.features_frame(frame, spec)
    model.fit(features, frame[spec.target].astype(int))
    return model, features.head(5)


def _log(model, example, serialization: str) -> str:
    import mlflow
    import skops.io

    from mlops_ops.core import lineage

    options = (
        {"skops_trusted_types": skops.io.get_untrusted_types(data=skops.io.dumps(model))}
        if serialization == "skops"
        else {"serialization_format": "cloudpickle"}
    )
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=example, pip_requirements=lineage.pip_requirements(), **options
        )
    return info.model_uri


def _load_seconds(client, name: str, key) -> dict:
    """Median seconds of MLflow's load and of the trusted load of version 1 of ``name``, in one run."""
    import mlflow

    from mlops_ops.core import storage
    from mlops_ops.core.model_artifacts import PinnedModel, Registration, TrustPolicy, load_trusted
    from mlops_ops.core.signing import VerificationKeys

    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            client.get_model_version_download_uri(name, "1"), dst_path=folder
        )
        digest = storage.directory_sha256(local)
        signature = Registration(name, "1", digest, "run", "data", gate_passed=True).sign(key)
        pinned = PinnedModel(name, "1", "champion", "run", local, digest, signature)
        policy = TrustPolicy(VerificationKeys.from_texts([key.public_text]), pickle_models=frozenset({name}))
        mlflow_s, trusted_s, report = [], [], None
        for _ in range(REPEATS):
            started = time.perf_counter()
            mlflow.sklearn.load_model(local)
            mlflow_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = load_trusted(local, pinned, policy).scan
            trusted_s.append(time.perf_counter() - started)
        size = sum(path.stat().st_size for path in Path(local).rglob("*") if path.is_file())
    return {
        "mlflow_load_median_s": round(statistics.median(mlflow_s), 3),
        "trusted_load_median_s": round(statistics.median(trusted_s), 3),
        "overhead_s": round(statistics.median(trusted_s) - statistics.median(mlflow_s), 3),
        "artifact_mb": round(size / 1e6, 2),
        "files_read": len(report.files),
        "pickle_streams_judged": list(report.scanned),
        "allowed_globals": len(report.globals_seen),
    }


def _task_import_seconds() -> float:
    """Median seconds a fresh interpreter takes to import what a scoring task imports (every Airflow task is a
    new process that pays this before it touches the model)."""
    import subprocess  # nosec B404 - a fixed argument list, this interpreter
    import sys

    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        subprocess.run(  # nosec B603
            [sys.executable, "-c", "import airflow.sdk, mlflow, sklearn, pandas, pyarrow.parquet"], check=True
        )
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _day_scoring_seconds(model) -> float:
    """Median seconds to score February 12, 2013 (every departure) with ``model``, as a scoring task would."""
    from include.flights.data import flights
    from mlops_ops.core import training

    spec = _spec()
    february = flights(2)
    features = training.features_frame(training.prepare(february[february["day"] == 12], spec), spec)
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        model.predict_proba(features)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def _state(client, name: str) -> dict:
    model = client.get_registered_model(name)
    return {
        "aliases": {alias: str(number) for alias, number in model.aliases.items()},
        "history": sorted(key for key in model.tags if key.startswith("mlops.history.")),
        "versions": sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'")),
    }


def run() -> dict:
    import mlflow

    from mlops_ops.hooks.registry_backup import export_registry, import_registry

    with tempfile.TemporaryDirectory(prefix="mlops-bench-registry-") as work:
        root = Path(work)
        source_uri = f"sqlite:///{root}/source.db"
        mlflow.set_tracking_uri(source_uri)
        mlflow.set_registry_uri(source_uri)
        client = mlflow.MlflowClient(source_uri, source_uri)
        mlflow.set_experiment(experiment_id=client.create_experiment("bench", (root / "src").as_uri()))
        model, example = _fit()

        from mlops_ops.core.signing import SigningKey, VerificationKeys

        key = SigningKey.generate()
        loads = {}
        for serialization in ("skops", "cloudpickle"):
            name = f"bench_{serialization}"
            client.create_registered_model(name)
            client.create_model_version(name, _log(model, example, serialization))
            loads[serialization] = _load_seconds(client, name, key)
        day_scoring_s = _day_scoring_seconds(model)
        task_imports_s = _task_import_seconds()

        client.create_registered_model("flight_delay")
        logged = _log(model, example, "skops")
        for number in range(1, VERSIONS + 1):
            client.create_model_version("flight_delay", logged, tags={"mlops.gate.passed": "true"})
            client.set_registered_model_tag(
                "flight_delay",
                f"mlops.history.champion.{number:06d}",
                json.dumps({"to_version": str(number)}),
            )
        client.set_registered_model_alias("flight_delay", "champion", str(VERSIONS))
        client.set_registered_model_alias("flight_delay", "challenger", str(VERSIONS - 1))

        backup = root / "backup"
        started = time.perf_counter()
        exported = export_registry(client, str(backup), key)
        export_s = time.perf_counter() - started
        target_uri = f"sqlite:///{root}/target.db"
        target = mlflow.MlflowClient(target_uri, target_uri)
        started = time.perf_counter()
        import_registry(
            target, str(backup), (root / "dst").as_uri(), VerificationKeys.from_texts([key.public_text])
        )
        import_s = time.perf_counter() - started
        size = sum(path.stat().st_size for path in backup.rglob("*") if path.is_file())
        same = all(_state(client, m) == _state(target, m) for m in exported.models)
    return {
        "benchmark": "registry_security",
        "repeats": REPEATS,
        "trusted_load": loads,
        "day_scoring_s": round(day_scoring_s, 3),
        "task_imports_s": round(task_imports_s, 3),
        "backup": {
            "models": len(exported.models),
            "versions": exported.versions,
            "export_s": round(export_s, 2),
            "import_s": round(import_s, 2),
            "backup_mb": round(size / 1e6, 2),
            "restored_equals_source": same,
        },
        "checks": [
            {
                "name": "trusted load overhead, reference model (skops) (s)",
                "value": loads["skops"]["overhead_s"],
                "goal": "<= 0.5",
                "ok": loads["skops"]["overhead_s"] <= 0.5,
            },
            {
                # One scoring task at least imports its libraries, loads the model and scores; a batch_score
                # run has three such tasks or more (pin, score shards, publish), so its share is lower still.
                "name": "trusted load overhead / one scoring task (imports + load + score one day)",
                "value": round(
                    loads["skops"]["overhead_s"]
                    / (task_imports_s + loads["skops"]["mlflow_load_median_s"] + day_scoring_s),
                    3,
                ),
                "goal": "<= 0.05",
                "ok": loads["skops"]["overhead_s"]
                <= 0.05 * (task_imports_s + loads["skops"]["mlflow_load_median_s"] + day_scoring_s),
            },
            {
                "name": "restored registry equals source",
                "value": same,
                "goal": "True",
                "ok": same,
            },
        ],
    }

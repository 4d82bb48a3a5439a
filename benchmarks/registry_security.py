"""What the artifact scan adds to a promotion, and what a registry backup and restore cost.

A real flight-delay model (scikit-learn pipeline on 20,000 January 2013 flights) is logged in both formats a
version may have: skops (TrainOperator's default for scikit-learn: no pickle to scan) and cloudpickle (what
other models get: one pickle scanned by modelscan). The scan a promotion runs is timed on each (download + scan,
as ``PromoteOperator`` does it). Then a registry of ``VERSIONS`` versions with aliases and history is exported to
a local folder and imported into an empty MLflow, timed, and the restored registry compared with the source.
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


def _fit(spec_path: Path):
    import yaml

    from include.flights.data import flights
    from mlops_ops.core import training
    from mlops_ops.core.modelspec import ModelSpec

    spec = ModelSpec.from_dict(yaml.safe_load(spec_path.read_text()))
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


def _scan_seconds(client, name: str, version: str) -> tuple[float, list[str]]:
    import mlflow

    from mlops_ops.core import artifact_scan

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=folder)
        report = artifact_scan.require_safe(local, f"{name} v{version}")
    return time.perf_counter() - started, list(report.scanned)


def _state(client, name: str) -> dict:
    model = client.get_registered_model(name)
    return {
        "aliases": {alias: str(number) for alias, number in model.aliases.items()},
        "history": sorted(key for key in model.tags if key.startswith("mlops.history.")),
        "versions": sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'")),
    }


def run() -> dict:
    import mlflow

    from mlops_ops.core import registry_backup

    project = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="mlops-bench-registry-") as work:
        root = Path(work)
        source_uri = f"sqlite:///{root}/source.db"
        mlflow.set_tracking_uri(source_uri)
        mlflow.set_registry_uri(source_uri)
        client = mlflow.MlflowClient(source_uri, source_uri)
        mlflow.set_experiment(experiment_id=client.create_experiment("bench", (root / "src").as_uri()))
        model, example = _fit(project / "include" / "flights" / "model_spec.yaml")

        scan = {}
        for serialization in ("skops", "cloudpickle"):
            name = f"bench_{serialization}"
            client.create_registered_model(name)
            client.create_model_version(name, _log(model, example, serialization))
            timings, scanned = [], []
            for _ in range(REPEATS):
                seconds, scanned = _scan_seconds(client, name, "1")
                timings.append(seconds)
            scan[serialization] = {"median_s": round(statistics.median(timings), 3), "pickle_files": scanned}

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
        exported = registry_backup.export_registry(client, str(backup))
        export_s = time.perf_counter() - started
        target_uri = f"sqlite:///{root}/target.db"
        target = mlflow.MlflowClient(target_uri, target_uri)
        started = time.perf_counter()
        registry_backup.import_registry(target, str(backup), (root / "dst").as_uri())
        import_s = time.perf_counter() - started
        size = sum(path.stat().st_size for path in backup.rglob("*") if path.is_file())
        same = all(_state(client, m) == _state(target, m) for m in exported.models)
    return {
        "benchmark": "registry_security",
        "repeats": REPEATS,
        "scan_at_promotion": scan,
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
                "name": "cloudpickle scan + download at promotion (s)",
                "value": scan["cloudpickle"]["median_s"],
                "goal": "<= 2",
                "ok": scan["cloudpickle"]["median_s"] <= 2,
            },
            {
                "name": "restored registry equals source",
                "value": same,
                "goal": "True",
                "ok": same,
            },
        ],
    }

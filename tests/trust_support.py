"""Tests' side of the trust rules: an isolated embedded trust folder, signed versions, recorded alias moves.

Production signs in RegisterOperator and records in PromoteOperator; tests that build a registry by hand use
these to put it in the state those operators would have left (or deliberately not, for the attacks).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mlops_ops.core import storage
from mlops_ops.core.model_artifacts import SIGNATURE_TAG, Registration
from mlops_ops.hooks.trust import TRUST_HOME_ENV, TrustHook, embedded_signing_key


def isolated_trust(monkeypatch, folder: Path) -> Path:
    """Give this test its own embedded trust folder (key, alias log); return it."""
    monkeypatch.setenv(TRUST_HOME_ENV, str(folder))
    return folder


def save_sklearn_model(folder: Path, model, serialization_format: str = "skops") -> str:
    """Save ``model`` as an MLflow sklearn model folder (no run needed); return its URI as a version source."""
    import mlflow
    import skops.io

    options = {"serialization_format": serialization_format}
    if serialization_format == "skops":
        options["skops_trusted_types"] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    mlflow.sklearn.save_model(model, str(folder), pip_requirements=["scikit-learn"], **options)
    return folder.as_uri()


def sign_version(
    client, name: str, version: str, gate_passed: bool = True, key=None, digest: str | None = None
) -> Registration:
    """Sign version ``version`` of ``name`` over its artifact as it is now (or over ``digest``: an artifact
    modified after it was signed), as RegisterOperator would."""
    import mlflow

    found = client.get_model_version(name, str(version))
    if digest is None:
        with tempfile.TemporaryDirectory() as folder:
            source = client.get_model_version_download_uri(name, str(version))
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=folder)
            digest = storage.directory_sha256(local)
    registration = Registration(
        model_name=name,
        version=str(version),
        artifact_sha256=digest,
        run_id=str(found.run_id or ""),
        data_version="test",
        gate_passed=gate_passed,
        signed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    client.set_model_version_tag(
        name, str(version), SIGNATURE_TAG, registration.sign(key or embedded_signing_key())
    )
    return registration


def record_alias(name: str, alias: str, version: str, move: str = "promotion", actor: str = "test") -> None:
    """Append a signed move of ``alias`` to ``version`` to the embedded alias log."""
    TrustHook().record_alias_move(
        model_name=name,
        alias=alias,
        to_version=str(version),
        move=move,
        actor=actor,
        reason="set up by the test",
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

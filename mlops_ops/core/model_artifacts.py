"""A registered model version pinned for a run, and its artifact checked against the digest recorded at training.

Batch scoring, monitoring and the online API resolve an alias (``champion``) once, keep the
:class:`PinnedModel` for the whole run, and load the artifact only after :func:`verify_artifact` has matched
its sha256 with the ``mlops.artifact_sha256`` tag: a model that changed on storage is never scored with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops_ops.core import storage


class ModelIntegrityError(RuntimeError):
    """A model artifact does not match the digest recorded when it was trained, or no digest was recorded."""


@dataclass(frozen=True)
class ModelInput:
    """One input column of a model's MLflow signature.

    :param name: the column name.
    :param type: the MLflow type (``"string"``, ``"double"``, ``"long"``, ...).
    :param required: False when the model was trained with missing values in this column and accepts them.
    """

    name: str
    type: str
    required: bool = True

    @property
    def is_text(self) -> bool:
        """Whether the column holds strings (a categorical feature)."""
        return self.type == "string"


@dataclass(frozen=True)
class PinnedModel:
    """A model version fixed for one run.

    :param name: the registered model name.
    :param version: the version number, as a string.
    :param alias: the alias it was resolved from, or ``None`` when a version was asked for directly.
    :param run_id: the MLflow run that trained it.
    :param source: where the registry says the artifact is.
    :param artifact_sha256: the digest recorded at training, ``"sha256:<hex>"``; empty when none was recorded.
    """

    name: str
    version: str
    alias: str | None
    run_id: str | None
    source: str
    artifact_sha256: str

    @property
    def uri(self) -> str:
        """The registry URI of this exact version (``models:/name/version``), never the moving alias."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe mapping, for XCom."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PinnedModel:
        """Rebuild from :meth:`to_dict`'s output.

        :raises ValueError: naming the missing keys.
        """
        missing = sorted({"name", "version"} - set(values))
        if missing:
            raise ValueError(f"a pinned model needs {missing}; got keys {sorted(values)}")
        return cls(
            name=str(values["name"]),
            version=str(values["version"]),
            alias=values.get("alias"),
            run_id=values.get("run_id"),
            source=str(values.get("source", "")),
            artifact_sha256=str(values.get("artifact_sha256", "")),
        )


def verify_artifact(folder: str | Path, model: PinnedModel) -> str:
    """Check the downloaded artifact in ``folder`` against ``model.artifact_sha256``.

    :return: the digest, ``"sha256:<hex>"``.
    :raises ModelIntegrityError: when no digest was recorded, or the artifact differs from it.
    """
    if not model.artifact_sha256:
        raise ModelIntegrityError(
            f"{model.name} version {model.version} has no recorded artifact sha256 (tag mlops.artifact_sha256): "
            "its integrity cannot be verified; re-register it through RegisterOperator"
        )
    actual = storage.directory_sha256(folder)
    if actual != model.artifact_sha256:
        raise ModelIntegrityError(
            f"{model.name} version {model.version}: the artifact at {model.source} has sha256 {actual}, "
            f"but {model.artifact_sha256} was recorded when it was trained; it was modified or corrupted "
            "and will not be loaded"
        )
    return actual


def model_inputs(folder: str | Path) -> list[ModelInput]:
    """The input columns of the MLflow model in ``folder``, from its signature (empty when it has none)."""
    from mlflow.models import Model

    signature = Model.load(str(folder)).signature
    if signature is None or signature.inputs is None:
        return []
    return [
        ModelInput(name=spec.name, type=_type_name(spec.type), required=bool(getattr(spec, "required", True)))
        for spec in signature.inputs.inputs
    ]


def _type_name(mlflow_type: Any) -> str:
    return str(getattr(mlflow_type, "name", mlflow_type)).lower()


def load_verified(folder: str | Path, model: PinnedModel) -> Any:
    """Verify the artifact in ``folder`` (see :func:`verify_artifact`), then load it as a scikit-learn model."""
    import mlflow

    verify_artifact(folder, model)
    return mlflow.sklearn.load_model(str(folder))

"""A registered model version pinned for a run, and the one loader every consumer of a model goes through.

Batch scoring, drift and performance monitoring, promotion and the online API resolve an alias (``champion``)
once, keep the :class:`PinnedModel` for the whole run, and load it with :func:`load_trusted`, which follows a
fixed recipe whatever the artifact or the registry says:

1. the version's registration must be signed (``mlops.signature``, see :mod:`mlops_ops.core.signing`) by a key
   this host trusts, for this model name and version;
2. the downloaded files must hash to the digest that was signed (no links, no special files);
3. every file is scanned for pickle streams, judged by the allow-list (:mod:`mlops_ops.core.artifact_scan`);
4. the model file named by ``MLmodel`` is loaded by its *content*: a skops archive with the types it holds
   judged by the same allow-list (never the ``skops_trusted_types`` the artifact declares), or a pickle only
   when the deployment allows pickles for this model, through an unpickler that refuses what the scan refuses.

MLflow's own loaders are never called on registry content: they take the format, the trusted types and extra
code paths from the artifact itself.
"""

from __future__ import annotations

import io
import pickle  # nosec B403 - unpickled only through _AllowListUnpickler, after the allow-list scan
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_ops.core import storage
from mlops_ops.core.artifact_scan import ScanReport, UnsafeArtifactError, scan_folder
from mlops_ops.core.errors import ModelIntegrityError
from mlops_ops.core.pickle_allowlist import GlobalsAllowList, python2_name
from mlops_ops.core.signing import REGISTRATION, SignatureError, SigningKey, VerificationKeys

__all__ = [
    "ModelIntegrityError",
    "ModelInput",
    "PinnedModel",
    "Registration",
    "TrustPolicy",
    "TrustedModel",
    "check_loadable",
    "check_model_reference",
    "load_checked",
    "load_trusted",
    "model_inputs",
    "verify_artifact",
    "verify_registration",
]

#: The version tag holding the signed registration.
SIGNATURE_TAG = "mlops.signature"
#: Registered model names: what MLflow accepts, minus anything that could reach a path or a log line.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}")


def check_model_reference(name: str, version: str | None = None) -> None:
    """Refuse a model name or version that could escape a folder or a log line, before any filesystem access.

    :raises ModelIntegrityError: naming the problem (the value is shown escaped and cut).
    """
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise ModelIntegrityError(
            f"model name {str(name)[:60]!r} is refused: use letters, digits, '_', '-', '.', spaces "
            "(no path separators or control characters, at most 200)"
        )
    if version is not None and not (isinstance(version, str) and version.isdigit() and len(version) <= 12):
        raise ModelIntegrityError(f"model version {str(version)[:30]!r} of {name} is refused: not a number")


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
    :param artifact_sha256: the digest recorded at training, ``"sha256:<hex>"``; empty when none was recorded
        (informational: what is checked is the digest inside ``signature``).
    :param signature: the signed registration (JSON envelope of the ``mlops.signature`` tag); empty if unsigned.
    """

    name: str
    version: str
    alias: str | None
    run_id: str | None
    source: str
    artifact_sha256: str
    signature: str = ""

    def __post_init__(self) -> None:
        check_model_reference(self.name, self.version)

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
            signature=str(values.get("signature") or ""),
        )


def verify_artifact(folder: str | Path, model: PinnedModel, expected_sha256: str | None = None) -> str:
    """Check the downloaded artifact in ``folder`` against a digest: ``expected_sha256`` (the signed one), else
    ``model.artifact_sha256``. Links and special files are refused: an artifact is plain files.

    :return: the digest, ``"sha256:<hex>"``.
    :raises ModelIntegrityError: when no digest is known, the folder holds a link, or the artifact differs.
    """
    expected = expected_sha256 if expected_sha256 is not None else model.artifact_sha256
    return _verify_digest(folder, f"{model.name} version {model.version}", model.source, expected)


def _verify_digest(folder: str | Path, subject: str, source: str, expected: str) -> str:
    if not expected:
        raise ModelIntegrityError(
            f"{subject} has no recorded artifact sha256 (tag mlops.artifact_sha256): "
            "its integrity cannot be verified; re-register it through RegisterOperator"
        )
    for path in Path(folder).rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ModelIntegrityError(
                f"{subject}: the artifact holds {path.relative_to(folder).as_posix()[:80]!r}, which is not a plain "
                "file; it will not be loaded"
            )
    actual = storage.directory_sha256(folder)
    if actual != expected:
        raise ModelIntegrityError(
            f"{subject}: the artifact at {source} has sha256 {actual}, but {expected} was recorded when it was "
            "trained; it was modified or corrupted and will not be loaded"
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


@dataclass(frozen=True)
class Registration:
    """What was signed when a version was registered: the facts a loader and a promotion rely on.

    :param model_name: the registered model.
    :param version: the version number.
    :param artifact_sha256: the digest of the artifact's files (``"sha256:<hex>"``).
    :param run_id: the MLflow run that trained it.
    :param data_version: the data version it was trained on.
    :param gate_passed: whether its evaluation gate passed (``False``: registered without a gate).
    :param training_key: the training key (same key, same model).
    :param airflow_run: ``dag_id/run_id`` of the registration.
    :param signed_at: when it was signed, ISO 8601 UTC.
    """

    model_name: str
    version: str
    artifact_sha256: str
    run_id: str
    data_version: str
    gate_passed: bool
    training_key: str = ""
    airflow_run: str = ""
    signed_at: str = ""

    def payload(self) -> dict[str, Any]:
        """The signed payload."""
        return {"kind": REGISTRATION, **asdict(self)}

    def sign(self, key: SigningKey) -> str:
        """The ``mlops.signature`` tag value: the signed envelope as JSON."""
        import json

        return json.dumps(key.sign(self.payload()), sort_keys=True)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Registration:
        """Rebuild from a verified payload.

        :raises ModelIntegrityError: when a field is missing.
        """
        fields = {name: payload.get(name) for name in cls.__dataclass_fields__}
        missing = [name for name in ("model_name", "version", "artifact_sha256") if not fields[name]]
        if missing:
            raise ModelIntegrityError(f"the signed registration lacks {missing}")
        return cls(
            **{name: str(value or "") for name, value in fields.items() if name != "gate_passed"},
            gate_passed=fields["gate_passed"] is True,
        )


@dataclass(frozen=True)
class TrustPolicy:
    """A deployment's rules for loading model versions (from its trust connection, never from the registry).

    :param verification_keys: the public keys whose signatures are accepted.
    :param pickle_models: registered model names that may be stored as pickles (cloudpickle); others must be
        skops files.
    :param allow_list: the globals a pickle stream or a skops file may name.
    """

    verification_keys: VerificationKeys
    pickle_models: frozenset[str] = frozenset()
    allow_list: GlobalsAllowList = field(default_factory=GlobalsAllowList)


@dataclass(frozen=True)
class TrustedModel:
    """A model loaded by :func:`load_trusted`.

    :param model: the estimator.
    :param registration: the verified, signed registration.
    :param scan: what the artifact scan read and judged.
    :param format: ``"skops"`` or ``"pickle"``.
    """

    model: Any
    registration: Registration
    scan: ScanReport
    format: str


def verify_registration(model: PinnedModel, keys: VerificationKeys) -> Registration:
    """The signed registration of ``model``, checked against ``keys`` and against its name and version.

    :raises ModelIntegrityError: one line naming the model, the version and why (unsigned, unknown key, bad
        signature, signed for another version).
    """
    subject = f"{model.name} version {model.version}"
    if not model.signature:
        raise ModelIntegrityError(
            f"{subject} is refused: it is not signed (no {SIGNATURE_TAG} tag); only versions registered by "
            "RegisterOperator with the deployment's signing key are loaded"
        )
    try:
        registration = Registration.from_payload(keys.verify(model.signature, REGISTRATION))
    except SignatureError as err:
        raise ModelIntegrityError(f"{subject} is refused: {err}") from None
    if (registration.model_name, registration.version) != (model.name, model.version):
        raise ModelIntegrityError(
            f"{subject} is refused: its signature was made for {registration.model_name[:60]!r} version "
            f"{registration.version[:12]} (copied from another version)"
        )
    return registration


class _AllowListUnpickler(pickle.Unpickler):  # nosec B301 - find_class refuses what the allow-list refuses
    """An unpickler that imports only allowed globals, mapping Python 2 names itself (``fix_imports`` off)."""

    def __init__(self, data: bytes, allow_list: GlobalsAllowList) -> None:
        super().__init__(io.BytesIO(data), fix_imports=False)
        self._allow_list = allow_list
        self._python2 = not (len(data) >= 2 and data[0] == 0x80 and data[1] >= 3)

    def find_class(self, module: str, name: str) -> Any:
        if self._python2:
            module, name = python2_name(module, name)
        reason = self._allow_list.refusal(module, name)
        if reason:
            raise pickle.UnpicklingError(f"{module}.{name} is refused: {reason}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are refused")


def _model_file(folder: Path, subject: str) -> Path:
    """The model file ``MLmodel``'s scikit-learn flavor names, a plain file directly in ``folder``."""
    import yaml

    try:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ModelIntegrityError(
            f"{subject}: its MLmodel file cannot be read ({type(err).__name__})"
        ) from None
    flavor = ((mlmodel or {}).get("flavors") or {}).get("sklearn") if isinstance(mlmodel, dict) else None
    name = flavor.get("pickled_model") if isinstance(flavor, dict) else None
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", name) or name.startswith("."):
        raise ModelIntegrityError(
            f"{subject}: MLmodel names no scikit-learn model file (flavors.sklearn.pickled_model) in this folder"
        )
    path = folder / name
    if path.is_symlink() or not path.is_file():
        raise ModelIntegrityError(f"{subject}: the model file {name!r} is missing or not a plain file")
    return path


def check_loadable(
    folder: str | Path,
    model_name: str,
    subject: str,
    expected_sha256: str,
    policy: TrustPolicy,
    source: str = "",
) -> tuple[Path, bytes, str, ScanReport]:
    """Everything :func:`load_trusted` checks but the signature, without loading: the digest, the scan, the
    model file's format. RegisterOperator runs it before it signs a version, so nothing unloadable is signed.

    :param model_name: the registered model (pickles load only for the names ``policy.pickle_models`` holds).
    :param subject: what the folder is, for messages (``"churn version 3"``).
    :return: ``(model file, its bytes, format, scan report)``.
    :raises ModelIntegrityError: naming the subject and what was refused.
    """
    root = Path(folder)
    _verify_digest(root, subject, source or str(root), expected_sha256)
    report = scan_folder(root, policy.allow_list)
    if not report.safe:
        raise UnsafeArtifactError(
            f"{subject} is refused: its artifact is unsafe to load.\n{report.describe()}"
        )
    path = _model_file(root, subject)
    data = path.read_bytes()
    if data.startswith(b"PK\x03\x04"):
        _judge_skops_types(path, subject, policy.allow_list)
        return path, data, "skops", report
    if model_name not in policy.pickle_models:
        raise ModelIntegrityError(
            f"{subject} is refused: its model file {path.name} is a pickle, and this deployment loads pickles "
            f"only for the models its trust configuration names (pickle_models); store it with skops instead"
        )
    return path, data, "pickle", report


def load_checked(
    folder: str | Path,
    model_name: str,
    subject: str,
    expected_sha256: str,
    policy: TrustPolicy,
    source: str = "",
) -> tuple[Any, str, ScanReport]:
    """Load a model folder whose digest is known from a trusted source (the training task's own result, or a
    verified signature), by the fixed recipe: :func:`check_loadable`, then skops with allow-listed types or the
    allow-list unpickler.

    :return: ``(model, format, scan report)``.
    :raises ModelIntegrityError: naming the subject and what was refused; nothing of the artifact ran.
    """
    path, data, file_format, report = check_loadable(
        folder, model_name, subject, expected_sha256, policy, source
    )
    try:
        if file_format == "skops":
            import skops.io

            trusted = _judge_skops_types(path, subject, policy.allow_list)
            loaded = skops.io.load(str(path), trusted=trusted)
        else:
            loaded = _AllowListUnpickler(data, policy.allow_list).load()
    except ModelIntegrityError:
        raise
    except Exception as err:  # whatever a hostile file makes the loader raise, it is a refusal
        raise ModelIntegrityError(
            f"{subject}: its {file_format} model file could not be loaded: {type(err).__name__}: {str(err)[:200]}"
        ) from None
    return loaded, file_format, report


def load_trusted(folder: str | Path, model: PinnedModel, policy: TrustPolicy) -> TrustedModel:
    """Load the downloaded artifact of ``model`` by the fixed recipe in this module's docstring.

    :param folder: the downloaded model folder (``MlflowHook.download_model``).
    :param model: the pinned version, with its signature.
    :param policy: the deployment's trust rules.
    :raises ModelIntegrityError: one message naming the model, the version and what was refused; nothing of
        the artifact ran.
    """
    registration = verify_registration(model, policy.verification_keys)
    loaded, file_format, report = load_checked(
        folder,
        model.name,
        f"{model.name} version {model.version}",
        registration.artifact_sha256,
        policy,
        model.source,
    )
    return TrustedModel(loaded, registration, report, file_format)


def _judge_skops_types(path: Path, subject: str, allow_list: GlobalsAllowList) -> list[str]:
    """The types a skops file needs trusted, each judged by the allow-list (never the ``skops_trusted_types``
    the artifact's MLmodel declares).

    :raises UnsafeArtifactError: naming every type the allow-list refuses.
    """
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=str(path))
    except Exception as err:
        raise ModelIntegrityError(
            f"{subject}: its skops file cannot be read ({type(err).__name__})"
        ) from None
    refused = []
    for type_name in untrusted:
        module, _, name = type_name.rpartition(".")
        reason = allow_list.refusal(module, name) if module else "not a module-level name"
        if reason:
            refused.append(f"{type_name[:120]}: {reason}")
    if refused:
        raise UnsafeArtifactError(
            f"{subject} is refused: its skops file holds types not on the allow-list: " + "; ".join(refused)
        )
    return list(untrusted)

"""Hook for a deployment's trust rules: the signing key, the verification keys, the alias log, what may load.

The registry is not trusted (anyone who can write to it can set any tag and move any alias), so what decides
whether a model version may be loaded or an alias believed lives in an Airflow connection (conn type
``mlops_trust``), which the registry never sees:

- *Password*: the Ed25519 private key (PEM, or base64 of its 32 bytes) that signs registrations and alias moves.
  Set it only where RegisterOperator, PromoteOperator and RollbackOperator run; hosts that only load models
  (scoring workers, the prediction API) need no private key.
- *Extra* ``verification_keys``: the public keys (base64) whose signatures are accepted; several during a key
  rotation. The public half of the connection's private key is always accepted. This and the other list
  fields also take one string of entries separated by commas or spaces.
- *Extra* ``alias_log``: where the signed alias log is kept: a path / ``file://`` URI, or a SQLAlchemy URL
  (``postgresql+psycopg2://...``: table ``mlops_alias_log``).
- *Extra* ``pickle_models``: registered model names that may be loaded from pickles (cloudpickle); every other
  model must be a skops file. *Extra* ``allowed_globals``: globals their pickles may name beyond the built-in
  allow-list (``module.Class``, or ``package.*`` for a package's scikit-learn estimators).

Without the connection, and only in the embedded profile (``MLOPS_PROFILE=embedded``), the trust folder under
``$MLOPS_HOME/trust/`` (``.mlops/trust/``) is used: a signing key generated on first use (``signing-key.pem``,
mode 0600), extra public keys one per line in ``verification-keys.txt``, and ``alias-log.jsonl``. Elsewhere the
connection is required, and so is its ``alias_log``. ``mlops-ops keys`` generates and rotates keys.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlops_ops.core.alias_log import AliasLogStore, AliasRecord
    from mlops_ops.core.model_artifacts import PinnedModel, Registration, TrustedModel, TrustPolicy
    from mlops_ops.core.signing import SigningKey, VerificationKeys
    from mlops_ops.hooks.mlflow import MlflowHook

SIGNING_KEY_FILE = "signing-key.pem"
VERIFICATION_KEYS_FILE = "verification-keys.txt"
ALIAS_LOG_FILE = "alias-log.jsonl"


#: Overrides the embedded trust folder (tests give each registry its own).
TRUST_HOME_ENV = "MLOPS_TRUST_HOME"


def trust_home() -> Path:
    """The embedded trust folder: ``$MLOPS_TRUST_HOME``, else ``$MLOPS_HOME/trust``."""
    from mlops_ops.core.settings import mlops_home

    configured = os.environ.get(TRUST_HOME_ENV)
    return Path(configured).resolve() if configured else mlops_home() / "trust"


def embedded_signing_key(folder: Path | None = None, create: bool = True) -> SigningKey | None:
    """The embedded signing key, generated (mode 0600, exclusive create) when ``create`` and none exists yet."""
    from mlops_ops.core.signing import SigningKey

    path = (folder or trust_home()) / SIGNING_KEY_FILE
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = SigningKey.generate()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use that one
            return SigningKey.from_text(path.read_text())
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key.to_pem())
        return key
    return SigningKey.from_text(path.read_text())


#: Extra fields holding lists: a JSON list, or one string of entries separated by commas or white space (what an
#: environment variable in a settings file gives).
LIST_FIELDS = ("verification_keys", "pickle_models", "allowed_globals")


def _entries(conn_id: str, name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [entry for entry in value.replace(",", " ").split() if entry]
    if isinstance(value, list) and all(isinstance(entry, str) for entry in value):
        return [entry.strip() for entry in value if entry.strip()]
    raise ValueError(
        f"connection {conn_id!r}: extra {name!r} must be a list of strings or one comma-separated string"
    )


#: The connection form's label of the password field (a label, not a secret).
SIGNING_KEY_FIELD_LABEL = "Signing key (Ed25519, PEM or base64; only where models are registered)"  # nosec B105


class TrustHook(BaseHook):
    """
    The deployment's trust rules, from one Airflow connection (see the module docstring for its fields).

    :param trust_conn_id: Airflow connection id of conn type ``mlops_trust``; when it does not exist, the
        embedded profile (``MLOPS_PROFILE=embedded``) uses the trust folder under ``$MLOPS_HOME/trust``, and
        any other profile refuses (``AirflowNotFoundException`` naming the connection).
    """

    conn_name_attr = "trust_conn_id"
    default_conn_name = "mlops_trust_default"
    conn_type = "mlops_trust"
    hook_name = "mlops-ops trust (signing keys, alias log)"

    def __init__(self, trust_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trust_conn_id = trust_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the connection form shows this connection's fields."""
        return {
            "hidden_fields": ["host", "schema", "port", "login"],
            "relabeling": {"password": SIGNING_KEY_FIELD_LABEL},
            "placeholders": {
                "extra": '{"verification_keys": ["<base64 public key>"], "alias_log": '
                '"postgresql+psycopg2://mlops@db/mlops", "pickle_models": [], "allowed_globals": []}'
            },
        }

    @cached_property
    def _settings(self) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowNotFoundException

        from mlops_ops.core import settings

        try:
            conn = self.get_connection(self.trust_conn_id)
        except AirflowNotFoundException:
            if not settings.embedded_profile():
                raise AirflowNotFoundException(
                    settings.missing_connection(
                        self.trust_conn_id,
                        "mlops_trust",
                        "password = the signing key or extra verification_keys",
                    )
                ) from None
            home = trust_home()
            extra_keys = home / VERIFICATION_KEYS_FILE
            return {
                "embedded": True,
                "private_key": None,
                "verification_keys": extra_keys.read_text().splitlines() if extra_keys.exists() else [],
                "alias_log": str(home / ALIAS_LOG_FILE),
                "pickle_models": [],
                "allowed_globals": [],
            }
        extra = conn.extra_dejson
        if not extra.get("alias_log") and not settings.embedded_profile():
            # A per-host file would give each worker a log of its own: every host must read the same one.
            raise AirflowNotFoundException(
                f"connection {self.trust_conn_id!r} names no alias_log (a SQLAlchemy URL or a shared path every "
                f"host reads), outside the {settings.EMBEDDED_PROFILE} profile"
            )
        lists = {name: _entries(self.trust_conn_id, name, extra.get(name)) for name in LIST_FIELDS}
        return {
            "embedded": False,
            "private_key": conn.password or None,
            "alias_log": str(extra.get("alias_log") or trust_home() / ALIAS_LOG_FILE),
            **lists,
        }

    def signing_key(self) -> SigningKey:
        """The key that signs registrations and alias moves.

        :raises ValueError: when the connection holds no private key (a host that only verifies).
        """
        from mlops_ops.core.signing import SigningKey

        if self._settings["embedded"]:
            key = embedded_signing_key()
            if key is None:
                raise RuntimeError(f"no embedded signing key under {trust_home()}")
            return key
        if not self._settings["private_key"]:
            raise ValueError(
                f"connection {self.trust_conn_id!r} holds no signing key (its password): this host can verify "
                "but not register or move aliases"
            )
        return SigningKey.from_text(self._settings["private_key"])

    @cached_property
    def verification_keys(self) -> VerificationKeys:
        """The public keys accepted here: the configured ones and the public half of the signing key."""
        from mlops_ops.core.signing import SigningKey, VerificationKeys

        texts = list(self._settings["verification_keys"])
        if self._settings["embedded"]:
            key = embedded_signing_key(create=False)
            texts += [key.public_text] if key else []
        elif self._settings["private_key"]:
            texts.append(SigningKey.from_text(self._settings["private_key"]).public_text)
        return VerificationKeys.from_texts(texts)

    @cached_property
    def policy(self) -> TrustPolicy:
        """The rules :func:`~mlops_ops.core.model_artifacts.load_trusted` applies on this host."""
        from mlops_ops.core.model_artifacts import TrustPolicy
        from mlops_ops.core.pickle_allowlist import GlobalsAllowList

        return TrustPolicy(
            verification_keys=self.verification_keys,
            pickle_models=frozenset(self._settings["pickle_models"]),
            allow_list=GlobalsAllowList.from_config(self._settings["allowed_globals"]),
        )

    @cached_property
    def alias_log(self) -> AliasLogStore:
        """The store of the signed alias log."""
        from mlops_ops.core.alias_log import open_store

        return open_store(self._settings["alias_log"])

    def sign_registration(self, registration: Registration) -> str:
        """The ``mlops.signature`` tag value for ``registration``."""
        return registration.sign(self.signing_key())

    def alias_history(self, model_name: str, alias: str) -> list[AliasRecord]:
        """Every verified move of ``alias``, oldest first (see :func:`mlops_ops.core.alias_log.history`)."""
        from mlops_ops.core import alias_log

        return alias_log.history(self.alias_log, self.verification_keys, model_name, alias)

    def record_alias_move(self, **move: Any) -> AliasRecord:
        """Sign and append a move (keyword arguments of :func:`mlops_ops.core.alias_log.append`)."""
        from mlops_ops.core import alias_log

        return alias_log.append(self.alias_log, self.signing_key(), self.verification_keys, **move)

    def pin(
        self, mlflow: MlflowHook, model_name: str, alias: str | None = None, version: str | None = None
    ) -> PinnedModel:
        """Resolve ``alias`` (or take ``version``) like :meth:`MlflowHook.pin_version`, then refuse what cannot
        be trusted before anything is downloaded: an alias that the signed log does not name, a version
        without a valid signature for itself.

        :raises LookupError: when there is no such alias or version.
        :raises ModelIntegrityError: (``AliasLogError`` for the alias) with one line naming model, version, why.
        """
        from mlops_ops.core import alias_log
        from mlops_ops.core.model_artifacts import check_model_reference, verify_registration

        check_model_reference(model_name, version)
        pinned = mlflow.pin_version(model_name, alias=alias, version=version)
        if alias is not None:
            alias_log.check_alias(self.alias_history(model_name, alias), model_name, alias, pinned.version)
        verify_registration(pinned, self.verification_keys)
        return pinned

    def load(self, mlflow: MlflowHook, pinned: PinnedModel, folder: str) -> tuple[TrustedModel, str]:
        """Download ``pinned`` into ``folder`` and load it by the fixed recipe
        (:func:`~mlops_ops.core.model_artifacts.load_trusted`).

        :return: the loaded model and the local model folder.
        """
        from mlops_ops.core.model_artifacts import load_trusted

        local = mlflow.download_model(pinned, folder)
        return load_trusted(local, pinned, self.policy), local

    def test_connection(self) -> tuple[bool, str]:
        """Check that the keys parse and the alias log can be read."""
        try:
            keys = self.verification_keys
            self.alias_log.read("__connection_test__", "champion")
        except Exception as err:
            return False, f"{type(err).__name__}: {str(err)[:300]}"
        return True, f"{len(keys.keys)} verification key(s); alias log at {self.alias_log.describe()}"

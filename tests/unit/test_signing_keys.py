"""``mlops-ops keys``: rotation keeps old signatures verifying, and resign moves registrations to the new key."""

from __future__ import annotations

import json

import pytest

from mlops_ops.cli import main
from mlops_ops.core.model_artifacts import SIGNATURE_TAG
from mlops_ops.hooks.trust import VERIFICATION_KEYS_FILE, TrustHook
from tests.trust_support import isolated_trust, save_sklearn_model, sign_version

CONN = "mlflow_keys"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "mlflow", "host": uri}))
    isolated_trust(monkeypatch, tmp_path / "trust")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    features = np.arange(40, dtype=float).reshape(20, 2)
    source = save_sklearn_model(tmp_path / "model", LogisticRegression().fit(features, np.arange(20) % 2))
    client.create_model_version("m", source=source)
    sign_version(client, "m", "1")
    return client


def key_id_of_version(client) -> str:
    return json.loads(client.get_model_version("m", "1").tags[SIGNATURE_TAG])["key_id"]


def verifies(client) -> bool:
    from mlops_ops.core.errors import ModelIntegrityError
    from mlops_ops.hooks.mlflow import MlflowHook

    try:
        TrustHook().pin(MlflowHook(CONN), "m", version="1")
    except ModelIntegrityError:
        return False
    return True


def test_rotate_then_resign_then_retire_the_old_key(registry, tmp_path, capsys):
    old = TrustHook().signing_key().key_id
    assert key_id_of_version(registry) == old
    assert main(["keys", "rotate"]) == 0
    new = TrustHook().signing_key().key_id
    assert new != old and verifies(registry)  # the old public key is still trusted
    assert main(["keys", "resign", "--model", "m", "--mlflow-conn-id", CONN]) == 0
    assert key_id_of_version(registry) == new
    (tmp_path / "trust" / VERIFICATION_KEYS_FILE).write_text("")  # the old key retired
    assert verifies(registry)
    assert "1 version(s) re-signed" in capsys.readouterr().out


def test_resign_never_blesses_a_version_that_does_not_verify(registry, capsys):
    registry.set_model_version_tag("m", "1", SIGNATURE_TAG, "{}")
    assert main(["keys", "resign", "--model", "m", "--mlflow-conn-id", CONN]) == 0
    assert registry.get_model_version("m", "1").tags[SIGNATURE_TAG] == "{}"
    assert "left as it is" in capsys.readouterr().out


def test_generate_never_overwrites_a_key(tmp_path, capsys):
    target = tmp_path / "key.pem"
    assert main(["keys", "generate", "--out", str(target)]) == 0
    first = target.read_text()
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert main(["keys", "generate", "--out", str(target)]) == 2
    assert target.read_text() == first
    assert "BEGIN PRIVATE KEY" not in capsys.readouterr().out


def test_a_base64_key_in_a_trust_connection_signs_what_its_comma_separated_keys_verify(
    registry, tmp_path, monkeypatch, capsys
):
    """The production profile's shape: a one-line key from `keys generate --format base64` in the password,
    the previous public key as a comma-separated string (an environment variable), the log a SQL table."""
    from mlops_ops.core.signing import SigningKey
    from mlops_ops.hooks.mlflow import MlflowHook

    target = tmp_path / "signing.key"
    assert main(["keys", "generate", "--format", "base64", "--out", str(target)]) == 0
    text = target.read_text()
    assert len(text.strip().splitlines()) == 1 and text.strip() not in capsys.readouterr().out
    new = SigningKey.from_text(text)
    old_public = TrustHook().signing_key().public_text  # what signed version 1 (the embedded key)
    connection = {
        "conn_type": "mlops_trust",
        "password": text.strip(),
        "extra": {
            "verification_keys": f" {old_public},",
            "alias_log": f"sqlite:///{tmp_path}/alias-log.db",
            "pickle_models": "m, other",
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_TRUST_PROD", json.dumps(connection))
    trust = TrustHook("mlops_trust_prod")
    assert trust.signing_key().key_id == new.key_id
    assert trust.policy.pickle_models == frozenset({"m", "other"})
    assert trust.pin(MlflowHook(CONN), "m", version="1").version == "1"  # the old key still verifies
    record = trust.record_alias_move(
        model_name="m", alias="champion", to_version="1", move="promotion", actor="t", reason="r", at="now"
    )
    assert [r.key_id for r in trust.alias_history("m", "champion")] == [record.key_id] == [new.key_id]

    connection["extra"]["verification_keys"] = {"not": "a list"}
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_TRUST_BAD", json.dumps(connection))
    with pytest.raises(ValueError, match="'verification_keys' must be a list of strings"):
        _ = TrustHook("mlops_trust_bad").verification_keys

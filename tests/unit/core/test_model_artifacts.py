"""Pinned model versions and artifact verification (no MLflow server: a model folder on disk)."""

from __future__ import annotations

import pytest

from mlops_ops.core import storage
from mlops_ops.core.model_artifacts import ModelIntegrityError, PinnedModel, verify_artifact


def pinned(digest: str) -> PinnedModel:
    return PinnedModel("m", "3", "champion", "run", "models:/m-1", digest)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "model.skops").write_bytes(b"weights")
    return tmp_path


def test_a_matching_artifact_verifies_and_mlflows_registration_marker_is_ignored(folder):
    digest = storage.directory_sha256(folder)
    (folder / "registered_model_meta").write_text("model_name: m\n")  # MLflow adds it at registration
    assert verify_artifact(folder, pinned(digest)) == digest


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: (f / "model.skops").write_bytes(b"weightz"), "was modified or corrupted"),
        (lambda f: (f / "extra.pkl").write_bytes(b"planted"), "was modified or corrupted"),
        (lambda f: (f / "model.skops").unlink(), "was modified or corrupted"),
    ],
)
def test_any_change_to_the_artifact_is_refused(folder, change, words):
    digest = storage.directory_sha256(folder)
    change(folder)
    with pytest.raises(ModelIntegrityError, match=words) as raised:
        verify_artifact(folder, pinned(digest))
    assert "m version 3" in str(raised.value) and digest in str(raised.value)


def test_a_version_without_a_recorded_digest_is_refused(folder):
    with pytest.raises(ModelIntegrityError, match="no recorded artifact sha256"):
        verify_artifact(folder, pinned(""))


def test_pinned_model_round_trips_and_names_missing_keys():
    model = pinned("sha256:abc")
    assert PinnedModel.from_dict(model.to_dict()) == model
    assert model.uri == "models:/m/3"
    with pytest.raises(ValueError, match=r"a pinned model needs \['version'\]"):
        PinnedModel.from_dict({"name": "m"})


# --- the one loader: signature, digest, scan, format -------------------------------------------------------


class _Planted:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture(scope="module")
def keys():
    from mlops_ops.core.signing import SigningKey, VerificationKeys

    key = SigningKey.generate()
    return key, VerificationKeys.from_texts([key.public_text])


def small_model():
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    features = np.arange(40, dtype=float).reshape(20, 2)
    return LogisticRegression().fit(features, np.arange(20) % 2)


def saved(tmp_path, model=None, serialization_format="skops", name="model"):
    from tests.trust_support import save_sklearn_model

    save_sklearn_model(tmp_path / name, model or small_model(), serialization_format)
    return tmp_path / name


def signed(folder, key, name="m", version="3", sign_for=None):
    from mlops_ops.core.model_artifacts import Registration

    registration = Registration(
        model_name=sign_for[0] if sign_for else name,
        version=sign_for[1] if sign_for else version,
        artifact_sha256=storage.directory_sha256(folder),
        run_id="run",
        data_version="sha256:data",
        gate_passed=True,
    )
    return PinnedModel(name, version, "champion", "run", folder.as_uri(), "", registration.sign(key))


def policy(keys, pickle_models=()):
    from mlops_ops.core.model_artifacts import TrustPolicy

    return TrustPolicy(verification_keys=keys[1], pickle_models=frozenset(pickle_models))


def test_a_signed_skops_model_loads_and_predicts(tmp_path, keys):
    from mlops_ops.core.model_artifacts import load_trusted

    folder = saved(tmp_path)
    trusted = load_trusted(folder, signed(folder, keys[0]), policy(keys))
    assert trusted.format == "skops" and trusted.registration.data_version == "sha256:data"
    assert list(trusted.model.predict([[0.0, 1.0], [38.0, 39.0]])) == list(
        small_model().predict([[0.0, 1.0], [38.0, 39.0]])
    )


def test_refusals_of_the_loader(tmp_path, keys):
    """Each refused for its own reason, with one line naming the model and version."""
    from mlops_ops.core.model_artifacts import load_trusted
    from mlops_ops.core.signing import SigningKey

    folder = saved(tmp_path)
    good = signed(folder, keys[0])
    attacker = SigningKey.generate()
    cases = {
        "unsigned": (PinnedModel("m", "3", None, "run", "", "", ""), "it is not signed"),
        "signed by an unknown key": (signed(folder, attacker), f"signed by key '{attacker.key_id}'"),
        "signature of another version": (
            signed(folder, keys[0], sign_for=("m", "2")),
            "copied from another version",
        ),
        "tampered envelope": (
            PinnedModel("m", "3", None, "run", "", "", good.signature.replace('"run"', '"evil"')),
            "does not match what was signed",
        ),
    }
    for name, (pinned, words) in cases.items():
        with pytest.raises(ModelIntegrityError, match=words) as raised:
            load_trusted(folder, pinned, policy(keys))
        assert str(raised.value).startswith("m version 3"), name


def test_a_pickle_loads_only_where_the_deployment_allows_it(tmp_path, keys):
    from mlops_ops.core.model_artifacts import load_trusted

    folder = saved(tmp_path, serialization_format="cloudpickle")
    pinned = signed(folder, keys[0])
    with pytest.raises(
        ModelIntegrityError, match="loads pickles only for the models its trust configuration names"
    ):
        load_trusted(folder, pinned, policy(keys))
    assert load_trusted(folder, pinned, policy(keys, ["m"])).format == "pickle"


def test_a_signed_artifact_changed_after_signing_is_refused_before_anything_loads(tmp_path, keys):
    from mlops_ops.core.model_artifacts import load_trusted

    folder = saved(tmp_path, serialization_format="cloudpickle")
    pinned = signed(folder, keys[0])
    (folder / "model.pkl").write_bytes(pickle_payload(tmp_path))
    with pytest.raises(ModelIntegrityError, match="was modified or corrupted"):
        load_trusted(folder, pinned, policy(keys, ["m"]))
    assert not (tmp_path / "ran").exists()


def pickle_payload(tmp_path) -> bytes:
    import pickle

    return pickle.dumps(_Planted(str(tmp_path / "ran")))


def test_a_signed_pickle_that_runs_code_is_refused_by_the_scan(tmp_path, keys):
    """Signed by the deployment's own key (a compromised training function, say): the scan still refuses."""
    from mlops_ops.core.model_artifacts import load_trusted

    folder = saved(tmp_path, serialization_format="cloudpickle")
    (folder / "model.pkl").write_bytes(pickle_payload(tmp_path))
    with pytest.raises(ModelIntegrityError, match="model.pkl: REFUSED: posix.system"):
        load_trusted(folder, signed(folder, keys[0]), policy(keys, ["m"]))
    assert not (tmp_path / "ran").exists()


def test_a_skops_file_whose_mlmodel_widens_its_trusted_types_is_judged_by_the_allow_list(tmp_path, keys):
    import os

    from sklearn.preprocessing import FunctionTransformer

    from mlops_ops.core.model_artifacts import load_trusted

    model = FunctionTransformer(os.system)
    folder = saved(tmp_path, model=model)  # save_sklearn_model trusts what skops reports: posix.system
    assert "posix.system" in (folder / "MLmodel").read_text()
    with pytest.raises(
        ModelIntegrityError, match="skops file holds types not on the allow-list: posix.system"
    ):
        load_trusted(folder, signed(folder, keys[0]), policy(keys))


def test_the_unpickler_refuses_what_the_scan_refuses_even_on_its_own(tmp_path):
    import pickle

    from mlops_ops.core.model_artifacts import _AllowListUnpickler
    from mlops_ops.core.pickle_allowlist import GlobalsAllowList

    for protocol in (0, 2, 5):
        with pytest.raises(pickle.UnpicklingError, match="posix.system is refused"):
            _AllowListUnpickler(
                pickle.dumps(_Planted(str(tmp_path / "ran")), protocol=protocol), GlobalsAllowList()
            ).load()
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval is refused"):
        _AllowListUnpickler(b"c__builtin__\neval\n(S'1'\ntR.", GlobalsAllowList()).load()
    assert not (tmp_path / "ran").exists()
    assert _AllowListUnpickler(
        pickle.dumps(small_model(), protocol=2), GlobalsAllowList()
    ).load().coef_.shape == (1, 2)


@pytest.mark.parametrize(
    "name, version", [("../etc", "1"), ("a/b", "1"), ("m\nINFO forged", "1"), ("m", "1/../2"), ("m", "x")]
)
def test_model_names_and_versions_that_could_reach_a_path_are_refused(name, version):
    with pytest.raises(ModelIntegrityError, match="is refused"):
        PinnedModel(name, version, None, None, "", "")

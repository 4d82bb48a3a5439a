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

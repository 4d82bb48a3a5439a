"""The pickle scanner on real files: never unpickles, refuses what runs code or cannot be analysed."""

from __future__ import annotations

import os
import pickle

import pytest

from mlops_ops.core import artifact_scan


class _RunsAShellCommand:
    """Pickles to a call of ``os.system``: what a planted model file would do on load."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_a_clean_pickle_of_plain_data_passes(tmp_path):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [0.5, 1.5]}, protocol=5))
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    report = artifact_scan.scan_folder(tmp_path)
    assert report.safe and report.scanned == ("model.pkl",)


def test_a_folder_without_pickles_is_clean_and_scans_nothing(tmp_path):
    (tmp_path / "model.skops").write_bytes(b"PK\x03\x04 not a pickle")
    assert artifact_scan.scan_folder(tmp_path) == artifact_scan.ScanReport(scanned=(), findings=())


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib", "weights", "nested/model.cloudpickle"])
def test_os_system_is_found_under_any_name_and_never_runs(tmp_path, name):
    sentinel = tmp_path / "ran"
    path = tmp_path / "artifact" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(_RunsAShellCommand(str(sentinel))))
    with pytest.raises(artifact_scan.UnsafeArtifactError) as refused:
        artifact_scan.require_safe(tmp_path / "artifact", "m v1")
    message = str(refused.value)
    assert f"{name}: CRITICAL" in message and "'system'" in message and "m v1 is refused" in message
    assert not sentinel.exists()


def test_a_corrupt_pickle_is_refused_as_unscannable(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04garbage")
    report = artifact_scan.scan_folder(tmp_path)
    assert not report.safe
    assert [(f.file, f.severity) for f in report.findings] == [("model.pkl", "UNSCANNABLE")]
    assert report.to_dict()["findings"][0]["file"] == "model.pkl"


@pytest.mark.parametrize(
    ("head", "expected"), [(b"\x80\x05", True), (b"\x80\x02", True), (b"\x80\x09", False), (b"PK", False)]
)
def test_pickle_headers(head, expected):
    assert artifact_scan.looks_like_pickle(head) is expected

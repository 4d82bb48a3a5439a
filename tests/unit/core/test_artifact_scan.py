"""The allow-list scan on real files: every shape a code-running pickle can take is refused, naming the global;
what legitimate models need passes; nothing is ever unpickled."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import zipfile
import zlib

import numpy as np
import pytest

from mlops_ops.core import artifact_scan
from mlops_ops.core.pickle_allowlist import GlobalsAllowList


class _RunsAShellCommand:
    """Pickles to a call of ``os.system``: what a planted model file would do on load."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def payload(tmp_path, protocol: int = 5) -> bytes:
    return pickle.dumps(_RunsAShellCommand(str(tmp_path / "ran")), protocol=protocol)


def scan_bytes(tmp_path, data: bytes, name: str = "model.pkl") -> artifact_scan.ScanReport:
    folder = tmp_path / "artifact"
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    (folder / "MLmodel").write_text("artifact_path: model\nflavors:\n  sklearn: {pickled_model: model.pkl}\n")
    return artifact_scan.scan_folder(folder)


def refused(report: artifact_scan.ScanReport) -> list[tuple[str, str, str]]:
    return [(f.file, f.severity, f.what.split(":")[0]) for f in report.findings]


# --- code-running pickles of many shapes ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(6))
def test_os_system_is_refused_at_every_protocol(tmp_path, protocol):
    report = scan_bytes(tmp_path, payload(tmp_path, protocol))
    assert refused(report) == [("model.pkl", "REFUSED", "posix.system")]
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", ["model.skops", "MLmodel.bak", "weights", "nested/deep/conda.yaml", "x.npy"])
def test_a_pickle_is_found_whatever_the_file_is_called(tmp_path, name):
    report = scan_bytes(tmp_path, payload(tmp_path, 2), name)
    assert refused(report) == [(name, "REFUSED", "posix.system")]


HANDWRITTEN = {
    # Protocol 0 with a Python 2 module name that the unpickler maps to builtins.
    "python2 name": (b"c__builtin__\neval\n(S'1+1'\ntR.", "builtins.eval"),
    # INST: import and call in one opcode.
    "INST": (b"(S'id'\nios\nsystem\n.", "os.system"),
    # STACK_GLOBAL whose module and name come back from the memo, after being popped.
    "memo": (
        b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94" + b"00h\x00h\x01\x93\x8c\x02id\x85R.",
        "posix.system",
    ),
    # A global with an attribute path: builtins.object is allowed, object.__subclasses__ is not.
    "attribute path": (b"\x80\x04\x8c\x08builtins\x8c\x15object.__subclasses__\x93)R.", "builtins.object"),
    # Allowed package, dangerous members: a file-writing class, a file-reading function, test helpers.
    "numpy.memmap": (b"\x80\x04\x8c\x05numpy\x8c\x06memmap\x93.", "numpy.memmap"),
    "numpy.load": (b"\x80\x04\x8c\x05numpy\x8c\x04load\x93.", "numpy.load"),
    "numpy.testing": (b"\x80\x04\x8c\rnumpy.testing\x8c\x0fassert_allclose\x93.", "numpy.testing"),
    "sklearn function": (
        pickle.dumps(__import__("sklearn.datasets").datasets.fetch_openml),
        "sklearn.datasets",
    ),
}


@pytest.mark.parametrize("data, what", HANDWRITTEN.values(), ids=HANDWRITTEN.keys())
def test_handwritten_streams_are_refused_naming_the_global(tmp_path, data, what):
    report = scan_bytes(tmp_path, data)
    assert [f.severity for f in report.findings] == ["REFUSED"]
    assert report.findings[0].what.startswith(what)


def test_a_global_whose_name_is_computed_cannot_be_judged_and_is_refused(tmp_path):
    # builtins.str is allowed; str('posix') is not a literal, so STACK_GLOBAL's module cannot be known.
    data = b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x05posix\x85R\x8c\x06system\x93."
    report = scan_bytes(tmp_path, data)
    assert refused(report) == [
        ("model.pkl", "UNSCANNABLE", "a STACK_GLOBAL takes its module or name from a computed value")
    ]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\x80\x04\x8c\x05numpy\x8c\x07ndarray\x93\x8c\x01x", "cannot be read to its end"),
        (b"\x80\x02P1\n.", "PERSID needs a custom unpickler"),
        (b"\x80\x02\x82\x01.", "EXT1 needs a custom unpickler"),
    ],
    ids=["truncated after a global", "persistent id", "extension registry"],
)
def test_what_cannot_be_analysed_is_refused(tmp_path, data, words):
    report = scan_bytes(tmp_path, data)
    assert not report.safe and words in report.describe()


@pytest.mark.parametrize(
    "wrap, where",
    [
        (gzip.compress, "model.pkl(gzip)"),
        (bz2.compress, "model.pkl(bz2)"),
        (lzma.compress, "model.pkl(xz)"),
        (zlib.compress, "model.pkl(zlib)"),
    ],
    ids=["gzip", "bz2", "xz", "zlib"],
)
def test_compressed_pickles_are_opened_and_judged(tmp_path, wrap, where):
    report = scan_bytes(tmp_path, wrap(payload(tmp_path)))
    assert refused(report) == [(where, "REFUSED", "posix.system")]


def test_lz4_data_is_refused_rather_than_skipped(tmp_path):
    report = scan_bytes(tmp_path, b"\x04\x22\x4d\x18" + b"\0" * 32)
    assert refused(report) == [("model.pkl", "UNSCANNABLE", "lz4-compressed data is not inspected")]


def test_a_pickle_inside_a_skops_archive_member_is_found(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("schema.json", "{}")
        handle.writestr("0123.npy", payload(tmp_path))
    report = scan_bytes(tmp_path, archive.getvalue(), "model.skops")
    assert refused(report) == [("model.skops!0123.npy", "REFUSED", "posix.system")]


def test_the_objects_of_an_object_npy_file_are_judged(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.array([_RunsAShellCommand(str(tmp_path / "ran"))], dtype=object), allow_pickle=True)
    report = scan_bytes(tmp_path, buffer.getvalue(), "weights.npy")
    assert refused(report) == [("weights.npy", "REFUSED", "posix.system")]


def test_a_second_stream_after_a_clean_one_is_judged_too(tmp_path):
    report = scan_bytes(tmp_path, pickle.dumps({"a": 1}) + payload(tmp_path))
    assert [(f.severity, f.what.split(":")[0]) for f in report.findings] == [("REFUSED", "posix.system")]


def test_links_are_refused(tmp_path):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (tmp_path / "outside.pkl").write_bytes(pickle.dumps([1]))
    (folder / "model.pkl").symlink_to(tmp_path / "outside.pkl")
    report = artifact_scan.scan_folder(folder)
    assert refused(report) == [("model.pkl", "UNSCANNABLE", "not a plain file (a link or a special file)")]


# --- what legitimate models need passes -------------------------------------------------------------------


def reference_pipeline():
    """The pipeline TrainOperator builds: ordinal-encoded categories, then gradient boosting."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"carrier": rng.choice(["UA", "AA", "DL"], 300), "distance": rng.normal(size=300)})
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
    )
    columns = ColumnTransformer([("categorical", encoder, ["carrier"])], remainder="passthrough")
    model = HistGradientBoostingClassifier(max_iter=10, categorical_features=[0], random_state=0)
    return Pipeline([("preprocessing", columns), ("model", model)]).fit(frame, frame["distance"] > 0)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_the_reference_pipeline_pickled_or_cloudpickled_is_clean(tmp_path, protocol):
    import cloudpickle

    model = reference_pipeline()
    for dumps, name in ((pickle.dumps, "model.pkl"), (cloudpickle.dumps, "cloud.pkl")):
        report = scan_bytes(tmp_path, dumps(model, protocol=protocol), name)
        assert report.safe, report.describe()
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in report.globals_seen


def test_an_mlflow_folder_of_text_files_holds_no_pickle(tmp_path):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "MLmodel").write_text("artifact_path: model\nflavors:\n  python_function: {}\n")
    (folder / "conda.yaml").write_text("channels:\n- conda-forge\ndependencies:\n- python=3.11\n")
    (folder / "python_env.yaml").write_text("python: 3.11.7\nbuild_dependencies:\n- pip\n")
    (folder / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.9.1\n")
    (folder / "input_example.json").write_text('{"columns": ["a"], "data": [[1]]}')
    report = artifact_scan.scan_folder(folder)
    assert report.safe and report.scanned == () and len(report.files) == 5


def test_a_deployment_adds_its_own_estimator_classes(tmp_path):
    data = b"\x80\x04\x8c\x0bcollections\x8c\x05deque\x93."
    assert scan_bytes(tmp_path, data).safe
    own = b"\x80\x04\x8c\x0bcollections\x8c\x08ChainMap\x93."
    assert not scan_bytes(tmp_path, own).safe
    report = artifact_scan.scan_folder(
        tmp_path / "artifact", GlobalsAllowList.from_config(["collections.ChainMap"])
    )
    assert report.safe
    with pytest.raises(ValueError, match="test or build module"):
        GlobalsAllowList.from_config(["numpy.testing.assert_allclose"])
    with pytest.raises(ValueError, match="is not 'module.name' or 'package.\\*'"):
        GlobalsAllowList.from_config(["os system"])


def test_require_safe_names_the_subject_and_each_finding(tmp_path):
    scan_bytes(tmp_path, payload(tmp_path))
    with pytest.raises(artifact_scan.UnsafeArtifactError) as raised:
        artifact_scan.require_safe(tmp_path / "artifact", "m v1")
    message = str(raised.value)
    assert message.startswith("m v1 is refused: its artifact is unsafe to load.")
    assert "model.pkl: REFUSED: posix.system: not on the allow-list" in message
    assert not (tmp_path / "ran").exists()

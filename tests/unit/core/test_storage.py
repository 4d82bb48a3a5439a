"""Tests of local storage: atomic Parquet publishing, reading several files, directory digests."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.core import storage
from mlops_ops.core.errors import DataError
from mlops_ops.core.storage import directory_sha256, read_parquet, write_parquet_atomic

OLD = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]})
NEW = pd.DataFrame({"id": [4, 5], "name": ["d", "e"]})


def test_write_parquet_atomic_writes_a_frame_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "new" / "folder" / "part-0.parquet"

    assert write_parquet_atomic(OLD, str(target)) == str(target)

    pd.testing.assert_frame_equal(pd.read_parquet(target), OLD)
    assert list(target.parent.iterdir()) == [target]


def test_write_parquet_atomic_accepts_an_arrow_table(tmp_path):
    target = tmp_path / "part-0.parquet"

    write_parquet_atomic(pa.Table.from_pandas(NEW, preserve_index=False), str(target))

    pd.testing.assert_frame_equal(pd.read_parquet(target), NEW)


def test_write_parquet_atomic_replaces_an_existing_file(tmp_path):
    target = tmp_path / "part-0.parquet"
    write_parquet_atomic(OLD, str(target))

    write_parquet_atomic(NEW, str(target))

    pd.testing.assert_frame_equal(pd.read_parquet(target), NEW)
    assert list(tmp_path.iterdir()) == [target]


def test_a_write_failing_midway_keeps_the_previous_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "part-0.parquet"
    write_parquet_atomic(OLD, str(target))
    written_to = []

    def write_half_then_fail(table, where, *args, **kwargs):
        written_to.append(where)
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)

    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(NEW, str(target))

    assert len(written_to) == 1 and Path(written_to[0]).parent == tmp_path
    assert Path(written_to[0]) != target  # never written in place
    monkeypatch.undo()
    pd.testing.assert_frame_equal(pd.read_parquet(target), OLD)
    assert list(tmp_path.iterdir()) == [target]


def test_read_parquet_concatenates_files_in_the_order_given(tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    OLD.to_parquet(first, index=False)
    NEW.to_parquet(second, index=False)

    frame = read_parquet([str(second), str(first)])

    assert frame["id"].tolist() == [4, 5, 1, 2, 3]
    assert read_parquet([str(first), str(second)], columns=["name"]).columns.tolist() == ["name"]


def test_read_parquet_promotes_a_column_missing_from_one_file(tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    OLD.to_parquet(first, index=False)
    NEW.assign(extra=[1.5, 2.5]).to_parquet(second, index=False)

    frame = read_parquet([str(first), str(second)])

    assert len(frame) == 5
    assert frame["extra"].isna().sum() == 3


def test_read_parquet_of_no_files_is_an_error():
    with pytest.raises(ValueError, match="no files to read"):
        read_parquet([])


def test_exists_is_true_only_for_a_file(tmp_path):
    target = tmp_path / "part-0.parquet"
    write_parquet_atomic(OLD, str(target))

    assert storage.exists(str(target))
    assert not storage.exists(str(tmp_path))
    assert not storage.exists(str(tmp_path / "absent.parquet"))


def test_join_local_and_s3():
    assert (
        storage.join("s3://bucket/root/", "/evaluation/", "m.parquet")
        == "s3://bucket/root/evaluation/m.parquet"
    )
    assert storage.join("/data", "evaluation", "m.parquet") == str(Path("/data/evaluation/m.parquet"))
    assert storage.is_s3("s3://bucket") and not storage.is_s3("/s3://")


# --- directory_sha256 ----------------------------------------------------------------------------------


def model_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "MLmodel").write_text("flavor: sklearn\n")
    (root / "sub" / "model.skops").write_bytes(b"\x00\x01weights")
    return root


def test_directory_sha256_is_stable_and_independent_of_where_the_folder_is(tmp_path):
    digest = directory_sha256(model_folder(tmp_path / "one"))

    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert directory_sha256(tmp_path / "one") == digest
    assert directory_sha256(str(model_folder(tmp_path / "two"))) == digest


def test_directory_sha256_changes_with_content(tmp_path):
    folder = model_folder(tmp_path / "m")
    before = directory_sha256(folder)

    (folder / "sub" / "model.skops").write_bytes(b"\x00\x01weightz")

    assert directory_sha256(folder) != before


def test_directory_sha256_changes_with_file_names(tmp_path):
    folder = model_folder(tmp_path / "m")
    before = directory_sha256(folder)

    (folder / "MLmodel").rename(folder / "MLmodel2")

    assert directory_sha256(folder) != before


def test_directory_sha256_changes_when_a_file_is_added(tmp_path):
    folder = model_folder(tmp_path / "m")
    before = directory_sha256(folder)

    (folder / "empty.txt").write_bytes(b"")

    assert directory_sha256(folder) != before


def test_directory_sha256_ignores_registered_model_meta_anywhere(tmp_path):
    folder = model_folder(tmp_path / "m")
    before = directory_sha256(folder)

    (folder / "registered_model_meta").write_text("model_name: flight_delay\nmodel_version: 1\n")
    (folder / "sub" / "registered_model_meta").write_text("model_version: 2\n")

    assert directory_sha256(folder) == before
    assert directory_sha256(folder, exclude=frozenset()) != before


# ------------------------------------------------------------------------------------------- landing roots


def test_real_path_within_accepts_files_folders_and_links_that_stay_inside(tmp_path):
    root = tmp_path / "landing"
    (root / "month=01").mkdir(parents=True)
    (root / "month=01" / "part-0.parquet").write_bytes(b"x")
    (root / "latest.parquet").symlink_to(root / "month=01" / "part-0.parquet")
    (root / "current").symlink_to(root / "month=01", target_is_directory=True)
    mounted = tmp_path / "mounted"
    mounted.symlink_to(root, target_is_directory=True)  # a root that is itself a link

    for path in ("month=01/part-0.parquet", "latest.parquet", "current", "current/part-0.parquet", "."):
        assert storage.real_path_within(str(root / path), str(root)).startswith(str(root.resolve()))
        assert storage.real_path_within(str(mounted / path), str(mounted))


@pytest.mark.parametrize("target", ["outside.parquet", "elsewhere", "/etc/passwd", "missing-target"])
def test_real_path_within_refuses_a_link_leading_out_naming_it_escaped(tmp_path, target):
    root = tmp_path / "landing"
    root.mkdir()
    (tmp_path / "outside.parquet").write_bytes(b"secret")
    (tmp_path / "elsewhere").mkdir()
    link = root / "evil\n\x1b[31m.parquet"
    link.symlink_to(target if target.startswith("/") else tmp_path / target)

    with pytest.raises(storage.OutsideRoot) as raised:
        storage.real_path_within(str(link), str(root))

    message = str(raised.value)
    assert "evil\\n\\x1b[31m.parquet" in message and "landing root" in message
    assert "\n" not in message and "\x1b" not in message
    assert isinstance(raised.value, DataError)


def test_a_sibling_folder_sharing_the_roots_name_as_a_prefix_is_outside(tmp_path):
    root = tmp_path / "landing"
    root.mkdir()
    (tmp_path / "landing-other").mkdir()
    (root / "link").symlink_to(tmp_path / "landing-other", target_is_directory=True)

    with pytest.raises(storage.OutsideRoot):
        storage.real_path_within(str(root / "link"), str(root))


def test_object_store_uris_resolve_to_their_filesystem_and_unknown_schemes_are_refused():
    import pyarrow.fs as pafs

    filesystem, path = storage.resolve(
        "gs://bucket/a/b.parquet", storage.ObjectStore("gs", {"anonymous": True})
    )
    assert isinstance(filesystem, pafs.GcsFileSystem) and path == "bucket/a/b.parquet"
    assert storage.scheme_of("abfs://container/x") == "abfs" and storage.scheme_of("/data/x") is None
    assert (
        storage.join("abfs://container/root", "model=m", "p.parquet")
        == "abfs://container/root/model=m/p.parquet"
    )
    with pytest.raises(
        ValueError,
        match=r"^unsupported storage URI wasbs://c@a/x: use a local path or s3://, gs://, abfs://$",
    ):
        storage.resolve("wasbs://c@a/x")
    with pytest.raises(
        ValueError, match="an abfs:// URI needs a storage connection that names the Azure storage account"
    ):
        storage.resolve("abfs://container/x")


def test_a_store_for_one_scheme_is_refused_for_a_uri_in_another():
    with pytest.raises(
        ValueError,
        match=r"^s3://bucket/x is in a s3:// store, but the storage connection configures abfs://$",
    ):
        storage.resolve("s3://bucket/x", storage.ObjectStore("abfs", {"account_name": "a"}))
    with pytest.raises(ValueError, match="unknown object store 'ftp'"):
        storage.ObjectStore("ftp")

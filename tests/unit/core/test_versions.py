"""Tests of the pure data-version core: fingerprints of local files, S3 listings, Delta tables, DVC files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_ops.core import versions
from mlops_ops.core.errors import DataError
from mlops_ops.core.storage import OutsideRoot
from mlops_ops.core.versions import (
    DataVersion,
    delta_version,
    detect_kind,
    dvc_version,
    is_new_version,
    local_version,
    s3_version,
)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "a" / "data"
    write(folder / "part-0.csv", "x,y\n1,2\n")
    write(folder / "sub" / "part-1.csv", "x,y\n3,4\n")
    return folder


class TestDataVersion:
    def test_round_trips_through_json(self):
        version = DataVersion("sha256:ab", "/d", "local", ("/d/a", "/d/b"), 12, {"root": "/d"})
        data = json.loads(json.dumps(version.to_dict()))
        assert data["files"] == ["/d/a", "/d/b"]
        assert DataVersion.from_dict(data) == version

    def test_is_new_version(self):
        version = DataVersion("sha256:ab", "/d", "local")
        assert is_new_version(version, [])
        assert is_new_version(version, None)
        assert not is_new_version(version, ["sha256:ab"])
        assert not is_new_version(None, [])


class TestLocalVersion:
    def test_same_content_elsewhere_and_later_has_same_fingerprint(self, dataset: Path, tmp_path: Path):
        first = local_version(str(dataset))
        copy = tmp_path / "b" / "elsewhere"
        shutil.copytree(dataset, copy)
        os.utime(copy / "part-0.csv", (1_000_000, 1_000_000))
        second = local_version(str(copy))
        assert first is not None and second is not None
        assert first.fingerprint == second.fingerprint
        assert first.fingerprint.startswith("sha256:")
        assert first.files == (str(dataset / "part-0.csv"), str(dataset / "sub" / "part-1.csv"))
        assert first.size_bytes == 16
        assert first.kind == "local"
        json.dumps(first.to_dict())

    def test_content_change_or_rename_changes_fingerprint(self, dataset: Path):
        before = local_version(str(dataset))
        # A different size: the hash cache is keyed on (path, size, mtime_ns) and mtime ticks can be coarse.
        write(dataset / "part-0.csv", "x,y\n1,30\n")
        changed = local_version(str(dataset))
        (dataset / "part-0.csv").rename(dataset / "part-9.csv")
        renamed = local_version(str(dataset))
        assert len({before.fingerprint, changed.fingerprint, renamed.fingerprint}) == 3

    def test_ignores_hidden_markers_and_temporary_files(self, dataset: Path):
        before = local_version(str(dataset))
        write(dataset / "_SUCCESS", "")
        write(dataset / ".part-2.csv.tmp", "partial")
        write(dataset / "_temporary" / "0" / "part-2.csv", "partial")
        write(dataset / ".git" / "HEAD", "ref")
        after = local_version(str(dataset))
        assert after.fingerprint == before.fingerprint
        assert after.files == before.files

    def test_glob_is_relative_to_its_folder(self, dataset: Path, tmp_path: Path):
        write(dataset / "notes.txt", "not data")
        version = local_version(str(dataset / "*.csv"))
        assert version.files == (str(dataset / "part-0.csv"),)
        recursive = local_version(str(dataset / "**" / "*.csv"))
        assert len(recursive.files) == 2
        copy = tmp_path / "copy"
        shutil.copytree(dataset, copy)
        assert local_version(str(copy / "*.csv")).fingerprint == version.fingerprint

    def test_single_file_and_file_uri(self, dataset: Path):
        version = local_version(str(dataset / "part-0.csv"))
        assert version.files == (str(dataset / "part-0.csv"),)
        assert local_version(f"file://{dataset / 'part-0.csv'}").fingerprint == version.fingerprint

    def test_nothing_there_is_none(self, tmp_path: Path):
        (tmp_path / "empty").mkdir()
        write(tmp_path / "only_markers" / "_SUCCESS", "")
        assert local_version(str(tmp_path / "empty")) is None
        assert local_version(str(tmp_path / "only_markers")) is None
        assert local_version(str(tmp_path / "missing")) is None
        assert local_version(str(tmp_path / "*.parquet")) is None

    def test_unchanged_files_are_not_hashed_again(self, dataset: Path, monkeypatch: pytest.MonkeyPatch):
        local_version(str(dataset))
        opened: list[str] = []
        real_open = open

        def counting_open(path, *args, **kwargs):
            opened.append(str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr("builtins.open", counting_open)
        local_version(str(dataset))
        assert opened == []
        write(dataset / "part-0.csv", "x,y\n5,60\n")
        local_version(str(dataset))
        assert opened == [str(dataset / "part-0.csv")]

    def test_large_file_is_hashed_in_chunks(self, tmp_path: Path):
        content = os.urandom(3 * versions._CHUNK_BYTES + 17)
        path = write(tmp_path / "big.bin", content)
        import hashlib

        assert versions.file_sha256(str(path)) == hashlib.sha256(content).hexdigest()


class TestLandingLinks:
    """A symbolic link leading out of the landing root refuses the version; nothing behind it is read."""

    @pytest.fixture
    def secret(self, tmp_path: Path) -> Path:
        return write(tmp_path / "outside" / "secret.parquet", "not yours")

    @pytest.fixture
    def never_opened(self, monkeypatch: pytest.MonkeyPatch, secret: Path) -> list[str]:
        opened: list[str] = []
        real_open = open

        def recording_open(path, *args, **kwargs):
            opened.append(os.path.realpath(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr("builtins.open", recording_open)
        yield opened
        assert str(secret.resolve()) not in opened

    @pytest.mark.parametrize("target", ["secret", "/etc/passwd"])
    def test_a_file_link_leading_out_refuses_the_folder(self, dataset, secret, never_opened, target):
        link = dataset / "sub" / "part-9.parquet"
        link.symlink_to(secret if target == "secret" else target)

        with pytest.raises(OutsideRoot, match=r"part-9\.parquet leads outside the landing root"):
            local_version(str(dataset))

    def test_a_folder_link_leading_out_is_refused_by_a_folder_and_a_glob(self, dataset, secret, never_opened):
        (dataset / "month=2013-13").symlink_to(secret.parent, target_is_directory=True)

        with pytest.raises(DataError, match="month=2013-13 leads outside"):
            local_version(str(dataset))
        with pytest.raises(DataError, match="month=2013-13"):
            local_version(str(dataset / "**" / "*.parquet"))
        with pytest.raises(DataError, match="month=2013-13"):
            local_version(str(dataset / "*"))

    def test_a_named_file_that_links_out_of_its_folder_is_refused(self, dataset, secret, never_opened):
        (dataset / "latest.parquet").symlink_to(secret)

        with pytest.raises(DataError, match="latest.parquet leads outside"):
            local_version(str(dataset / "latest.parquet"))

    def test_links_inside_the_root_and_a_root_that_is_a_link_are_read(self, dataset, tmp_path):
        before = local_version(str(dataset))
        mounted = tmp_path / "mounted"
        mounted.symlink_to(dataset, target_is_directory=True)
        assert local_version(str(mounted)).fingerprint == before.fingerprint

        (dataset / "latest.csv").symlink_to(dataset / "sub" / "part-1.csv")
        (dataset / "alias").symlink_to(dataset / "sub", target_is_directory=True)
        with_links = local_version(str(dataset))
        # The linked file is data like any other; the linked folder is not descended into (os.walk's rule).
        assert with_links.files == tuple(sorted((*before.files, str(dataset / "latest.csv"))))

    def test_a_file_swapped_for_a_link_after_listing_is_refused_unread(self, dataset, secret, never_opened):
        version = local_version(str(dataset))
        target = dataset / "sub" / "part-1.csv"
        target.unlink()
        target.symlink_to(secret)

        with pytest.raises(DataError, match="part-1.csv leads outside"):
            versions.local_files_fingerprint(version.files, version.details["root"])

    def test_the_name_of_a_hostile_link_is_escaped_in_the_message(self, dataset, secret):
        (dataset / "evil\n\x1b[31m.parquet").symlink_to(secret)

        with pytest.raises(DataError) as raised:
            local_version(str(dataset))

        message = str(raised.value)
        assert "evil\\n\\x1b[31m.parquet" in message
        assert "\n" not in message and "\x1b" not in message


def test_a_file_gone_since_listing_is_named_escaped(dataset: Path):
    hostile = write(dataset / "bad\r\x1b[2Kname.csv", "x\n")
    version = local_version(str(dataset))
    hostile.unlink()

    with pytest.raises(DataError, match="is gone") as raised:
        versions.local_files_fingerprint(version.files, version.details["root"])
    assert "bad\\r\\x1b[2Kname.csv" in str(raised.value) and "\x1b" not in str(raised.value)


class TestS3Version:
    LISTING = [
        {"Key": "data/v1/part-0.parquet", "ETag": '"e0"', "Size": 10},
        {"Key": "data/v1/sub/part-1.parquet", "ETag": '"e1"', "Size": 20, "VersionId": "v1"},
        {"Key": "data/v1/_SUCCESS", "ETag": '"x"', "Size": 0},
        {"Key": "data/v1/_temporary/part-2.parquet", "ETag": '"x"', "Size": 5},
        {"Key": "data/v1/.hidden", "ETag": '"x"', "Size": 5},
        {"Key": "data/v1/folder/", "ETag": '"x"', "Size": 0},
        {"Key": "data/v1/empty.parquet", "ETag": '"x"', "Size": 0},
        {"Key": "data/v10/other.parquet", "ETag": '"x"', "Size": 5},
    ]

    def test_fingerprint_and_files(self):
        version = s3_version(self.LISTING, "s3://bucket/data/v1")
        assert version.kind == "s3"
        assert version.files == (
            "s3://bucket/data/v1/part-0.parquet",
            "s3://bucket/data/v1/sub/part-1.parquet",
        )
        assert version.size_bytes == 30
        assert version.details == {"bucket": "bucket", "prefix": "data/v1"}
        json.dumps(version.to_dict())

    def test_fingerprint_is_relative_to_the_prefix(self):
        moved = [{**obj, "Key": obj["Key"].replace("data/v1/", "copy/")} for obj in self.LISTING[:2]]
        assert (
            s3_version(moved, "s3://other/copy/").fingerprint
            == s3_version(self.LISTING, "s3://bucket/data/v1").fingerprint
        )

    @pytest.mark.parametrize("field, value", [("ETag", '"changed"'), ("VersionId", "v2"), ("Size", 11)])
    def test_fingerprint_changes_with_object_identity(self, field, value):
        changed = [dict(obj) for obj in self.LISTING]
        changed[1][field] = value
        assert (
            s3_version(changed, "s3://bucket/data/v1").fingerprint
            != s3_version(self.LISTING, "s3://bucket/data/v1").fingerprint
        )

    def test_single_object_and_empty_listing(self):
        version = s3_version(self.LISTING, "s3://bucket/data/v1/part-0.parquet")
        assert version.files == ("s3://bucket/data/v1/part-0.parquet",)
        assert s3_version([], "s3://bucket/data") is None
        assert s3_version(self.LISTING[2:3], "s3://bucket/data/v1") is None

    def test_bad_uri(self):
        with pytest.raises(DataError, match="not an S3 URI"):
            s3_version([], "/local/path")


class TestDeltaVersion:
    def test_two_versions_of_a_real_table(self, tmp_path: Path):
        import pyarrow as pa
        from deltalake import write_deltalake

        table = tmp_path / "table"
        write_deltalake(str(table), pa.table({"x": [1, 2]}))
        first = delta_version(str(table))
        write_deltalake(str(table), pa.table({"x": [3]}), mode="append")
        second = delta_version(str(table))

        assert first.kind == second.kind == "delta"
        assert first.details == {"delta_version": 0}
        assert second.details == {"delta_version": 1}
        assert first.fingerprint != second.fingerprint
        assert len(first.files) == 1 and len(second.files) == 2
        assert all(Path(file).exists() for file in second.files)
        assert second.size_bytes > first.size_bytes > 0
        json.dumps(second.to_dict())
        assert detect_kind(str(table)) == "delta"

        copy = tmp_path / "copy"
        shutil.copytree(table, copy)
        assert delta_version(str(copy)).fingerprint == second.fingerprint

    def test_no_table_is_none(self, tmp_path: Path):
        assert delta_version(str(tmp_path / "nothing")) is None
        assert delta_version(str(tmp_path)) is None


class TestDvcVersion:
    def test_single_output(self, tmp_path: Path):
        dvc = write(
            tmp_path / "data" / "flights.csv.dvc",
            "outs:\n"
            "- md5: a304afb96060aad90176268345e10355\n  size: 1234\n  hash: md5\n  path: flights.csv\n",
        )
        version = dvc_version(str(dvc))
        assert version.fingerprint == "md5:a304afb96060aad90176268345e10355"
        assert version.files == (str(tmp_path / "data" / "flights.csv"),)
        assert version.size_bytes == 1234
        assert version.kind == "dvc"
        assert detect_kind(str(dvc)) == "dvc"
        json.dumps(version.to_dict())

    def test_several_outputs_and_folders(self, tmp_path: Path):
        dvc = write(
            tmp_path / "data.dvc",
            "outs:\n"
            "- md5: 111.dir\n  size: 10\n  nfiles: 3\n  path: raw\n"
            "- md5: 222\n  size: 5\n  path: ../ref.csv\n",
        )
        version = dvc_version(str(dvc))
        assert version.fingerprint.startswith("sha256:")
        assert version.files == (str(tmp_path.parent / "ref.csv"), str(tmp_path / "raw"))
        assert version.details == {"outs": 2, "nfiles": 4}
        assert version.size_bytes == 15
        write(dvc, dvc.read_text().replace("222", "333"))
        assert dvc_version(str(dvc)).fingerprint != version.fingerprint

    @pytest.mark.parametrize(
        "content, problem",
        [
            ("outs: [unclosed", "not valid YAML"),
            ("just a string", "'outs' list"),
            ("outs: []", "'outs' list"),
            ("outs:\n- md5: abc\n", "has no 'path'"),
            ("outs:\n- path: data.csv\n", "has no 'md5'"),
        ],
    )
    def test_malformed_file_names_the_file(self, tmp_path: Path, content: str, problem: str):
        dvc = write(tmp_path / "broken.dvc", content)
        with pytest.raises(DataError, match="broken.dvc") as excinfo:
            dvc_version(str(dvc))
        assert problem in str(excinfo.value)

    def test_missing_file_is_none(self, tmp_path: Path):
        assert dvc_version(str(tmp_path / "absent.dvc")) is None


def test_detect_kind(tmp_path: Path):
    assert detect_kind("s3://bucket/prefix") == "s3"
    assert detect_kind(str(tmp_path / "x.dvc")) == "dvc"
    assert detect_kind(str(tmp_path)) == "local"
    assert detect_kind(str(tmp_path / "*.csv")) == "local"


def test_core_imports_no_airflow_or_heavy_library():
    code = (
        "import sys, mlops_ops.core.versions; "
        "heavy = {'airflow', 'pandas', 'boto3', 'deltalake', 'pyarrow'}; "
        "bad = {m.split('.')[0] for m in sys.modules} & heavy; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("source", ["gs://lake/landing", "abfs://landing/visits"])
def test_a_gcs_or_azure_source_is_its_own_kind_not_a_missing_local_folder(source):
    assert detect_kind(source) == source.partition("://")[0]

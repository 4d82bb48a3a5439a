"""Local paths and object-store URIs (``s3://``, ``gs://``, ``abfs://``) behind one pyarrow filesystem, with
atomic publishing.

A reader never sees a half-written file: locally a file is written under a temporary name in the same
folder and renamed into place (``os.replace`` is atomic on POSIX); in an object store an object only becomes
visible when its upload completes (an S3 or GCS upload, an Azure block list commit), so writing straight to the
final key is already atomic.

How a store is reached (credentials, endpoint) is an :class:`ObjectStore`, which
:func:`mlops_ops.hooks.object_storage.object_store_for` builds from an Airflow connection; core code receives it
and never reads a connection or a credential itself.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlops_ops.core.errors import DataError
from mlops_ops.core.printable import printable

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.fs as pafs

#: The object stores a URI may name, by scheme, with the name messages use for their endpoint.
OBJECT_STORE_SCHEMES: dict[str, str] = {
    "s3": "S3 endpoint",
    "gs": "GCS endpoint",
    "abfs": "Azure Blob endpoint",
}


def scheme_of(uri: str) -> str | None:
    """The object store ``uri`` names (``"s3"``, ``"gs"`` or ``"abfs"``), or ``None`` for a local path.

    :raises ValueError: for any other ``scheme://`` (``wasbs://``, ``gcs://``, ``http://``...), naming the ones
        that work, so that such a URI is never taken for a local folder called ``wasbs:``.
    """
    scheme, separator, _ = uri.partition("://")
    if not separator:
        return None
    if scheme in OBJECT_STORE_SCHEMES:
        return scheme
    raise ValueError(
        f"unsupported storage URI {printable(uri, 120)}: use a local path or "
        + ", ".join(f"{name}://" for name in OBJECT_STORE_SCHEMES)
    )


def is_s3(uri: str) -> bool:
    """Whether ``uri`` names an object in S3 (or an S3-compatible store)."""
    return uri.startswith("s3://")


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names an object in an object store rather than a local file."""
    return scheme_of(uri) is not None


def join(root: str, *parts: str) -> str:
    """Join path segments under a local root or an object-store root."""
    if is_remote(root):
        return "/".join([root.rstrip("/"), *(part.strip("/") for part in parts)])
    return str(Path(root, *parts))


class ObjectRemover(Protocol):
    """Deletes a store's objects through its own API where that does better than pyarrow: on S3, pyarrow's
    deletes leave "directory marker" objects behind in the parent folder, which would show up as clutter beside
    published data. :func:`mlops_ops.hooks.object_storage.object_store_for` gives S3 stores one built on the
    S3Hook's client."""

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (which ends with ``/``); return how many."""
        ...

    def delete_key(self, bucket: str, key: str) -> None:
        """Delete one object; nothing to do when it is gone already."""
        ...


@dataclass(frozen=True)
class ObjectStore:
    """How to reach one object store: the scheme it serves, the keyword arguments of its pyarrow filesystem
    (``S3FileSystem``, ``GcsFileSystem``, ``AzureFileSystem``) and its endpoint, for messages.

    The arguments hold credentials, so they are left out of the ``repr`` (a store can be logged).

    :param scheme: ``"s3"``, ``"gs"`` or ``"abfs"``.
    :param options: the filesystem's keyword arguments.
    :param endpoint: where the store answers, e.g. ``http://127.0.0.1:9000``.
    :param remover: deletes through the store's own API (see :class:`ObjectRemover`); without one, files are
        deleted one by one through pyarrow.
    """

    scheme: str
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    endpoint: str = ""
    remover: ObjectRemover | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scheme not in OBJECT_STORE_SCHEMES:
            raise ValueError(
                f"unknown object store {self.scheme!r}: one of {', '.join(OBJECT_STORE_SCHEMES)}"
            )

    @property
    def service(self) -> str:
        """What the store is called in messages (``"S3 endpoint"``...)."""
        return OBJECT_STORE_SCHEMES[self.scheme]

    def filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem over the store; paths in it are ``bucket/key`` (``container/path`` on Azure)."""
        return _filesystem(self.scheme, dict(self.options))


def _filesystem(scheme: str, options: dict[str, Any]) -> pafs.FileSystem:
    import pyarrow.fs as pafs

    if scheme == "s3":
        return pafs.S3FileSystem(**options)
    if scheme == "gs":
        return pafs.GcsFileSystem(**options)
    if "account_name" not in options:
        raise ValueError("an abfs:// URI needs a storage connection that names the Azure storage account")
    return pafs.AzureFileSystem(**options)


def resolve(uri: str, object_store: ObjectStore | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for ``uri`` and the path inside it.

    :param uri: a local path or an object-store URI (``s3://bucket/key``, ``gs://bucket/key``,
        ``abfs://container/path``).
    :param object_store: how to reach the store ``uri`` names; ``None`` uses the store's default credentials (boto3's
        chain on S3, Application Default Credentials on GCS; Azure needs a store naming the account).
    :raises ValueError: when ``object_store`` serves another scheme than ``uri``'s.
    """
    import pyarrow.fs as pafs

    scheme = scheme_of(uri)
    if scheme is None:
        return pafs.LocalFileSystem(), str(Path(uri).absolute())
    if object_store is not None and object_store.scheme != scheme:
        raise ValueError(
            f"{printable(uri, 120)} is in a {scheme}:// store, but the storage connection configures "
            f"{object_store.scheme}://"
        )
    filesystem = object_store.filesystem() if object_store is not None else _filesystem(scheme, {})
    return filesystem, uri.partition("://")[2]


class OutsideRoot(DataError):
    """A landed file or folder is a symbolic link that leads outside the folder it was landed in.

    Reading it would hand the pipeline (and its error messages and logs) whatever the link names: another
    tenant's data, ``/etc/passwd``, a credentials file.
    """


def real_path_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """The real path of the local ``path`` (symbolic links followed), which must be ``root`` or lie under it.

    Links are followed on both sides, so a landing root that is itself a link (a mounted volume) is fine, and so
    is a link from one landed file or folder to another inside the root. Nothing is opened or read.

    :param path: a local file or folder found under ``root``.
    :param root: the landing root it was found under.
    :return: the real path.
    :raises OutsideRoot: naming the path (escaped) and where it leads, when that is outside ``root``; a link
        that leads nowhere is judged by the place it names.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and os.path.commonpath([real, real_root]) != real_root:
        raise OutsideRoot(
            f"{printable(os.fspath(path))} leads outside the landing root {printable(real_root)} "
            f"(a symbolic link to {printable(real)}): refused, not read"
        )
    return real


def write_parquet_atomic(
    table: pa.Table | pd.DataFrame, uri: str, object_store: ObjectStore | None = None
) -> str:
    """Write ``table`` to ``uri`` as Parquet so that readers see the old file or the new one, never a part.

    :return: ``uri``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    filesystem, path = resolve(uri, object_store)
    if is_remote(uri):
        pq.write_table(table, path, filesystem=filesystem)
        return uri
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = str(Path(path).with_name(f".{Path(path).name}.{uuid.uuid4().hex}.tmp"))
    try:
        pq.write_table(table, temporary, filesystem=filesystem)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return uri


def write_bytes_atomic(data: bytes, uri: str, object_store: ObjectStore | None = None) -> str:
    """Write ``data`` to ``uri`` so that readers see the old content or the new, never a part.

    :return: ``uri``.
    """
    filesystem, path = resolve(uri, object_store)
    if is_remote(uri):  # an object upload is atomic
        with filesystem.open_output_stream(path) as stream:
            stream.write(data)
        return uri
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(path).with_name(f".{Path(path).name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return uri


def read_parquet(
    uris: Iterable[str], object_store: ObjectStore | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Read Parquet files (all local or all in one object store) into one pandas frame, in the order given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for uri in uris:
        filesystem, path = resolve(uri, object_store)
        tables.append(pq.read_table(path, filesystem=filesystem, columns=columns))
    if not tables:
        raise ValueError("no files to read")
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def exists(uri: str, object_store: ObjectStore | None = None) -> bool:
    """Whether a file exists at ``uri``."""
    import pyarrow.fs as pafs

    filesystem, path = resolve(uri, object_store)
    return bool(filesystem.get_file_info(path).type == pafs.FileType.File)


#: Files MLflow may add to a model's folder after it was logged (at registration), so not part of its identity.
MUTABLE_MODEL_FILES = frozenset({"registered_model_meta"})


def directory_sha256(folder: str | Path, exclude: frozenset[str] = MUTABLE_MODEL_FILES) -> str:
    """A sha256 over every file in ``folder`` (relative names and contents), as ``"sha256:<hex>"``.

    :param exclude: file names left out wherever they are in the tree.
    """
    root = Path(folder)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in exclude):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


def delete_tree(uri: str, object_store: ObjectStore | None = None) -> int:
    """Delete every file under the folder or object-store prefix ``uri``; return how many were deleted.

    In an object store, the store's :class:`ObjectRemover` deletes them when it has one (S3); otherwise the files
    under the prefix are deleted one by one, so the prefix's parent (a bucket or container) is never touched.
    """
    import shutil

    remover = object_store.remover if object_store is not None and is_remote(uri) else None
    if remover is not None:
        bucket, _, prefix = uri.partition("://")[2].partition("/")
        return remover.delete_prefix(bucket, prefix.rstrip("/") + "/")
    if is_remote(uri):
        import pyarrow.fs as pafs

        filesystem, path = resolve(uri, object_store)
        selector = pafs.FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True)
        files = [info.path for info in filesystem.get_file_info(selector) if info.type == pafs.FileType.File]
        for file in files:
            filesystem.delete_file(file)
        return len(files)
    folder = Path(uri)
    if not folder.exists():
        return 0
    count = sum(1 for path in folder.rglob("*") if path.is_file())
    shutil.rmtree(folder)
    return count


def delete_file(uri: str, object_store: ObjectStore | None = None) -> None:
    """Delete one file or object if it exists (through the store's :class:`ObjectRemover` when it has one)."""
    remover = object_store.remover if object_store is not None and is_remote(uri) else None
    if remover is not None:
        bucket, _, key = uri.partition("://")[2].partition("/")
        remover.delete_key(bucket, key)
        return
    if is_remote(uri):
        import pyarrow.fs as pafs

        filesystem, path = resolve(uri, object_store)
        if filesystem.get_file_info(path).type == pafs.FileType.File:
            filesystem.delete_file(path)
        return
    Path(uri).unlink(missing_ok=True)

"""Content fingerprints of data sources: local files, S3, GCS and Azure prefixes, Delta tables and DVC-tracked data.

A :class:`DataVersion` says *which* data a model was trained on. Its ``fingerprint`` depends only on the
content (relative names and per-file hashes, ETags, Delta log version, DVC md5), never on modification times
or on the absolute folder the data lives in, so copying a dataset elsewhere keeps its version.

Pure logic: no Airflow import; deltalake and yaml are reached only inside functions.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.printable import printable
from mlops_ops.core.storage import ObjectStore, real_path_within, resolve

_CHUNK_BYTES = 1024 * 1024
_HASH_CACHE_MAX = 4096
# (absolute path or URI, size, mtime_ns) -> sha256 hex: a poll every few seconds must not re-read unchanged files.
_hash_cache: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_hash_cache_lock = threading.Lock()

if TYPE_CHECKING:
    import pyarrow.fs as pafs


@dataclass(frozen=True)
class DataVersion:
    """
    One version of a data source.

    :param fingerprint: content fingerprint, ``"sha256:<hex>"`` (or ``"md5:<hex>"`` for one DVC output).
    :param source: the source as given (path, glob, ``s3://`` URI, Delta table URI, ``.dvc`` file).
    :param kind: ``"local"``, ``"s3"``, ``"gs"``, ``"abfs"``, ``"delta"`` or ``"dvc"``.
    :param files: the data files of this version (paths or URIs), sorted.
    :param size_bytes: total size of ``files``.
    :param details: kind-specific JSON-safe facts (e.g. ``{"delta_version": 3}``).
    """

    fingerprint: str
    source: str
    kind: str
    files: tuple[str, ...] = ()
    size_bytes: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (lists instead of tuples), the inverse of :meth:`from_dict`."""
        return {
            "fingerprint": self.fingerprint,
            "source": self.source,
            "kind": self.kind,
            "files": list(self.files),
            "size_bytes": self.size_bytes,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataVersion:
        """Rebuild a version from :meth:`to_dict` output (e.g. read back from XCom)."""
        return cls(
            fingerprint=str(data["fingerprint"]),
            source=str(data["source"]),
            kind=str(data["kind"]),
            files=tuple(data.get("files") or ()),
            size_bytes=int(data.get("size_bytes") or 0),
            details=dict(data.get("details") or {}),
        )


def is_new_version(version: DataVersion | None, seen_fingerprints: Iterable[str] | None) -> bool:
    """Whether ``version`` exists and its fingerprint is not one of ``seen_fingerprints``."""
    if version is None:
        return False
    return version.fingerprint not in set(seen_fingerprints or ())


def detect_kind(source: str) -> str:
    """
    Kind of ``source`` for ``kind="auto"``.

    ``s3://...`` is ``"s3"``, ``gs://...`` ``"gs"``, ``abfs://...`` ``"abfs"``, a path ending in ``.dvc`` is
    ``"dvc"``, a folder holding ``_delta_log`` is ``"delta"``, anything else ``"local"``.
    """
    if source.startswith(("s3://", "s3a://")):
        return "s3"
    if source.startswith(("gs://", "abfs://")):
        return source.partition("://")[0]
    if source.endswith(".dvc"):
        return "dvc"
    path = _local_path(source)
    if os.path.isdir(os.path.join(path, "_delta_log")):
        return "delta"
    return "local"


def _local_path(source: str) -> str:
    return source[len("file://") :] if source.startswith("file://") else source


def _is_ignored(relative_name: str) -> bool:
    # Hidden files, markers (_SUCCESS), temporary/metadata folders (_temporary/, _delta_log/, .tmp).
    parts = relative_name.replace("\\", "/").split("/")
    return any(part.startswith(("_", ".")) for part in parts if part)


def _fingerprint(entries: Iterable[tuple[str, ...]]) -> str:
    digest = hashlib.sha256()
    for entry in sorted(entries):
        digest.update("\x1f".join(entry).encode())
        digest.update(b"\n")
    return f"sha256:{digest.hexdigest()}"


def file_sha256(path: str) -> str:
    """sha256 hex digest of the file at ``path``, read in chunks and cached on (path, size, mtime)."""
    stat = os.stat(path)

    def read() -> Iterable[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                yield chunk

    return _cached_sha256((os.path.abspath(path), stat.st_size, stat.st_mtime_ns), read)


def _cached_sha256(key: tuple[str, int, int], read: Callable[[], Iterable[bytes]]) -> str:
    with _hash_cache_lock:
        cached = _hash_cache.get(key)
        if cached is not None:
            _hash_cache.move_to_end(key)
            return cached
    digest = hashlib.sha256()
    for chunk in read():
        digest.update(chunk)
    value = digest.hexdigest()
    with _hash_cache_lock:
        _hash_cache[key] = value
        while len(_hash_cache) > _HASH_CACHE_MAX:
            _hash_cache.popitem(last=False)
    return value


def _walk_files(folder: str, landing_root: str) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(("_", "."))]
        for name in dirs:
            # os.walk does not descend into a linked folder; one leading out of the root is still refused,
            # loudly, rather than skipped: someone placed it there.
            if os.path.islink(os.path.join(root, name)):
                real_path_within(os.path.join(root, name), landing_root)
        found.extend(os.path.join(root, name) for name in files if not name.startswith(("_", ".")))
    return found


def _glob_base(pattern: str) -> str:
    # The folder above the first component holding a wildcard: names are made relative to it.
    parts = pattern.split(os.sep)
    for index, part in enumerate(parts):
        if glob.has_magic(part):
            return os.sep.join(parts[:index]) or (os.sep if pattern.startswith(os.sep) else ".")
    return os.path.dirname(pattern)


def local_files_fingerprint(files: Iterable[str], root: str) -> str:
    """The fingerprint :func:`local_version` gives ``files`` found under ``root``, recomputed now.

    :raises DataError: naming a file that is gone, or (:class:`~mlops_ops.core.storage.OutsideRoot`) one that
        has become a symbolic link leading outside ``root`` since (it is not read).
    """
    entries = []
    for path in files:
        real_path_within(path, root)
        try:
            sha = file_sha256(path)
        except FileNotFoundError as err:
            raise DataError(f"{printable(path)} is gone since its data version was found") from err
        entries.append((os.path.relpath(path, root).replace(os.sep, "/"), sha))
    return _fingerprint(entries)


def local_version(pattern: str) -> DataVersion | None:
    """
    Version of a local file, folder (recursively) or glob; ``None`` when nothing matches.

    Hidden names and names starting with ``_`` or ``.`` (``_SUCCESS``, ``.part-0.tmp``, ``_temporary/``)
    are ignored inside folders and glob matches; a file named explicitly is always used.

    Symbolic links: the landing root is the folder, the folder above a glob's first wildcard, or a named file's
    folder (the root itself may be a link). A landed file or folder that is a link leading outside the root
    refuses the whole version before anything is read: whoever can land files must not be able to make the
    pipeline read (and quote in its errors) a file they cannot read themselves. A linked file inside the root
    is read like any other; a linked folder inside a folder source is not descended into (``os.walk``'s rule),
    while a glob does descend into it.

    :param pattern: a file path, a folder or a glob (``**`` matches recursively); ``file://`` is allowed.
    :return: the version, its ``files`` being absolute paths.
    :raises DataError: (:class:`~mlops_ops.core.storage.OutsideRoot`) naming a link that leads outside the
        root, escaped (see :func:`~mlops_ops.core.printable.printable`); or naming a file that cannot be read.
    """
    path = _local_path(pattern)
    if glob.has_magic(path):
        base = _glob_base(path)
        candidates: list[str] = []
        for match in glob.glob(path, recursive=True):
            if _is_ignored(os.path.relpath(match, base)):
                continue
            real_path_within(match, base)
            candidates.extend(_walk_files(match, base) if os.path.isdir(match) else [match])
    elif os.path.isdir(path):
        base = path
        candidates = _walk_files(path, base)
    elif os.path.isfile(path) or os.path.islink(path):
        base = os.path.dirname(path) or "."
        candidates = [path]
    else:
        return None

    entries: dict[str, tuple[str, str, int]] = {}
    for candidate in candidates:
        real_path_within(candidate, base)
        if not os.path.isfile(candidate):
            continue
        try:
            size = os.path.getsize(candidate)
            sha = file_sha256(candidate)
        except FileNotFoundError:
            continue  # renamed or deleted between listing and hashing (a writer finishing a temp file)
        except OSError as err:
            raise DataError(
                f"Cannot read {printable(candidate)} of data source {printable(pattern)}: {printable(err)}"
            ) from err
        relative = os.path.relpath(candidate, base).replace(os.sep, "/")
        entries[relative] = (os.path.abspath(candidate), sha, size)
    if not entries:
        return None
    return DataVersion(
        fingerprint=_fingerprint((name, sha) for name, (_, sha, _) in entries.items()),
        source=pattern,
        kind="local",
        files=tuple(sorted(absolute for absolute, _, _ in entries.values())),
        size_bytes=sum(size for _, _, size in entries.values()),
        details={"root": os.path.abspath(base)},
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "key/prefix")`` of ``s3://bucket/key/prefix``; raises :class:`DataError` otherwise."""
    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme not in ("s3", "s3a") or not bucket:
        raise DataError(f"{uri!r} is not an S3 URI of the form s3://bucket/prefix")
    return bucket, key


def s3_object_in_prefix(key: str, prefix: str) -> str | None:
    """The name of ``key`` relative to ``prefix``, or ``None`` when the key is outside it or ignored.

    ``s3://b/data/v1`` covers the object ``data/v1`` itself and everything under ``data/v1/``, not
    ``data/v10/...``. Folder markers (``.../``) and names starting with ``_`` or ``.`` are ignored.
    """
    if key.endswith("/"):
        return None
    if not prefix or prefix.endswith("/"):
        if not key.startswith(prefix):
            return None
        relative = key[len(prefix) :]
    elif key == prefix:
        relative = key.rsplit("/", 1)[-1]
    elif key.startswith(prefix + "/"):
        relative = key[len(prefix) + 1 :]
    else:
        return None
    return None if _is_ignored(relative) else relative


def s3_version(objects: list[dict[str, Any]], source: str) -> DataVersion | None:
    """
    Version of an S3 prefix from its listing (``list_objects_v2`` ``Contents`` or object versions).

    :param objects: dicts with ``Key``, ``ETag``, ``Size`` and optionally ``VersionId``.
    :param source: ``s3://bucket/prefix`` that was listed.
    :return: the version, its ``files`` being ``s3://bucket/key`` URIs; ``None`` when no data object is
        left after ignoring empty objects, folder markers and ``_``/``.`` names.
    """
    bucket, prefix = split_s3_uri(source)
    entries: dict[str, tuple[str, str, str, int, str]] = {}
    for obj in objects:
        try:
            key, size = str(obj["Key"]), int(obj["Size"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"Malformed S3 listing entry {obj!r} for {source!r}: {err}") from err
        relative = s3_object_in_prefix(key, prefix)
        if relative is None or size == 0:
            continue
        etag = str(obj.get("ETag") or "").strip('"')
        version_id = str(obj.get("VersionId") or "")
        if version_id == "null":  # unversioned bucket answering list_object_versions
            version_id = ""
        entries[relative] = (relative, etag, version_id, size, f"s3://{bucket}/{key}")
    if not entries:
        return None
    return DataVersion(
        fingerprint=_fingerprint((rel, etag, vid, str(size)) for rel, etag, vid, size, _ in entries.values()),
        source=source,
        kind="s3",
        files=tuple(sorted(uri for *_, uri in entries.values())),
        size_bytes=sum(size for _, _, _, size, _ in entries.values()),
        details={"bucket": bucket, "prefix": prefix},
    )


def _object_sha256(filesystem: pafs.FileSystem, info: pafs.FileInfo, uri: str) -> str:
    """sha256 of an object's content, streamed, cached on (URI, size, modification time)."""

    def read() -> Iterable[bytes]:
        with filesystem.open_input_stream(info.path) as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                yield chunk

    mtime = info.mtime_ns if info.mtime_ns is not None else -1
    return _cached_sha256((uri, int(info.size or 0), int(mtime)), read)


def object_store_version(source: str, object_store: ObjectStore | None = None) -> DataVersion | None:
    """
    Version of a ``gs://`` or ``abfs://`` object or prefix (recursively); ``None`` when nothing is there.

    Like a local folder's, the fingerprint is a sha256 over each file's name and content: pyarrow lists these
    stores without ETags or generations, so the content is read (streamed; cached on the object's size and
    modification time, so a poll re-reads only what changed). Names starting with ``_`` or ``.`` are ignored
    inside a prefix, as locally.

    :param source: ``gs://bucket/prefix`` or ``abfs://container/prefix``, or one object.
    :param object_store: how to reach the store
        (:func:`~mlops_ops.hooks.object_storage.object_store_for`).
    :return: the version, its ``files`` being URIs.
    """
    import pyarrow.fs as pafs

    scheme = source.partition("://")[0]
    filesystem, path = resolve(source, object_store)
    path = path.rstrip("/")
    single = filesystem.get_file_info(path)
    if single.type == pafs.FileType.File:
        base, found = path.rpartition("/")[0], [single]
    else:
        base = path
        selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
        found = [
            info
            for info in filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and not _is_ignored(info.path[len(path) + 1 :])
        ]
    entries: dict[str, tuple[str, str, int]] = {}
    for info in found:
        uri = f"{scheme}://{info.path}"
        try:
            sha = _object_sha256(filesystem, info, uri)
        except FileNotFoundError:
            continue  # deleted between listing and reading
        entries[info.path[len(base) + 1 :]] = (uri, sha, int(info.size or 0))
    if not entries:
        return None
    return DataVersion(
        fingerprint=_fingerprint((name, sha) for name, (_, sha, _) in entries.items()),
        source=source,
        kind=scheme,
        files=tuple(sorted(uri for uri, _, _ in entries.values())),
        size_bytes=sum(size for _, _, size in entries.values()),
        details={"root": f"{scheme}://{base}"},
    )


def object_files_fingerprint(files: Iterable[str], root: str, object_store: ObjectStore | None = None) -> str:
    """The fingerprint :func:`object_store_version` gives ``files`` (URIs) found under ``root``, recomputed now.

    :raises DataError: naming a file that is gone.
    """
    import pyarrow.fs as pafs

    entries = []
    for uri in files:
        filesystem, path = resolve(uri, object_store)
        info = filesystem.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise DataError(f"{printable(uri)} is gone since its data version was found")
        entries.append((uri[len(root.rstrip("/")) + 1 :], _object_sha256(filesystem, info, uri)))
    return _fingerprint(entries)


def delta_version(table_uri: str, storage_options: dict[str, str] | None = None) -> DataVersion | None:
    """
    Version of a Delta table: its log version and active files; ``None`` when there is no table there.

    :param table_uri: local path or URI (``s3://``, ``file://``...) of the table.
    :param storage_options: object-store options passed to ``deltalake`` (credentials, endpoint).
    :return: the version with ``details={"delta_version": n}`` and ``files`` the active data file URIs.
    """
    from mlops_ops.core.optional import import_optional

    deltalake = import_optional("deltalake", "delta")
    from deltalake.exceptions import TableNotFoundError

    local = "://" not in table_uri or table_uri.startswith("file://")
    if local and not os.path.isdir(os.path.join(_local_path(table_uri), "_delta_log")):
        return None
    try:
        table = deltalake.DeltaTable(table_uri, storage_options=storage_options)
        number = table.version()
        actions = table.get_add_actions(flatten=True)
        paths = [str(path) for path in actions.column("path").to_pylist()]
        sizes = [int(size or 0) for size in actions.column("size_bytes").to_pylist()]
        uris = table.file_uris()
    except TableNotFoundError:
        return None
    except Exception as err:
        raise DataError(f"Cannot read Delta table {table_uri!r}: {type(err).__name__}: {err}") from err
    return DataVersion(
        fingerprint=_fingerprint([("delta_version", str(number)), *(("file", path) for path in paths)]),
        source=table_uri,
        kind="delta",
        files=tuple(sorted(str(uri) for uri in uris)),
        size_bytes=sum(sizes),
        details={"delta_version": number},
    )


def dvc_version(dvc_file: str) -> DataVersion | None:
    """
    Version of data tracked by a DVC ``.dvc`` file, from the md5 of its outputs; ``None`` if it is missing.

    :param dvc_file: path of the ``.dvc`` file (``outs: [{md5, path, size, nfiles}]``).
    :return: the version, fingerprint ``"md5:<hash>"`` for one output (``sha256`` over all of them for
        several), ``files`` the tracked paths resolved next to the ``.dvc`` file.
    """
    import yaml

    path = _local_path(dvc_file)
    if not os.path.isfile(path):
        return None
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise DataError(f"Malformed DVC file {name!r} ({path}): not valid YAML: {err}") from err
    except OSError as err:
        raise DataError(f"Cannot read DVC file {name!r} ({path}): {err}") from err
    outs = document.get("outs") if isinstance(document, dict) else None
    if not isinstance(outs, list) or not outs:
        raise DataError(f"Malformed DVC file {name!r} ({path}): expected a non-empty 'outs' list")

    folder = os.path.dirname(os.path.abspath(path))
    tracked: list[tuple[str, str, str, int, int]] = []
    for index, out in enumerate(outs):
        if not isinstance(out, dict) or not out.get("path"):
            raise DataError(f"Malformed DVC file {name!r} ({path}): outs[{index}] has no 'path'")
        checksum = out.get("md5") or out.get("etag") or out.get("checksum")
        if not checksum:
            raise DataError(f"Malformed DVC file {name!r} ({path}): outs[{index}] has no 'md5'")
        try:
            size, nfiles = int(out.get("size") or 0), int(out.get("nfiles") or 1)
        except (TypeError, ValueError) as err:
            raise DataError(f"Malformed DVC file {name!r} ({path}): outs[{index}]: {err}") from err
        target = str(out["path"])
        resolved = target if "://" in target else os.path.normpath(os.path.join(folder, target))
        tracked.append((target, str(checksum), resolved, size, nfiles))
    if len(tracked) == 1:
        fingerprint = f"md5:{tracked[0][1]}"
    else:
        fingerprint = _fingerprint((target, checksum) for target, checksum, *_ in tracked)
    return DataVersion(
        fingerprint=fingerprint,
        source=dvc_file,
        kind="dvc",
        files=tuple(sorted(resolved for _, _, resolved, _, _ in tracked)),
        size_bytes=sum(size for *_, size, _ in tracked),
        details={"outs": len(tracked), "nfiles": sum(nfiles for *_, nfiles in tracked)},
    )

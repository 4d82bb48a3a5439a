"""Find every pickle stream in a model artifact, by content, and judge it against an allow-list; never unpickle.

Loading a pickle can call any importable function (``os.system``, ``builtins.eval``...), and a model version
can be registered by anyone who can write to the registry. So every file of an artifact is read as an
unpickler would read it, whatever it is called: plain files from their first byte (protocols 0-5: protocols 0
and 1 have no header), members of zip archives (skops files), compressed files (gzip, bz2, xz, zlib; joblib
writes these) and the data of NumPy ``.npy`` files holding Python objects. Each *global* a stream would import
(``GLOBAL``, ``INST``, ``STACK_GLOBAL``) is judged by :mod:`mlops_ops.core.pickle_allowlist`: anything not
allowed there is refused with its name. What cannot be analysed is refused too (a stream that cannot be read
to its end, a global whose name is computed, opcodes that need a custom unpickler, compressed data in a
format this scan does not open): what cannot be checked is not trusted.

The loader (:func:`mlops_ops.core.model_artifacts.load_trusted`) runs this scan at every load, and then
unpickles with an unpickler that refuses the same globals, so scan and load cannot disagree.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickletools  # nosec B403 - reads opcodes only; nothing here ever unpickles
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_ops.core.errors import ModelIntegrityError
from mlops_ops.core.pickle_allowlist import GlobalsAllowList, python2_name

#: Bytes of one member or decompressed stream past which a file is refused rather than read.
MAX_EXPANDED_BYTES = 2 << 30
#: Nested archives deeper than this are refused.
MAX_DEPTH = 3
#: Members of one archive past which it is refused.
MAX_MEMBERS = 10_000

_STRING_OPCODES = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)
_MEMO_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
#: Opcodes that hand control to a custom unpickler's hooks (persistent ids, the copyreg extension registry).
_UNSUPPORTED = frozenset({"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"})
_MARK = object()
_OPAQUE = object()


class UnsafeArtifactError(ModelIntegrityError):
    """A model artifact holds a pickle stream that imports something not allowed, or cannot be analysed."""


@dataclass(frozen=True)
class Finding:
    """One reason an artifact is refused.

    :param file: where, relative to the artifact folder (``archive.skops!member`` inside an archive).
    :param severity: ``REFUSED`` (a global not on the allow-list) or ``UNSCANNABLE`` (could not be analysed).
    :param what: the global (``posix.system``) and why, or why the file could not be analysed.
    """

    file: str
    severity: str
    what: str

    def line(self) -> str:
        """One line of a report."""
        return f"{self.file}: {self.severity}: {self.what}"


@dataclass(frozen=True)
class ScanReport:
    """The verdict on one artifact folder.

    :param files: every file that was read, relative to the folder.
    :param scanned: where a pickle stream was found and judged (files, archive members).
    :param findings: every reason to refuse; empty when nothing in the artifact would import what is not allowed.
    :param globals_seen: every global the pickle streams import, allowed ones included (``module.name``).
    """

    files: tuple[str, ...]
    scanned: tuple[str, ...]
    findings: tuple[Finding, ...]
    globals_seen: tuple[str, ...] = ()

    @property
    def safe(self) -> bool:
        """Whether nothing was found."""
        return not self.findings

    def describe(self) -> str:
        """A report naming each refused file and what was found in it."""
        head = f"artifact scan: {len(self.files)} file(s) read, {len(self.scanned)} pickle stream(s) judged"
        if self.safe:
            where = f" ({', '.join(self.scanned)})" if self.scanned else ""
            return f"{head}{where}, {len(self.globals_seen)} allowed global(s): clean"
        return "\n".join(
            [f"{head}, {len(self.findings)} finding(s):"] + [f"  {f.line()}" for f in self.findings]
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form, for XCom and logs."""
        return {
            "safe": self.safe,
            "files": list(self.files),
            "scanned": list(self.scanned),
            "globals": list(self.globals_seen),
            "findings": [finding.__dict__ for finding in self.findings],
        }


@dataclass
class StreamVerdict:
    """What one walk over a byte string found.

    :param is_pickle: whether the bytes are a pickle stream (a protocol header, a complete stream, or a global).
    :param globals_seen: ``(module, name)`` of every global, as the unpickler would import it.
    :param problems: why the stream cannot be analysed, if it cannot.
    """

    is_pickle: bool = False
    globals_seen: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _is_module_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def walk_pickle(data: bytes, start: int = 0) -> tuple[StreamVerdict, int]:
    """Read one pickle stream from ``data[start:]`` opcode by opcode, as an unpickler would, running nothing.

    A small model of the unpickler's stack tracks the strings that ``STACK_GLOBAL`` takes its module and name
    from (literals and memo entries). Where a real unpickler would stop (an invalid opcode, a stack underflow,
    a module name that cannot be imported) the walk stops too: nothing after that point would run.

    :return: the verdict and the offset after the stream's ``STOP`` (or where the walk stopped).
    """
    verdict = StreamVerdict()
    stack: list[object] = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    protocol = 0
    stream = io.BytesIO(data)
    stream.seek(start)
    position = start
    argument: Any
    try:
        for opcode, argument, offset in pickletools.genops(stream):
            # genops always knows the offset of a BytesIO; the fallback only satisfies its type.
            position = start if offset is None else offset
            name = opcode.name
            if name == "PROTO":
                protocol = int(argument)
                verdict.is_pickle = True
                continue
            if name == "STOP":
                verdict.is_pickle = verdict.is_pickle or bool(stack)
                return verdict, stream.tell()
            if name in _UNSUPPORTED:
                if verdict.is_pickle:
                    verdict.problems.append(f"opcode {name} needs a custom unpickler")
                return verdict, stream.tell()
            if name in ("GLOBAL", "INST"):
                module, _, attribute = str(argument).partition(" ")
                if protocol < 3:
                    module, attribute = python2_name(module, attribute)
                if not _is_module_name(module):
                    return verdict, position  # the unpickler's import fails here: nothing further runs
                verdict.is_pickle = True
                verdict.globals_seen.append((module, attribute))
                if name == "INST":
                    _pop_mark(stack, marks)
                stack.append(_OPAQUE)
                continue
            if name == "STACK_GLOBAL":
                if len(stack) < 2:
                    return verdict, position
                popped_attribute, popped_module = stack.pop(), stack.pop()
                if not isinstance(popped_module, str) or not isinstance(popped_attribute, str):
                    verdict.is_pickle = True
                    verdict.problems.append("a STACK_GLOBAL takes its module or name from a computed value")
                    return verdict, position
                module, attribute = popped_module, popped_attribute
                if protocol < 3:
                    module, attribute = python2_name(module, attribute)
                if not _is_module_name(module):
                    return verdict, position
                verdict.is_pickle = True
                verdict.globals_seen.append((module, attribute))
                stack.append(_OPAQUE)
                continue
            if name == "MARK":
                marks.append(len(stack))
                continue
            if name in _STRING_OPCODES:
                stack.append(argument if isinstance(argument, str) else _OPAQUE)
                continue
            if name in _MEMO_GETS:
                if argument not in memo:
                    return verdict, position
                stack.append(memo[argument])
                continue
            if name in _MEMO_PUTS or name == "MEMOIZE":
                if not stack:
                    return verdict, position
                memo[len(memo) if name == "MEMOIZE" else argument] = stack[-1]
                continue
            if name == "DUP":
                if not stack:
                    return verdict, position
                stack.append(stack[-1])
                continue
            if name == "FRAME":
                continue
            # Every other opcode: pop what it takes (down to the mark, then the objects below the mark it
            # works on, e.g. the list of APPENDS), push what it makes.
            before = opcode.stack_before
            if pickletools.markobject in before:
                _pop_mark(stack, marks)
                taken = before.index(pickletools.markobject)
            else:
                taken = len(before)
            if len(stack) < taken:
                return verdict, position
            del stack[len(stack) - taken :]
            stack.extend(_OPAQUE for _ in opcode.stack_after)
    except (ValueError, EOFError, UnicodeDecodeError, OverflowError, IndexError) as err:
        if verdict.is_pickle:
            verdict.problems.append(f"the pickle stream cannot be read to its end ({type(err).__name__})")
        return verdict, position
    if verdict.is_pickle:
        verdict.problems.append("the pickle stream ends without STOP")
    return verdict, len(data)


def _pop_mark(stack: list[object], marks: list[int]) -> None:
    if not marks:
        raise IndexError("no mark")
    del stack[marks.pop() :]


def _decompressed(data: bytes) -> tuple[str, bytes] | None:
    """``(format, bytes)`` when ``data`` is gzip, bz2, xz/lzma or zlib data; ``None`` otherwise.

    :raises ValueError: when it is one of those but expands past :data:`MAX_EXPANDED_BYTES`.
    """
    openers = (
        ("gzip", b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=io.BytesIO(raw))),
        ("bz2", b"BZh", lambda raw: bz2.BZ2File(io.BytesIO(raw))),
        ("xz", b"\xfd7zXZ\x00", lambda raw: lzma.LZMAFile(io.BytesIO(raw))),
        ("lzma", b"\x5d\x00\x00", lambda raw: lzma.LZMAFile(io.BytesIO(raw), format=lzma.FORMAT_ALONE)),
    )
    for name, magic, opener in openers:
        if data.startswith(magic):
            try:
                with opener(data) as handle:
                    expanded = handle.read(MAX_EXPANDED_BYTES + 1)
            except (OSError, EOFError, lzma.LZMAError):
                return None
            if len(expanded) > MAX_EXPANDED_BYTES:
                raise ValueError(f"{name} data expands past {MAX_EXPANDED_BYTES} bytes")
            return name, expanded
    if len(data) >= 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        inflater = zlib.decompressobj()
        try:
            expanded = inflater.decompress(data, MAX_EXPANDED_BYTES + 1)
        except zlib.error:
            return None
        if len(expanded) > MAX_EXPANDED_BYTES:
            raise ValueError(f"zlib data expands past {MAX_EXPANDED_BYTES} bytes")
        return "zlib", expanded
    return None


#: Compressed formats that are recognised but not opened here (joblib can write lz4): refused, not skipped.
_UNOPENED_MAGIC = {b"\x04\x22\x4d\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd"}


def _npy_object_data(data: bytes) -> int | None:
    """Offset of the pickled data of a NumPy ``.npy`` file holding Python objects; ``None`` for any other."""
    import ast

    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        return None
    major = data[6]
    if major == 1:
        length, offset = int.from_bytes(data[8:10], "little"), 10
    else:
        length, offset = int.from_bytes(data[8:12], "little"), 12
    try:
        header = ast.literal_eval(data[offset : offset + length].decode("latin1"))
    except (ValueError, SyntaxError):
        return offset + length  # an unreadable header: judge what follows as a stream
    descr = header.get("descr") if isinstance(header, dict) else None
    return offset + length if "O" in repr(descr) else None


class _Scan:
    def __init__(self, allow_list: GlobalsAllowList) -> None:
        self.allow_list = allow_list
        self.scanned: list[str] = []
        self.findings: list[Finding] = []
        self.globals_seen: set[str] = set()

    def bytes_(self, data: bytes, where: str, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            self.findings.append(Finding(where, "UNSCANNABLE", f"nested deeper than {MAX_DEPTH} archives"))
            return
        if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
            self.archive(data, where, depth)
            return
        for magic, name in _UNOPENED_MAGIC.items():
            if data.startswith(magic):
                self.findings.append(
                    Finding(where, "UNSCANNABLE", f"{name}-compressed data is not inspected")
                )
                return
        try:
            expanded = _decompressed(data)
        except ValueError as err:
            self.findings.append(Finding(where, "UNSCANNABLE", str(err)))
            return
        if expanded is not None:
            self.bytes_(expanded[1], f"{where}({expanded[0]})", depth + 1)
            return
        start = _npy_object_data(data)
        self.streams(data, where, 0 if start is None else start, object_array=start is not None)

    def streams(self, data: bytes, where: str, start: int, object_array: bool = False) -> None:
        """Judge the pickle stream at ``start`` and any that follow it back to back (``pickle.dump`` twice)."""
        offset, count = start, 0
        while offset < len(data):
            verdict, end = walk_pickle(data, offset)
            if not verdict.is_pickle and not (object_array and count == 0):
                return
            count += 1
            label = where if count == 1 else f"{where}@{offset}"
            self.scanned.append(label)
            for problem in verdict.problems:
                self.findings.append(Finding(label, "UNSCANNABLE", problem))
            for module, attribute in verdict.globals_seen:
                qualified = f"{module}.{attribute}"
                reason = self.allow_list.refusal(module, attribute)
                if reason:
                    self.findings.append(Finding(label, "REFUSED", f"{qualified}: {reason}"))
                else:
                    self.globals_seen.add(qualified)
            if verdict.problems or end <= offset:
                return
            offset = end

    def archive(self, data: bytes, where: str, depth: int) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = archive.infolist()
                if len(members) > MAX_MEMBERS:
                    self.findings.append(Finding(where, "UNSCANNABLE", f"more than {MAX_MEMBERS} members"))
                    return
                for member in members:
                    if member.is_dir():
                        continue
                    if member.file_size > MAX_EXPANDED_BYTES:
                        self.findings.append(
                            Finding(
                                f"{where}!{member.filename}", "UNSCANNABLE", "member too large to inspect"
                            )
                        )
                        continue
                    self.bytes_(archive.read(member), f"{where}!{member.filename}", depth + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as err:
            self.findings.append(
                Finding(where, "UNSCANNABLE", f"a damaged zip archive ({type(err).__name__})")
            )


def artifact_files(folder: str | Path) -> Iterator[tuple[str, Path]]:
    """Every entry under ``folder`` as ``(relative name, path)``, sorted, directories left out."""
    root = Path(folder)
    for path in sorted(root.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        yield path.relative_to(root).as_posix(), path


def scan_folder(folder: str | Path, allow_list: GlobalsAllowList | None = None) -> ScanReport:
    """Judge every pickle stream in every file under ``folder``; never unpickles anything.

    Symbolic links and special files are refused (an artifact is plain files); so is anything that cannot be
    analysed.

    :param allow_list: the globals a stream may import; default :class:`GlobalsAllowList` with no extras.
    :return: the report; ``report.safe`` is False for any finding.
    """
    scan = _Scan(allow_list or GlobalsAllowList())
    files = []
    for name, path in artifact_files(folder):
        files.append(name)
        if path.is_symlink() or not path.is_file():
            scan.findings.append(Finding(name, "UNSCANNABLE", "not a plain file (a link or a special file)"))
            continue
        scan.bytes_(path.read_bytes(), name)
    return ScanReport(
        files=tuple(files),
        scanned=tuple(scan.scanned),
        findings=tuple(sorted(scan.findings, key=lambda f: (f.file, f.what))),
        globals_seen=tuple(sorted(scan.globals_seen)),
    )


def require_safe(folder: str | Path, subject: str, allow_list: GlobalsAllowList | None = None) -> ScanReport:
    """Scan ``folder`` and raise unless it is safe.

    :param subject: what the folder is, for the message (``"churn v3"``).
    :return: the clean report.
    :raises UnsafeArtifactError: with the report, naming each file and what was found.
    """
    report = scan_folder(folder, allow_list)
    if not report.safe:
        raise UnsafeArtifactError(
            f"{subject} is refused: its artifact is unsafe to load.\n{report.describe()}"
        )
    return report

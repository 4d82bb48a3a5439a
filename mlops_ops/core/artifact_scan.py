"""Scan a model's artifact folder for pickle data that would run code when loaded, without loading it.

Pickle, cloudpickle and joblib files can call any importable function on load (``os.system``, ``eval``...).
TrainOperator stores scikit-learn models with skops (a format that loads only trusted types); other models
are cloudpickled, and a model version can be registered from anywhere. So before a version may become
``champion`` its pickle-based files are scanned with `modelscan <https://github.com/protectai/modelscan>`_,
which reads the opcodes and reports dangerous imports without executing anything.

A file counts as pickle-based by its name (``.pkl``, ``.joblib``...) or by its first bytes (a pickle protocol
header), so renaming a pickle does not hide it. A file that cannot be analysed is refused like an unsafe one:
what cannot be checked is not trusted.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Names under which pickle data is usually stored (modelscan's pickle and PyTorch scanners read these).
PICKLE_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt"}
)
#: The suffixes modelscan scans as they are; any other pickle-based file is scanned under a ``.pkl`` name.
_MODELSCAN_SUFFIXES = frozenset(
    {".pkl", ".pickle", ".joblib", ".dill", ".dat", ".data", ".bin", ".pt", ".pth"}
)


class UnsafeArtifactError(RuntimeError):
    """A model artifact holds pickle data that would run code on load, or that could not be analysed."""


@dataclass(frozen=True)
class Finding:
    """One reason a file is refused.

    :param file: the file, relative to the scanned folder.
    :param severity: modelscan's severity (``CRITICAL``, ``HIGH``, ``MEDIUM``, ``LOW``), or ``UNSCANNABLE``.
    :param what: what was found (``"posix.system"``) or why the file could not be analysed.
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

    :param scanned: the pickle-based files that were scanned, relative to the folder.
    :param findings: every reason to refuse; empty when the folder is safe to load.
    """

    scanned: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def safe(self) -> bool:
        """Whether nothing was found."""
        return not self.findings

    def describe(self) -> str:
        """A report naming each refused file and what was found in it."""
        if self.safe:
            scanned = ", ".join(self.scanned) if self.scanned else "no pickle-based file"
            return f"artifact scan: clean ({scanned})"
        lines = [
            f"artifact scan: {len(self.findings)} finding(s) in {len(self.scanned)} pickle-based file(s)"
        ]
        lines += [f"  {finding.line()}" for finding in self.findings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form, for XCom and logs."""
        return {
            "safe": self.safe,
            "scanned": list(self.scanned),
            "findings": [finding.__dict__ for finding in self.findings],
        }


def looks_like_pickle(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts like pickle data of protocol 2 or later.

    Protocols 0 and 1 have no header; every pickler in use today (pickle, cloudpickle, joblib) writes 2+.
    """
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def pickle_files(folder: str | Path) -> list[str]:
    """The pickle-based files under ``folder`` (by name or by header), relative, sorted."""
    root = Path(folder)
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() in PICKLE_SUFFIXES:
            found.append(path.relative_to(root).as_posix())
            continue
        with path.open("rb") as handle:
            if looks_like_pickle(handle.read(2)):
                found.append(path.relative_to(root).as_posix())
    return found


def scan_folder(folder: str | Path) -> ScanReport:
    """Scan every pickle-based file under ``folder`` with modelscan; never unpickles anything.

    :return: the report; ``report.safe`` is False for any issue modelscan reports (any severity), any file it
        could not parse, and any file it skipped.
    """
    from modelscan.modelscan import ModelScan

    root = Path(folder)
    files = pickle_files(root)
    if not files:
        return ScanReport(scanned=(), findings=())
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="mlops-scan-") as staging:
        # Copies under names modelscan recognises: a pickle saved as "model" or "weights.cloudpickle" would
        # otherwise be skipped as "not a model file" and slip through.
        staged: dict[str, str] = {}
        for index, name in enumerate(files):
            suffix = Path(name).suffix.lower()
            staged_name = f"{index:04d}{suffix if suffix in _MODELSCAN_SUFFIXES else '.pkl'}"
            shutil.copyfile(root / name, Path(staging, staged_name))
            staged[staged_name] = name
        results = ModelScan().scan(staging)

        def original(source: object) -> str:
            return staged.get(Path(str(source)).name, str(source))

        for issue in results.get("issues", []):
            what = issue.get("description") or f"{issue.get('module')}.{issue.get('operator')}"
            findings.append(Finding(original(issue.get("source")), str(issue.get("severity")), what))
        for error in results.get("errors", []):
            findings.append(
                Finding(
                    original(error.get("source")),
                    "UNSCANNABLE",
                    f"could not be analysed: {error.get('description') or error}",
                )
            )
        scanned = set(results.get("summary", {}).get("scanned", {}).get("scanned_files", []))
        for staged_name, name in staged.items():
            if staged_name not in scanned and not any(f.file == name for f in findings):
                findings.append(Finding(name, "UNSCANNABLE", "modelscan did not scan it (unknown format)"))
    return ScanReport(scanned=tuple(files), findings=tuple(sorted(findings, key=lambda f: (f.file, f.what))))


def require_safe(folder: str | Path, subject: str) -> ScanReport:
    """Scan ``folder`` and raise unless it is safe.

    :param subject: what the folder is, for the message (``"flight_delay v3"``).
    :return: the clean report.
    :raises UnsafeArtifactError: with the report, naming each file and what was found.
    """
    report = scan_folder(folder)
    if not report.safe:
        raise UnsafeArtifactError(
            f"{subject} is refused: its artifact is unsafe to load.\n{report.describe()}"
        )
    return report

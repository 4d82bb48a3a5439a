"""Validating the files of one data version together: each file against the suite, then keys across files.

What ``DataValidationOperator`` does with a data version and ``mlops-ops ci check-data`` with a sample: one
function, so a sample that passes in CI passes the DAG's validation the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_ops.core.errors import DataError
from mlops_ops.core.json_values import to_json_safe
from mlops_ops.core.storage import ObjectStore, OutsideRoot
from mlops_ops.core.validation.across_files import keys_repeated_across_files
from mlops_ops.core.validation.checks import validate_csv_file, validate_file
from mlops_ops.core.validation.report import ValidationReport

#: Pseudo expectation reported for a file that cannot be read (as Parquet, or as CSV where CSV is accepted).
UNREADABLE = "file_is_readable_parquet"
#: Pseudo expectation reported for a landed file that is a symbolic link leading out of the landing root.
OUTSIDE_LANDING_ROOT = "file_is_inside_landing_root"
#: Pseudo expectation reported for a file holding keys an earlier file of the data version already holds.
REPEATED_ACROSS_FILES = "expect_compound_columns_to_be_unique_across_files"

#: Called after each file with its report, or the error that refused it, and the seconds it took.
FileCallback = Callable[[str, "ValidationReport | DataError", float], None]


@dataclass(frozen=True)
class FileFailure:
    """One failed expectation of one file (or a file refused unread).

    :param file: the file, as given.
    :param expectation: the expectation type, or :data:`UNREADABLE`, :data:`OUTSIDE_LANDING_ROOT`,
        :data:`REPEATED_ACROSS_FILES`.
    :param column: the column (compound keys joined by ``,``), ``None`` for the table or the file.
    :param observed: what was observed, JSON-safe (the error's text for a refused file).
    :param examples: a few offending values (bounded by the report, see
        :data:`~mlops_ops.core.validation.report.MAX_EXAMPLES`).
    """

    file: str
    expectation: str
    column: str | None
    observed: Any
    examples: list[Any] = field(default_factory=list)

    @property
    def unusable_file(self) -> bool:
        """Whether the file itself was refused (unreadable, or a link out of the landing root)."""
        return self.expectation in (UNREADABLE, OUTSIDE_LANDING_ROOT)

    def to_dict(self) -> dict[str, Any]:
        """``{"file", "expectation", "column", "observed", "examples"}``, JSON-safe."""
        return {
            "file": self.file,
            "expectation": self.expectation,
            "column": self.column,
            "observed": to_json_safe(self.observed),
            "examples": to_json_safe(self.examples),
        }


@dataclass(frozen=True)
class DataFilesReport:
    """What the suite found in a set of files.

    :param suite: the suite name.
    :param files: the files, in the order validated.
    :param rows: the rows of the files that could be read.
    :param failures: every failed expectation, per file, then the keys repeated across files.
    :param problems: the text of each failure block (a refused file, a file's failed expectations with
        examples, a file's repeated keys), file names escaped.
    """

    suite: str
    files: tuple[str, ...]
    rows: int
    failures: tuple[FileFailure, ...]
    problems: tuple[str, ...]

    @property
    def success(self) -> bool:
        """Whether every file was read and held every expectation."""
        return not self.failures

    @property
    def failed_files(self) -> int:
        """How many files failed something."""
        return len({failure.file for failure in self.failures})

    def failure_message(self, subject: str) -> str:
        """``"<subject> failed suite 'name' in k of n files:"`` and every problem, one block per line."""
        return (
            f"{subject} failed suite {self.suite!r} in {self.failed_files} of {len(self.files)} files:\n"
            + "\n".join(self.problems)
        )


def validate_data_files(
    files: Iterable[str],
    suite: Mapping[str, Any],
    *,
    object_store: ObjectStore | None = None,
    root: str | None = None,
    max_string_length: int | None = None,
    unique_key: Sequence[str] | None = None,
    csv: bool = False,
    on_file: FileCallback | None = None,
) -> DataFilesReport:
    """Validate each file against ``suite`` (one file in memory at a time), then, with ``unique_key``, the
    files together: a key an earlier file already holds fails the later file.

    A file that cannot be read is a failure of that file (:data:`UNREADABLE`, or :data:`OUTSIDE_LANDING_ROOT`
    for a link out of ``root``); the others are still validated, so one run reports everything.

    :param files: paths or URIs of Parquet files (and, with ``csv``, CSV files), earliest first.
    :param suite: a suite from :func:`~mlops_ops.core.validation.load_suite`, less any excluded columns.
    :param object_store: how to reach object-store URIs, see :func:`~mlops_ops.core.validation.read_table`.
    :param root: the landing root of local files; a file that is a link leading out of it is refused unread.
    :param max_string_length: see :func:`~mlops_ops.core.validation.validate_frame`.
    :param unique_key: columns whose values together identify a row across all files; ``None``: no check
        across files.
    :param csv: read files named ``*.csv`` as CSV typed by the suite
        (:func:`~mlops_ops.core.validation.read_csv_table`); the DAGs read Parquet only.
    :param on_file: called after each file with its report or the error that refused it (for progress logs).
    :return: the report of all the files.
    :raises DataError: if the suite or ``max_string_length`` is malformed. Other I/O errors (a network
        failure) propagate.
    """
    files = [str(uri) for uri in files]
    failures: list[FileFailure] = []
    problems: list[str] = []
    readable: list[str] = []
    rows = 0
    for uri in files:
        started = time.monotonic()
        validate = validate_csv_file if csv and uri.lower().endswith(".csv") else validate_file
        try:
            report = validate(
                uri, suite, object_store=object_store, root=root, max_string_length=max_string_length
            )
        except DataError as err:
            if on_file is not None:
                on_file(uri, err, time.monotonic() - started)
            expectation = OUTSIDE_LANDING_ROOT if isinstance(err, OutsideRoot) else UNREADABLE
            failures.append(FileFailure(uri, expectation, None, str(err)))
            problems.append(str(err))  # DataError already names the file, escaped
            continue
        if on_file is not None:
            on_file(uri, report, time.monotonic() - started)
        readable.append(uri)
        rows += report.rows
        failures += [
            FileFailure(
                uri, outcome.expectation, outcome.column, outcome.observed, outcome.unexpected_examples
            )
            for outcome in report.failures
        ]
        if not report.success:
            problems.append(report.summary())
    for repeated in (
        keys_repeated_across_files(readable, unique_key, object_store, csv=csv) if unique_key else ()
    ):
        failures.append(
            FileFailure(
                repeated.file,
                REPEATED_ACROSS_FILES,
                ",".join(repeated.key),
                {"repeated_keys": repeated.keys, "first_seen_in": list(repeated.first_seen_in)},
                repeated.examples,
            )
        )
        problems.append(repeated.describe())
    return DataFilesReport(
        suite=str(suite["name"]),
        files=tuple(files),
        rows=rows,
        failures=tuple(failures),
        problems=tuple(problems),
    )

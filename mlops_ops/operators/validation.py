"""Validate the files of a data version against a Great Expectations suite (``mlops_ops.core.validation``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core.contracts import as_mapping
from mlops_ops.core.errors import DataError

# The pseudo expectations of a refused file or of keys repeated across files, importable from here as before.
from mlops_ops.core.validation.files import (
    OUTSIDE_LANDING_ROOT as OUTSIDE_LANDING_ROOT,
)
from mlops_ops.core.validation.files import (
    REPEATED_ACROSS_FILES as REPEATED_ACROSS_FILES,
)
from mlops_ops.core.validation.files import (
    UNREADABLE as UNREADABLE,
)
from mlops_ops.operators.base import ObjectStorageBaseOperator
from mlops_ops.operators.inputs import dag_folder_of, project_path

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_ops.core.validation import ValidationReport


class DataValidationFailed(DataError, AirflowFailException):
    """Landed data broke its expectation suite; retrying the same data will not help.

    :param message: lists each failing expectation with its file, column and examples.
    :param summary: the JSON-safe summary that was pushed to XCom.
    """

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class DataValidationOperator(ObjectStorageBaseOperator, BaseOperator):
    """Validate every Parquet file of a data version against a JSON expectation suite.

    Files are read one at a time (local paths, or ``s3://`` URIs through the Amazon provider's connection).
    Each file is checked for structure first (missing columns, wrong dtypes, zero rows), then with Great
    Expectations. A file that cannot be read as Parquet is a failure of that file; the others are still
    validated so one run reports everything. With ``unique_key``, the files are then checked together: a key
    that an earlier file already holds (a row landed twice, which one file's suite cannot see) fails the later
    file.

    Types are judged on each file's Arrow schema as well as on pandas dtypes (an ``object`` column holding bytes,
    dicts or lists is refused), text values are bounded in length, and when the data version names its landing
    root (``details.root``, as local versions from the data sensor do) a file that is a symbolic link leading
    out of it is refused unread. File names are escaped in logs and messages. See
    :mod:`mlops_ops.core.validation`.

    :param data_version: the data version to validate: a dict ``{"fingerprint": ..., "files": [...], ...}``
        as pushed by the data sensor, or its JSON string, or its Python repr (what
        ``"{{ ti.xcom_pull(task_ids='wait_for_data') }}"`` renders to without
        ``render_template_as_native_obj=True``). Templated.
    :param suite: the expectation suite: a path to its JSON file, or the suite as a dict. A relative path is
        looked up first under the parent of the DAG file's folder (the project root in the Astro layout, so
        ``include/flights/expectations/flights_raw.json`` works from ``dags/``), then under the worker's
        current directory. Templated.
    :param storage_conn_id: the connection of ``s3://``, ``gs://`` or ``abfs://`` data (see
        :class:`~mlops_ops.operators.base.ObjectStorageBaseOperator`).
    :param fail_on_error: raise :class:`DataValidationFailed` when a file fails; if false, only log a warning.
    :param allow_empty: accept a data version that lists no files (an interval with no input, in batch
        scoring) as valid with nothing to check, instead of failing.
    :param exclude_columns: columns this task does not judge: their dtype entries and the expectations about
        them alone are dropped from the suite (batch scoring's input, whose labels arrive later).
    :param unique_key: columns whose values together identify a row across all files of the data version;
        ``None``: no check across files.
    :param max_string_length: the longest text value accepted, in characters, in columns the suite's
        ``max_string_length_per_column`` does not name; ``None``: the suite's ``max_string_length``, else
        1,024.
    :return: (XCom ``return_value``) ``{"suite": name, "data_version": fingerprint, "success": bool,
        "files": n, "rows": total, "failed": [{"file", "expectation", "column", "observed", "examples"}]}``,
        one ``failed`` entry per failed expectation per file.
        On failure the same summary is pushed under ``return_value`` before raising, so downstream tasks and
        callbacks can read it.
    """

    template_fields: Sequence[str] = ("data_version", "suite")
    ui_color = "#e8f4e4"

    def __init__(
        self,
        *,
        data_version: dict[str, Any] | str,
        suite: str | dict[str, Any],
        fail_on_error: bool = True,
        allow_empty: bool = False,
        exclude_columns: Sequence[str] = (),
        unique_key: Sequence[str] | None = None,
        max_string_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_string_length is not None and (
            not isinstance(max_string_length, int)
            or isinstance(max_string_length, bool)
            or max_string_length < 1
        ):
            raise ValueError(f"max_string_length must be a positive integer, got {max_string_length!r}")
        self.data_version = data_version
        self.suite = suite
        self.fail_on_error = fail_on_error
        self.allow_empty = allow_empty
        self.exclude_columns = exclude_columns
        self.unique_key = unique_key
        self.max_string_length = max_string_length

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.json_values import to_json_safe
        from mlops_ops.core.validation import validate_data_files, without_columns

        version = parse_data_version(self.data_version, allow_empty=self.allow_empty)
        suite = self._load_suite(context)
        if self.exclude_columns:
            suite = without_columns(suite, self.exclude_columns)
        if not version["files"]:
            self.log.info("Data version %s lists no files: nothing to validate", version.get("fingerprint"))
        files = [str(f) for f in version["files"]]
        # Checked again here, not only by the sensor: a file can be swapped for a link after it was listed.
        root = (version.get("details") or {}).get("root")
        report = validate_data_files(
            files,
            suite,
            object_store=self.object_store(files),
            root=str(root) if root else None,
            max_string_length=self.max_string_length,
            unique_key=self.unique_key,
            on_file=self._log_file,
        )
        summary = to_json_safe(
            {
                "suite": suite["name"],
                "data_version": version.get("fingerprint"),
                "success": report.success,
                "files": len(files),
                "rows": report.rows,
                "failed": [failure.to_dict() for failure in report.failures],
            }
        )
        if not report.success:
            message = report.failure_message(f"Data version {version.get('fingerprint')}")
            if self.fail_on_error:
                # Evidence first: the summary must be readable even though the task fails.
                context["ti"].xcom_push(key="return_value", value=summary)
                raise DataValidationFailed(message, summary)
            self.log.warning("%s", message)
        return summary

    def _log_file(self, uri: str, outcome: ValidationReport | DataError, seconds: float) -> None:
        from mlops_ops.core.printable import printable

        if isinstance(outcome, DataError):
            # The message escapes the name already; escaping again changes nothing.
            self.log.error("%s: refused (%s)", printable(uri), printable(outcome))
            return
        self.log.info(
            "%s: %s, %d rows, %d/%d expectations held (%.2f s)",
            printable(uri),
            "passed" if outcome.success else "FAILED",
            outcome.rows,
            len(outcome.outcomes) - len(outcome.failures),
            len(outcome.outcomes),
            seconds,
        )

    def _load_suite(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.validation import check_suite, load_suite

        try:
            if isinstance(self.suite, Mapping):
                return check_suite(dict(self.suite), source=f"{self.task_id}.suite")
            return load_suite(project_path(str(self.suite), dag_folder_of(context)))
        except (DataError, FileNotFoundError) as err:
            raise AirflowFailException(f"Invalid expectation suite: {err}") from err


def parse_data_version(value: Any, allow_empty: bool = False) -> dict[str, Any]:
    """Turn a rendered ``data_version`` into a dict with a ``files`` list, non-empty unless ``allow_empty``.

    :param value: a mapping, a JSON string, or a Python-literal string (a dict rendered by Jinja).
    :param allow_empty: accept an empty ``files`` list.
    :return: the data version as a dict.
    :raises AirflowFailException: if it is empty, unparsable, or lists no files.
    """
    try:
        parsed = as_mapping(value, "data_version")
    except ValueError as err:
        raise AirflowFailException(f"{err} (did the upstream task push a data version?)") from err
    files = parsed.get("files")
    if not isinstance(files, list | tuple) or not (files or allow_empty):
        raise AirflowFailException(f"data_version {parsed.get('fingerprint')!r} lists no files to validate")
    return dict(parsed)

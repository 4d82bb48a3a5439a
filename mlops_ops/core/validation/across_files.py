"""Checks across the files of one data version (a key repeated in two files)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_ops.core.json_values import to_json_safe
from mlops_ops.core.printable import printable
from mlops_ops.core.validation.report import MAX_EXAMPLES

if TYPE_CHECKING:
    import pandas as pd

    from mlops_ops.core.storage import ObjectStore


@dataclass(frozen=True)
class RepeatedKeys:
    """Keys of one file that an earlier file of the same data version already holds (a row landed twice).

    :param file: the later file.
    :param key: the key columns.
    :param keys: how many of its distinct keys an earlier file holds.
    :param first_seen_in: the earlier files holding them.
    :param examples: up to :data:`MAX_EXAMPLES` of those keys, as ``{"value": {column: value}}``.
    """

    file: str
    key: tuple[str, ...]
    keys: int
    first_seen_in: tuple[str, ...]
    examples: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        """One line naming the file, the key, how many repeat and where they were first seen."""
        examples = ", ".join(printable(repr(example["value"]), limit=200) for example in self.examples)
        return (
            f"{printable(self.file)}: {self.keys} key(s) ({', '.join(self.key)}) already in "
            f"{', '.join(printable(file) for file in self.first_seen_in)}; examples: {examples}"
        )


def keys_repeated_across_files(
    files: Iterable[str],
    key: Iterable[str],
    object_store: ObjectStore | None = None,
    csv: bool = False,
) -> list[RepeatedKeys]:
    """The keys found in more than one file, reported against every file but the first (in ``files`` order)
    holding each.

    Only the key columns are read. Rows with a null in the key identify nothing and are ignored; values are
    compared as text, so a key stored as a number in one file and as text in another still matches. A key
    repeated inside one file is the suite's business (``expect_compound_columns_to_be_unique``), and a file that
    lacks a key column (or cannot be read) is left to the suite's own checks.

    :param files: paths or URIs of Parquet files, earliest first.
    :param key: the columns whose values together identify a row.
    :param object_store: how to reach object-store URIs, see :func:`read_table`.
    :param csv: read files named ``*.csv`` as CSV (a sample in CI); otherwise every file is read as Parquet.
    :return: one entry per file holding keys an earlier file holds, in ``files`` order.
    """
    import pandas as pd

    files, key = list(files), list(key)
    frames = []
    for position, uri in enumerate(files):
        frame = _key_columns(uri, key, object_store, csv and uri.lower().endswith(".csv"))
        if frame is None:
            continue
        frame = frame.dropna().astype(str).drop_duplicates()
        frames.append(frame.assign(_file=position))
    if len(frames) < 2:
        return []
    keys = pd.concat(frames, ignore_index=True)
    first = keys.groupby(key, sort=False)["_file"].transform("min")
    repeated = keys[keys["_file"] != first].assign(_first=first[keys["_file"] != first])
    found = []
    for position, rows in repeated.groupby("_file", sort=True):
        examples = [
            {"value": dict(zip(key, values, strict=True))} for values in rows[key].head(MAX_EXAMPLES).values
        ]
        found.append(
            RepeatedKeys(
                file=files[int(position)],
                key=tuple(key),
                keys=len(rows),
                first_seen_in=tuple(files[int(index)] for index in sorted(rows["_first"].unique())),
                examples=to_json_safe(examples),
            )
        )
    return found


def _key_columns(
    uri: str, key: list[str], object_store: ObjectStore | None, csv: bool
) -> pd.DataFrame | None:
    """The key columns of one file; ``None`` when it lacks one or cannot be read (the suite reports that)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.core import storage

    filesystem, path = storage.resolve(uri, object_store)
    try:
        if csv:
            with filesystem.open_input_file(path) as handle:
                header = pd.read_csv(handle, nrows=0).columns
            if any(column not in header for column in key):
                return None
            with filesystem.open_input_file(path) as handle:
                # As text: "007" and 7 are different keys in a CSV, as they are to the suite's text columns.
                return pd.read_csv(handle, usecols=key, dtype=str)
        schema = pq.read_schema(path, filesystem=filesystem)
        if any(schema.get_field_index(column) < 0 for column in key):
            return None
        return pq.read_table(path, columns=key, filesystem=filesystem).to_pandas()
    # Other OSErrors: let Airflow retry.
    except (FileNotFoundError, ValueError, pa.ArrowInvalid):
        return None

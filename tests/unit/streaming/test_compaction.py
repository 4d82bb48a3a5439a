"""Compaction's partitions for each task, from output records as the stream scorer writes them (an in-memory
source: the Redis reads are in tests/integration/test_stream_compaction.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlops_ops.core.errors import DataError
from mlops_ops.core.scoring import Interval, ScoredTask, read_file_metadata
from mlops_ops.streaming.compaction import compact_interval

DAY = Interval(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
START_MS = int(DAY.start.timestamp() * 1000)


class Records:
    """Output records, written (their stream time) in order from the day's start."""

    def __init__(self) -> None:
        self.written: list[tuple[int, dict[str, str]]] = []

    def add(self, event: str, minute: int, result: dict, *, version="3", task="binary", keys=None, model="m"):
        written = START_MS + 60_000 * minute
        self.written.append(
            (
                written,
                {
                    "event_id": event,
                    "event_time": str(written),
                    "scored_at": str(written + 5),
                    "model_name": model,
                    "model_version": version,
                    "task": task,
                    "result": json.dumps(result),
                    "keys": json.dumps({"order": event} if keys is None else keys),
                },
            )
        )

    def records(self, start_ms, end_ms):
        return iter(
            [
                fields
                for written, fields in self.written
                if start_ms <= written and (end_ms is None or written <= end_ms)
            ]
        )

    def describe(self):
        return "memory"


def _compact(records, tmp_path, **settings):
    return compact_interval(
        records, model_name="m", interval=DAY, output_root=str(tmp_path), key_columns=["order"], **settings
    )


def test_multiclass_records_become_one_probability_column_per_class(tmp_path):
    records = Records()
    for minute, (label, probabilities) in enumerate([(2, [0.1, 0.2, 0.7]), (0, [0.8, 0.1, 0.1])]):
        records.add(
            f"o{minute}",
            minute,
            {"prediction": label, "probabilities": dict(zip(["0", "1", "2"], probabilities, strict=True))},
            task="multiclass",
        )
    result = _compact(records, tmp_path).partition
    assert (result.task, result.classes, result.rows) == ("multiclass", [0, 1, 2], 2)
    frame = pd.read_parquet(result.uri)
    assert list(frame.columns[:6]) == [
        "order",
        "event_id",
        "event_time",
        "prediction",
        "probability_0",
        "probability_1",
    ]
    assert frame["prediction"].tolist() == [2, 0]
    assert frame["prediction"].dtype == "int64"
    assert frame["probability_2"].tolist() == [0.7, 0.1]
    assert ScoredTask.from_metadata(read_file_metadata(result.uri)) == ScoredTask("multiclass", (0, 1, 2))


def test_regression_records_and_two_versions(tmp_path):
    records = Records()
    records.add("a", 1, {"prediction": 12.5}, task="regression", version="3")
    records.add("b", 2, {"prediction": 7.0}, task="regression", version="4")
    records.add("c", 3, {"prediction": 9.25}, task="regression", version="4")
    compacted = _compact(records, tmp_path)
    assert compacted.versions == {"3": 1, "4": 2}
    metadata = read_file_metadata(compacted.partition.uri)
    # The version serving at the latest event names the partition; the counts say both.
    assert (metadata["model_version"], metadata["model_versions"]) == ("4", {"3": 1, "4": 2})
    frame = pd.read_parquet(compacted.partition.uri)
    assert frame["prediction"].tolist() == [12.5, 7.0, 9.25]
    assert frame["model_version"].tolist() == [3, 4, 4]


def test_events_outside_the_interval_late_or_of_other_models_are_left_out(tmp_path):
    records = Records()
    records.add("in", 10, {"prediction": 1, "probability": 0.9})
    records.add("other", 11, {"prediction": 0, "probability": 0.1}, model="another")
    records.add("next-day", 24 * 60 + 1, {"prediction": 0, "probability": 0.2})
    # Scored 3 hours after the day ended: later than the default hour of lateness.
    late = Records()
    late.add("late", 27 * 60, {"prediction": 1, "probability": 0.6})
    late.written[0][1]["event_time"] = str(START_MS + 60_000)
    records.written += late.written
    compacted = _compact(records, tmp_path)
    assert (compacted.partition.rows, compacted.other_models, compacted.records_read) == (1, 1, 3)
    assert _compact(records, tmp_path, max_lateness=timedelta(hours=4)).partition.rows == 2


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"result": "not json"}, "keys or result is not JSON"),
        ({"event_time": "yesterday"}, "event_time is not epoch milliseconds"),
        ({"task": "ranking"}, "unknown task 'ranking'"),
        ({"result": json.dumps({"prediction": 1})}, "its result lacks the binary prediction"),
        ({"event_id": ""}, "has no 'event_id'"),
    ],
)
def test_a_broken_record_is_named_and_nothing_is_written(tmp_path, broken, message):
    records = Records()
    records.add("fine", 1, {"prediction": 1, "probability": 0.9})
    records.add("broken", 2, {"prediction": 0, "probability": 0.1})
    records.written[1][1].update(broken)
    with pytest.raises(DataError, match=message):
        _compact(records, tmp_path)
    assert not list(tmp_path.rglob("*.parquet"))


def test_versions_of_different_tasks_are_refused(tmp_path):
    records = Records()
    records.add("a", 1, {"prediction": 1, "probability": 0.9}, version="3")
    records.add("b", 2, {"prediction": 4.5}, version="4", task="regression")
    with pytest.raises(DataError, match=r"different tasks or classes: \{'3': 'binary', '4': 'regression'\}"):
        _compact(records, tmp_path)


def test_key_columns_of_mixed_types_are_refused(tmp_path):
    records = Records()
    records.add("a", 1, {"prediction": 1, "probability": 0.9}, keys={"order": 7})
    records.add("b", 2, {"prediction": 1, "probability": 0.9}, keys={"order": "seven"})
    with pytest.raises(DataError, match="key column 'order' holds values of mixed types"):
        _compact(records, tmp_path)

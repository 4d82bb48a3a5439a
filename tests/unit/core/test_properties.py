"""Property-based tests (hypothesis) of the pure core: invariants over many generated inputs, not examples."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_ops.core import gate, scoring, storage, versions
from mlops_ops.core.errors import DataError

# Moderate and deterministic: the whole module runs in a few seconds on 2 shared cores. Applied per test, not
# as a loaded profile, which would change hypothesis' settings for every other test module too.
core_property = settings(max_examples=60, deadline=None, derandomize=True)

# --- data-version fingerprints ------------------------------------------------------------------------------

file_names = st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=8).map(lambda n: f"{n}.parquet")
contents = st.binary(min_size=0, max_size=64)
file_sets = st.dictionaries(file_names, contents, min_size=1, max_size=6)


def _fingerprint_of(files: dict[str, bytes], order: list[str] | None = None) -> str:
    # A fresh folder each time: file_sha256 caches on (path, size, mtime), and a reused path could hide a change.
    with tempfile.TemporaryDirectory() as root:
        for name, data in files.items():
            with open(os.path.join(root, name), "wb") as handle:
                handle.write(data)
        names = order if order is not None else list(files)
        return versions.local_files_fingerprint([os.path.join(root, name) for name in names], root)


@core_property
@given(files=file_sets, data=st.data())
def test_fingerprint_does_not_depend_on_file_order(files, data):
    shuffled = data.draw(st.permutations(list(files)))
    assert _fingerprint_of(files, shuffled) == _fingerprint_of(files)


@core_property
@given(files=file_sets, data=st.data())
def test_fingerprint_changes_with_any_content_change(files, data):
    name = data.draw(st.sampled_from(sorted(files)))
    changed = data.draw(contents.filter(lambda new: new != files[name]))
    assert _fingerprint_of({**files, name: changed}) != _fingerprint_of(files)


@core_property
@given(files=file_sets, data=st.data())
def test_fingerprint_changes_when_a_file_is_added_or_renamed(files, data):
    extra = data.draw(file_names.filter(lambda new: new not in files))
    assert _fingerprint_of({**files, extra: b""}) != _fingerprint_of(files)
    renamed = dict(files)
    renamed[extra] = renamed.pop(sorted(files)[0])
    assert _fingerprint_of(renamed) != _fingerprint_of(files)


# --- the evaluation gate ------------------------------------------------------------------------------------

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
loss = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
metrics = st.fixed_dictionaries({"roc_auc": unit, "log_loss": loss})
policies = st.builds(
    gate.GatePolicy,
    min_metrics=st.fixed_dictionaries({"roc_auc": unit}),
    max_metrics=st.fixed_dictionaries({"log_loss": loss}),
    max_regression=st.fixed_dictionaries({"roc_auc": st.floats(0, 0.2), "log_loss": st.floats(0, 0.5)}),
    min_improvement=st.fixed_dictionaries({}, optional={"roc_auc": st.floats(-0.05, 0.05)}),
    first_model=st.sampled_from(["accept", "reject"]),
)
better = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@core_property
@given(challenger=metrics, champion=st.none() | metrics, policy=policies, auc_gain=better, loss_gain=better)
def test_a_better_challenger_never_fails_where_a_worse_one_passed(
    challenger, champion, policy, auc_gain, loss_gain
):
    improved = {
        "roc_auc": challenger["roc_auc"] + auc_gain,
        "log_loss": max(0.0, challenger["log_loss"] - loss_gain),
    }
    if gate.decide(challenger, champion, policy).passed:
        assert gate.decide(improved, champion, policy).passed


@core_property
@given(challenger=metrics, champion=metrics, policy=policies, raise_floor=better)
def test_a_stricter_policy_never_passes_what_a_looser_one_failed(challenger, champion, policy, raise_floor):
    stricter = gate.GatePolicy(
        min_metrics={"roc_auc": policy.min_metrics["roc_auc"] + raise_floor},
        max_metrics=policy.max_metrics,
        max_regression=policy.max_regression,
        min_improvement=policy.min_improvement,
        first_model=policy.first_model,
    )
    if not gate.decide(challenger, champion, policy).passed:
        assert not gate.decide(challenger, champion, stricter).passed


# --- scoring shards -----------------------------------------------------------------------------------------

row_groups = st.lists(st.integers(min_value=0, max_value=5000), min_size=0, max_size=40).map(
    lambda rows: [
        scoring.InputUnit(path=f"part-{i // 4}.parquet", row_group=i % 4, rows=n) for i, n in enumerate(rows)
    ]
)


@core_property
@given(units=row_groups, shard_count=st.integers(min_value=1, max_value=8))
def test_shards_cover_every_row_group_exactly_once_in_order(units, shard_count):
    shards = scoring.plan_shards(units, shard_count)
    assert len(shards) == shard_count
    assert [unit for shard in shards for unit in shard] == units


@core_property
@given(units=row_groups, shard_count=st.integers(min_value=1, max_value=8))
def test_shards_are_balanced_within_one_row_group(units, shard_count):
    shards = scoring.plan_shards(units, shard_count)
    total = sum(unit.rows for unit in units)
    largest = max((unit.rows for unit in units), default=0)
    for shard in shards:
        assert sum(unit.rows for unit in shard) <= total / shard_count + largest


@core_property
@given(units=row_groups, shard_count=st.integers(min_value=1, max_value=8))
def test_every_shard_computes_the_same_plan(units, shard_count):
    assert scoring.plan_shards(list(units), shard_count) == scoring.plan_shards(units, shard_count)


# --- intervals ----------------------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
lengths = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=400))
# Partition keys name minutes: intervals on whole minutes.
minutes = instants.map(lambda moment: moment.replace(second=0, microsecond=0))
whole_minutes = st.integers(min_value=1, max_value=400 * 24 * 60).map(lambda n: timedelta(minutes=n))


@core_property
@given(start=instants, length=lengths, zone=offsets)
def test_an_interval_is_the_same_instant_in_any_zone_and_as_text(start, length, zone):
    end = start + length
    expected = scoring.Interval.parse(start, end)
    assert scoring.Interval.parse(start.astimezone(zone), end.astimezone(zone)) == expected
    assert scoring.Interval.parse(start.isoformat(), end.isoformat()) == expected
    assert (
        scoring.Interval.parse(start.replace(tzinfo=None), end.replace(tzinfo=None)) == expected
    )  # naive = UTC
    assert expected.start.tzinfo is not None and expected.end - expected.start == length


@core_property
@given(start=instants, length=lengths)
def test_an_interval_that_does_not_move_forward_is_refused(start, length):
    with pytest.raises(DataError, match="is not after its start"):
        scoring.Interval.parse(start + length, start)
    with pytest.raises(DataError, match="is not after its start"):
        scoring.Interval.parse(start, start)


@core_property
@given(start=minutes, length=whole_minutes, other=minutes, other_length=whole_minutes)
def test_partition_keys_are_distinct_for_distinct_minute_intervals(start, length, other, other_length):
    first = scoring.Interval.parse(start, start + length)
    second = scoring.Interval.parse(other, other + other_length)
    assert (first.key == second.key) == (first == second)


# --- storage joins ------------------------------------------------------------------------------------------

segments = st.text(alphabet="abcxyz019_-=", min_size=1, max_size=10)
s3_roots = st.builds(
    lambda bucket, prefix, slash: f"s3://{bucket}/{prefix}{slash}",
    segments,
    segments,
    st.sampled_from(["", "/"]),
)


@core_property
@given(root=s3_roots, parts=st.lists(segments, min_size=1, max_size=4), split=st.integers(0, 4))
def test_s3_joins_associate_and_never_double_a_slash(root, parts, split):
    joined = storage.join(root, *parts)
    assert joined == storage.join(storage.join(root, *parts[:split]), *parts[split:])
    assert joined.startswith("s3://") and "//" not in joined.removeprefix("s3://")
    assert joined.rsplit("/", len(parts))[1:] == parts


@core_property
@given(parts=st.lists(segments, min_size=1, max_size=4), split=st.integers(0, 4))
def test_local_joins_associate(parts, split):
    root = "/data/root"
    assert storage.join(root, *parts) == storage.join(storage.join(root, *parts[:split]), *parts[split:])
    assert storage.join(root, *parts) == os.path.join(root, *parts)

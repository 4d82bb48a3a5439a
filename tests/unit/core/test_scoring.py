"""Streaming batch scoring and atomic publishing, on the synthetic shop visits of tests/unit/synthetic.py and a
real fitted model (no Airflow)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.core import scoring, storage, training
from mlops_ops.core.errors import DataError
from mlops_ops.core.model_artifacts import ModelInput, PinnedModel
from mlops_ops.core.modelspec import ModelSpec
from tests.unit import synthetic

KEYS = list(synthetic.KEY)
TIME = synthetic.TIME_COLUMN
TARGET = synthetic.TARGET
NAME = synthetic.MODEL
UTC = UTC
PINNED = PinnedModel(NAME, "7", "champion", "run", "src", "sha256:abc")


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dict(synthetic.spec())


@pytest.fixture(scope="module")
def features(spec) -> pd.DataFrame:
    """March 1-4 2024, one visit every 2 minutes (2,880 rows), sorted by time (so row groups have narrow time
    ranges); the raw columns are the model's features."""
    return synthetic.visits(4 * 720, seed=3, start="2024-03-01", minutes=2)


@pytest.fixture(scope="module")
def model(spec, features):
    labelled = features[features[spec.target].notna()]
    return training.fit(spec, labelled, params={"max_iter": 20}, seed=1)


@pytest.fixture(scope="module")
def inputs(spec) -> list[ModelInput]:
    return [ModelInput(c, "string") for c in spec.categorical_features] + [
        ModelInput(c, "double") for c in spec.numerical_features
    ]


@pytest.fixture
def source(tmp_path, features) -> str:
    """The features as two Parquet files (March 1-2, March 3-4), 1,000-row row groups."""
    folder = tmp_path / "in"
    for name, days in (("a", (1, 2)), ("b", (3, 4))):
        part = features[features["day"].isin(days)].drop(columns=[TARGET])
        (folder / f"part={name}").mkdir(parents=True)
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False),
            folder / f"part={name}" / "x.parquet",
            row_group_size=1000,
        )
    return str(folder)


def config(inputs, **overrides) -> scoring.ScoringConfig:
    return scoring.ScoringConfig(
        **{
            "features": inputs,
            "key_columns": KEYS,
            "time_column": TIME,
            "chunk_rows": 700,
            **overrides,
        }
    )


def score(model, inputs, source, out, interval, *, shards=1, token="run-1", pinned=PINNED, **overrides):
    staging = scoring.staging_folder(out, pinned.name, interval, token)
    results = [
        scoring.score_shard(
            model=model,
            pinned=pinned,
            config=config(inputs, **overrides),
            interval=interval,
            source_uri=source,
            destination_uri=scoring.shard_uri(staging, index, shards),
            shard_index=index,
            shard_count=shards,
        )
        for index in range(shards)
    ]
    published = scoring.publish(
        staging=staging,
        destination_uri=scoring.partition_uri(out, pinned.name, interval),
        pinned=pinned,
        interval=interval,
        shard_count=shards,
    )
    return results, published


def rows_in(features, interval) -> pd.DataFrame:
    times = features[TIME]
    return features[(times >= interval.start) & (times < interval.end)]


# --------------------------------------------------------------------------------------------------- intervals


def test_interval_parses_iso_strings_and_treats_a_naive_time_as_utc():
    interval = scoring.Interval.parse("2013-03-01", "2013-03-02T05:00:00+05:00")
    assert interval.start == datetime(2013, 3, 1, tzinfo=UTC)
    assert interval.end == datetime(2013, 3, 2, tzinfo=UTC)
    assert interval.key == "20130301T0000Z_20130302T0000Z"


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        ("2013-03-02", "2013-03-01", "is not after its start"),
        ("2013-03-01", "2013-03-01", "is not after its start"),
        ("yesterday", "2013-03-01", "'yesterday' is not an ISO-8601 timestamp"),
        (None, "2013-03-01", "is not a timestamp"),
    ],
)
def test_an_invalid_interval_is_refused_naming_the_value(start, end, words):
    with pytest.raises(DataError, match=words):
        scoring.Interval.parse(start, end)


def test_resolve_interval_prefers_params_then_the_data_interval_then_the_last_full_period():
    day = timedelta(days=1)
    common = {"run_after": datetime(2026, 11, 26, 16, 30, tzinfo=UTC), "period": day}
    params = scoring.resolve_interval(
        requested_start="2013-07-01",
        requested_end="2013-07-03",
        data_interval_start=None,
        data_interval_end=None,
        **common,
    )
    assert params.key == "20130701T0000Z_20130703T0000Z"
    scheduled = scoring.resolve_interval(
        requested_start="",
        requested_end="",
        data_interval_start=datetime(2013, 7, 4, tzinfo=UTC),
        data_interval_end=datetime(2013, 7, 5, tzinfo=UTC),
        **common,
    )
    assert scheduled.key == "20130704T0000Z_20130705T0000Z"
    # An asset-triggered run's data interval has no length: yesterday, aligned to midnight UTC.
    instant = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    triggered = scoring.resolve_interval(
        requested_start=None,
        requested_end=None,
        data_interval_start=instant,
        data_interval_end=instant,
        **common,
    )
    assert triggered.key == "20261125T0000Z_20261126T0000Z"
    hourly = scoring.resolve_interval(
        requested_start=None,
        requested_end=None,
        data_interval_start=None,
        data_interval_end=None,
        run_after=instant,
        period=timedelta(hours=1),
    )
    assert hourly.key == "20261126T1500Z_20261126T1600Z"
    with pytest.raises(DataError, match="both interval_start and interval_end"):
        scoring.resolve_interval(
            requested_start="2013-07-01",
            requested_end="",
            data_interval_start=None,
            data_interval_end=None,
            **common,
        )


# --------------------------------------------------------------------------------------------------- planning


def test_row_groups_outside_the_interval_are_not_read(source, features):
    interval = scoring.Interval.parse("2024-03-02T06:00", "2024-03-02T09:00")
    units = scoring.find_input_units(source, interval, TIME)
    everything = scoring.find_input_units(source, scoring.Interval.parse("2024-01-01", "2025-01-01"), TIME)
    assert 0 < len(units) <= 2 < len(everything)
    assert sum(unit.rows for unit in everything) == len(features)
    assert all("part=a" in unit.path for unit in units)


def test_shards_cover_every_unit_once_balanced_by_rows():
    units = [scoring.InputUnit("f", index, rows) for index, rows in enumerate([100, 100, 100, 100, 400])]
    shards = scoring.plan_shards(units, 2)
    assert [unit for shard in shards for unit in shard] == units
    assert [sum(u.rows for u in shard) for shard in shards] == [400, 400]
    assert scoring.plan_shards(units, 2) == shards  # every shard task computes the same plan
    assert sorted(len(shard) for shard in scoring.plan_shards(units[:1], 3)) == [0, 0, 1]  # others stay empty
    with pytest.raises(ValueError, match="shard_count must be >= 1"):
        scoring.plan_shards(units, 0)


def test_hidden_and_staging_files_are_not_input(source, tmp_path):
    Path(source, "_staging").mkdir()
    Path(source, "_staging", "junk.parquet").write_bytes(b"not parquet")
    Path(source, "part=a", ".x.parquet.tmp.parquet").write_bytes(b"partial")
    interval = scoring.Interval.parse("2024-03-01", "2024-03-05")
    assert {Path(unit.path).name for unit in scoring.find_input_units(source, interval, TIME)} == {
        "x.parquet"
    }


# --------------------------------------------------------------------------------------------------- scoring


def test_scores_exactly_the_interval_rows_with_the_models_probabilities(
    model, inputs, source, features, tmp_path
):
    interval = scoring.Interval.parse("2024-03-02", "2024-03-04")
    progress = []
    staging = scoring.staging_folder(str(tmp_path / "out"), NAME, interval, "run-1")
    result = scoring.score_shard(
        model=model,
        pinned=PINNED,
        config=config(inputs),
        interval=interval,
        source_uri=source,
        destination_uri=scoring.shard_uri(staging, 0, 1),
        progress=lambda *args: progress.append(args),
    )
    published = scoring.publish(
        staging=staging,
        destination_uri=scoring.partition_uri(str(tmp_path / "out"), NAME, interval),
        pinned=PINNED,
        interval=interval,
        shard_count=1,
    )
    expected = rows_in(features, interval)
    assert result.rows == published.rows == len(expected) > 0
    assert result.chunks >= 2 and [p[1] for p in progress] == sorted(p[1] for p in progress)
    assert progress[-1][1] == len(expected)

    output = pq.read_table(published.uri).to_pandas()
    assert not output.duplicated(KEYS).any()
    merged = expected.merge(output, on=KEYS, how="inner", validate="one_to_one")
    assert len(merged) == len(expected)
    in_memory = training.positive_probability(
        model, training.features_frame(merged, ModelSpec.from_dict(synthetic.spec()))
    )
    np.testing.assert_allclose(merged["probability"], in_memory, rtol=0, atol=1e-12)
    assert ((merged["probability"] >= 0.5).astype("int8") == merged["prediction"]).all()
    assert set(output["model_version"]) == {7} and set(output["model_name"].astype(str)) == {NAME}
    assert set(output["interval_start"]) == {pd.Timestamp("2024-03-02", tz="UTC")}
    metadata = scoring.read_file_metadata(published.uri)
    assert metadata["model_version"] == "7" and metadata["artifact_sha256"] == "sha256:abc"
    assert metadata["interval"] == interval.to_dict() and metadata["run_token"] == "run-1"
    # The run's staging folder is gone; readers of the output root see one partition.
    assert not Path(staging).exists()


def test_a_feature_store_join_feeds_each_chunk_before_the_model_and_must_keep_every_row(
    model, inputs, source, features, tmp_path
):
    interval = scoring.Interval.parse("2024-03-02", "2024-03-04")
    # A stand-in for the point-in-time join: the model's `width` comes only from the joined column.
    chunks = []

    def join(frame):
        chunks.append(len(frame))
        return frame.assign(width=frame.pop("width_raw"))

    raw = str(tmp_path / "raw.parquet")
    renamed = features.drop(columns=[TARGET]).rename(columns={"width": "width_raw"})
    pq.write_table(pa.Table.from_pandas(renamed, preserve_index=False), raw, row_group_size=1000)
    results, published = score(model, inputs, raw, str(tmp_path / "out"), interval, join=join)
    expected = rows_in(features, interval)
    assert published.rows == len(expected) == sum(chunks) and len(chunks) == results[0].chunks >= 2
    output = pq.read_table(published.uri).to_pandas()
    merged = expected.merge(output, on=KEYS, validate="one_to_one")
    in_memory = training.positive_probability(
        model, training.features_frame(merged, ModelSpec.from_dict(synthetic.spec()))
    )
    np.testing.assert_allclose(merged["probability"], in_memory, rtol=0, atol=1e-12)

    with pytest.raises(DataError, match="feature-store join function returned .* rows for"):
        score(model, inputs, raw, str(tmp_path / "out2"), interval, join=lambda frame: join(frame).iloc[1:])
    assert not (tmp_path / "out2" / f"model={NAME}").exists()


def test_sharded_scoring_publishes_the_same_rows_as_one_shard(model, inputs, source, tmp_path):
    interval = scoring.Interval.parse("2024-03-01", "2024-03-05")
    _, single = score(model, inputs, source, str(tmp_path / "one"), interval)
    results, sharded = score(model, inputs, source, str(tmp_path / "three"), interval, shards=3)
    assert all(result.rows > 0 for result in results)
    assert sharded.rows == single.rows == sum(result.rows for result in results)
    one = pq.read_table(single.uri).to_pandas().sort_values(KEYS).reset_index(drop=True)
    three = pq.read_table(sharded.uri).to_pandas().sort_values(KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(one.drop(columns="scored_at"), three.drop(columns="scored_at"))


def test_rescoring_an_interval_replaces_its_partition(model, inputs, source, tmp_path):
    import pyarrow.dataset as ds

    out = str(tmp_path / "out")
    interval = scoring.Interval.parse("2024-03-03", "2024-03-04")
    other = scoring.Interval.parse("2024-03-04", "2024-03-05")
    _, first = score(model, inputs, source, out, interval, token="run-1")
    score(model, inputs, source, out, other, token="run-2")
    newer = PinnedModel(NAME, "8", "champion", "run", "src", "sha256:def")
    _, again = score(model, inputs, source, out, interval, shards=2, token="run-3", pinned=newer)

    table = ds.dataset(out, format="parquet", partitioning="hive").to_table().to_pandas()
    assert not table.duplicated(KEYS).any()
    this = table[table["interval"] == interval.key]
    assert len(this) == first.rows == again.rows
    assert set(this["model_version"]) == {8}  # the re-run under the newer champion replaced, not added
    assert sorted(Path(out).rglob("*.parquet")) == sorted(
        Path(scoring.partition_uri(out, NAME, i)) for i in (interval, other)
    )


def test_an_empty_interval_publishes_nothing_and_keeps_what_was_there(model, inputs, source, tmp_path):
    out = str(tmp_path / "out")
    nothing = scoring.Interval.parse("2025-01-01", "2025-01-02")
    results, published = score(model, inputs, source, out, nothing, shards=2)
    assert published.status == "empty" and published.uri is None and published.rows == 0
    assert [r.rows for r in results] == [0, 0]
    assert not list(Path(out).rglob("*.parquet"))


def test_a_publish_retry_after_success_returns_the_partition(model, inputs, source, tmp_path):
    out = str(tmp_path / "out")
    interval = scoring.Interval.parse("2024-03-03", "2024-03-04")
    _, first = score(model, inputs, source, out, interval, shards=2, token="run-1")
    again = scoring.publish(
        staging=scoring.staging_folder(out, NAME, interval, "run-1"),
        destination_uri=first.uri,
        pinned=PINNED,
        interval=interval,
        shard_count=2,
    )
    assert again.status == "already published" and again.rows == first.rows


def test_publish_refuses_missing_or_foreign_shards_and_keeps_the_old_partition(
    model, inputs, source, tmp_path
):
    out = str(tmp_path / "out")
    interval = scoring.Interval.parse("2024-03-03", "2024-03-04")
    _, old = score(model, inputs, source, out, interval, token="run-0")
    before = Path(old.uri).read_bytes()

    staging = scoring.staging_folder(out, NAME, interval, "run-1")

    def stage(index: int) -> None:
        scoring.score_shard(
            model=model,
            pinned=PINNED,
            config=config(inputs),
            interval=interval,
            source_uri=source,
            destination_uri=scoring.shard_uri(staging, index, 2),
            shard_index=index,
            shard_count=2,
        )

    stage(0)
    with pytest.raises(DataError, match=r"shard file\(s\) .*shard-0001-of-0002.parquet.* are missing"):
        scoring.publish(
            staging=staging, destination_uri=old.uri, pinned=PINNED, interval=interval, shard_count=2
        )
    stage(1)
    other_version = PinnedModel(NAME, "9", None, None, "", "sha256:x")
    with pytest.raises(DataError, match=f"was not scored by {NAME} v9"):
        scoring.publish(
            staging=staging, destination_uri=old.uri, pinned=other_version, interval=interval, shard_count=2
        )
    # Shards another run left behind are not this run's, even for the same model and interval.
    foreign = scoring.staging_folder(out, NAME, interval, "run-2")
    Path(staging).rename(foreign)
    with pytest.raises(DataError, match="run token run-1"):
        scoring.publish(
            staging=foreign, destination_uri=old.uri, pinned=PINNED, interval=interval, shard_count=2
        )
    assert Path(old.uri).read_bytes() == before


# --------------------------------------------------------------------------------------------------- bad input


def write_input(tmp_path, frame: pd.DataFrame) -> str:
    path = tmp_path / "bad" / "x.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return str(path.parent)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda f: f.drop(columns=["width"]),
            r"lack column\(s\) \['width'\] that the model's signature",
        ),
        (
            lambda f: f.assign(width=f["width"].astype(str)),
            "column 'width' is string; .* expects double",
        ),
        (lambda f: f.assign(store=f["visitor"]), "column 'store' holds int64 values"),
        (
            lambda f: f.assign(width=f["width"].where(f.index % 7 != 0)),
            "column 'width' has 4 null value",
        ),
        (lambda f: f.assign(visit_time=f[TIME].dt.tz_localize(None)), "without a time zone"),
        (lambda f: f.drop(columns=["visitor"]), r"lacks key column\(s\) \['visitor'\]"),
    ],
)
def test_bad_input_fails_naming_the_column_and_interval_and_writes_nothing(
    model, inputs, features, tmp_path, change, words
):
    interval = scoring.Interval.parse("2024-03-01T12:00", "2024-03-01T16:00")
    frame = change(rows_in(features, interval).drop(columns=[TARGET]).head(25).reset_index(drop=True))
    source = write_input(tmp_path, frame)
    out = str(tmp_path / "out")
    with pytest.raises(DataError, match=words) as raised:
        score(model, inputs, source, out, interval)
    if "time zone" not in words:
        assert "2024-03-01T12:00:00+00:00" in str(raised.value)  # the interval is named
        assert f"{NAME} v7" in str(raised.value)  # and the model version
    assert not list(Path(out).rglob("*.parquet")) and not list(Path(out).rglob("*.tmp"))


def test_nulls_are_accepted_in_a_column_the_model_was_trained_with_nulls(model, inputs, features, tmp_path):
    interval = scoring.Interval.parse("2024-03-01T12:00", "2024-03-01T16:00")
    frame = rows_in(features, interval).drop(columns=[TARGET]).head(25).reset_index(drop=True)
    frame["width"] = frame["width"].where(frame.index % 7 != 0)
    optional = [ModelInput(i.name, i.type, required=i.name != "width") for i in inputs]
    _, published = score(model, optional, write_input(tmp_path, frame), str(tmp_path / "out"), interval)
    assert published.rows == 25


def test_a_file_that_is_not_parquet_is_named(model, inputs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataError, match=r"broken.parquet: not a readable Parquet file"):
        scoring.find_input_units(str(folder), scoring.Interval.parse("2024-03-01", "2024-03-02"), TIME)
    with pytest.raises(DataError, match="does not exist"):
        scoring.find_input_units(
            str(tmp_path / "nowhere"), scoring.Interval.parse("2024-03-01", "2024-03-02"), TIME
        )


def test_a_scan_lists_the_files_it_cannot_place_in_time_instead_of_stopping_at_the_first(features, tmp_path):
    folder = tmp_path / "in"
    rows = features.drop(columns=[TARGET]).head(20)
    for name, frame in (
        ("good", rows),
        ("naive", rows.assign(visit_time=rows[TIME].dt.tz_localize(None))),
        ("renamed", rows.rename(columns={TIME: "timestamp"})),
        ("text", rows.assign(visit_time=rows[TIME].astype(str))),
    ):
        (folder / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / name / "x.parquet")
    (folder / "broken").mkdir()
    (folder / "broken" / "x.parquet").write_bytes(b"")
    scan = scoring.scan_input(str(folder), scoring.Interval.parse("2024-03-01", "2024-03-02"), TIME)
    problems = {Path(path).parent.name: problem for path, problem in scan.unplaceable.items()}
    assert sorted(problems) == ["broken", "naive", "renamed", "text"]
    assert "not a readable Parquet file" in problems["broken"]
    assert "without a time zone" in problems["naive"]
    assert f"no time column {TIME!r}" in problems["renamed"]
    assert "is string, not a timestamp" in problems["text"]
    assert {Path(unit.path).parent.name for unit in scan.units} == {"good"}
    assert [Path(path).parent.name for path in scan.files] == ["broken", "good", "naive", "renamed", "text"]
    # Scoring itself still refuses to guess: the first such file stops it.
    with pytest.raises(DataError, match=r"broken/x.parquet: not a readable Parquet file"):
        scoring.find_input_units(str(folder), scoring.Interval.parse("2024-03-01", "2024-03-02"), TIME)


def test_a_scan_refuses_a_link_leading_out_of_the_source_before_reading_anything(
    features, tmp_path, monkeypatch
):
    rows = features.drop(columns=[TARGET]).head(20)
    outside = tmp_path / "other-tenant"
    outside.mkdir()
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), outside / "secret.parquet")
    folder = tmp_path / "in"
    (folder / "good").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "good" / "x.parquet")
    (folder / "good" / "latest.parquet").symlink_to(folder / "good" / "x.parquet")  # inside: read
    interval = scoring.Interval.parse("2024-03-01", "2024-03-02")
    assert len(scoring.scan_input(str(folder), interval, TIME).files) == 2
    opened = []
    real = pq.ParquetFile
    monkeypatch.setattr(pq, "ParquetFile", lambda path, **kw: opened.append(path) or real(path, **kw))

    for name, target in (("evil\x1b[31m.parquet", outside / "secret.parquet"), ("month=13", outside)):
        link = folder / name
        link.symlink_to(target)
        with pytest.raises(storage.OutsideRoot, match="leads outside the landing root") as raised:
            scoring.scan_input(str(folder), interval, TIME)
        assert "\x1b" not in str(raised.value)
        if link.suffix == ".parquet":  # named as the source itself: judged against its folder
            with pytest.raises(storage.OutsideRoot):
                scoring.find_input_units(str(link), interval, TIME)
        link.unlink()
    assert opened == []


def test_a_hostile_file_name_is_escaped_in_what_a_scan_reports(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a\n[INFO] fine\x1b[2K.parquet").write_bytes(b"not parquet")

    scan = scoring.scan_input(str(folder), scoring.Interval.parse("2024-03-01", "2024-03-02"), TIME)

    [problem] = scan.unplaceable.values()
    assert "a\\n[INFO] fine\\x1b[2K.parquet: not a readable Parquet file" in problem
    assert "\n" not in problem and "\x1b" not in problem


def test_training_categories_are_read_from_the_fitted_encoder(model, features):
    categories = scoring.training_categories(model)
    assert set(categories) == set(synthetic.CATEGORICAL) == {"store", "colour"}
    assert categories["store"] == frozenset(synthetic.STORES)
    assert categories["colour"] == frozenset(features["colour"].dropna())
    assert scoring.training_categories(object()) == {}


def test_unseen_categories_are_scored_counted_and_refused_above_the_limit(model, inputs, features, tmp_path):
    interval = scoring.Interval.parse("2024-03-01T12:00", "2024-03-01T16:00")
    frame = rows_in(features, interval).drop(columns=[TARGET]).head(40).reset_index(drop=True)
    frame.loc[:2, "colour"] = "purple"  # rows 0-2
    frame.loc[2:3, "store"] = "west"  # rows 2-3: row 2 holds both
    frame.loc[4, "colour"] = (
        None  # missing is not unseen (the encoder takes it as missing, not as a category)
    )
    inputs = [ModelInput(i.name, i.type, required=i.name != "colour") for i in inputs]
    source = write_input(tmp_path, frame)
    categories = scoring.training_categories(model)
    out = str(tmp_path / "out")
    results, published = score(model, inputs, source, out, interval, shards=2, categories=categories)
    expected = {"rows": 4, "columns": {"store": {"west": 2}, "colour": {"purple": 3}}}
    assert sum(r.unseen_categories["rows"] for r in results) == 4
    assert published.rows == 40 and published.unseen_categories == {**expected, "share": 0.1}
    # Scored as the model's encoder treats them (as missing), like any other row.
    output = pq.read_table(published.uri).to_pandas().sort_values("visitor", kind="stable")
    merged = frame.merge(output, on=KEYS, validate="one_to_one")
    in_memory = training.positive_probability(
        model, training.features_frame(merged, ModelSpec.from_dict(synthetic.spec()))
    )
    np.testing.assert_allclose(merged["probability"], in_memory, rtol=0, atol=1e-12)
    assert scoring.read_file_summary(published.uri)["unseen_categories"] == expected

    # Above the limit nothing is published; the staged shards stay for a look or a retry.
    refused = scoring.Interval.parse("2024-03-01T12:00", "2024-03-01T16:00")
    other_out = str(tmp_path / "refused")
    staging = scoring.staging_folder(other_out, NAME, refused, "run-9")
    for index in range(2):
        scoring.score_shard(
            model=model,
            pinned=PINNED,
            config=config(inputs, categories=categories),
            interval=refused,
            source_uri=source,
            destination_uri=scoring.shard_uri(staging, index, 2),
            shard_index=index,
            shard_count=2,
        )
    with pytest.raises(scoring.UnseenCategoriesRejected) as raised:
        scoring.publish(
            staging=staging,
            destination_uri=scoring.partition_uri(other_out, NAME, refused),
            pinned=PINNED,
            interval=refused,
            shard_count=2,
            max_unseen_share=0.05,
        )
    message = str(raised.value)
    assert f"{NAME} v7: 4 of 40 rows (10.0%)" in message and "above the limit of 5.0%" in message
    assert (
        "colour 'purple' (3); store 'west' (2)" in message
        or "store 'west' (2); colour 'purple' (3)" in message
    )
    assert raised.value.unseen == {**expected, "share": 0.1}
    assert not Path(scoring.partition_uri(other_out, NAME, refused)).exists()
    assert len(list(Path(staging).glob("shard-*.parquet"))) == 2
    # Within the limit the same shards publish.
    within = scoring.publish(
        staging=staging,
        destination_uri=scoring.partition_uri(other_out, NAME, refused),
        pinned=PINNED,
        interval=refused,
        shard_count=2,
        max_unseen_share=0.1,
    )
    assert within.status == "published" and within.unseen_categories["rows"] == 4


def test_prefetch_yields_everything_in_order_and_raises_the_producers_error():
    assert list(scoring.prefetch(iter(range(50)), depth=2)) == list(range(50))
    assert list(scoring.prefetch(iter(range(5)), depth=0)) == list(range(5))

    def broken():
        yield 1
        raise OSError("network down")

    with pytest.raises(OSError, match="network down"):
        list(scoring.prefetch(broken(), depth=2))
    # A consumer that stops early leaves no producer running.
    import threading

    items = scoring.prefetch(iter(range(1000)), depth=2)
    assert next(items) == 0
    items.close()
    assert not [t for t in threading.enumerate() if t.name == "mlops-scoring-prefetch"]


# ------------------------------------------------------------------------------------------------------ task types

TASK_INTERVAL = scoring.Interval.parse("2024-03-01", "2024-03-02")
TASK_INPUTS = [ModelInput("plan", "string"), ModelInput("tenure", "double"), ModelInput("fee", "double")]


def _customers(rows: int, start: str, seed: int) -> pd.DataFrame:
    """Synthetic customers with a multiclass target (``usage``: low/mid/high, or 0/1/2 as ``usage_code``) and a
    regression target (``spend``), both learnable from the plan, tenure and fee."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    tenure = rng.integers(1, 60, rows).astype(float)
    fee = rng.uniform(10, 90, rows).round(2)
    score = fee / 30 + (plan == "pro") * 1.5 + rng.normal(0, 0.4, rows)
    usage = np.select([score < 1.5, score < 2.5], ["low", "mid"], "high")
    return pd.DataFrame(
        {
            "customer": np.arange(rows) + seed * 100_000,
            "event_time": pd.date_range(start, periods=rows, freq="1min", tz="UTC"),
            "plan": plan,
            "tenure": tenure,
            "fee": fee,
            "usage": usage,
            "usage_code": pd.Series(usage).map({"low": 0, "mid": 1, "high": 2}).to_numpy(),
            "spend": 3.0 * fee + 0.5 * tenure + (plan == "pro") * 20 + rng.normal(0, 2, rows),
        }
    )


def _task_spec(task: str, target: str) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "name": "usage",
            "task": task,
            "target": target,
            "categorical_features": ["plan"],
            "numerical_features": ["tenure", "fee"],
            "params": {"max_iter": 30},
            "seed": 5,
        }
    )


@pytest.fixture(scope="module")
def task_models() -> dict[str, tuple[ModelSpec, object]]:
    """A multiclass model of string classes, one of integer classes, and a regression model, on one history."""
    history = _customers(2000, "2024-01-01", seed=1)
    models = {}
    for key, task, target in (
        ("multiclass", "multiclass", "usage"),
        ("multiclass_codes", "multiclass", "usage_code"),
        ("regression", "regression", "spend"),
    ):
        spec = _task_spec(task, target)
        models[key] = spec, training.fit(spec, history, params=spec.params, seed=spec.seed)
    return models


@pytest.fixture
def day(tmp_path) -> tuple[pd.DataFrame, str]:
    """One day of customers landed without their targets, in two row groups (so two shards have work)."""
    frame = _customers(900, "2024-03-01", seed=3)
    folder = tmp_path / "landed"
    folder.mkdir()
    frame.drop(columns=["usage", "usage_code", "spend"]).to_parquet(
        folder / "part-0.parquet", index=False, row_group_size=450
    )
    return frame, str(folder)


def _score_task(model, spec, source, out, *, shards=2, pinned=None, token="run-1"):
    pinned = pinned or PinnedModel("usage", "3", "champion", "run", "src", "sha256:def")
    staging = scoring.staging_folder(out, pinned.name, TASK_INTERVAL, token)
    task_config = scoring.ScoringConfig(
        features=TASK_INPUTS,
        key_columns=["customer"],
        time_column="event_time",
        chunk_rows=200,
        task=spec.task if spec is not None else None,
    )
    results = [
        scoring.score_shard(
            model=model,
            pinned=pinned,
            config=task_config,
            interval=TASK_INTERVAL,
            source_uri=source,
            destination_uri=scoring.shard_uri(staging, index, shards),
            shard_index=index,
            shard_count=shards,
        )
        for index in range(shards)
    ]
    published = scoring.publish(
        staging=staging,
        destination_uri=scoring.partition_uri(out, pinned.name, TASK_INTERVAL),
        pinned=pinned,
        interval=TASK_INTERVAL,
        shard_count=shards,
    )
    return results, published


@pytest.mark.parametrize(
    ("key", "classes", "label_type"),
    [("multiclass", ["high", "low", "mid"], pa.string()), ("multiclass_codes", [0, 1, 2], pa.int64())],
    ids=["string-classes", "integer-classes"],
)
@pytest.mark.parametrize("declared", [True, False], ids=["spec", "inferred"])
def test_a_multiclass_model_writes_its_class_and_a_probability_per_class(
    task_models, day, tmp_path, key, classes, label_type, declared
):
    spec, model = task_models[key]
    frame, source = day
    assert list(model.classes_) == classes  # the probability columns follow the model's classes_
    results, published = _score_task(model, spec if declared else None, source, str(tmp_path / "out"))

    probability_columns = [f"probability_{value}" for value in classes]
    table = pq.read_table(published.uri)
    assert table.schema.names == ["customer", "prediction", *probability_columns, *scoring.RECORD_COLUMNS]
    assert table.schema.field("prediction").type == label_type
    assert all(table.schema.field(name).type == pa.float64() for name in probability_columns)
    metadata = scoring.read_file_metadata(published.uri)
    assert (metadata["task"], metadata["classes"]) == ("multiclass", classes)
    assert scoring.ScoredTask.from_metadata(metadata) == scoring.ScoredTask("multiclass", tuple(classes))
    assert (published.status, published.rows, published.task, published.classes) == (
        "published",
        900,
        "multiclass",
        classes,
    )
    assert [(r.task, r.classes, r.positive_rate) for r in results] == [("multiclass", classes, None)] * 2

    output = table.to_pandas().sort_values("customer").reset_index(drop=True)
    inputs = training.features_frame(frame, spec)
    assert output["prediction"].tolist() == model.predict(inputs).tolist()  # the model's own decision
    np.testing.assert_array_equal(output[probability_columns].to_numpy(), model.predict_proba(inputs))


def test_a_regression_model_writes_its_predicted_value(task_models, day, tmp_path):
    spec, model = task_models["regression"]
    frame, source = day
    results, published = _score_task(model, spec, source, str(tmp_path / "out"))

    table = pq.read_table(published.uri)
    assert table.schema.names == ["customer", "prediction", *scoring.RECORD_COLUMNS]
    assert table.schema.field("prediction").type == pa.float64()
    metadata = scoring.read_file_metadata(published.uri)
    assert metadata["task"] == "regression" and "classes" not in metadata
    assert (published.task, published.classes) == ("regression", None)
    assert [(r.task, r.positive_rate) for r in results] == [("regression", None)] * 2
    output = table.to_pandas().sort_values("customer")
    expected = model.predict(training.features_frame(frame, spec))
    np.testing.assert_array_equal(output["prediction"].to_numpy(), expected)
    # A publish retry returns what was published, task included.
    retried = scoring.publish(
        staging=scoring.staging_folder(str(tmp_path / "out"), "usage", TASK_INTERVAL, "run-1"),
        destination_uri=published.uri,
        pinned=PinnedModel("usage", "3", "champion", "run", "src", "sha256:def"),
        interval=TASK_INTERVAL,
        shard_count=2,
    )
    assert (retried.status, retried.task, retried.classes) == ("already published", "regression", None)


def test_a_binary_partition_keeps_its_columns_and_records_its_task(model, inputs, source, tmp_path):
    interval = scoring.Interval.parse("2024-03-02", "2024-03-03")
    _, published = score(model, inputs, source, str(tmp_path / "out"), interval, shards=2)
    schema = pq.read_schema(published.uri)
    assert schema.names == [*KEYS, "prediction", "probability", *scoring.RECORD_COLUMNS]
    assert [schema.field(name).type for name in ("prediction", "probability")] == [pa.int8(), pa.float64()]
    metadata = scoring.read_file_metadata(published.uri)
    assert metadata["task"] == "binary" and "classes" not in metadata
    assert (published.task, published.classes) == ("binary", None)
    # A partition written before tasks existed records none: it is binary.
    assert scoring.ScoredTask.from_metadata({"model_version": "1"}) == scoring.ScoredTask("binary")


def test_a_spec_declaring_another_task_than_the_model_is_refused_naming_both(
    task_models, model, day, tmp_path
):
    from mlops_ops.core.tasks import TaskMismatchError

    _, source = day
    classifier_spec = _task_spec("regression", "spend")
    with pytest.raises(
        TaskMismatchError, match="declares task 'regression' but the model does task 'binary'"
    ):
        _score_task(model, classifier_spec, source, str(tmp_path / "out"))
    _, regressor = task_models["regression"]
    with pytest.raises(
        TaskMismatchError, match="declares task 'multiclass' but the model does task 'regression'"
    ):
        _score_task(regressor, _task_spec("multiclass", "usage"), source, str(tmp_path / "out"))
    assert not (tmp_path / "out" / "model=usage").exists()


def test_publish_refuses_shards_scored_for_different_tasks(task_models, day, tmp_path):
    _, source = day
    out = str(tmp_path / "out")
    pinned = PinnedModel("usage", "3", "champion", "run", "src", "sha256:def")
    staging = scoring.staging_folder(out, "usage", TASK_INTERVAL, "run-1")
    for index, key in enumerate(("multiclass", "regression")):
        spec, model = task_models[key]
        scoring.score_shard(
            model=model,
            pinned=pinned,
            config=scoring.ScoringConfig(
                features=TASK_INPUTS, key_columns=["customer"], time_column="event_time", task=spec.task
            ),
            interval=TASK_INTERVAL,
            source_uri=source,
            destination_uri=scoring.shard_uri(staging, index, 2),
            shard_index=index,
            shard_count=2,
        )
    with pytest.raises(DataError, match="scored for task 'regression'.*first shard for task 'multiclass'"):
        scoring.publish(
            staging=staging,
            destination_uri=scoring.partition_uri(out, "usage", TASK_INTERVAL),
            pinned=pinned,
            interval=TASK_INTERVAL,
            shard_count=2,
        )
    assert not Path(scoring.partition_uri(out, "usage", TASK_INTERVAL)).exists()


def test_a_key_column_named_like_an_output_column_is_refused():
    with pytest.raises(DataError, match=r"key column\(s\) \['probability_low'\] have the name"):
        scoring.output_schema(
            [pa.field("probability_low", pa.string())], {}, scoring.ScoredTask("multiclass", ("low", "high"))
        )

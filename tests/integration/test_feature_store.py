"""The flights feature repository on real Feast: point-in-time training sets, materialization, skew, Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.flights import data, feature_sources
from mlops_ops.core import features
from tests.integration.feature_support import (
    applied_store,
    redis_keys,
    redis_online_store,
    require_redis,
    settings_for,
    unique_project,
)

pytestmark = pytest.mark.integration

UTC_TS = lambda text: pd.Timestamp(text, tz="UTC")  # noqa: E731


def _write_sources(root: str, weather=None, aircraft=None, carrier=None, route=None, departures=None) -> None:
    """Hand-made offline sources: each test states exactly which feature rows exist."""
    from mlops_ops.core import storage

    uris = feature_sources.source_uris(root)
    empty_weather = {"origin": ["EWR"], "event_timestamp": [UTC_TS("2000-01-01")]} | {
        name: [0.0] for name in feature_sources.WEATHER_FEATURES
    }
    frames = {
        "weather": weather if weather is not None else pd.DataFrame(empty_weather),
        "aircraft": aircraft
        if aircraft is not None
        else feature_sources.aircraft_source(data.planes().head(5)),
        "carrier_delays": carrier
        if carrier is not None
        else pd.DataFrame(
            {
                "carrier": ["UA"],
                "event_timestamp": [UTC_TS("2000-01-01")],
                "carrier_flights_7d": [1],
                "carrier_delay_rate_7d": [0.0],
                "carrier_mean_arr_delay_7d": [0.0],
            }
        ),
        "route_delays": route
        if route is not None
        else pd.DataFrame(
            {
                "route": ["EWR-IAH"],
                "event_timestamp": [UTC_TS("2000-01-01")],
                "route_flights_7d": [1],
                "route_delay_rate_7d": [0.0],
                "route_mean_arr_delay_7d": [0.0],
            }
        ),
        "origin_departures": departures
        if departures is not None
        else pd.DataFrame(
            {
                "origin": ["EWR"],
                "event_timestamp": [UTC_TS("2000-01-01")],
                "origin_departures_3h": [1],
                "origin_dep_delay_rate_3h": [0.0],
                "origin_mean_dep_delay_3h": [0.0],
            }
        ),
    }
    for name, frame in frames.items():
        storage.write_parquet_atomic(frame, uris[name])


def _weather(rows):
    frame = pd.DataFrame(rows, columns=["origin", "event_timestamp", "temp"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    for name in feature_sources.WEATHER_FEATURES[1:]:
        frame[name] = 1.0
    return frame


def test_training_set_keeps_every_row_and_never_reads_the_future(tmp_path):
    root = str(tmp_path / "data")
    _write_sources(
        root,
        weather=_weather(
            [
                ("EWR", "2013-01-01 09:00", 1.0),
                ("EWR", "2013-01-01 10:01", 999.0),  # one minute after the event: must never be joined
                ("JFK", "2013-01-01 05:00", 2.0),  # 5 hours before: outside the 3-hour TTL
            ]
        ),
        carrier=pd.DataFrame(
            {
                "carrier": ["UA", "UA"],
                "event_timestamp": [UTC_TS("2013-01-01"), UTC_TS("2013-01-02")],
                "carrier_flights_7d": [10, 20],
                "carrier_delay_rate_7d": [0.1, 0.9],
                "carrier_mean_arr_delay_7d": [1.0, 9.0],
            }
        ),
    )
    store = applied_store(settings_for(tmp_path, root))
    entities = pd.DataFrame(
        {
            "row": [0, 1, 2, 3, 4],
            "origin": ["EWR", "JFK", "LGA", "EWR", "EWR"],
            "tailnum": ["N10156", None, "N10156", "N10156", "NOPLANE"],
            "carrier": ["UA", "UA", "UA", "UA", "UA"],
            "route": ["EWR-IAH"] * 5,
            "time_hour": pd.to_datetime(["2013-01-01 10:00"] * 4 + ["2013-01-01 11:00"], utc=True),
        }
    )

    result, report = features.historical_features(store, entities, "flight_delay_features", "time_hour")

    assert len(result) == report.rows_in == report.rows_out == 5
    assert result["row"].tolist() == [0, 1, 2, 3, 4]  # same rows, same order, passthrough columns kept
    assert result["temp"].tolist()[0] == 1.0 and result["temp"].tolist()[3] == 1.0  # duplicate rows both kept
    assert result["temp"].isna().tolist() == [False, True, True, False, False]
    assert 999.0 not in result["temp"].tolist()[:4]  # stamped after their event
    assert result.loc[4, "temp"] == 999.0  # the 11:00 row may read it: the join is by time
    # The carrier snapshot stamped 2013-01-02 00:00 is later than every event: all read the 01-01 one.
    assert result["carrier_delay_rate_7d"].tolist() == [0.1] * 5
    # Unknown and null tailnums keep their row with null aircraft features, and are counted.
    assert result["seats"].isna().tolist() == [False, True, False, False, True]
    assert report.missing["temp"] == 2 and report.missing["seats"] == 2
    assert report.rows_unmatched > 0  # Feast's file store would have dropped these rows: here they stay
    assert report.rows_with_missing == 5  # nothing in the hand-made route source is within its TTL


def test_rolling_delays_count_only_flights_landed_before_the_event(feature_root, tmp_path):
    store = applied_store(settings_for(tmp_path, feature_root))
    flights = feature_sources.with_route(data.flights(2)).sample(400, random_state=7)
    result, report = features.historical_features(store, flights, "flight_delay_features", "time_hour")
    assert report.rows_in == report.rows_out == 400

    everything = feature_sources.with_route(pd.concat([data.flights(1), data.flights(2)], ignore_index=True))
    landed = feature_sources.landing_times(everything)
    for _, row in result.head(60).iterrows():
        snapshot = row["time_hour"].floor("D")  # the latest daily snapshot at or before the departure hour
        window = (landed >= snapshot - timedelta(days=7)) & (landed < snapshot)
        counted = everything[window & (everything["carrier"] == row["carrier"])]
        assert landed[counted.index].max() < row["time_hour"]  # nothing landed after the event is counted
        assert row["carrier_flights_7d"] == len(counted)
        assert row["carrier_delay_rate_7d"] == pytest.approx((counted["arr_delay"] >= 15).mean())
        route = everything[window & (everything["route"] == row["route"])]
        if len(route):
            assert row["route_flights_7d"] == len(route)
            assert row["route_mean_arr_delay_7d"] == pytest.approx(route["arr_delay"].mean())


def test_origin_congestion_counts_only_departures_known_before_the_event(feature_root, tmp_path):
    store = applied_store(settings_for(tmp_path, feature_root))
    flights = feature_sources.with_route(data.flights(2))
    flights = flights[flights["dep_delay"].notna()].sample(300, random_state=11)
    result, report = features.historical_features(store, flights, "flight_delay_features", "time_hour")
    assert report.rows_in == report.rows_out == 300

    everything = pd.concat([data.flights(1), data.flights(2)], ignore_index=True)
    departed = feature_sources.departure_times(everything)
    scheduled = everything["time_hour"] + pd.to_timedelta(everything["sched_dep_time"] % 100, unit="min")
    for _, row in result.iterrows():
        # The hourly snapshot at the departure hour: departures that happened and were due before it.
        at = row["time_hour"]
        since = at - timedelta(hours=3)
        window = (departed < at) & (scheduled < at) & ((departed >= since) | (scheduled >= since))
        counted = everything[window & (everything["origin"] == row["origin"])]
        assert row["origin_departures_3h"] == len(counted)
        if len(counted):
            assert row["origin_mean_dep_delay_3h"] == pytest.approx(counted["dep_delay"].mean())
            assert row["origin_dep_delay_rate_3h"] == pytest.approx((counted["dep_delay"] >= 15).mean())


def _online(store, keys):
    return features.online_features(
        store, ["carrier_delays_7d:carrier_delay_rate_7d", "origin_weather_hourly:temp"], keys
    )


def test_the_as_of_join_equals_feasts_own_point_in_time_join(feature_root, tmp_path):
    """Our join must return what Feast's get_historical_features returns, wherever Feast keeps the row."""
    store = applied_store(settings_for(tmp_path, feature_root))
    flights = feature_sources.with_route(data.flights(2)).sample(150, random_state=3)
    ours, _ = features.historical_features(store, flights, "flight_delay_features", "time_hour")
    for view, names in features.feature_refs(store, "flight_delay_features").items():
        keys = features.join_keys(store, view)
        entity = flights[keys].astype(str).assign(event_timestamp=flights["time_hour"].to_numpy())
        entity = entity.drop_duplicates(ignore_index=True)
        theirs = store.get_historical_features(
            entity_df=entity, features=[f"{view}:{name}" for name in names]
        ).to_df()
        theirs["event_timestamp"] = pd.to_datetime(theirs["event_timestamp"], utc=True)
        mine = ours.assign(event_timestamp=ours["time_hour"])[[*keys, "event_timestamp", *names]]
        mine = mine.astype({key: str for key in keys}).drop_duplicates([*keys, "event_timestamp"])
        both = theirs.merge(mine, on=[*keys, "event_timestamp"], suffixes=("_feast", "_ours"))
        assert len(both) == len(theirs) > 0
        compared = 0
        for name in names:
            for feast_value, our_value in zip(both[f"{name}_feast"], both[f"{name}_ours"], strict=True):
                assert features.same_value(feast_value, our_value), (view, name, feast_value, our_value)
                compared += 1
        # Feast drops rows it has nothing for; ours keeps them with nulls, and nothing else differs.
        dropped = mine.merge(theirs[[*keys, "event_timestamp"]], how="left", indicator=True)
        assert dropped.loc[dropped["_merge"] == "left_only", list(names)].isna().all().all()
        assert compared > 0


def test_materialize_is_incremental_idempotent_and_never_rolls_back(feature_root, tmp_path):
    store = applied_store(settings_for(tmp_path, feature_root))
    keys = [{"carrier": c, "origin": o} for c, o in [("UA", "EWR"), ("AA", "JFK"), ("B6", "LGA")]]

    first = features.materialize(store, datetime(2013, 1, 15, tzinfo=UTC), timedelta(hours=6))
    assert first.first_run and first.end == datetime(2013, 1, 15, tzinfo=UTC)
    january = _online(store, keys)

    second = features.materialize(store, datetime(2013, 2, 1, tzinfo=UTC), timedelta(hours=6))
    assert not second.first_run
    assert second.start == datetime(2013, 1, 14, 18, tzinfo=UTC)  # last end minus the overlap
    february = _online(store, keys)
    assert february != january

    again = features.materialize(store, datetime(2013, 2, 1, tzinfo=UTC), timedelta(hours=6))
    assert _online(store, keys) == february and not again.clamped

    old = features.materialize(store, datetime(2013, 1, 10, tzinfo=UTC), timedelta(hours=6))
    assert old.clamped and old.end == datetime(2013, 2, 1, tzinfo=UTC)
    assert _online(store, keys) == february  # a cleared old run did not roll the online store back

    report = features.skew_check(store, "flight_delay_features", sample_size=25)
    assert report.checked == 275 and report.mismatched == 0, report.examples


def test_late_rows_inside_the_overlap_are_materialized(tmp_path):
    root = str(tmp_path / "data")
    _write_sources(root, weather=_weather([("EWR", "2013-01-01 09:00", 1.0)]))
    store = applied_store(settings_for(tmp_path, root))
    features.materialize(store, datetime(2013, 1, 1, 12, tzinfo=UTC), timedelta(hours=6))
    assert features.online_features(store, ["origin_weather_hourly:temp"], [{"origin": "EWR"}])["temp"] == [
        1.0
    ]

    # An observation stamped 11:00 arrives after the 12:00 materialization (late data).
    _write_sources(
        root, weather=_weather([("EWR", "2013-01-01 09:00", 1.0), ("EWR", "2013-01-01 11:00", 5.0)])
    )
    features.materialize(store, datetime(2013, 1, 1, 13, tzinfo=UTC), timedelta(hours=6))
    assert features.online_features(store, ["origin_weather_hourly:temp"], [{"origin": "EWR"}])["temp"] == [
        5.0
    ]


def test_skew_check_reports_an_online_value_that_differs(tmp_path):
    root = str(tmp_path / "data")
    _write_sources(
        root, weather=_weather([("EWR", "2013-01-01 09:00", 1.0), ("JFK", "2013-01-01 09:00", 2.0)])
    )
    store = applied_store(settings_for(tmp_path, root))
    features.materialize(store, datetime(2013, 1, 1, 10, tzinfo=UTC), timedelta(hours=6))
    assert features.skew_check(store, "flight_delay_features", sample_size=10).mismatched == 0

    # The offline source is corrected after materialization: the online store now serves a stale value.
    _write_sources(
        root, weather=_weather([("EWR", "2013-01-01 09:00", 1.5), ("JFK", "2013-01-01 09:00", 2.0)])
    )
    report = features.skew_check(store, "flight_delay_features", sample_size=10)
    assert report.mismatched == 1
    assert report.examples[0] | {"at": None} == {
        "view": "origin_weather_hourly",
        "key": {"origin": "EWR"},
        "feature": "temp",
        "online": 1.0,
        "offline": 1.5,
        "at": None,
    }


def test_redis_online_store_round_trip_and_cleanup(feature_root, tmp_path):
    require_redis()
    project = unique_project()
    store = applied_store(settings_for(tmp_path, feature_root, redis_online_store(), project=project))
    try:
        features.materialize(store, datetime(2013, 2, 1, tzinfo=UTC), timedelta(hours=6))
        assert redis_keys(project) > 100
        values = features.online_features(
            store,
            "flight_delay_features",
            [{"origin": "EWR", "tailnum": "N14228", "carrier": "UA", "route": "EWR-IAH"}],
        )
        assert values["seats"] == [149] and values["temp"][0] is not None
        report = features.skew_check(store, "flight_delay_features", sample_size=25)
        assert report.checked == 275 and report.mismatched == 0, report.examples
    finally:
        store.teardown()
    assert redis_keys(project) == 0

"""The Models view's figures, shaped without a registry: intervals from metric steps, limits from verdicts,
links that can only be web or same-host links, JSON that cannot leave its script element."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mlops_ops.core.promotion import AliasMove
from mlops_ops.ui import model_charts
from mlops_ops.ui.model_charts import IntervalDrift, MetricPoint, MonitoringTimeline, VersionFigures
from mlops_ops.ui.model_data import decay_thresholds
from mlops_ops.ui.model_page import json_for_script, render_model_page

DAY_MS = 86_400_000


def _point(day: int, value: float) -> MetricPoint:
    """A point of the daily interval starting ``day`` days after the epoch."""
    return MetricPoint(step=day, end_ms=(day + 1) * DAY_MS, value=value)


def test_an_interval_is_read_back_from_its_step_and_end():
    start, end = model_charts.interval_of(_point(15706, 0.2))
    assert (start, end) == (datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 2, tzinfo=UTC))
    assert model_charts.interval_key(start, end) == "20130101T0000Z_20130102T0000Z"
    hourly = MetricPoint(step=15706 * 24 + 5, end_ms=(15706 * 24 + 6) * 3_600_000, value=1.0)
    assert model_charts.interval_of(hourly)[0] == datetime(2013, 1, 1, 5, tzinfo=UTC)


def test_limits_are_read_from_the_verdicts():
    assert (
        model_charts.drift_threshold("DRIFT: 3 of 8 columns drifted (share 0.38, threshold 0.5): a, b") == 0.5
    )
    assert model_charts.drift_threshold(None) is None
    assert decay_thresholds(
        json.dumps(["roc_auc 0.6410 (must be >= 0.6500)", "rmse 63.1 (must be <= 62.0)"])
    ) == [
        {"metric": "roc_auc", "kind": "floor", "value": 0.65},
        {"metric": "rmse", "kind": "ceiling", "value": 62.0},
    ]
    assert decay_thresholds("not json") == [] and decay_thresholds(json.dumps({"a": 1})) == []


def test_the_task_is_guessed_from_the_metrics_when_no_spec_names_it():
    assert model_charts.infer_task(["rmse", "r2"]) == "regression"
    assert model_charts.infer_task(["f1_macro"]) == "multiclass"
    assert model_charts.infer_task(["roc_auc"]) == "binary"


def _data(**overrides):
    moves = [
        AliasMove(
            "m", "champion", None, "1", "promotion", "ana", "first", "2013-01-01T00:00:00", "promote/r1", 1
        ),
        AliasMove("m", "champion", "1", "2", "force", "lead", "incident", "2013-01-03T00:00:00", "", 2),
    ]
    arguments = dict(
        name="m",
        task="binary",
        versions=[
            VersionFigures(
                "2", 2, {"roc_auc": 0.7}, version_url="javascript:alert(1)", airflow_run="retrain/r 2"
            ),
            VersionFigures(
                "1", 1, {"roc_auc": 0.68, "log_loss": float("nan")}, version_url="http://mlflow/#/v1"
            ),
        ],
        aliases={"champion": "2", "challenger": "1"},
        gate_policy={"min_metrics": {"roc_auc": 0.66, "not_drawn": 1.0}, "max_metrics": {"log_loss": 0.5}},
        timelines=[
            MonitoringTimeline(
                "2",
                {"drift.share": [_point(15707, 0.5)], "drift.a.score": [_point(15707, 0.3)]},
                run_url="http://mlflow/#/runs/b",
            ),
            MonitoringTimeline(
                "1",
                {
                    "drift.share": [_point(15706, 0.1), _point(15707, 0.9)],
                    "drift.a.score": [_point(15706, 0.01)],
                    "drift.b.score": [_point(15706, 0.2), _point(15707, 0.2)],
                    "rows": [_point(15706, 100)],
                },
            ),
        ],
        interval_drift={
            "20130101T0000Z_20130102T0000Z": IntervalDrift(("b",), {"b": ["new"]}),
            "20130102T0000Z_20130103T0000Z": IntervalDrift(("b", "a"), {}),
        },
        drift_summary="no dataset drift: 0 of 2 columns drifted (share 0.00, threshold 0.5)",
        decay_thresholds=[{"metric": "roc_auc", "kind": "floor", "value": 0.6}],
        moves=moves,
        untrusted={"challenger": "moved outside the project"},
        requests=[],
    )
    arguments.update(overrides)
    return model_charts.chart_data(**arguments)


def test_chart_data_orders_versions_and_intervals_and_the_newest_version_wins_an_interval():
    data = _data()
    assert [version["version"] for version in data["versions"]] == ["1", "2"]
    assert data["versions"][1]["aliases"] == ["champion"]
    assert data["versions"][0]["metrics"] == {"roc_auc": 0.68, "log_loss": None}  # NaN is no point
    assert data["holdout"]["thresholds"] == [
        {"metric": "roc_auc", "kind": "floor", "value": 0.66},
        {"metric": "log_loss", "kind": "ceiling", "value": 0.5},
    ]
    assert [row["key"] for row in data["intervals"]] == [
        "20130101T0000Z_20130102T0000Z",
        "20130102T0000Z_20130103T0000Z",
    ]
    assert data["drift"]["share"] == [0.1, 0.5] and data["intervals"][1]["version"] == "2"
    assert data["drift"]["columns"] == ["b", "a"] and data["drift"]["drift_counts"] == [2, 1]
    assert data["drift"]["new_categories"] == {"b": ["new"]} and data["drift"]["threshold"] == 0.5
    assert data["volume"]["rows"] == [100.0, None]
    assert [move["kind"] for move in data["moves"]] == ["promotion", "force"]
    assert data["moves"][0]["airflow_url"] == "/dags/promote/runs/r1"
    assert data["out_of_band"] == [
        {"alias": "challenger", "version": "1", "why": "moved outside the project"}
    ]


def test_only_web_and_same_host_links_are_kept():
    data = _data()
    assert data["versions"][1]["version_url"] is None  # javascript: is no link
    assert data["versions"][1]["airflow_url"] == "/dags/retrain/runs/r%202"
    assert data["versions"][0]["version_url"] == "http://mlflow/#/v1"
    assert model_charts._web("//evil.example/x") is None and model_charts._web("/dags/x") == "/dags/x"


def test_the_page_cannot_be_broken_out_of_by_registry_text():
    hostile = "</script><script>alert(1)</script><!--"
    data = _data(name=hostile, untrusted={"challenger": hostile})
    page = render_model_page(data, "../static")
    assert "<script>alert(1)" not in page and "&lt;/script&gt;" in page
    embedded = page.split('id="model-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded)["model"] == hostile
    assert "<" not in json_for_script({"x": hostile}) and "&" not in json_for_script({"x": "&"})


def test_every_decay_limit_is_drawn_kept_or_broken_and_old_tags_fall_back_to_the_reasons():
    from mlops_ops.ui.model_data import decay_limits

    limits = json.dumps(
        [
            {"metric": "roc_auc", "kind": "floor", "value": 0.65},
            {"metric": "rmse", "kind": "ceiling", "value": 62.0, "max_drop": 5.0},
            {"metric": "bad", "kind": "sideways", "value": 1.0},
            {"metric": "nan", "kind": "floor", "value": "NaN"},
        ]
    )
    assert decay_limits(limits) == [
        {"metric": "roc_auc", "kind": "floor", "value": 0.65},
        {"metric": "rmse", "kind": "ceiling", "value": 62.0},
    ]
    reasons = json.dumps(["roc_auc 0.6410 (must be >= 0.6500)"])
    assert decay_limits(None, reasons) == [{"metric": "roc_auc", "kind": "floor", "value": 0.65}]
    assert decay_limits("not json", reasons) == decay_limits(None, reasons)


def test_scored_rows_come_from_the_drift_check_until_the_labels_arrive_and_intervals_link_their_airflow_run():
    data = _data(
        timelines=[
            MonitoringTimeline(
                "1",
                {
                    "drift.share": [_point(15706, 0.1), _point(15707, 0.2)],
                    "drift.current_rows": [_point(15706, 90), _point(15707, 95)],
                    "rows": [_point(15706, 100)],
                    "prediction.mean": [_point(15706, 0.2), _point(15707, 0.3)],
                    "positive_rate": [_point(15706, 0.25)],
                },
            )
        ],
        interval_drift={
            "20130101T0000Z_20130102T0000Z": IntervalDrift((), {}, airflow_run="monitor/scheduled 1"),
        },
    )
    assert data["volume"]["rows"] == [100.0, 95.0]  # the performance check's count wins where it exists
    assert data["distribution"]["metrics"] == ["prediction.mean", "positive_rate"]
    assert data["distribution"]["values"]["prediction.mean"] == [0.2, 0.3]
    assert [row["airflow_url"] for row in data["intervals"]] == ["/dags/monitor/runs/scheduled%201", None]


def test_a_multiclass_class_mix_is_its_predicted_shares_then_its_observed_ones():
    shares = {
        "prediction.share.b": [_point(15706, 0.6)],
        "prediction.share.a": [_point(15706, 0.4)],
        "observed_share.a": [_point(15706, 0.5)],
        "observed_share.b": [_point(15706, 0.5)],
        "drift.share": [_point(15706, 0.0)],
    }
    data = _data(task="multiclass", timelines=[MonitoringTimeline("1", shares)])
    assert data["distribution"]["metrics"] == [
        "prediction.share.a",
        "prediction.share.b",
        "observed_share.a",
        "observed_share.b",
    ]

"""The Grafana dashboard in include/grafana reads the series the monitoring pushes and the stream scorer serves,
through a datasource variable."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlops_ops.operators import performance

DASHBOARD = Path(__file__).resolve().parents[2] / "include" / "grafana" / "mlops-ops-monitoring.json"
#: Pushed by PerformanceMonitorOperator (its module's constants) and by the drift check (agreed names).
PERFORMANCE = {
    performance.LIVE_METRIC,
    performance.BUSINESS_COST_PER_ROW,
    performance.BUSINESS_COST_TOTAL,
    performance.LABEL_COVERAGE,
    performance.LABELLED_ROWS,
    performance.RETRAIN_REQUESTED,
}
DRIFT = {"mlops_drift_share", "mlops_column_drift_score"}


def _stream_series() -> set[str]:
    """The series the stream scorer serves (``_Metrics``, read from its registry): counters as ``<name>_total``,
    histograms as ``<name>_bucket`` (what a quantile reads), gauges as they are."""
    from types import SimpleNamespace

    from mlops_ops.streaming.scorer import _Metrics

    config = SimpleNamespace(serving=SimpleNamespace(model_name="m"), stream="s", group="g")
    suffix = {"counter": "_total", "histogram": "_bucket", "gauge": ""}
    return {metric.name + suffix[metric.type] for metric in _Metrics(config).registry.collect()}


def test_every_panel_queries_the_prometheus_datasource_variable_for_pushed_series():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    queried = set()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            names = set(re.findall(r"\b(mlops_[a-z_]+)\{", target["expr"]))
            assert names, f"{panel['title']}: {target['expr']} reads no mlops_ series"
            # Every query keeps to the model chosen at the top.
            assert 'model="$model"' in target["expr"], panel["title"]
            queried |= names
    stream = _stream_series()
    assert queried <= PERFORMANCE | DRIFT | stream, queried - PERFORMANCE - DRIFT - stream
    assert PERFORMANCE | DRIFT <= queried, (PERFORMANCE | DRIFT) - queried
    # The streaming panels: events/s by outcome, batch and end-to-end latency, pending and lag.
    assert {
        "mlops_stream_events_total",
        "mlops_stream_batch_seconds_bucket",
        "mlops_stream_end_to_end_seconds_bucket",
        "mlops_stream_pending",
        "mlops_stream_lag",
    } <= queried & stream
    assert "label_values(mlops_live_metric, model)" in variables["model"]["definition"]

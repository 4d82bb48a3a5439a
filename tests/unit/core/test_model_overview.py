"""The Models view's content and HTML: aliases, history newest first, gate and drift verdicts, escaping."""

from __future__ import annotations

from mlops_ops.core import model_overview
from mlops_ops.core.promotion import AliasMove


def _move(
    sequence: int, to_version: str, from_version: str | None, kind="promotion", at="2026-11-01"
) -> AliasMove:
    return AliasMove(
        model_name="m",
        alias="champion",
        from_version=from_version,
        to_version=to_version,
        kind=kind,
        actor="ana",
        reason="r",
        at=at,
        sequence=sequence,
    )


def test_alias_history_reads_every_alias_newest_first():
    tags = {
        _move(1, "1", None).tag_key(): _move(1, "1", None).to_json(),
        _move(2, "2", "1", at="2026-11-02").tag_key(): _move(2, "2", "1", at="2026-11-02").to_json(),
        "mlops.history.challenger.000001": AliasMove(
            "m", "challenger", None, "3", "promotion", "x", "y", "2026-11-03", sequence=1
        ).to_json(),
        "unrelated": "tag",
    }
    moves = model_overview.alias_history(tags)
    assert [(move.alias, move.to_version) for move in moves] == [
        ("challenger", "3"),
        ("champion", "2"),
        ("champion", "1"),
    ]


def test_drift_verdict_keeps_only_drift_tags():
    assert model_overview.drift_verdict({"mlops.drift.status": "drift", "mlops.data_version": "x"}) == {
        "status": "drift"
    }
    assert model_overview.drift_verdict({}) == {}


def test_page_shows_champion_challenger_gate_history_and_none_yet():
    champion = model_overview.version_summary(
        "2",
        "run2",
        {"mlops.gate.passed": "true", "mlops.data_version": "sha256:aa"},
        "http://ui/#/models/m/versions/2",
    )
    model = model_overview.ModelOverview(
        name="m",
        aliases={"champion": champion},
        history=[_move(2, "2", "1", kind="rollback")],
        latest_gate=model_overview.gate_summary_of(
            "run3", {"mlops.gate.passed": "false", "mlops.gate.summary": "roc_auc 0.6 < 0.7"}, 1, None
        ),
        url="http://ui/#/models/m",
    )
    html = model_overview.render_page([model], "sqlite:///x.db")
    assert '<a href="http://ui/#/models/m/versions/2"' in html and "passed" in html
    assert '<tr data-alias="challenger"><td>challenger</td><td colspan="3">none</td></tr>' in html
    assert "<strong>FAILED</strong>" in html and "roc_auc 0.6 &lt; 0.7" in html
    assert '<p class="drift">none yet</p>' in html
    assert "<td>rollback</td><td>1</td><td>2</td>" in html


def test_registry_text_is_escaped_and_only_http_links_are_made():
    model = model_overview.ModelOverview(
        name="<script>alert(1)</script>",
        aliases={},
        history=[],
        latest_gate=None,
        drift={"status": "<b>drift</b>"},
        drift_version="1",
        url="javascript:alert(1)",
    )
    html = model_overview.render_page([model], "x")
    assert "<script>" not in html and "<b>drift</b>" not in html
    assert "javascript:" not in html
    assert '<p class="gate">none yet</p>' in html
    assert model_overview.render_page([], "x").count("No registered models yet") == 1

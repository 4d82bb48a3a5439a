"""PromoteOperator and RollbackOperator against a real local MLflow registry."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core import promotion
from mlops_ops.operators.promotion import PromoteOperator, PromotionRefused, RollbackOperator
from tests.trust_support import isolated_trust, save_sklearn_model, sign_version
from tests.unit.operators.support import make_ti

CONN = "mlflow_promotion"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """Versions 1-3 of model ``m`` (1 and 2 passed a gate, 3 did not; all signed), no alias yet."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_PROMOTION", json.dumps({"conn_type": "mlflow", "host": uri}))
    isolated_trust(monkeypatch, tmp_path / "trust")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    features = np.arange(40, dtype=float).reshape(20, 2)
    for number, passed in ((1, True), (2, True), (3, False)):
        # A real (tiny) model: every move loads it as a consumer would.
        model = LogisticRegression(C=float(number)).fit(features, np.arange(20) % 2)
        source = save_sklearn_model(tmp_path / f"model{number}", model)
        client.create_model_version("m", source=source, tags={"mlops.gate.passed": str(passed).lower()})
        sign_version(client, "m", str(number), gate_passed=passed)
    return client


def promote(version, expected, **kwargs):
    return PromoteOperator(
        task_id="promote",
        model_name="m",
        version=version,
        expected_version=expected,
        mlflow_conn_id=CONN,
        # These versions have no training run to hold a card: the card is tested end to end in e2e.
        model_card=kwargs.pop("model_card", False),
        actor=kwargs.pop("actor", "ana"),
        reason=kwargs.pop("reason", "better on October"),
        **kwargs,
    ).execute(context={"ti": make_ti("manual__promote", "promote")})


def rollback(**kwargs):
    return RollbackOperator(
        task_id="rollback", model_name="m", mlflow_conn_id=CONN, actor="bo", **kwargs
    ).execute(context={"ti": make_ti("manual__rollback", "rollback")})


def aliases(client):
    return {alias: str(version) for alias, version in client.get_registered_model("m").aliases.items()}


def moves(client):
    return promotion.history(dict(client.get_registered_model("m").tags), "champion")


def test_first_promotion_then_a_second_one_are_recorded(registry):
    first = promote("1", None)
    second = promote("2", "1")

    assert aliases(registry) == {"champion": "2"}
    assert [(m.from_version, m.to_version, m.kind, m.actor) for m in moves(registry)] == [
        (None, "1", "promotion", "ana"),
        ("1", "2", "promotion", "ana"),
    ]
    assert (first["sequence"], second["sequence"]) == (1, 2)
    assert json.dumps(second) and second["model_uri"] == "models:/m/2"
    promoted = json.loads(registry.get_model_version("m", "2").tags[promotion.PROMOTED])
    demoted = json.loads(registry.get_model_version("m", "1").tags[promotion.DEMOTED])
    assert promoted["by"] == "ana" and promoted["from"] == "1"
    assert demoted["to"] == "2" and demoted["airflow_run"] == "retrain/manual__promote"


def test_a_stale_expectation_changes_nothing(registry):
    """Two promotions decided against the same champion: the second finds it moved and is refused."""
    promote("1", None)
    promote("2", "1")
    with pytest.raises(PromotionRefused, match="points at version 2, not at version 1"):
        promote("1", "1")
    assert aliases(registry) == {"champion": "2"}
    assert len(moves(registry)) == 2


@pytest.mark.parametrize(
    "version, expected, options, words",
    [
        ("9", None, {}, "does not exist"),
        ("3", None, {}, "has not passed an evaluation gate"),
        ("3", None, {"force": True, "reason": " "}, "needs a reason"),
        ("3", None, {"force": True, "actor": ""}, "needs the name"),
    ],
    ids=["unknown version", "no gate", "force without reason", "force without actor"],
)
def test_refused_promotions_change_nothing(registry, version, expected, options, words):
    with pytest.raises(PromotionRefused, match=words) as raised:
        promote(version, expected, **options)
    assert isinstance(raised.value, AirflowFailException)
    assert aliases(registry) == {}
    assert moves(registry) == []


def test_a_model_card_template_that_does_not_compile_refuses_the_promotion_before_anything_moves(
    registry, tmp_path
):
    (tmp_path / "card.md.j2").write_text("{% for x in %}")
    with pytest.raises(PromotionRefused, match="promotion refused, nothing was changed: model card template"):
        promote("1", None, model_card=True, model_card_templates={"markdown": str(tmp_path / "card.md.j2")})
    with pytest.raises(PromotionRefused, match="not found"):
        promote("1", None, model_card=True, model_card_templates={"html": "include/no/card.html.j2"})
    # Compiles, but fails on the facts (a misspelt name): found by rendering before the move.
    (tmp_path / "typo.md.j2").write_text("# {{ facts.modle_name }}")
    with pytest.raises(PromotionRefused, match="nothing was changed: model card template .*typo.md.j2"):
        promote("1", None, model_card=True, model_card_templates={"markdown": str(tmp_path / "typo.md.j2")})
    assert aliases(registry) == {}
    assert moves(registry) == []


def test_force_promotes_an_ungated_version_and_says_so(registry):
    result = promote("3", None, force="true", reason="hotfix for a broken feature", actor="oncall")
    assert result["kind"] == "forced promotion"
    assert aliases(registry) == {"champion": "3"}
    assert moves(registry)[-1].reason == "hotfix for a broken feature"


def test_a_retry_after_the_alias_moved_records_once(registry):
    promote("1", None)
    again = promote("1", None)
    assert again["sequence"] == 1
    assert len(moves(registry)) == 1


def test_a_retry_that_died_between_history_and_version_tags_completes_them(registry):
    promote("1", None)
    registry.delete_model_version_tag("m", "1", promotion.PROMOTED)  # the try died after the history tag
    again = promote("1", None)
    assert again["sequence"] == 1 and len(moves(registry)) == 1
    promoted = json.loads(registry.get_model_version("m", "1").tags[promotion.PROMOTED])
    assert promoted["to"] == "1" and promoted["airflow_run"] == "retrain/manual__promote"


def test_a_retry_that_died_before_the_history_completes_it(registry):
    registry.set_registered_model_alias("m", "champion", "1")  # the alias moved, then the try was killed
    result = promote("1", None)
    assert result["from_version"] is None and result["to_version"] == "1"
    assert len(moves(registry)) == 1


def test_rollback_to_the_previous_champion_is_audited(registry):
    promote("1", None)
    promote("2", "1")
    result = rollback(reason="v2 mispredicts holidays")
    assert aliases(registry) == {"champion": "1"}
    assert (result["kind"], result["from_version"], result["to_version"]) == ("rollback", "2", "1")
    assert moves(registry)[-1].actor == "bo"


@pytest.mark.parametrize(
    "setup, options, words",
    [
        ([], {"reason": "x"}, "no recorded 'champion' move"),
        ([("1", None)], {"reason": "x"}, "no earlier version"),
        (
            [("1", None), ("2", "1")],
            {"reason": "x", "target_version": "3"},
            "never passed an evaluation gate",
        ),
        ([("1", None), ("2", "1")], {"reason": ""}, "needs a reason"),
    ],
    ids=["no champion", "no history", "never gated", "empty reason"],
)
def test_refused_rollbacks_change_nothing(registry, setup, options, words):
    for version, expected in setup:
        promote(version, expected)
    before = (aliases(registry), len(moves(registry)))
    with pytest.raises(PromotionRefused, match=words):
        rollback(**options)
    assert (aliases(registry), len(moves(registry))) == before


def test_another_run_promoting_the_same_version_meanwhile_is_refused(registry):
    """Two runs decided against champion v1 to promote v2: the second finds v2 already there and loses."""
    promote("1", None)
    promote("2", "1")
    other_run = PromoteOperator(
        task_id="promote",
        model_name="m",
        version="2",
        expected_version="1",
        mlflow_conn_id=CONN,
        actor="bo",
        reason="me too",
        model_card=False,
    )
    with pytest.raises(PromotionRefused, match="points at version 2, not at version 1"):
        other_run.execute(context={"ti": make_ti("manual__other", "promote")})
    assert len(moves(registry)) == 2


def test_the_approval_body_is_a_readable_markdown_diff():
    from mlops_ops.operators.promotion import approval_body

    decision = {
        "passed": False,
        "challenger_metrics": {"roc_auc": 0.70131, "rows": 10017.0},
        "champion_metrics": {"roc_auc": 0.68, "rows": 9000},
        "checks": [
            {
                "name": "roc_auc >= floor",
                "value": 0.70131,
                "threshold": 0.72,
                "comparison": ">=",
                "passed": False,
            }
        ],
    }
    body = approval_body("flight_delay", "2", "1", decision, "sha256:new", None)
    lines = body.splitlines()
    assert "| metric | challenger | champion | difference |" in lines
    assert "| roc_auc | 0.7013 | 0.6800 | +0.0213 |" in lines
    assert "| rows | 10,017 | 9,000 | +1,017 |" in lines
    assert "| roc_auc >= floor | 0.7013 | >= 0.7200 | FAIL |" in lines
    assert "Gate: **FAILED**" in lines
    # Separate list items: consecutive plain lines would render as one run-on paragraph.
    assert lines[-2:] == ["- Data version: `sha256:new`", "- Champion's data version: `n/a`"]

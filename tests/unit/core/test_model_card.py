"""Tests of the model card: rendering from plain facts, facts from MLflow tags, and the MLflow round trip."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from mlops_ops.core import lineage
from mlops_ops.core.errors import DataError
from mlops_ops.core.model_card import (
    DESCRIPTION_MARKER,
    HTML_URI_TAG,
    MARKDOWN_URI_TAG,
    SECTIONS,
    ModelCardFacts,
    build_facts,
    facts_from_version,
    log_model_card,
    render_html,
    render_markdown,
)

DECISION = {
    "passed": False,
    "checks": [
        {
            "name": "roc_auc >= floor",
            "passed": True,
            "value": 0.7123,
            "threshold": 0.6,
            "comparison": ">=",
            "detail": "",
        },
        {
            "name": "log_loss regression vs champion",
            "passed": False,
            "value": -0.02,
            "threshold": -0.01,
            "comparison": ">=",
            "detail": "challenger 0.5200, champion 0.5000",
        },
    ],
    "challenger_metrics": {"roc_auc": 0.7123, "log_loss": 0.52, "accuracy": None},
    "champion_metrics": {"roc_auc": 0.7001, "log_loss": 0.50, "accuracy": 0.81},
    "champion_version": "2",
    "policy": {"min_metrics": {"roc_auc": 0.6}, "max_regression": {"log_loss": 0.01}},
    "run_id": "r123",
}


def make_facts(**overrides) -> ModelCardFacts:
    values = {
        "model_name": "delay",
        "version": "3",
        "alias": "champion",
        "description": "Rank departures by risk of delay <script>alert('x')</script> & more",
        "run_id": "r123",
        "created_at": "2024-06-01T10:00:00+00:00",
        "promoted_at": None,
        "data_version": "dv-abc",
        "data_files": ["s3://bucket/a.parquet", "s3://bucket/b.parquet"],
        "data_date_range": ("2013-01-01T05:00", "2013-10-31T23:00"),
        "training_rows": 1234,
        "target": "is_delayed",
        "categorical_features": ["carrier", "origin"],
        "numerical_features": ["distance"],
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 50, "learning_rate": 0.1},
        "holdout": {"time_column": "time_hour", "fraction": 0.2},
        "seed": "7",
        "code_revision": "deadbeef",
        "library_versions": {"scikit-learn": "1.9.0", "mlflow": "3.17.2"},
        "airflow": {"dag_id": "retrain", "run_id": "manual__1", "task_id": "train"},
        "trigger_reason": "new data",
        "metrics": {"roc_auc": 0.71234, "log_loss": float("nan"), "rows": 10017.0, "recall": 1.0},
        "gate_decision": DECISION,
        "previous_champion": "2",
        "approver": "ana",
        "approval_comment": "looks fine | ship it",
        "forced": True,
        "force_reason": "log_loss regression accepted for recall",
        "known_limitations": ["Not evaluated on winter months."],
        "artifact_sha256": "f" * 64,
    }
    return ModelCardFacts(**{**values, **overrides})


# --- rendering --------------------------------------------------------------------------------------------


def test_markdown_has_every_section_and_the_facts():
    text = render_markdown(make_facts())

    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == list(SECTIONS)
    assert text.startswith("# Model card: delay v3\n")
    assert "| roc_auc | 0.7123 |" in text
    assert "| log_loss | n/a |" in text  # NaN metric
    assert "| rows | 10,017 |" in text and "| recall | 1.0000 |" in text  # a count (MLflow's float) vs a rate
    assert "**Files:** 2" in text
    assert "**Date range:** 2013-01-01T05:00 to 2013-10-31T23:00" in text
    assert "**Categorical:** carrier, origin" in text
    assert "| max_iter | 50 |" in text
    assert "**Seed:** 7" in text
    assert "the latest 20% of the rows by time_hour" in text
    assert "| log_loss regression vs champion | -0.0200 | -0.0100 | >= | FAIL |" in text
    assert "| roc_auc >= floor | 0.7123 | 0.6000 | >= | PASS |" in text
    assert "Gate: FAILED (1 of 2 checks failed)." in text
    assert "**Airflow DAG:** retrain" in text
    assert "| scikit-learn | 1.9.0 |" in text
    assert "**Forced:** yes: log_loss regression accepted for recall" in text
    assert "**Comment:** looks fine \\| ship it" in text  # a pipe does not break the list item/table
    assert "**Promoted:** n/a" in text
    assert "- Not evaluated on winter months." in text
    assert "<script>" not in text


def test_comparison_shows_differences_with_their_sign_and_who_is_better():
    text = render_markdown(make_facts())

    assert "| roc_auc | 0.7123 | 0.7001 | +0.0122 | this version |" in text
    assert "| log_loss | 0.5200 | 0.5000 | +0.0200 | champion |" in text  # lower is better for log_loss
    assert "| accuracy | n/a | 0.8100 | n/a | n/a |" in text
    assert "Champion v2" in text


def test_html_is_self_contained_escaped_and_complete():
    page = render_html(make_facts())

    for heading in SECTIONS:
        assert f">{heading}</h2>" in page
    assert "<script>" not in page and "</script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert not re.search(r"""(src|href)\s*=""", page)  # loads nothing
    assert '<td class="fail">FAIL</td>' in page and '<td class="pass">PASS</td>' in page
    assert "<td>+0.0122</td>" in page
    assert "<td>0.7123</td>" in page
    assert "<td>n/a</td>" in page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_missing_facts_are_shown_as_na():
    facts = ModelCardFacts(model_name="m", version="1")

    text, page = render_markdown(facts), render_html(facts)

    for heading in SECTIONS:
        assert f"## {heading}" in text and f">{heading}</h2>" in page
    assert "**Approver:** n/a" in text
    assert "**Code revision:** n/a" in text
    assert "**Date range:** n/a" in text
    assert "**Files:** 0" in text
    assert "**Forced:** no" in text
    assert "Gate: no gate decision was recorded" in text
    assert "Previous champion: n/a." in text
    assert "<dt>Approver</dt><dd>n/a</dd>" in page


def test_a_first_model_has_no_comparison_table():
    decision = {**DECISION, "passed": True, "champion_metrics": None, "champion_version": None}

    text = render_markdown(make_facts(gate_decision=decision, previous_champion=None))

    assert "There was no champion when the gate evaluated this model." in text
    assert "| Difference |" not in text
    assert "Gate: PASSED." in text


def test_a_malformed_gate_decision_still_renders():
    decision = {"passed": "yes", "checks": ["not a check", {"name": "x"}], "champion_metrics": [1, 2]}

    text = render_markdown(make_facts(gate_decision=decision))

    assert "| x | n/a | n/a | n/a | FAIL | n/a |" in text


def test_markdown_values_cannot_open_html_tags():
    text = render_markdown(
        make_facts(approval_comment="<img src=x onerror=alert(1)>", known_limitations=["a <= b"])
    )

    assert "<img" not in text and "&lt;img" in text
    assert "- a <= b" in text


def test_a_teams_own_templates_replace_the_wheels(tmp_path):
    """The template is the team's; the content (facts, sections, escaping) is the card's."""
    (tmp_path / "card.md.j2").write_text(
        "# {{ facts.model_name }} v{{ facts.version }} for dispatchers\n"
        "{% for section in sections if section.heading in ('Evaluation', 'Approval') %}\n"
        "## {{ section.heading }}\n{% for block in section.blocks %}{{ block | md_block }}\n{% endfor %}"
        "{% endfor %}"
    )
    (tmp_path / "card.html.j2").write_text("<h1>{{ title }}</h1><p>{{ facts.description }}</p>")
    text = render_markdown(make_facts(), tmp_path / "card.md.j2")
    assert text.startswith("# delay v3 for dispatchers\n")
    assert re.findall(r"^## (.+)$", text, flags=re.MULTILINE) == ["Evaluation", "Approval"]
    assert "- **Approver:** ana" in text
    page = render_html(make_facts(), tmp_path / "card.html.j2")
    # Autoescape: a team's template cannot let a value become markup.
    assert "<script>" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ facts.__class__.__mro__ }}", "model card template .*card.md.j2"),  # the sandbox
        ("{% for x in %}", "TemplateSyntaxError"),
        ("{{ no_such_value }}", "UndefinedError"),
    ],
)
def test_a_template_that_fails_is_named_and_reaches_no_internals(tmp_path, template, words):
    (tmp_path / "card.md.j2").write_text(template)
    with pytest.raises(DataError, match=words):
        render_markdown(make_facts(), tmp_path / "card.md.j2")


def test_templates_are_checked_before_use(tmp_path):
    from mlops_ops.core.model_card import check_templates

    (tmp_path / "good.md.j2").write_text("# {{ title }}")
    (tmp_path / "bad.html.j2").write_text("{% if %}")
    assert check_templates({"markdown": tmp_path / "good.md.j2"}) == {"markdown": tmp_path / "good.md.j2"}
    with pytest.raises(DataError, match=r"unknown format\(s\) \['pdf'\]"):
        check_templates({"pdf": tmp_path / "good.md.j2"})
    with pytest.raises(DataError, match="bad.html.j2: TemplateSyntaxError"):
        check_templates({"html": tmp_path / "bad.html.j2"})
    with pytest.raises(DataError, match="missing.md.j2: TemplateNotFound"):
        check_templates({"markdown": tmp_path / "missing.md.j2"})


def test_the_core_module_imports_no_heavy_library():
    code = (
        "import sys, mlops_ops.core.model_card; "
        "print(sorted({'mlflow', 'pandas', 'airflow', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- facts from tags --------------------------------------------------------------------------------------


SPEC = {
    "name": "delay",
    "target": "is_delayed",
    "categorical_features": ["carrier"],
    "numerical_features": ["distance", "hour"],
    "estimator": "sklearn.linear_model.LogisticRegression",
    "params": {"C": 1.0},
    "holdout": {"time_column": "time_hour", "fraction": 0.25},
    "seed": 3,
    "description": "Delay risk for dispatchers",
}


def test_facts_from_version_reads_the_lineage_tags():
    version_tags = {
        lineage.DATA_VERSION: "dv-1",
        lineage.SEED: "3",
        lineage.CODE_REVISION: "abc",
        lineage.TRIGGER_REASON: "",  # the registry writes "" when none was given
        lineage.ARTIFACT_SHA256: "0" * 64,
        lineage.TRAINING_RUN: "run-1",
    }
    run_tags = {
        lineage.MODEL_SPEC: json.dumps(SPEC),
        lineage.DATA_FILES: json.dumps(["a.parquet", "b.parquet", "c.parquet"]),
        lineage.TRIGGER_REASON: "asset update",
        lineage.CODE_REVISION: "older",
        lineage.DAG_ID: "retrain",
        lineage.RUN_ID: "scheduled__1",
        lineage.TASK_ID: "train",
        "mlops.library.numpy": "2.4.0",
    }
    metrics = {"holdout_roc_auc": 0.7, "holdout_log_loss": 0.5, "rows_train": 100.0, "gate_champion_x": 1.0}

    facts = facts_from_version(
        version_tags,
        run_tags,
        metrics,
        model_name="delay",
        version="4",
        run_params={"param.C": "0.5", "estimator": "pkg.mod:train", "seed": "3"},
        approver="ana",
    )

    assert facts.data_version == "dv-1"
    assert facts.code_revision == "abc"  # the version's tag wins
    assert facts.trigger_reason == "asset update"  # an empty version tag does not hide the run's
    assert facts.data_files == ("a.parquet", "b.parquet", "c.parquet")
    assert facts.metrics == {"roc_auc": 0.7, "log_loss": 0.5}
    assert facts.training_rows == 100
    assert facts.target == "is_delayed"
    assert facts.numerical_features == ("distance", "hour")
    assert facts.params == {"C": "0.5"}  # what was used, not the spec's default
    assert facts.estimator == "pkg.mod:train"
    assert facts.description == "Delay risk for dispatchers"
    assert facts.library_versions == {"numpy": "2.4.0"}
    assert facts.airflow == {"dag_id": "retrain", "run_id": "scheduled__1", "task_id": "train"}
    assert facts.run_id == "run-1"
    assert facts.approver == "ana"


@pytest.mark.parametrize(
    "run_tags",
    [
        {},
        {lineage.MODEL_SPEC: "{not json", lineage.DATA_FILES: "[truncated..."},
        {lineage.MODEL_SPEC: json.dumps(["a", "list"]), lineage.DATA_FILES: json.dumps({"a": 1})},
        {lineage.MODEL_SPEC: json.dumps({"categorical_features": "carrier", "params": [1], "holdout": 0.2})},
    ],
)
def test_facts_from_version_survives_missing_or_malformed_tags(run_tags):
    facts = facts_from_version({}, run_tags, {"rows_train": float("nan")}, model_name="m", version="1")

    assert facts.data_files == ()
    assert facts.categorical_features == ()
    assert facts.params == {}
    assert facts.target is None and facts.seed is None and facts.training_rows is None
    render_markdown(facts)
    render_html(facts)


def test_unknown_extra_facts_are_refused():
    with pytest.raises(TypeError):
        facts_from_version({}, {}, {}, model_name="m", version="1", approvr="typo")


# --- MLflow round trip --------------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path):
    """A run with lineage tags, held-out metrics and a gate decision, registered as ``delay`` v1."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/m.db"
    # registry_uri too: an operator test earlier in the session may have set the global registry URI.
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment_id = client.create_experiment("delay", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(
        experiment_id,
        tags={
            lineage.MODEL_SPEC: json.dumps(SPEC),
            lineage.DATA_FILES: json.dumps(["a.parquet"]),
            lineage.DATA_VERSION: "dv-9",
            lineage.CODE_REVISION: "c0ffee",
            lineage.DAG_ID: "retrain",
            "mlops.library.mlflow": "3.17.2",
        },
    )
    run_id = run.info.run_id
    client.log_metric(run_id, "holdout_roc_auc", 0.7123)
    client.log_metric(run_id, "holdout_log_loss", 0.52)
    client.log_metric(run_id, "rows_train", 500)
    client.log_dict(run_id, {**DECISION, "run_id": run_id}, "gate/decision.json")
    client.set_terminated(run_id)
    client.create_registered_model("delay", description="registered model text")
    client.create_model_version(
        "delay", source=run.info.artifact_uri, run_id=run_id, tags={lineage.SEED: "3"}, description="by hand"
    )
    client.set_registered_model_alias("delay", "champion", "1")
    return client, run_id


def test_build_facts_and_log_model_card_round_trip(registry):
    import mlflow

    client, run_id = registry

    facts = build_facts(client, "delay", "1", approver="ana", forced=True, force_reason="urgent")
    assert facts.run_id == run_id
    assert facts.alias == "champion"
    assert facts.metrics == {"roc_auc": 0.7123, "log_loss": 0.52}
    assert facts.gate_decision["champion_version"] == "2"
    assert facts.previous_champion == "2"
    assert facts.seed == "3" and facts.data_version == "dv-9" and facts.training_rows == 500
    assert facts.created_at and facts.created_at.endswith("+00:00")

    uris = log_model_card(client, "delay", "1", facts)

    markdown = mlflow.artifacts.load_text(uris["markdown_uri"])
    page = mlflow.artifacts.load_text(uris["html_uri"])
    assert "# Model card: delay v1" in markdown and "| roc_auc | 0.7123 |" in markdown
    assert "<h1>Model card: delay v1</h1>" in page and "<td>0.7123</td>" in page
    version = client.get_model_version("delay", "1")
    assert version.tags[MARKDOWN_URI_TAG] == uris["markdown_uri"]
    assert version.tags[HTML_URI_TAG] == uris["html_uri"]
    assert uris["markdown_uri"].endswith("/model_card/v1/model_card.md")
    assert version.description.startswith("by hand\n\n")  # a person's text is kept
    assert "model_card/v1/model_card.md" in version.description
    assert "gate FAILED against champion v2" in version.description

    log_model_card(client, "delay", "1", build_facts(client, "delay", "1", approver="bo"))

    folders = [item.path for item in client.list_artifacts(run_id, "model_card")]
    assert folders == ["model_card/v1"]
    files = sorted(item.path for item in client.list_artifacts(run_id, "model_card/v1"))
    assert files == ["model_card/v1/model_card.html", "model_card/v1/model_card.md"]
    assert "**Approver:** bo" in mlflow.artifacts.load_text(uris["markdown_uri"])
    description = client.get_model_version("delay", "1").description
    assert description.count(DESCRIPTION_MARKER) == 1 and "Approved by bo" in description
    assert description.startswith("by hand\n\n")


def test_a_version_without_a_run_has_facts_but_no_card(registry):
    client, _ = registry
    client.create_model_version("delay", source="file:///nowhere", run_id=None)

    facts = build_facts(client, "delay", "2")

    assert facts.gate_decision is None and facts.run_id is None and facts.metrics == {}
    assert facts.description == "registered model text"
    with pytest.raises(DataError, match="no training run"):
        log_model_card(client, "delay", "2", facts)


def test_a_run_without_a_gate_decision_has_a_card_that_says_so(registry):
    client, run_id = registry
    bare = client.create_run(client.get_run(run_id).info.experiment_id)
    client.create_model_version("delay", source=bare.info.artifact_uri, run_id=bare.info.run_id)

    facts = build_facts(client, "delay", "2")

    assert facts.run_id == bare.info.run_id and facts.gate_decision is None


class _RegistryDownOnDownload:
    """The registry answers every read but the artifact download, which fails as a dropped connection does."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def download_artifacts(self, run_id, path, dst_path=None):
        raise ConnectionError(f"connection refused while downloading {path}")


def test_a_registry_outage_while_reading_the_gate_decision_fails_rather_than_dropping_it(registry):
    client, _ = registry

    with pytest.raises(ConnectionError, match="gate/decision.json"):
        build_facts(_RegistryDownOnDownload(client), "delay", "1")

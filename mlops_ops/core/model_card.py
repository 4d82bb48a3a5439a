"""The model card: what a registered model version is, how it was made and judged, and who let it serve.

The card is rendered from plain values (:class:`ModelCardFacts`) as Markdown and as one self-contained HTML
page, so it can be tested without MLflow. :func:`build_facts` gathers the facts from the registry and
:func:`log_model_card` stores the card with the version's run and links it from the version page.
"""

from __future__ import annotations

import html
import json
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mlops_ops.core import lineage
from mlops_ops.core.errors import DataError
from mlops_ops.core.tasks import TASKS, lower_is_better


class CardRegistry(Protocol):
    """What the model card reads from and writes to the registry: ``MlflowClient`` (through
    :class:`~mlops_ops.hooks.mlflow.MlflowHook`) has all of it, and a test or a notebook can pass a fake."""

    def get_model_version(self, name: str, version: str) -> Any: ...

    def get_registered_model(self, name: str) -> Any: ...

    def get_run(self, run_id: str) -> Any: ...

    def log_text(self, run_id: str, text: str, artifact_file: str) -> Any: ...

    def set_model_version_tag(self, name: str, version: str, key: str, value: Any) -> Any: ...

    def update_model_version(self, name: str, version: str, description: str | None = None) -> Any: ...

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str: ...


#: Metrics that describe the rows or the predictions, with no better direction.
DESCRIPTIVE_METRICS = frozenset(name for task in TASKS.values() for name in task.descriptive)

#: Section headings, in the order the card shows them.
SECTIONS = (
    "Intended use",
    "Training data",
    "Features",
    "Model",
    "Evaluation",
    "Comparison with the previous champion",
    "Lineage",
    "Approval",
    "Known limitations",
)

#: Version tags pointing at the card's artifacts.
MARKDOWN_URI_TAG = lineage.PREFIX + "model_card.markdown_uri"
HTML_URI_TAG = lineage.PREFIX + "model_card.html_uri"

#: Run metrics named ``holdout_<metric>`` are the held-out metrics the card shows.
HOLDOUT_PREFIX = "holdout_"
LIBRARY_TAG_PREFIX = lineage.PREFIX + "library."
GATE_DECISION_PATH = "gate/decision.json"

#: Starts the part of a version description that :func:`log_model_card` owns; text above it is kept.
DESCRIPTION_MARKER = "---\nModel card (mlops-ops):"

MISSING = "n/a"


@dataclass(frozen=True)
class ModelCardFacts:
    """Everything a model card says about one registered model version, as plain values.

    Missing facts are ``None`` (or empty) and shown as ``n/a``.

    :param model_name: the registered model name.
    :param version: the model version.
    :param alias: the alias the version holds or is given, e.g. ``"champion"``.
    :param description: the intended use.
    :param run_id: the MLflow run that trained the version.
    :param created_at: when the version was registered (ISO 8601).
    :param promoted_at: when the version received ``alias`` (ISO 8601).
    :param data_version: fingerprint of the training data.
    :param data_files: the files trained on.
    :param data_date_range: first and last timestamp of the training data.
    :param training_rows: labelled rows trained on.
    :param target: the label column.
    :param categorical_features: categorical input columns.
    :param numerical_features: numerical input columns.
    :param task: what the model predicts: ``binary``, ``multiclass`` or ``regression``.
    :param estimator: import path of the estimator (or training function).
    :param params: the estimator's parameters.
    :param holdout: how the evaluation rows were held out (``time_column``, ``fraction``).
    :param seed: the random seed.
    :param code_revision: the code revision that trained the model.
    :param training_key: the key that identifies identical trainings.
    :param library_versions: installed versions of the libraries that decide what the model computes.
    :param airflow: the Airflow task that trained it: ``dag_id``, ``run_id``, ``task_id``, ``try_number``.
    :param trigger_reason: why the training ran.
    :param metrics: held-out metrics, e.g. ``{"roc_auc": 0.71}``.
    :param gate_decision: the gate decision dict (``passed``, ``checks``, ``challenger_metrics``,
        ``champion_metrics``, ``champion_version``, ``policy``, ``run_id``), or ``None`` when not gated.
    :param previous_champion: the version that served before this one.
    :param approver: who approved the promotion.
    :param approval_comment: the approver's comment.
    :param forced: whether the promotion overrode a failed or missing gate.
    :param force_reason: why it was forced.
    :param known_limitations: limitations the caller knows of (domain-specific; none are assumed).
    :param artifact_sha256: digest of the logged model artifact.
    """

    model_name: str
    version: str
    alias: str | None = None
    description: str | None = None
    run_id: str | None = None
    created_at: str | None = None
    promoted_at: str | None = None
    data_version: str | None = None
    data_files: Sequence[str] = ()
    data_date_range: tuple[str, str] | None = None
    training_rows: int | None = None
    target: str | None = None
    categorical_features: Sequence[str] = ()
    numerical_features: Sequence[str] = ()
    task: str | None = None
    estimator: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    holdout: Mapping[str, Any] = field(default_factory=dict)
    seed: str | int | None = None
    code_revision: str | None = None
    training_key: str | None = None
    library_versions: Mapping[str, str] = field(default_factory=dict)
    airflow: Mapping[str, str] = field(default_factory=dict)
    trigger_reason: str | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    gate_decision: Mapping[str, Any] | None = None
    previous_champion: str | None = None
    approver: str | None = None
    approval_comment: str | None = None
    forced: bool = False
    force_reason: str | None = None
    known_limitations: Sequence[str] = ()
    artifact_sha256: str | None = None

    @property
    def artifact_folder(self) -> str:
        """The card's folder in the run's artifacts: ``model_card/v<version>``."""
        return f"model_card/v{self.version}"


# --- facts from MLflow tags ---------------------------------------------------------------------------


def facts_from_version(
    version_tags: Mapping[str, str],
    run_tags: Mapping[str, str],
    run_metrics: Mapping[str, float],
    *,
    model_name: str,
    version: str,
    run_params: Mapping[str, str] | None = None,
    **extra: Any,
) -> ModelCardFacts:
    """Facts from the tags of a model version and of its training run; missing or malformed tags give ``None``.

    Version tags win over run tags where both record a fact (the registry's record is what was approved).

    :param version_tags: the version's tags.
    :param run_tags: the training run's tags (lineage, ``mlops.model_spec``, ``mlops.library.<name>``).
    :param run_metrics: the run's metrics; ``holdout_<metric>`` ones become :attr:`ModelCardFacts.metrics`.
    :param model_name: the registered model name.
    :param version: the version.
    :param run_params: the run's params; ``param.<name>`` ones are the parameters actually used and win over
        the spec's, ``estimator`` names what was trained.
    :param extra: any other :class:`ModelCardFacts` field, overriding what the tags say (``alias``,
        ``approver``, ``data_date_range``, ...).
    :return: the facts.
    """

    def tag(name: str) -> str | None:
        for tags in (version_tags, run_tags):
            value = tags.get(name)
            if isinstance(value, str) and value.strip():
                return value
        return None

    spec = _json_tag(tag(lineage.MODEL_SPEC), dict) or {}
    run_params = run_params or {}
    used_params = {
        key[len("param.") :]: value for key, value in run_params.items() if key.startswith("param.")
    }
    metrics = {
        name[len(HOLDOUT_PREFIX) :]: value
        for name, value in run_metrics.items()
        if name.startswith(HOLDOUT_PREFIX)
    }
    rows = run_metrics.get("rows_train")
    airflow = {
        key: value
        for key, value in (
            ("dag_id", run_tags.get(lineage.DAG_ID) or version_tags.get(lineage.DAG_ID)),
            ("run_id", run_tags.get(lineage.RUN_ID) or version_tags.get(lineage.RUN_ID)),
            ("task_id", run_tags.get(lineage.TASK_ID) or version_tags.get(lineage.TASK_ID)),
            ("try_number", run_tags.get(lineage.TRY_NUMBER) or version_tags.get(lineage.TRY_NUMBER)),
        )
        if value
    }
    values: dict[str, Any] = {
        "description": _str_or_none(spec.get("description")),
        "run_id": tag(lineage.TRAINING_RUN),
        "data_version": tag(lineage.DATA_VERSION),
        "data_files": tuple(str(item) for item in _json_tag(tag(lineage.DATA_FILES), list) or ()),
        "training_rows": int(rows) if rows is not None and _finite(rows) else None,
        "target": _str_or_none(spec.get("target")),
        "categorical_features": _strings(spec.get("categorical_features")),
        "numerical_features": _strings(spec.get("numerical_features")),
        # A spec's form leaves out the default task, binary.
        "task": _str_or_none(spec.get("task")) or ("binary" if spec else None),
        "estimator": _str_or_none(run_params.get("estimator")) or _str_or_none(spec.get("estimator")),
        "params": used_params or (spec.get("params") if isinstance(spec.get("params"), dict) else {}),
        "holdout": spec.get("holdout") if isinstance(spec.get("holdout"), dict) else {},
        "seed": tag(lineage.SEED) or _str_or_none(spec.get("seed")),
        "code_revision": tag(lineage.CODE_REVISION),
        "training_key": tag(lineage.TRAINING_KEY),
        "library_versions": {
            name[len(LIBRARY_TAG_PREFIX) :]: value
            for name, value in sorted(run_tags.items())
            if name.startswith(LIBRARY_TAG_PREFIX)
        },
        "airflow": airflow,
        "trigger_reason": tag(lineage.TRIGGER_REASON),
        "metrics": metrics,
        "artifact_sha256": tag(lineage.ARTIFACT_SHA256),
    }
    values.update(extra)
    decision = values.get("gate_decision")
    if values.get("previous_champion") is None and isinstance(decision, Mapping):
        values["previous_champion"] = _str_or_none(decision.get("champion_version"))
    return ModelCardFacts(model_name=model_name, version=str(version), **values)


def _json_tag(text: str | None, kind: type) -> Any:
    """``text`` parsed as JSON when it is a ``kind``; ``None`` when absent, clipped or malformed."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- the card's content, independent of the output format ---------------------------------------------


@dataclass(frozen=True)
class _Fields:
    """Label-value pairs."""

    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Items:
    items: tuple[str, ...]


_Block = _Fields | _Table | _Text | _Items


def _text(value: Any) -> str:
    """A value for display: ``None``, empty and NaN as ``n/a``; containers as JSON."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else MISSING
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _number(value: Any) -> str:
    """A metric or threshold with 4 decimals, a whole number (a count: MLflow stores every metric as a float)
    as an integer; ``n/a`` when missing or not finite."""
    number = _as_float(value)
    if number is None:
        return MISSING
    return f"{int(number):,}" if number.is_integer() and abs(number) >= 2 else f"{number:.4f}"


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _title(facts: ModelCardFacts) -> str:
    return f"Model card: {facts.model_name} v{facts.version}"


def _header(facts: ModelCardFacts) -> _Fields:
    return _Fields(
        (
            ("Model", facts.model_name),
            ("Version", _text(facts.version)),
            ("Alias", _text(facts.alias)),
            ("Registered", _text(facts.created_at)),
            ("Promoted", _text(facts.promoted_at)),
            ("Training run", _text(facts.run_id)),
        )
    )


def _sections(facts: ModelCardFacts) -> list[tuple[str, list[_Block]]]:
    return [
        ("Intended use", [_Text(_text(facts.description))]),
        ("Training data", _training_data(facts)),
        ("Features", _features(facts)),
        ("Model", _model(facts)),
        ("Evaluation", _evaluation(facts)),
        ("Comparison with the previous champion", _comparison(facts)),
        ("Lineage", _lineage(facts)),
        ("Approval", _approval(facts)),
        (
            "Known limitations",
            [_Items(tuple(facts.known_limitations))]
            if facts.known_limitations
            else [_Text("None recorded.")],
        ),
    ]


#: How many data files the card lists by name; the count is always given.
MAX_FILES_LISTED = 20


def _training_data(facts: ModelCardFacts) -> list[_Block]:
    date_range = facts.data_date_range
    blocks: list[_Block] = [
        _Fields(
            (
                ("Data version", _text(facts.data_version)),
                ("Files", str(len(facts.data_files))),
                (
                    "Date range",
                    f"{_text(date_range[0])} to {_text(date_range[1])}" if date_range else MISSING,
                ),
                ("Training rows", _text(facts.training_rows)),
            )
        )
    ]
    if facts.data_files:
        listed = [str(name) for name in facts.data_files[:MAX_FILES_LISTED]]
        if len(facts.data_files) > MAX_FILES_LISTED:
            listed.append(f"... and {len(facts.data_files) - MAX_FILES_LISTED} more")
        blocks.append(_Items(tuple(listed)))
    return blocks


def _features(facts: ModelCardFacts) -> list[_Block]:
    return [
        _Fields(
            (
                ("Target", _text(facts.target)),
                ("Categorical", ", ".join(facts.categorical_features) or MISSING),
                ("Numerical", ", ".join(facts.numerical_features) or MISSING),
            )
        )
    ]


def _model(facts: ModelCardFacts) -> list[_Block]:
    blocks: list[_Block] = [
        _Fields(
            (("Task", _text(facts.task)), ("Estimator", _text(facts.estimator)), ("Seed", _text(facts.seed)))
        )
    ]
    if facts.params:
        blocks.append(
            _Table(("Parameter", "Value"), tuple((str(k), _text(v)) for k, v in sorted(facts.params.items())))
        )
    else:
        blocks.append(_Text("Parameters: the estimator's defaults."))
    return blocks


def _evaluation(facts: ModelCardFacts) -> list[_Block]:
    blocks: list[_Block] = []
    holdout = facts.holdout or {}
    fraction = _as_float(holdout.get("fraction"))
    if fraction is not None:
        column = holdout.get("time_column")
        where = (
            f"the latest {fraction:.0%} of the rows by {column}" if column else f"{fraction:.0%} of the rows"
        )
        blocks.append(_Text(f"Held-out metrics, on {where}."))
    if facts.metrics:
        blocks.append(
            _Table(
                ("Metric", "Value"),
                tuple((str(name), _number(value)) for name, value in facts.metrics.items()),
            )
        )
    else:
        blocks.append(_Text(f"Held-out metrics: {MISSING}."))

    decision = facts.gate_decision
    if not isinstance(decision, Mapping):
        blocks.append(_Text("Gate: no gate decision was recorded for this version."))
        return blocks
    checks = [check for check in _as_list(decision.get("checks")) if isinstance(check, Mapping)]
    failed = sum(1 for check in checks if not check.get("passed"))
    verdict = "PASSED" if decision.get("passed") else f"FAILED ({failed} of {len(checks)} checks failed)"
    blocks.append(_Text(f"Gate: {verdict}."))
    if checks:
        blocks.append(
            _Table(
                ("Check", "Value", "Threshold", "Comparison", "Verdict", "Detail"),
                tuple(
                    (
                        _text(check.get("name")),
                        _number(check.get("value")),
                        _number(check.get("threshold")),
                        _text(check.get("comparison")),
                        "PASS" if check.get("passed") else "FAIL",
                        _text(check.get("detail")),
                    )
                    for check in checks
                ),
            )
        )
    if decision.get("policy"):
        blocks.append(_Fields((("Gate policy", _text(decision.get("policy"))),)))
    return blocks


def _comparison(facts: ModelCardFacts) -> list[_Block]:
    decision = facts.gate_decision if isinstance(facts.gate_decision, Mapping) else {}
    previous = _text(facts.previous_champion)
    champion = decision.get("champion_metrics")
    if not isinstance(champion, Mapping):
        if not decision:
            return [_Text(f"Previous champion: {previous}. No gate decision compared the two.")]
        return [
            _Text(f"Previous champion: {previous}. There was no champion when the gate evaluated this model.")
        ]
    challenger = decision.get("challenger_metrics")
    challenger = challenger if isinstance(challenger, Mapping) else {}
    names = list(challenger) + [name for name in champion if name not in challenger]
    rows = []
    for name in names:
        new, old = _as_float(challenger.get(name)), _as_float(champion.get(name))
        if new is None or old is None:
            difference, better = MISSING, MISSING
        else:
            difference = f"{new - old:+.4f}"
            gain = old - new if lower_is_better(str(name)) else new - old
            better = "this version" if gain > 0 else "champion" if gain < 0 else "equal"
            if gain and str(name) in DESCRIPTIVE_METRICS:
                better = MISSING  # e.g. the mean prediction: a difference, not a better or worse
        rows.append(
            (str(name), _number(challenger.get(name)), _number(champion.get(name)), difference, better)
        )
    champion_version = _text(decision.get("champion_version") or facts.previous_champion)
    lower = ", ".join(sorted(str(name) for name, *_ in rows if lower_is_better(str(name)))) or "none of these"
    return [
        _Text(
            f"This version against champion v{champion_version}, both scored by the gate on the same held-out "
            f"rows. Difference is challenger minus champion; lower is better for {lower}."
        ),
        _Table(
            ("Metric", "This version", f"Champion v{champion_version}", "Difference", "Better"), tuple(rows)
        ),
    ]


def _lineage(facts: ModelCardFacts) -> list[_Block]:
    airflow = facts.airflow or {}
    blocks: list[_Block] = [
        _Fields(
            (
                ("Code revision", _text(facts.code_revision)),
                ("Training run", _text(facts.run_id)),
                ("Training key", _text(facts.training_key)),
                ("Airflow DAG", _text(airflow.get("dag_id"))),
                ("Airflow run", _text(airflow.get("run_id"))),
                ("Airflow task", _text(airflow.get("task_id"))),
                ("Trigger reason", _text(facts.trigger_reason)),
                ("Artifact SHA-256", _text(facts.artifact_sha256)),
            )
        )
    ]
    if facts.library_versions:
        blocks.append(
            _Table(
                ("Library", "Version"), tuple((str(k), _text(v)) for k, v in facts.library_versions.items())
            )
        )
    else:
        blocks.append(_Text(f"Libraries: {MISSING}."))
    return blocks


def _approval(facts: ModelCardFacts) -> list[_Block]:
    forced = f"yes: {_text(facts.force_reason)}" if facts.forced else "no"
    return [
        _Fields(
            (
                ("Approver", _text(facts.approver)),
                ("Comment", _text(facts.approval_comment)),
                ("Forced", forced),
            )
        )
    ]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


# --- Markdown -------------------------------------------------------------------------------------------

# A value must not become markup in a renderer that passes raw HTML through: "<" that could open a tag is
# written as an entity; a comparison such as "<=" stays readable.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _md(value: str) -> str:
    return _TAG_START.sub("&lt;", value)


def _md_cell(value: str) -> str:
    return _md(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_block(block: _Block) -> str:
    if isinstance(block, _Text):
        return _md(block.text)
    if isinstance(block, _Items):
        return "\n".join(f"- {_md_cell(item)}" for item in block.items)
    if isinstance(block, _Fields):
        return "\n".join(f"- **{label}:** {_md_cell(value)}" for label, value in block.rows)
    lines = [
        "| " + " | ".join(_md_cell(cell) for cell in block.header) + " |",
        "|" + "|".join(" --- " for _ in block.header) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in block.rows]
    return "\n".join(lines)


#: The folder of the templates shipped with the wheel.
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
#: The default templates, in :data:`TEMPLATES`.
MARKDOWN_TEMPLATE = "model_card.md.j2"
HTML_TEMPLATE = "model_card.html.j2"


def render_markdown(facts: ModelCardFacts, template: str | Path | None = None) -> str:
    """The model card as Markdown.

    :param facts: what the card says.
    :param template: a Jinja2 template file of the team's own (see :data:`MARKDOWN_TEMPLATE` for what it
        receives); default the wheel's.
    :return: the Markdown text.
    """
    return _render(facts, template or TEMPLATES / MARKDOWN_TEMPLATE, as_html=False)


# --- HTML -----------------------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return html.escape(value, quote=True)


def _html_cell(value: str) -> str:
    # CSS classes, not a secret (bandit reads the word "pass" as a password).
    css = {"PASS": ' class="pass"', "FAIL": ' class="fail"'}.get(value, "")  # nosec B105
    return f"<td{css}>{_escape(value)}</td>"


def _html_block(block: _Block) -> str:
    if isinstance(block, _Text):
        return f"<p>{_escape(block.text)}</p>"
    if isinstance(block, _Items):
        return "<ul>\n" + "\n".join(f"<li>{_escape(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, _Fields):
        rows = (f"<dt>{_escape(label)}</dt><dd>{_escape(value)}</dd>" for label, value in block.rows)
        return "<dl>\n" + "\n".join(rows) + "\n</dl>"
    header = "<tr>" + "".join(f"<th>{_escape(cell)}</th>" for cell in block.header) + "</tr>"
    rows = ("<tr>" + "".join(_html_cell(cell) for cell in row) + "</tr>" for row in block.rows)
    return "<table>\n<thead>" + header + "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def render_html(facts: ModelCardFacts, template: str | Path | None = None) -> str:
    """The model card as one self-contained HTML page (inline style, no script, every value escaped).

    :param facts: what the card says.
    :param template: a Jinja2 template file of the team's own (see :data:`HTML_TEMPLATE`); default the
        wheel's. Values are escaped whatever the template does (autoescape).
    :return: the HTML document.
    """
    return _render(facts, template or TEMPLATES / HTML_TEMPLATE, as_html=True)


#: The formats of the card, and the default template of each.
TEMPLATE_FORMATS = {"markdown": MARKDOWN_TEMPLATE, "html": HTML_TEMPLATE}


def check_templates(templates: Mapping[str, str | Path]) -> dict[str, Path]:
    """Check a team's templates before anything is promoted: known formats, files that exist and compile.

    :param templates: ``{"markdown": path, "html": path}``, either or both.
    :return: the templates as paths.
    :raises DataError: naming the format or the template that is wrong.
    """
    from jinja2 import TemplateError

    unknown = sorted(set(templates) - set(TEMPLATE_FORMATS))
    if unknown:
        raise DataError(
            f"model card templates: unknown format(s) {unknown}; expected some of {sorted(TEMPLATE_FORMATS)}"
        )
    checked = {}
    for kind, template in templates.items():
        path = Path(template)
        try:
            _environment(path, as_html=kind == "html").get_template(path.name)
        except (OSError, TemplateError) as err:
            raise DataError(f"model card template {path}: {type(err).__name__}: {err}") from err
        checked[kind] = path
    return checked


def _environment(path: Path, *, as_html: bool) -> Any:
    """The sandboxed Jinja2 environment of a template: the template is the deployment's own file, never one read
    from the registry, and still runs sandboxed (no access to internals, no imports)."""
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment
    from markupsafe import Markup

    environment = SandboxedEnvironment(
        loader=FileSystemLoader(str(path.parent)),
        autoescape=as_html,
        keep_trailing_newline=True,
        undefined=StrictUndefined,
    )
    environment.filters.update(
        md_block=_md_block,
        md_cell=_md_cell,
        md=_md,
        html_block=lambda block: Markup(_html_block(block)),  # nosec B704 - every value escaped by _html_block
    )
    return environment


def _render(facts: ModelCardFacts, template: str | Path, *, as_html: bool) -> str:
    """Render ``template`` with the card's content.

    :raises DataError: naming the template when it cannot be read or rendered.
    """
    from jinja2 import TemplateError
    from markupsafe import Markup

    path = Path(template)
    environment = _environment(path, as_html=as_html)
    title = _title(facts)
    sections = [
        {
            "heading": Markup(_escape(heading)) if as_html else heading,  # nosec B704 - escaped
            "slug": _slug(heading),
            "blocks": blocks,
        }
        for heading, blocks in _sections(facts)
    ]
    try:
        rendered: str = environment.get_template(path.name).render(
            title=Markup(_escape(title)) if as_html else title,  # nosec B704 - escaped
            header=_header(facts),
            sections=sections,
            facts=facts,
        )
    except (OSError, TemplateError) as err:
        raise DataError(f"model card template {path}: {type(err).__name__}: {err}") from err
    return rendered


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def summary(facts: ModelCardFacts) -> str:
    """A few sentences for the version's description: what it is, how it scored, who let it serve."""
    alias = f" ({facts.alias})" if facts.alias else ""
    metrics = ", ".join(f"{name} {_number(value)}" for name, value in facts.metrics.items()) or MISSING
    decision = facts.gate_decision if isinstance(facts.gate_decision, Mapping) else None
    if decision is None:
        gate = "not gated"
    else:
        against = (
            f"champion v{decision['champion_version']}" if decision.get("champion_version") else "no champion"
        )
        gate = f"gate {'passed' if decision.get('passed') else 'FAILED'} against {against}"
    lines = [
        f"{facts.model_name} v{facts.version}{alias}: {_text(facts.estimator)} trained on data version "
        f"{_text(facts.data_version)}; held-out {metrics}; {gate}."
    ]
    if facts.approver or facts.forced:
        approval = f"Approved by {_text(facts.approver)}"
        if facts.forced:
            approval += f", forced: {_text(facts.force_reason)}"
        lines.append(approval + ".")
    return " ".join(lines)


# --- MLflow ---------------------------------------------------------------------------------------------


def build_facts(client: CardRegistry, model_name: str, version: str, **extra: Any) -> ModelCardFacts:
    """Gather the facts of ``model_name`` version ``version`` from the registry, its run and its gate decision.

    :param client: the registry (an ``MlflowClient``, or anything with :class:`CardRegistry`'s methods).
    :param model_name: the registered model name.
    :param version: the version.
    :param extra: facts the registry does not hold, overriding what it says: ``alias`` (default: the
        version's aliases), ``approver``, ``approval_comment``, ``forced``, ``force_reason``, ``promoted_at``,
        ``known_limitations``, ``data_date_range``, ``description`` (default: the spec's, else the registered
        model's description), ``previous_champion`` (default: the gate's champion).
    :return: the facts.
    """
    model_version = client.get_model_version(model_name, str(version))
    run_tags: dict[str, str] = {}
    run_metrics: dict[str, float] = {}
    run_params: dict[str, str] = {}
    decision = None
    run_id = model_version.run_id or None
    if run_id:
        run = client.get_run(run_id)
        run_tags, run_metrics, run_params = dict(run.data.tags), dict(run.data.metrics), dict(run.data.params)
        decision = _gate_decision(client, run_id)
    created = model_version.creation_timestamp
    aliases = list(getattr(model_version, "aliases", None) or ())
    defaults: dict[str, Any] = {
        "run_id": run_id,
        "created_at": _iso(created) if created else None,
        "alias": ", ".join(aliases) or None,
        "gate_decision": decision,
    }
    facts = facts_from_version(
        dict(model_version.tags or {}),
        run_tags,
        run_metrics,
        model_name=model_name,
        version=str(model_version.version),
        run_params=run_params,
        **{**defaults, **extra},
    )
    if facts.description is None:
        facts = replace(facts, description=client.get_registered_model(model_name).description or None)
    return facts


def _gate_decision(client: CardRegistry, run_id: str) -> dict[str, Any] | None:
    """The run's ``gate/decision.json``; ``None`` when it is absent or unreadable."""
    with tempfile.TemporaryDirectory(prefix="mlops-card-") as folder:
        try:
            local = client.download_artifacts(run_id, GATE_DECISION_PATH, folder)
        except Exception as error:
            # A card without the gate's decision says so rather than failing; anything else (the server down,
            # a refused password) fails the task, which retries it.
            if _artifact_absent(error):
                return None
            raise
        try:
            decision = json.loads(Path(local).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
    return decision if isinstance(decision, dict) else None


#: The error codes a registry gives for an artifact that is not there (MLflow's, by store).
ABSENT_ERROR_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "ENDPOINT_NOT_FOUND"})


def _artifact_absent(error: Exception) -> bool:
    """Whether ``error`` says "no such artifact". Core does not import the registry's error types
    (``MlflowException`` for MLflow): its ``error_code`` names the case, as a file-system error does by type."""
    return isinstance(error, (FileNotFoundError, LookupError)) or (
        getattr(error, "error_code", None) in ABSENT_ERROR_CODES
    )


def _iso(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).isoformat(timespec="seconds")


def log_model_card(
    client: CardRegistry,
    model_name: str,
    version: str,
    facts: ModelCardFacts,
    templates: Mapping[str, str | Path] | None = None,
) -> dict[str, str]:
    """Log the card with the version's run and link it from the version page; logging again overwrites it.

    The Markdown and HTML cards go to ``model_card/v<version>/`` in the run's artifacts; the version gets
    :data:`MARKDOWN_URI_TAG` and :data:`HTML_URI_TAG`, and its description a summary naming the card (text
    written above :data:`DESCRIPTION_MARKER` by people is kept).

    :param client: the registry (an ``MlflowClient``, or anything with :class:`CardRegistry`'s methods).
    :param model_name: the registered model name.
    :param version: the version.
    :param facts: what the card says (see :func:`build_facts`).
    :param templates: a team's own templates, ``{"markdown": path, "html": path}`` (either or both; see
        :func:`check_templates`); the wheel's for a format not named.
    :return: ``{"markdown_uri": ..., "html_uri": ...}``, the artifacts' URIs.
    :raises DataError: when the version was not registered from a run, so the card has nowhere to go.
    """
    model_version = client.get_model_version(model_name, str(version))
    run_id = model_version.run_id
    if not run_id:
        raise DataError(f"{model_name} v{version} has no training run to log its model card with")
    artifact_uri = client.get_run(run_id).info.artifact_uri
    folder = facts.artifact_folder
    templates = templates or {}
    client.log_text(run_id, render_markdown(facts, templates.get("markdown")), f"{folder}/model_card.md")
    client.log_text(run_id, render_html(facts, templates.get("html")), f"{folder}/model_card.html")
    uris = {
        "markdown_uri": f"{artifact_uri}/{folder}/model_card.md",
        "html_uri": f"{artifact_uri}/{folder}/model_card.html",
    }
    client.set_model_version_tag(
        model_name, str(version), MARKDOWN_URI_TAG, lineage.clip_tag(uris["markdown_uri"])
    )
    client.set_model_version_tag(model_name, str(version), HTML_URI_TAG, lineage.clip_tag(uris["html_uri"]))

    kept = (model_version.description or "").split(DESCRIPTION_MARKER)[0].rstrip()
    card = (
        f"{DESCRIPTION_MARKER}\n{summary(facts)}\n\nFull card: `{folder}/model_card.md` (and `.html`) in the "
        f"artifacts of run {run_id}."
    )
    client.update_model_version(model_name, str(version), description=f"{kept}\n\n{card}" if kept else card)
    return uris

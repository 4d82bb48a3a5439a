"""What the Airflow UI's "Models" view shows of a registered model, and its HTML: pure, no I/O.

The hook gathers plain values from the registry (aliases, tags, the latest gate run); this module turns them
into a :class:`ModelOverview` and renders it. Every value read from the registry is escaped: tags are free
text written by anyone with registry access.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from mlops_ops.core import lineage
from mlops_ops.core.promotion import AliasMove, history

#: Drift verdicts are tags of this prefix on a model version (``mlops.drift.status``, ``mlops.drift.report_url``).
DRIFT_PREFIX = lineage.PREFIX + "drift."
#: The aliases shown side by side, in this order.
SHOWN_ALIASES = ("champion", "challenger")


@dataclass(frozen=True)
class VersionSummary:
    """One aliased version: where it came from and what its gate said."""

    version: str
    run_id: str | None
    data_version: str | None
    gate_passed: str | None
    gate_summary: str | None
    url: str | None = None
    #: Why this alias is not to be trusted (set or moved outside the project, or its log does not verify);
    #: ``None`` when the signed alias log names this version.
    untrusted: str | None = None


@dataclass(frozen=True)
class GateSummary:
    """The latest gate decision recorded on a training run of the model (passed or not)."""

    run_id: str
    passed: bool
    summary: str
    at_ms: int | None
    url: str | None = None


@dataclass(frozen=True)
class ModelOverview:
    """One registered model as the Models view shows it."""

    name: str
    aliases: dict[str, VersionSummary]
    history: list[AliasMove]
    latest_gate: GateSummary | None
    drift: dict[str, str] = field(default_factory=dict)
    drift_version: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the view's ``/api/models``)."""
        return asdict(self)


def version_summary(
    version: str, run_id: str | None, tags: dict[str, str], url: str | None, untrusted: str | None = None
) -> VersionSummary:
    """The summary of a version from its tags.

    :param untrusted: why the alias pointing here is not trusted (see :func:`alias_trust`), if it is not.
    """
    return VersionSummary(
        version=str(version),
        run_id=run_id,
        data_version=tags.get(lineage.DATA_VERSION),
        gate_passed=tags.get(lineage.GATE_PASSED),
        gate_summary=tags.get(lineage.GATE_SUMMARY),
        url=url,
        untrusted=untrusted,
    )


def alias_trust(registry_version: str, logged: list[AliasMove]) -> str | None:
    """Why an alias that the registry points at ``registry_version`` is not trusted, from its signed moves
    (``None`` when the newest names that version)."""
    if not logged:
        return "set outside the project: no signed move of this alias"
    if logged[-1].to_version != str(registry_version):
        return f"moved outside the project: the signed alias log names v{logged[-1].to_version}"
    return None


def drift_verdict(version_tags: dict[str, str]) -> dict[str, str]:
    """The ``mlops.drift.*`` tags of a version, keyed without the prefix (empty: no drift check yet)."""
    return {
        key[len(DRIFT_PREFIX) :]: value
        for key, value in sorted(version_tags.items())
        if key.startswith(DRIFT_PREFIX)
    }


def newest_first(moves: list[AliasMove]) -> list[AliasMove]:
    """``moves`` of any aliases, newest first."""
    return sorted(moves, key=lambda move: (move.at, move.sequence), reverse=True)


def alias_history(model_tags: dict[str, str]) -> list[AliasMove]:
    """Every move of every alias as the registered model's ``mlops.history.*`` tags copy it, newest first.

    Those tags are writable by anyone with registry access: the view shows the signed alias log instead
    wherever the deployment's trust connection can be read (:meth:`MlflowHook.model_overviews`)."""
    aliases = {
        key.split(".")[2] for key in model_tags if key.startswith("mlops.history.") and key.count(".") >= 3
    }
    moves = [move for alias in sorted(aliases) for move in history(model_tags, alias)]
    return sorted(moves, key=lambda move: (move.at, move.sequence), reverse=True)


def _cell(value: Any) -> str:
    return escape("" if value is None else str(value))


def _link(text: Any, url: str | None) -> str:
    if url and url.startswith(("http://", "https://")):
        return f'<a href="{escape(url, quote=True)}" target="_blank" rel="noopener">{_cell(text)}</a>'
    return _cell(text)


def _gate_text(passed: str | None) -> str:
    return {"true": "passed", "false": "FAILED"}.get(str(passed).lower(), "not evaluated")


def _render_model(model: ModelOverview, sparkline: list[float | None] | None = None) -> str:
    parts = [f'<section class="model" data-model="{escape(model.name, quote=True)}">']
    parts.append(f"<h2>{_link(model.name, model.url)}</h2>")
    if sparkline is not None:
        # The model's own page of charts (relative to the view's root), and its drift share at a glance.
        values = escape(json.dumps(sparkline), quote=True)
        parts.append(
            f'<p class="charts"><a class="charts" href="model/{quote(model.name, safe="")}">charts of '
            f'{_cell(model.name)}</a> <span class="sparkline" title="drift share per scored interval" '
            f'data-values="{values}"></span>'
            + ("" if any(value is not None for value in sparkline) else " <em>no drift checks yet</em>")
            + "</p>"
        )
    parts.append("<table><tr><th>alias</th><th>version</th><th>gate</th><th>data version</th></tr>")
    for alias in SHOWN_ALIASES:
        summary = model.aliases.get(alias)
        if summary is None:
            parts.append(f'<tr data-alias="{alias}"><td>{alias}</td><td colspan="3">none</td></tr>')
            continue
        warning = (
            f' <strong class="untrusted" title="refused by scoring, drift and serving until a promotion or a '
            f'rollback repairs it">&#9888; {_cell(summary.untrusted)}</strong>'
            if summary.untrusted
            else ""
        )
        parts.append(
            f'<tr data-alias="{alias}"{" class=untrusted" if summary.untrusted else ""}><td>{alias}</td>'
            f"<td>{_link('v' + summary.version, summary.url)}{warning}</td>"
            f"<td>{_cell(_gate_text(summary.gate_passed))}</td><td><code>{_cell(summary.data_version)}</code></td></tr>"
        )
    parts.append("</table>")

    parts.append("<h3>Latest gate decision</h3>")
    if model.latest_gate is None:
        parts.append('<p class="gate">none yet</p>')
    else:
        gate = model.latest_gate
        verdict = "PASSED" if gate.passed else "FAILED"
        parts.append(
            f'<p class="gate"><strong>{verdict}</strong> (run {_link(gate.run_id, gate.url)}): '
            f"{_cell(gate.summary)}</p>"
        )

    parts.append("<h3>Latest drift verdict</h3>")
    if not model.drift:
        parts.append('<p class="drift">none yet</p>')
    else:
        items = "".join(f"<li>{_cell(key)}: {_cell(value)}</li>" for key, value in model.drift.items())
        parts.append(f'<p class="drift">on v{_cell(model.drift_version)}</p><ul>{items}</ul>')

    parts.append("<h3>Alias history</h3>")
    if not model.history:
        parts.append('<p class="history">no moves recorded yet</p>')
    else:
        parts.append(
            '<table class="history"><tr><th>when</th><th>alias</th><th>kind</th><th>from</th><th>to</th>'
            "<th>by</th><th>reason</th></tr>"
        )
        for move in model.history:
            parts.append(
                f"<tr><td>{_cell(move.at)}</td><td>{_cell(move.alias)}</td><td>{_cell(move.kind)}</td>"
                f"<td>{_cell(move.from_version or '-')}</td><td>{_cell(move.to_version)}</td>"
                f"<td>{_cell(move.actor)}</td><td>{_cell(move.reason)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</section>")
    return "\n".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 1.5rem; color: #1a202c; }
table { border-collapse: collapse; margin: 0.3rem 0 0.8rem; }
th, td { border: 1px solid #cbd5e0; padding: 0.25rem 0.6rem; text-align: left; font-size: 0.9rem; }
th { background: #edf2f7; }
section.model { border-bottom: 2px solid #e2e8f0; padding-bottom: 0.8rem; margin-bottom: 1rem; }
h3 { margin: 0.6rem 0 0.2rem; font-size: 1rem; }
code { font-size: 0.8rem; }
tr.untrusted td { background: #fff5f5; }
.untrusted { color: #c53030; }
.sparkline { display: inline-block; width: 220px; height: 36px; vertical-align: middle; }
"""


def render_page(
    models: list[ModelOverview],
    registry: str,
    sparklines: dict[str, list[float | None]] | None = None,
    scripts: tuple[str, ...] = (),
) -> str:
    """The whole Models page.

    :param sparklines: model name -> its drift share per scored interval; with it, each model links to its page
        of charts (``model/<name>``) and shows the sparkline.
    :param scripts: same-host script URLs the page loads (the view's own, which draw the sparklines).
    """
    body = (
        "\n".join(
            _render_model(model, None if sparklines is None else sparklines.get(model.name, []))
            for model in models
        )
        or "<p>No registered models yet.</p>"
    )
    tags = "".join(f'<script src="{escape(url, quote=True)}"></script>' for url in scripts)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Models</title>'
        f"<style>{STYLE}</style>{tags}</head><body><h1>Registered models</h1>"
        f"<p>Registry: <code>{_cell(registry)}</code></p>\n{body}</body></html>"
    )


def gate_summary_of(
    run_id: str, tags: dict[str, str], start_time_ms: int | None, url: str | None
) -> GateSummary:
    """The gate decision recorded on a training run's tags."""
    return GateSummary(
        run_id=run_id,
        passed=tags.get(lineage.GATE_PASSED) == "true",
        summary=tags.get(lineage.GATE_SUMMARY, ""),
        at_ms=start_time_ms,
        url=url,
    )

"""The HTML of one model's page of charts: the figures as JSON for the page's script, which draws them with Apache
ECharts (both scripts served by the view itself: the page needs nothing beyond the Airflow host)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

#: The charts of a model's page: element id, title, what it shows.
CHARTS = (
    (
        "chart-holdout",
        "Held-out metrics per version",
        "the training run's holdout metrics of every version; "
        "champion and challenger marked, the latest gate policy's floors and ceilings drawn",
    ),
    (
        "chart-drift-share",
        "Drift share per scored interval",
        "share of drifting feature columns, and the dataset drift threshold",
    ),
    (
        "chart-drift-heatmap",
        "Per-column drift score per interval",
        "columns sorted by how often they drifted",
    ),
    ("chart-volume", "Prediction volume per interval", "rows scored, and rows whose labels have arrived"),
    (
        "chart-distribution",
        "Prediction distribution per interval",
        "the predictions' spread as each interval is scored; what the labels show once they arrive",
    ),
    (
        "chart-performance",
        "Delayed-label performance per interval",
        "live metrics on labelled rows, with every limit of the decay rule (kept or broken)",
    ),
    ("chart-cost", "Business cost per interval", "cost per labelled row, or the interval's total (legend)"),
    (
        "chart-timeline",
        "Alias moves and retrain requests",
        "from the signed alias log; who and why in the tooltip",
    ),
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 1.5rem; color: #1a202c; }
h1 { font-size: 1.4rem; margin: 0.2rem 0; overflow-wrap: anywhere; }
h2 { font-size: 1.05rem; margin: 1.2rem 0 0.1rem; }
p.what { margin: 0 0 0.3rem; color: #4a5568; font-size: 0.85rem; }
.chart { width: 100%; height: 320px; }
.chart.tall { height: 420px; }
.warning { color: #c53030; }
nav a, p a { color: #2b6cb0; }
ul.categories { font-size: 0.85rem; }
.truncate { max-width: 60ch; display: inline-block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  vertical-align: bottom; }
"""


def json_for_script(data: Any) -> str:
    """``data`` as JSON that cannot end the ``<script>`` element it sits in (nor open a comment)."""
    return (
        json.dumps(data, allow_nan=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_model_page(data: dict[str, Any], static: str) -> str:
    """One model's page.

    :param data: :func:`mlops_ops.ui.model_charts.chart_data`.
    :param static: URL of the view's static folder, relative to the page (``../static``).
    """
    name = escape(data["model"])
    warnings = "".join(
        f'<p class="warning untrusted">&#9888; {escape(str(item["alias"]))} points at '
        f"v{escape(str(item['version']))} outside the project: {escape(str(item['why']))}</p>"
        for item in data["out_of_band"]
    )
    new_categories = data["drift"]["new_categories"]
    categories = (
        "<ul class=categories>"
        + "".join(
            f'<li><span class="truncate" title="{escape(column, quote=True)}">{escape(column)}</span>: '
            f"{escape(', '.join(values[:20]))}{' ...' if len(values) > 20 else ''}</li>"
            for column, values in new_categories.items()
        )
        + "</ul>"
        if new_categories
        else "<p class=what>No new categories seen.</p>"
    )
    sections = []
    for element, title, what in CHARTS:
        tall = " tall" if element in ("chart-drift-heatmap", "chart-timeline") else ""
        sections.append(
            f'<section data-chart="{element}"><h2>{escape(title)}</h2><p class="what">{escape(what)}</p>'
            f'<div class="chart{tall}" id="{element}"></div>'
            + (f"<h3>New categories</h3>{categories}" if element == "chart-drift-heatmap" else "")
            + "</section>"
        )
    mlflow = (
        f' &middot; <a href="{escape(data["model_url"], quote=True)}" target="_blank" rel="noopener">in MLflow</a>'
        if data.get("model_url")
        else ""
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{name}: model charts</title><style>{STYLE}</style>"
        f'<script src="{escape(static, quote=True)}/echarts.min.js"></script>'
        f'<script src="{escape(static, quote=True)}/models_view.js"></script></head>'
        f'<body data-model="{escape(data["model"], quote=True)}"><nav><a href="../">&larr; all models</a>{mlflow}'
        f'</nav><h1 title="{escape(data["model"], quote=True)}">{name}</h1>'
        f'<p class="what">task: {escape(data["task"])} &middot; {len(data["versions"])} versions &middot; '
        f"{len(data['intervals'])} scored intervals &middot; click a point to open its link; the tooltip lists "
        f"them all (move into it to click)</p>{warnings}"
        + "".join(sections)
        + f'<script type="application/json" id="model-data">{json_for_script(data)}</script>'
        "<script>mlopsModelsView.drawModel(JSON.parse("
        "document.getElementById('model-data').textContent));</script></body></html>"
    )

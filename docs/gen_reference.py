"""MkDocs hook: the pages that are generated at build time, never hand-copied.

- ``configuration/<kind>.md``, one page per configuration file, from its JSON Schema in ``docs/schemas/`` (which
  ``mlops-ops config schema KIND`` writes and ``tests/unit/core/test_config_schema.py`` keeps equal to the
  loaders);
- the figures of ``benchmarks.md``, read from ``benchmarks/results/*.json`` (what ``make bench`` writes): the
  page's ``<!-- benchmark-results -->`` marker is replaced by one section per result file.

``mkdocs.yml`` names this file under ``hooks:``; ``tests/unit/test_docs_site.py`` imports it by path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
PROJECT_ROOT = DOCS.parent
SCHEMAS = DOCS / "schemas"
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
BENCHMARK_MARKER = "<!-- benchmark-results -->"

#: The configuration kinds (``mlops-ops config schema KIND``), the file a project usually calls it, and the
#: reference project's own example of it.
KINDS: dict[str, tuple[str, str]] = {
    "model-spec": ("Model spec", "include/flights/model_spec.yaml"),
    "gate-policy": ("Gate policy", "include/flights/gate.yaml"),
    "decay-rule": ("Decay rule", "include/flights/decay.yaml"),
    "business-costs": ("Business costs", "include/flights/business_costs.yaml"),
    "suite": ("Expectation suite", "include/flights/expectations/flights_raw.json"),
}


def _escape(text: str) -> str:
    """A table cell: pipes escaped, line breaks folded."""
    return " ".join(text.split()).replace("|", "\\|")


def type_of(prop: dict[str, Any]) -> str:
    """A JSON Schema property's type, as a reader writes it: ``string``, ``list of string``, ``map of number``,
    ``number or null``, ``one of accept, reject``."""
    if "enum" in prop:
        return "one of " + ", ".join(f"`{value}`" for value in prop["enum"])
    if "anyOf" in prop or "oneOf" in prop:
        return " or ".join(type_of(option) for option in prop.get("anyOf", prop.get("oneOf", [])))
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(type_of(item) for item in prop["prefixItems"]) + "]"
        return "list of " + type_of(prop.get("items", {}))
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and values:
            return "map of " + type_of(values)
        if prop.get("properties"):
            return "object (" + ", ".join(f"`{name}`" for name in prop["properties"]) + ")"
        return "mapping"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or "any"


def schema_page(kind: str, schema: dict[str, Any]) -> str:
    """The Markdown reference page of one configuration kind, from its JSON Schema."""
    title, example = KINDS.get(kind, (kind, ""))
    required = set(schema.get("required", []))
    lines = [
        f"# {title} (`{kind}`)",
        "",
        "<!-- Generated at build time by docs/gen_reference.py from docs/schemas/"
        f"{kind}.schema.json; edit the loader's docstring, not this page. -->",
        "",
        schema.get("description", ""),
        "",
        f"JSON Schema: [`{kind}.schema.json`](../schemas/{kind}.schema.json) "
        f"(`uv run mlops-ops config schema {kind}` prints it). Check a file exactly as the operators load it "
        f"with `uv run mlops-ops config check {kind} FILE`."
        + (f" The reference project's: `{example}`." if example else ""),
        "",
    ]
    if schema.get("additionalProperties") is False:
        lines += ["Unknown fields are refused.", ""]
    if "oneOf" in schema:
        lines += [
            "A file holds exactly one of these shapes: "
            + "; ".join(
                " + ".join(f"`{name}`" for name in option.get("required", [])) or "(any)"
                for option in schema["oneOf"]
            )
            + ".",
            "",
        ]
    lines += ["| Field | Type | Required | Default | Meaning |", "| --- | --- | --- | --- | --- |"]
    for name, prop in schema.get("properties", {}).items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        lines.append(
            f"| `{name}` | {_escape(type_of(prop))} | {'yes' if name in required else ''} | {_escape(default)} "
            f"| {_escape(prop.get('description', ''))} |"
        )
    return "\n".join(lines) + "\n"


def _scalars(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every scalar leaf of a result, with its dotted path; lists of names are shown joined, lists of numbers
    are the single runs, left out (their medians are beside them)."""
    if isinstance(value, dict):
        found: list[tuple[str, Any]] = []
        for key, item in value.items():
            found += _scalars(item, f"{prefix}.{key}" if prefix else str(key))
        return found
    if isinstance(value, list):
        if value and all(isinstance(item, str) for item in value):
            return [(f"{prefix} ({len(value)})", ", ".join(value))]
        return []
    return [(prefix, value)]


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


#: The headline figures of the results that carry no ``checks`` list: a label and the figure's dotted path in
#: the result (the value is read from the file at build time).
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "dag_parse": [
        ("every DAG file parsed in a fresh process, median (s)", "dag_parse_median_s"),
        ("a bare `import airflow.sdk`, median (s)", "baseline_median_s"),
        ("ratio", "ratio"),
        ("goal: ratio at most", "goal_ratio"),
        ("ratio without a bytecode cache", "without_bytecode_cache.ratio"),
    ],
    "serving": [
        ("scorer", "scorer"),
        ("requests", "requests"),
        ("answered 200", "ok"),
        ("achieved rate (requests/s)", "achieved_rate_per_s"),
        ("p50 (ms)", "p50_ms"),
        ("p90 (ms)", "p90_ms"),
        ("p99 (ms)", "p99_ms"),
        ("max (ms)", "max_ms"),
        ("the model's own predict_proba: p50 (ms)", "before_compiled_trees.p50_ms"),
        ("the model's own predict_proba: p99 (ms)", "before_compiled_trees.p99_ms"),
        ("goal: p99 at most (ms)", "goal_p99_ms"),
    ],
    "serving_predict": [
        ("every core: p50 (ms)", "every_core.p50_ms"),
        ("every core: p99 (ms)", "every_core.p99_ms"),
        ("one thread (`--model-threads 1`): p50 (ms)", "one_thread.p50_ms"),
        ("one thread: p99 (ms)", "one_thread.p99_ms"),
        ("compiled trees: p50 (ms)", "compiled.p50_ms"),
        ("compiled trees: p99 (ms)", "compiled.p99_ms"),
        ("one thread / every core, p99", "one_thread_p99_ratio"),
        ("compiled / one thread, p99", "compiled_p99_ratio"),
        ("goal: compiled / one thread at most", "goal_compiled_p99_ratio"),
    ],
    "serving_vs_mlflow": [
        (
            "`mlops-ops serve`: highest rate at p99 <= goal (requests/s)",
            "prediction_api.sustainable_rate_per_s",
        ),
        ("`mlops-ops serve`: p50 there (ms)", "prediction_api.p50_ms"),
        ("`mlops-ops serve`: p99 there (ms)", "prediction_api.p99_ms"),
        ("`mlflow models serve`: highest rate (requests/s)", "mlflow_models_serve.sustainable_rate_per_s"),
        ("`mlflow models serve`: p99 there (ms)", "mlflow_models_serve.p99_ms"),
        (
            "`mlflow models serve`, one OpenMP thread: highest rate (requests/s)",
            "mlflow_models_serve_one_thread.sustainable_rate_per_s",
        ),
        ("ratio", "ratio"),
        ("ratio vs MLflow with one thread", "ratio_vs_mlflow_one_thread"),
        ("goal: ratio at least", "goal_ratio"),
    ],
    "model_quality": [
        ("held-out ROC-AUC, schedule only", "variants.schedule.roc_auc"),
        ("held-out ROC-AUC, schedule + origin weather", "variants.schedule_weather.roc_auc"),
        ("held-out ROC-AUC, the feature service as it is", "variants.feature_store.roc_auc"),
        ("its log loss", "variants.feature_store.log_loss"),
        ("goal: ROC-AUC at least", "goal_roc_auc"),
        ("goal met", "ok"),
    ],
    "models_view": [
        ("versions", "registry.versions"),
        ("daily intervals", "registry.intervals"),
        ("monitoring metric points", "registry.monitoring_metric_points"),
        ("requests timed per path (after one warm-up)", "requests"),
        ("`GET /model/<name>`: median (s)", "timings.model_page.median_s"),
        ("`GET /model/<name>`: p90 (s)", "timings.model_page.p90_s"),
        ("`GET /api/models/<name>/charts`: median (s)", "timings.charts_endpoint.median_s"),
        ("`GET /api/models/<name>/charts`: p90 (s)", "timings.charts_endpoint.p90_s"),
        ("`GET /` (overview): median (s)", "timings.overview_page.median_s"),
        ("goal: median at most (s)", "goal_s"),
        ("goal met", "goal_met"),
    ],
    "mlflow_auth": [
        ("MLflow's default (no cache): server CPU per request (ms)", "cache_off.server_cpu_ms_per_request"),
        ("MLflow's default: median latency (ms)", "cache_off.latency_median_ms"),
        ("60 s password-check cache: server CPU per request (ms)", "cache_on.server_cpu_ms_per_request"),
        ("60 s cache: median latency (ms)", "cache_on.latency_median_ms"),
    ],
    "task_preload": [
        ("a task's imports, forked from the scheduler: CPU (s)", "cold_task_import_cpu_s"),
        ("a task's imports, from the preloading forkserver: CPU (s)", "preloaded_task_import_cpu_s"),
        ("the forkserver's one-off start (s)", "forkserver_start_wall_s"),
    ],
}


def figure(result: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a result.

    :raises KeyError: naming the path, when the result has no such figure (a renamed field fails the build).
    """
    value: Any = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"benchmark result has no figure {path!r}")
        value = value[key]
    return value


def benchmark_section(name: str, result: dict[str, Any]) -> str:
    """One result file as Markdown: what it measured, its checks against their goals, every figure."""
    lines = [f"### `{name}`", ""]
    if result.get("what"):
        lines += [_escape(str(result["what"])), ""]
    measured = ", ".join(
        f"{key} {_shown(result[key])}"
        for key in ("measured_at", "python", "machine", "cpus")
        if key in result
    )
    if measured:
        lines += [f"Measured: {measured}. Source: `benchmarks/results/{name}.json`.", ""]
    headlines = HEADLINES.get(name, [])
    if headlines:
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [
            f"| {_escape(label)} | {_escape(_shown(figure(result, path)))} |" for label, path in headlines
        ]
        lines.append("")
    checks = result.get("checks") or []
    if checks:
        lines += ["| check | value | goal | met |", "| --- | --- | --- | --- |"]
        for check in checks:
            lines.append(
                f"| {_escape(str(check.get('name', '')))} | {_shown(check.get('value'))} | "
                f"{_escape(str(check.get('goal', '')))} | {'yes' if check.get('ok') else '**no**'} |"
            )
        lines.append("")
    skip = {"benchmark", "what", "checks", "measured_at", "python", "machine", "cpus"}
    figures = [(path, value) for path, value in _scalars(result) if path.split(".")[0] not in skip]
    if figures:
        lines += [
            '??? info "Every figure of the result"',
            "",
            "    | figure | value |",
            "    | --- | --- |",
        ]
        lines += [f"    | `{path}` | {_escape(_shown(value))} |" for path, value in figures]
        lines.append("")
    return "\n".join(lines)


def benchmark_results(folder: Path = RESULTS) -> str:
    """Every result file of ``folder``, in name order."""
    sections = [
        benchmark_section(path.stem, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))
    ]
    return "\n".join(sections) if sections else "No results yet: run `make bench`.\n"


# -- MkDocs hook events ------------------------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    """Add the generated configuration pages to the site."""
    from mkdocs.structure.files import File

    for kind in KINDS:
        schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
        files.append(File.generated(config, f"configuration/{kind}.md", content=schema_page(kind, schema)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put the benchmark results where the page asks for them."""
    if BENCHMARK_MARKER in markdown:
        return markdown.replace(BENCHMARK_MARKER, benchmark_results())
    return markdown


#: A Sphinx cross-reference role left in a rendered docstring: ``:class:`~x.Y``` renders as ``:class:<code>~x.Y``.
SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|ref):(<code>)~?")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Drop the Sphinx roles of the docstrings (Airflow's style) that mkdocstrings leaves as text."""
    return SPHINX_ROLE.sub(r"\1", html)

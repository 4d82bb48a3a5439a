"""The documentation site and the README: generated pages that follow their sources, examples that exist, links
that resolve, a README short enough to read, and ``mkdocs build --strict`` passing."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$', re.MULTILINE)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


@pytest.mark.parametrize("kind", ["model-spec", "gate-policy", "decay-rule", "business-costs", "suite"])
def test_each_configuration_page_lists_every_field_of_its_schema(kind):
    generator = _generator()
    schema = json.loads((DOCS / "schemas" / f"{kind}.schema.json").read_text())
    page = generator.schema_page(kind, schema)
    rows = {line.split(" | ")[0].strip("| `") for line in page.splitlines() if line.startswith("| `")}
    assert rows == set(schema["properties"]), page
    for name in schema.get("required", []):
        assert f"| `{name}` | " in page and " | yes | " in page
    assert f"(../schemas/{kind}.schema.json)" in page


def test_schema_types_read_as_a_person_writes_them():
    type_of = _generator().type_of
    assert type_of({"type": "array", "items": {"type": "string"}}) == "list of string"
    assert type_of({"type": "object", "additionalProperties": {"type": "number"}}) == "map of number"
    assert type_of({"anyOf": [{"type": "number"}, {"type": "null"}]}) == "number or null"
    assert type_of({"enum": ["accept", "reject"], "type": "string"}) == "one of `accept`, `reject`"


def test_the_benchmark_figures_are_read_from_the_result_files(tmp_path):
    generator = _generator()
    result = {
        "benchmark": "dag_parse",
        "what": "parse",
        "dag_parse_median_s": 1.993,
        "baseline_median_s": 1.838,
        "ratio": 1.084,
        "goal_ratio": 1.1,
        "without_bytecode_cache": {"ratio": 1.048},
        "checks": [{"name": "speed", "value": 90.8, "goal": ">= 40", "ok": True}],
        "measured_at": "2026-11-26T18:54:13+00:00",
    }
    (tmp_path / "dag_parse.json").write_text(json.dumps(result))
    text = generator.benchmark_results(tmp_path)
    for figure in ("1.993", "1.838", "1.084", "1.048", "90.8", ">= 40", "2026-11-26T18:54:13+00:00"):
        assert figure in text, figure
    # Every headline figure of the real results exists: a renamed field fails here, not on the site.
    real = generator.benchmark_results()
    for name in generator.HEADLINES:
        assert f"### `{name}`" in real


def test_a_missing_headline_figure_names_its_path():
    generator = _generator()
    with pytest.raises(KeyError, match="variants.schedule.roc_auc"):
        generator.benchmark_section("model_quality", {"variants": {}})


def test_every_included_example_exists_with_its_section():
    included = []
    for page in _pages():
        for path, section in SNIPPET.findall(page.read_text()):
            source = PROJECT_ROOT / path
            assert source.is_file(), f"{page.name} includes {path}, which does not exist"
            if section:
                text = source.read_text()
                assert f"--8<-- [start:{section}]" in text and f"--8<-- [end:{section}]" in text, (
                    path,
                    section,
                )
            included.append(path)
    # Every example DAG file is shown somewhere.
    shown = {Path(path).name for path in included}
    assert shown >= {
        path.name for path in (PROJECT_ROOT / "examples" / "docs_snippets" / "dags").glob("*.py")
    }


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, len(lines)
    first_block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    for command in ("make lint", "make audit", "make docs", "make test"):
        assert f"\n{command}\n" in ci, command


def test_the_readme_and_the_docs_cite_no_file_outside_the_repository():
    for page in [README, *_pages()]:
        assert "DESIGN.md" not in page.read_text(), f"{page} cites DESIGN.md, which is not in the repository"


def test_every_relative_link_of_the_readme_resolves():
    for target in LINK.findall(README.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        assert (PROJECT_ROOT / target).exists(), f"README links {target}, which does not exist"


def test_every_page_is_in_the_nav():
    import yaml

    config = yaml.load((PROJECT_ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)

    def walk(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from walk(value)
        elif isinstance(entry, list):
            for item in entry:
                yield from walk(item)

    nav = set(walk(config["nav"]))
    generated = {f"configuration/{kind}.md" for kind in _generator().KINDS}
    on_disk = {str(page.relative_to(DOCS)) for page in _pages()}
    assert on_disk - nav == set(), "pages missing from the nav of mkdocs.yml"
    assert nav - on_disk - generated == set(), "nav entries without a page"


def test_the_site_builds_strictly(tmp_path):
    """``make docs``'s build: any warning (a broken link or anchor, a missing snippet, an API object that does
    not resolve) fails it."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "WARNING" not in done.stderr, done.stderr[-4000:]
    model_spec = (tmp_path / "site" / "configuration" / "model-spec" / "index.html").read_text()
    assert "numerical_features" in model_spec
    training = (tmp_path / "site" / "operators" / "training" / "index.html").read_text()
    assert "EvaluateGateOperator" in training and "--8&lt;--" not in training


def test_sphinx_roles_left_in_rendered_docstrings_are_dropped():
    rendered = "see :func:<code>~mlops_ops.core.training.fit</code> and :class:<code>GateFailed</code>"
    assert _generator().on_page_content(rendered, None, None, None) == (
        "see <code>mlops_ops.core.training.fit</code> and <code>GateFailed</code>"
    )

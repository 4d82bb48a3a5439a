"""The distribution's metadata: one version, a license file, a typed package, project URLs, no untested caps."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import mlops_ops
from mlops_ops.get_provider_info import documentation_url, get_provider_info

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_the_version_has_one_source_read_by_hatch_and_the_provider_info():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "mlops_ops/__init__.py"
    assert get_provider_info()["versions"] == [mlops_ops.__version__]
    assert f"## [{mlops_ops.__version__}]" in (PROJECT_ROOT / "CHANGELOG.md").read_text()


def test_the_license_file_is_the_apache_license_the_metadata_names_and_the_package_is_typed():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (PROJECT_ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert (Path(mlops_ops.__file__).parent / "py.typed").is_file()


def test_the_integration_documentation_link_is_the_projects_own():
    urls = PYPROJECT["project"]["urls"]
    assert {"Documentation", "Source", "Changelog"} <= set(urls)
    (own,) = [i for i in get_provider_info()["integrations"] if i["integration-name"] == "mlops-ops"]
    assert own["external-doc-url"] == documentation_url() == urls["Documentation"]


def test_no_upper_bound_on_a_dependency_without_a_recorded_break():
    """A cap blocks teams installing into their own image: only one with a comment saying what broke stays."""
    lines = (PROJECT_ROOT / "pyproject.toml").read_text().splitlines()
    start, end = lines.index("[project]"), lines.index("[dependency-groups]")
    capped = []
    for number in range(start, end):
        line = lines[number]
        if re.search(r'"[A-Za-z0-9_.\[\]-]+[^"]*<[^"]*"', line) and not line.lstrip().startswith("#"):
            comment = lines[number - 1].lstrip()
            if not comment.startswith("#"):
                capped.append(line.strip())
    assert capped == []
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"

"""Tests of lineage: code revision, library versions, Airflow tags, tag clipping."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import sklearn

from mlops_ops.core import lineage

PROJECT_ROOT = Path(__file__).resolve().parents[3]
COMMIT = re.compile(r"[0-9a-f]{40}(\+dirty\.[0-9a-f]{12})?")


@pytest.fixture(autouse=True)
def no_revision_override(monkeypatch):
    monkeypatch.delenv("MLOPS_CODE_REVISION", raising=False)


def git(folder: Path, *args: str) -> str:
    command = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_code_revision_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_CODE_REVISION", "release-2024.06")

    assert lineage.code_revision(tmp_path) == "release-2024.06"
    assert lineage.code_revision(PROJECT_ROOT) == "release-2024.06"


def test_code_revision_outside_git_is_unknown(tmp_path):
    assert lineage.code_revision(tmp_path) == "unknown"


def test_code_revision_inside_this_repository_is_its_commit():
    revision = lineage.code_revision(PROJECT_ROOT)

    assert COMMIT.fullmatch(revision), revision
    assert revision.partition("+")[0] == git(PROJECT_ROOT, "rev-parse", "HEAD")
    # A file path is resolved to its folder.
    assert lineage.code_revision(PROJECT_ROOT / "pyproject.toml") == revision


def test_code_revision_marks_modified_tracked_files_as_dirty_and_ignores_untracked_ones(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "dag.py").write_text("x = 1\n")
    git(tmp_path, "add", "dag.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    commit = git(tmp_path, "rev-parse", "HEAD")

    (tmp_path / "scratch.txt").write_text("not tracked")
    clean = lineage.code_revision(tmp_path)
    (tmp_path / "dag.py").write_text("x = 2\n")
    dirty = lineage.code_revision(tmp_path)
    (tmp_path / "dag.py").write_text("x = 3\n")
    other_edit = lineage.code_revision(tmp_path)
    (tmp_path / "dag.py").write_text("x = 2\n")

    assert clean == commit
    assert re.fullmatch(rf"{commit}\+dirty\.[0-9a-f]{{12}}", dirty)
    assert other_edit != dirty, "two different uncommitted edits must not share a revision"
    assert lineage.code_revision(tmp_path) == dirty, "the same edit gives the same revision"


def test_library_versions_include_scikit_learn_and_leave_out_missing_ones():
    versions = lineage.library_versions(("scikit-learn", "no-such-distribution-xyz"))

    assert versions == {"scikit-learn": sklearn.__version__}
    assert "scikit-learn" in lineage.library_versions()


def test_pip_requirements_pin_installed_versions():
    assert f"scikit-learn=={sklearn.__version__}" in lineage.pip_requirements()
    assert all(re.fullmatch(r"[a-z-]+==\S+", requirement) for requirement in lineage.pip_requirements())


def test_airflow_tags_leave_out_unknowns_and_stringify():
    tags = lineage.airflow_tags("retrain", "manual__1", None, 2)

    assert tags == {
        "mlops.airflow.dag_id": "retrain",
        "mlops.airflow.run_id": "manual__1",
        "mlops.airflow.try_number": "2",
    }


@pytest.mark.parametrize("length", [0, 10, lineage.MAX_TAG_LENGTH])
def test_clip_tag_keeps_a_value_that_fits(length):
    value = "x" * length

    assert lineage.clip_tag(value) == value


@pytest.mark.parametrize("length", [lineage.MAX_TAG_LENGTH + 1, 3 * lineage.MAX_TAG_LENGTH])
def test_clip_tag_cuts_a_long_value_to_the_limit_with_an_ellipsis(length):
    value = "".join(str(i % 10) for i in range(length))

    clipped = lineage.clip_tag(value)

    assert len(clipped) == lineage.MAX_TAG_LENGTH
    assert clipped.endswith("...")
    assert value.startswith(clipped[:-3])


def test_every_tag_shares_the_prefix():
    names = [value for name, value in vars(lineage).items() if name.isupper() and isinstance(value, str)]

    assert names and all(
        value.startswith(lineage.PREFIX)
        for value in names
        if value not in (lineage.PREFIX, lineage.UNKNOWN_REVISION)
    )

"""Run pip-audit on the locked requirements and report; fail on a finding, not on an unreachable service.

pip-audit asks PyPI's JSON API which releases have known vulnerabilities. Where that service cannot be reached
(a network that only mirrors the package index answers 404 for every package), pip-audit skips each package
and still says "No known vulnerabilities found": this script tells that case apart and says so plainly, so a
skipped audit is never read as a clean one.

Usage: python .ci/pip_audit_report.py REQUIREMENTS REPORT_JSON [--ignore-vuln ID ...]
Exit status: 0 clean or unreachable service (reported), 1 any vulnerability not ignored, 2 pip-audit failed.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    requirements, report, *ignores = argv
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        requirements,
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--output",
        report,
        *ignores,
    ]
    # A report from an earlier run must never be read as this one's.
    Path(report).unlink(missing_ok=True)
    # A fixed command line with this interpreter; pip-audit exits 1 when it finds something, read from the JSON.
    finished = subprocess.run(command, capture_output=True, text=True)  # nosec B603
    try:
        with open(report) as handle:
            dependencies = json.load(handle)["dependencies"]
    except (OSError, ValueError, KeyError) as err:
        print(f"pip-audit: no report ({err}); it said:\n{finished.stderr[-3000:]}", file=sys.stderr)
        return 2
    status, lines = verdict(dependencies)
    print("\n".join(lines))
    return status


def verdict(dependencies: list[dict]) -> tuple[int, list[str]]:
    """The exit status and the report lines for pip-audit's JSON ``dependencies``."""
    lines = []
    audited = [dep for dep in dependencies if "skip_reason" not in dep]
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    vulnerable = [dep for dep in audited if dep.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            lines.append(f"pip-audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        lines.append(
            f"pip-audit: FAILED: {len(vulnerable)} vulnerable package(s) of {len(audited)} audited; upgrade them "
            "in uv.lock, or pass --ignore-vuln ID in the Makefile's audit target with a comment saying why"
        )
        return 1, lines
    if not audited and skipped:
        lines.append(
            f"pip-audit: NOT AUDITED: the vulnerability service (PyPI's JSON API) is unreachable from this "
            f"network: all {len(skipped)} locked packages were skipped ({skipped[0]['skip_reason']}). "
            "Not failing CI for the network; run `make audit` where pypi.org answers."
        )
        return 0, lines
    lines.append(
        f"pip-audit: clean: {len(audited)} package(s) audited, no known vulnerability"
        + (f"; {len(skipped)} skipped: {', '.join(dep['name'] for dep in skipped)}" if skipped else "")
    )
    return 0, lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Process groups started and stopped by PID (mlops_dev.processes), with real child processes."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from mlops_dev.processes import (
    process_group_alive,
    read_pid_file,
    start_process,
    stop_process_group,
    write_pid_file,
)

# A parent that forks a child and ignores SIGTERM: what a server with worker processes looks like when it
# will not stop politely.
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def _child_pid(log) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text().strip()
        if text:
            return int(text.splitlines()[0])
        time.sleep(0.1)
    raise AssertionError("the child never started")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0) until reaped; it has stopped all the same.
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_started_process_leads_its_own_group_and_stop_kills_the_whole_group(tmp_path):
    process = start_process("stubborn", [sys.executable, "-c", STUBBORN], env=os.environ, log_dir=tmp_path)
    child = _child_pid(process.log)
    assert os.getpgid(process.pid) == process.pid != os.getpgid(0)
    assert os.getpgid(child) == process.pid

    started = time.monotonic()
    process.stop(grace=1)  # SIGTERM is ignored: SIGKILL after the grace period
    assert time.monotonic() - started < 10
    assert not process.running()
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child), "the child outlived its group"
    assert not process_group_alive(process.pid)


def test_a_process_that_stops_politely_is_not_killed(tmp_path):
    process = start_process(
        "polite", [sys.executable, "-c", "import time; time.sleep(300)"], env=os.environ, log_dir=tmp_path
    )
    stop_process_group(process.pid, signal.SIGTERM, grace=10)
    assert process.popen.wait(timeout=5) == -signal.SIGTERM


def test_stopping_a_group_that_is_gone_signals_nothing(tmp_path):
    process = start_process("short", [sys.executable, "-c", "pass"], env=os.environ, log_dir=tmp_path)
    process.popen.wait(timeout=20)
    assert stop_process_group(process.pid) is False


def test_pid_file_round_trip(tmp_path):
    path = tmp_path / "run" / "up.pid"
    assert read_pid_file(path) == {}
    write_pid_file(path, {"airflow": 123, "mlflow": 456})
    assert read_pid_file(path) == {"airflow": 123, "mlflow": 456}
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a PID file"):
        read_pid_file(path)

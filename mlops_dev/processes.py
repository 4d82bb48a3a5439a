"""Local server processes started in their own process group and stopped by PID: ``make up``/``make down``
and the native production stack of the integration tests.

Every process is started with ``start_new_session=True``, so it leads a process group of its own and
whatever it forks (Airflow's API server workers, Celery's pool, gunicorn) is stopped with it; nothing is ever
stopped by name. Stopping sends a polite signal to the group, waits, then sends ``SIGKILL`` to what is left.
"""

from __future__ import annotations

import json
import os
import signal

# Starts the local stack's own servers (airflow, mlflow) from argument lists, never through a shell.
import subprocess  # nosec B404
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ManagedProcess:
    """A started server process, the leader of its own process group, its output in ``log``.

    :param name: a short name, used for the log file and in messages.
    :param popen: the started process.
    :param log: the file its stdout and stderr go to.
    :param stop_signal: the signal that asks it to stop (``airflow standalone`` only handles ``SIGINT``).
    """

    name: str
    popen: subprocess.Popen = field(repr=False)
    log: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        """The process id, which is also its process group id."""
        return self.popen.pid

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.popen.poll() is None

    def stop(self, grace: float = 20.0) -> int | None:
        """Stop the process group: ``stop_signal``, then ``SIGKILL`` after ``grace`` seconds.

        :param grace: seconds to wait for a clean exit.
        :return: the exit status of the leader, ``None`` if it could not be reaped.
        """
        stop_process_group(self.pid, self.stop_signal, grace)
        try:
            return self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, characters: int = 4000) -> str:
        """The end of the process's log, for failure reports."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text[-characters:]


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    stop_signal: int = signal.SIGTERM,
) -> ManagedProcess:
    """Start ``argv`` in a new session (its own process group), output appended to ``log_dir/<name>.log``.

    :param name: a short name for the log file and messages.
    :param argv: the command.
    :param env: its whole environment.
    :param log_dir: where the log file goes (created if missing).
    :param stop_signal: the signal :meth:`ManagedProcess.stop` sends first.
    :return: the started process.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("ab") as output:
        # An argument list built by mlops-ops itself (airflow standalone, mlflow server), never a shell string.
        popen = subprocess.Popen(  # nosec B603
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ManagedProcess(name=name, popen=popen, log=log, stop_signal=stop_signal)


def stop_process_group(pid: int, first_signal: int = signal.SIGTERM, grace: float = 20.0) -> bool:
    """Send ``first_signal`` to process group ``pid``; ``SIGKILL`` it if its leader outlives ``grace``.

    Only for a group this code started (its leader's pid is the group id): a pid from a stale PID file may
    by now belong to another process, so callers check :func:`process_group_alive` first.

    :param pid: the process id of a group leader started with ``start_new_session=True``.
    :param first_signal: the polite signal.
    :param grace: seconds to wait between the two signals.
    :return: whether anything was signalled (``False``: the group was already gone).
    """
    try:
        os.killpg(pid, first_signal)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not process_group_alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def process_group_alive(pid: int) -> bool:
    """Whether process group ``pid`` still has a member that is not a zombie.

    A killed member stays a zombie until its parent (or, for an orphan, the container's init) reaps it, and
    ``killpg(pid, 0)`` still succeeds for it; on Linux the group's members are looked up in ``/proc``.
    """
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # Fields after the command name: state, ppid, pgrp, ...
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pid and state != "Z":
            return True
    return False


def write_pid_file(path: Path, processes: Mapping[str, int]) -> None:
    """Record the process group ids of started services, ``{"name": pid}``, atomically.

    :param path: the PID file.
    :param processes: service name to process (group) id.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(dict(processes), indent=2) + "\n")
    temporary.replace(path)


def read_pid_file(path: Path) -> dict[str, int]:
    """The ``{"name": pid}`` of a PID file written by :func:`write_pid_file`; empty when there is none."""
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a PID file written by mlops-ops: {err}") from err
    return {str(name): int(pid) for name, pid in recorded.items()}

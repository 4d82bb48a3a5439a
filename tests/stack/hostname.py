"""``[core] hostname_callable`` of the native stack's Celery workers (imports nothing heavy: every task
process of the worker calls it)."""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """``<worker>@<host>``, like Celery's node names: both workers of the native stack run on one host, and
    a task instance's ``hostname`` must still say which of them ran it."""
    return f"{os.environ.get('MLOPS_STACK_WORKER', 'worker')}@{socket.gethostname()}"

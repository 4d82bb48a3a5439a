"""Fault injection for the real-scheduler fault tests: SIGKILL the task process at planned points.

Test-only. ``tests/e2e/test_fault_injection.py`` puts this folder first on the ``PYTHONPATH`` of ``airflow
standalone``, so every Airflow process imports this module at start-up. It does nothing unless
``MLOPS_FAULT_PLAN`` names a plan file: a JSON list of faults, each::

    {"id": "train-after-log-model", "target": "mlflow.sklearn:log_model", "when": "after",
     "dag_id": "retrain", "task_id": "train", "run_id": null, "arg_endswith": null}

``target`` is ``module:attribute`` or ``module:Class.method``. When the module is imported, the attribute is
wrapped; a call made inside a task whose Airflow context (the ``AIRFLOW_CTX_*`` variables the task runner
exports before ``execute``) matches ``dag_id``/``task_id``/``run_id`` (``None`` matches any), and, with
``arg_endswith``, that has a string argument ending so, claims the fault and kills its own process with
SIGKILL, before or after the real call. A fault is claimed once, by creating ``<plan>.claims/<id>``
exclusively (``O_CREAT | O_EXCL``: atomic, even across concurrent task processes), so the retry that Airflow
schedules passes the same point. The claim file records who was killed: pid, try number, dag, run, task, and
the ``name`` of each argument that has one (a Feast feature view).

A fault with ``"action": "pause"`` kills nothing: the task stops at the point until the test has acted on it
(``tests/e2e/test_service_down.py`` stops the service the fault names) and created ``<plan>.claims/<id>.done``,
then goes on (at most ``PAUSE_SECONDS`` later), so a service goes down at an exact point inside a task.
"""

from __future__ import annotations

import functools
import importlib.abc
import json
import os
import signal
import sys
import time

PLAN_ENV = "MLOPS_FAULT_PLAN"
#: How long a paused task waits for the test to act before it goes on regardless.
PAUSE_SECONDS = 120


def _load_plan() -> list[dict]:
    path = os.environ.get(PLAN_ENV)
    if not path:
        return []
    with open(path) as plan:
        return json.load(plan)


def _context() -> dict[str, str | None]:
    return {
        "dag_id": os.environ.get("AIRFLOW_CTX_DAG_ID"),
        "task_id": os.environ.get("AIRFLOW_CTX_TASK_ID"),
        "run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
        "try_number": os.environ.get("AIRFLOW_CTX_TRY_NUMBER"),
    }


def _matches(fault: dict, context: dict, args: tuple, kwargs: dict) -> bool:
    if context["task_id"] is None:  # not inside a task's execute (the dag-processor, the scheduler)
        return False
    if any(fault.get(key) not in (None, context[key]) for key in ("dag_id", "task_id", "run_id")):
        return False
    suffix = fault.get("arg_endswith")
    return suffix is None or any(
        isinstance(value, str) and value.endswith(suffix) for value in (*args, *kwargs.values())
    )


def _claims_folder() -> str:
    return os.environ[PLAN_ENV] + ".claims"


def _claim(fault: dict, context: dict, args: tuple, kwargs: dict) -> bool:
    """Claim ``fault`` for this process; ``False`` when an earlier process claimed it."""
    claims = _claims_folder()
    os.makedirs(claims, exist_ok=True)
    try:
        descriptor = os.open(os.path.join(claims, fault["id"]), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    values = (*args, *kwargs.values())
    names = [value.name for value in values if isinstance(getattr(value, "name", None), str)]
    record = {**context, "id": fault["id"], "pid": os.getpid(), "at": time.time(), "names": names}
    os.write(descriptor, json.dumps(record).encode())
    os.fsync(descriptor)
    os.close(descriptor)
    return True


def _pause(fault: dict) -> None:
    """Wait until the test has acted on ``fault`` (``<id>.done`` exists), at most :data:`PAUSE_SECONDS`."""
    done = os.path.join(_claims_folder(), fault["id"] + ".done")
    deadline = time.monotonic() + PAUSE_SECONDS
    while not os.path.exists(done) and time.monotonic() < deadline:
        time.sleep(0.1)


def _fire(faults: list[dict], when: str, args: tuple, kwargs: dict) -> None:
    context = _context()
    for fault in faults:
        if (
            fault["when"] == when
            and _matches(fault, context, args, kwargs)
            and _claim(fault, context, args, kwargs)
        ):
            action = "pause" if fault.get("action") == "pause" else "SIGKILL"
            sys.stderr.write(f"FAULT {fault['id']}: {action} pid {os.getpid()} {when} {fault['target']}\n")
            sys.stderr.flush()
            if action == "pause":
                _pause(fault)
            else:
                os.kill(os.getpid(), signal.SIGKILL)


def _wrap(original, faults: list[dict]):
    @functools.wraps(original)
    def injected(*args, **kwargs):
        _fire(faults, "before", args, kwargs)
        result = original(*args, **kwargs)
        _fire(faults, "after", args, kwargs)
        return result

    return injected


def _patch(module, targets: dict[str, list[dict]]) -> None:
    for attribute, faults in targets.items():
        owner = module
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _wrap(getattr(owner, name), faults))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Wraps the planned attributes of a module right after the module is executed."""

    def __init__(self, by_module: dict[str, dict[str, list[dict]]]) -> None:
        self.by_module = by_module

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.by_module:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        execute, targets = spec.loader.exec_module, self.by_module[fullname]

        def exec_module(module):
            execute(module)
            _patch(module, targets)

        spec.loader.exec_module = exec_module
        return spec


def _install() -> None:
    by_module: dict[str, dict[str, list[dict]]] = {}
    for fault in _load_plan():
        module, attribute = fault["target"].split(":")
        by_module.setdefault(module, {}).setdefault(attribute, []).append(fault)
    for module in [name for name in by_module if name in sys.modules]:
        _patch(sys.modules[module], by_module.pop(module))
    if by_module:
        sys.meta_path.insert(0, _PatchOnImport(by_module))


_install()

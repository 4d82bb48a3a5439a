"""What a task process pays to import the lifecycle's libraries, with and without a preloading forkserver.

Airflow's LocalExecutor forks every task process from one of its workers. By default the workers are forked from
the scheduler, which has not imported pandas, scikit-learn, MLflow, Great Expectations, Evidently or Feast, so
every task imports them again. ``make up`` (and the tests' deployments) start the workers from a forkserver that
preloads :data:`mlops_ops.preload.TASK_PRELOAD_MODULES` (Airflow 3.3's ``[scheduler] mp_start_method`` and
``[core] mp_forkserver_preload``), so a task inherits them.

Each round starts one process the way each setting does and has it import the modules: a fresh interpreter
(``spawn``: what a task forked from a parent that has not imported them pays, whatever this benchmark process
imported before, as ``make bench`` runs the other benchmarks first) and a child of a forkserver that preloaded
them. The figure is that process's own CPU time (a forked child's counters start at zero), the ratio of the two
medians the goal. The forkserver's one-off import at scheduler start is reported beside it.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time

GOAL_RATIO = 0.2  # a task from the preloading forkserver spends at most a fifth of the CPU on imports
ROUNDS = 5


def _import_all(modules: tuple[str, ...], results) -> None:
    import importlib
    import logging

    # Great Expectations logs a line per documented function it registers at import: not a figure of ours.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for module in modules:
        importlib.import_module(module)
    results.put(time.process_time())


def _task_cpu_seconds(context, modules: tuple[str, ...]) -> float:
    results = context.SimpleQueue()
    process = context.Process(target=_import_all, args=(modules, results))
    process.start()
    cpu = results.get()
    process.join()
    return cpu


def run() -> dict:
    from mlops_ops.preload import installed_preload_modules

    modules = installed_preload_modules()
    # Not "fork": this process may hold the modules already (an earlier benchmark of the same run imported them),
    # and a forked child would inherit them.
    cold_context = multiprocessing.get_context("spawn")
    preloading_context = multiprocessing.get_context("forkserver")
    preloading_context.set_forkserver_preload(list(modules))
    started = time.perf_counter()
    # The forkserver starts (and preloads) with its first child; that child's own figure is a warm one.
    first = _task_cpu_seconds(preloading_context, modules)
    forkserver_start_s = time.perf_counter() - started
    cold, preloaded = [], [first]
    for _ in range(ROUNDS):
        cold.append(_task_cpu_seconds(cold_context, modules))
        preloaded.append(_task_cpu_seconds(preloading_context, modules))
    cold_median, preloaded_median = statistics.median(cold), statistics.median(preloaded[1:])
    ratio = round(preloaded_median / cold_median, 4)
    return {
        "benchmark": "task_preload",
        "repeats": ROUNDS,
        "modules": list(modules),
        "cold_task_import_cpu_s": round(cold_median, 3),
        "preloaded_task_import_cpu_s": round(preloaded_median, 4),
        "forkserver_start_wall_s": round(forkserver_start_s, 2),
        "cold_samples_s": [round(value, 3) for value in cold],
        "preloaded_samples_s": [round(value, 4) for value in preloaded[1:]],
        "checks": [
            {
                "name": "preloaded_vs_cold_cpu",
                "value": ratio,
                "goal": f"<= {GOAL_RATIO}",
                "ok": ratio <= GOAL_RATIO,
            }
        ],
    }


def report(result: dict) -> tuple[str, bool]:
    check = result["checks"][0]
    return (
        f"task_preload (median of {result['repeats']}): a task's import CPU {result['cold_task_import_cpu_s']} s "
        f"forked from the scheduler, {result['preloaded_task_import_cpu_s']} s from the preloading forkserver = "
        f"{check['value']}x (goal {check['goal']}); the forkserver's one-off start "
        f"{result['forkserver_start_wall_s']} s: {'ok' if check['ok'] else 'MISSED'}",
        check["ok"],
    )

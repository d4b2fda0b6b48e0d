"""Run independent tasks through Dask (``dask.distributed``), or in this process for tiny runs.

:func:`run_tasks` submits every task as one Dask future and yields results as they come back, so
a caller can write each trajectory's bookkeeping as soon as it is done.  Three ways to run:

- ``scheduler`` given: the tasks go to an existing cluster (``dask scheduler`` plus
  ``dask worker`` processes, which must be able to import :mod:`openmm_timewarp`);
- otherwise ``workers > 1``: a :class:`distributed.LocalCluster` of ``workers`` processes with one
  thread each (OpenMM's Reference platform is single-threaded; processes avoid the GIL);
- ``workers == 1`` and no scheduler: the tasks run one after another in this process, without
  Dask, which keeps tests and tiny runs cheap (and lets them monkeypatch the task function).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Type

from ..errors import InputError

__all__ = ["default_workers", "run_tasks"]

log = logging.getLogger("openmm_timewarp.data")

CONNECT_TIMEOUT_S = 10


def default_workers() -> int:
    """The number of CPU cores this process may use (the default number of local workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _client(workers: int, scheduler: Optional[str]):
    """A Dask client of the cluster at ``scheduler``, or of a new local cluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as error:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler!r} within "
                             f"{CONNECT_TIMEOUT_S} s: {error}") from error
    # Dashboard on a free port: a fixed one (8787) would clash with a second run on this machine.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.WARNING)
    return Client(cluster)


def run_tasks(function: Callable[[Any], Any], tasks: Sequence[Any], workers: int = 1,
              scheduler: Optional[str] = None, keys: Optional[Sequence[str]] = None,
              expected: Tuple[Type[BaseException], ...] = ()) -> Iterator[Tuple[int, Any, Optional[BaseException]]]:
    """Results of ``function(task)`` for every task, in the order they finish.

    Parameters
    ----------
    function : callable
        A module-level function (Dask pickles it by reference into the workers).
    tasks : sequence
        Its arguments, one per task; they must pickle.
    workers : int, optional
        Local worker processes; 1 without ``scheduler`` runs the tasks here, without Dask.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``tcp://10.0.0.1:8786``); ``workers`` is then
        ignored.
    keys : sequence of str, optional
        A readable unique name per task (shown in Dask's logs and dashboard).
    expected : tuple of exception types, optional
        Failures of one task that must not stop the others: they are yielded, not raised.

    Yields
    ------
    index : int
        The task's position in ``tasks``.
    result : object
        ``function(task)``, or None if it failed.
    error : BaseException or None
        The ``expected`` exception it raised, if any.

    Raises
    ------
    InputError
        If ``scheduler`` cannot be reached.
    """
    if workers < 1:
        raise InputError(f"the number of workers must be at least 1, not {workers}")
    if not tasks:
        return
    if workers == 1 and not scheduler:
        yield from _run_here(function, tasks, expected)
        return
    yield from _run_dask(function, tasks, workers, scheduler, keys, expected)


def _run_here(function: Callable[[Any], Any], tasks: Sequence[Any],
              expected: Tuple[Type[BaseException], ...]) -> Iterator[Tuple[int, Any, Optional[BaseException]]]:
    """:func:`run_tasks` in this process, one task after another."""
    for index, task in enumerate(tasks):
        try:
            result = function(task)
        except expected as error:
            yield index, None, error
        else:
            yield index, result, None


def _run_dask(function: Callable[[Any], Any], tasks: Sequence[Any], workers: int, scheduler: Optional[str],
              keys: Optional[Sequence[str]],
              expected: Tuple[Type[BaseException], ...]) -> Iterator[Tuple[int, Any, Optional[BaseException]]]:
    """:func:`run_tasks` through Dask: submit everything, yield in completion order, clean up."""
    from distributed import as_completed

    client = _client(min(workers, len(tasks)), scheduler)  # no idle local processes for a short list
    futures, run_id = [], uuid.uuid4().hex[:8]  # keys unique among the scheduler's other clients
    try:
        log.info("Dask: %d tasks on %s (dashboard %s)", len(tasks),
                 scheduler or f"a local cluster of {len(client.cluster.workers)} processes", client.dashboard_link)
        for index, task in enumerate(tasks):
            key = f"{keys[index]}-{run_id}" if keys else None
            # pure=False: each call is a fresh computation, never one Dask may deduplicate or cache.
            futures.append(client.submit(function, task, key=key, pure=False))
        position = {future.key: index for index, future in enumerate(futures)}
        for future in as_completed(futures):
            index = position[future.key]
            try:
                result = future.result()
            except expected as error:
                yield index, None, error
            else:
                yield index, result, None
            future.release()  # the result is handled; free the worker's copy
    finally:
        # Interrupted or failed: in-flight tasks are cancelled; their shards were never written.
        unfinished = [future for future in futures if not future.done()]
        if unfinished:
            client.cancel(unfinished)
        cluster = client.cluster
        client.close()
        if cluster is not None and not scheduler:
            cluster.close()

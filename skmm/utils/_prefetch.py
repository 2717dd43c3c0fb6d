"""Work computed ahead in worker processes, consumed in order.

A training loop that reads its batches from disk should not wait for them:
:func:`prefetched` computes the next few batches in worker processes while
the caller runs the network on the current one. At most ``depth`` results
are pending at a time, so memory does not grow with the number of batches
however slowly the caller consumes them (joblib's ``Parallel`` has no such
bound: it dispatches the next task whenever a worker is free).

The workers are loky's reusable executor, the one joblib uses: they start
once per process (fork and exec, safe with torch's threads) and serve every
later epoch and fit until they have been idle for a few minutes.
"""

import multiprocessing
from collections import deque
from itertools import islice

from joblib import cpu_count

__all__ = ["n_workers_for", "prefetched"]


def n_workers_for(n_jobs):
    """Worker processes for ``n_jobs``: ``None`` is 1, -1 all CPUs, -2 all but one."""
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, cpu_count() + 1 + n_jobs)
    return int(n_jobs)


def _can_start_processes():
    # A daemonic process (a multiprocessing.Pool worker, some cluster
    # workers) may not have children.
    return not multiprocessing.current_process().daemon


def prefetched(fn, tasks, n_workers, depth=None):
    """Yield ``fn(*task)`` for each task, in order, computed ahead in workers.

    Parameters
    ----------
    fn : callable
        A picklable function (defined at module level).
    tasks : iterable of tuple
        The arguments of each call; read as the results are consumed.
    n_workers : int
        Worker processes. 0 calls ``fn`` in the calling process, one task at a
        time, when its result is asked for; so does a daemonic process, which
        may not start workers.
    depth : int, default=None
        Most results pending at a time; ``2 * n_workers`` by default.

    Yields
    ------
    result
        ``fn(*task)``. An exception raised by ``fn`` is raised here, for the
        first failing task in order, and the pending tasks are cancelled.
    """
    if n_workers == 0 or not _can_start_processes():
        for task in tasks:
            yield fn(*task)
        return
    from joblib.externals.loky import get_reusable_executor

    executor = get_reusable_executor(max_workers=n_workers)
    tasks = iter(tasks)
    pending = deque(
        executor.submit(fn, *task) for task in islice(tasks, depth or 2 * n_workers)
    )
    try:
        while pending:
            result = pending.popleft().result()
            # Submitted before yielding, so a worker has it while the caller
            # works on this result.
            for task in islice(tasks, 1):
                pending.append(executor.submit(fn, *task))
            yield result
    finally:
        for future in pending:
            future.cancel()

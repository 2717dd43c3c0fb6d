"""How many threads torch computes with, for one fit or one prediction.

torch's default is one intra-op thread per logical CPU, for the whole
process. Two things make that a poor default for skmm's networks:

- The towers of feature vectors and token ids multiply batches of 64 rows by
  matrices of a few thousand weights; an operation that small runs no faster
  on two threads than on one, and its threads meet at a barrier after every
  operation. When another process holds a core, a thread waits for its turn
  at each barrier: on a 2-core machine with one other busy process, an epoch
  of 3,600 reviews took 10 s with 2 threads against 1.4 s with one.
- A parallel search starts several fits at once. joblib's loky workers and
  Dask's worker processes set ``OMP_NUM_THREADS`` to their share of the
  cores before torch starts, and torch follows it; a fit in one of them
  must not raise it again.

So a fit uses one thread unless its network has a convolutional or a
pretrained tower (image pixels, a network an encoder hands over), whose
operations are large enough to share; those get torch's current number of
threads (which a worker's ``OMP_NUM_THREADS`` has already lowered), at most
one per physical core. An estimator's ``n_threads`` overrides the rule. The
number is set for the fit or the prediction only and restored afterwards.

The encoders that compute with torch follow the same rule: the convolutions
of ``CNNImageEncoder`` and the pretrained networks of
``PretrainedImageEncoder`` and ``SentenceTextEncoder`` get
:func:`shared_n_threads`, the small projections of
``CrossModalAligner`` one thread; their ``n_threads`` overrides it too.
"""

import contextlib

import torch
from joblib import cpu_count

__all__ = ["default_n_threads", "shared_n_threads", "torch_threads"]


def default_n_threads(specs):
    """Threads for a network reading blocks of ``specs``; see the module docstring.

    Parameters
    ----------
    specs : dict of str to BlockSpec
        The blocks the network reads.

    Returns
    -------
    n_threads : int
    """
    heavy = any(
        spec.kind == "image" or spec.tower is not None for spec in specs.values()
    )
    return shared_n_threads() if heavy else 1


def shared_n_threads():
    """Threads for operations large enough to share: torch's current number,
    at most one per physical core.

    Never more than torch's current number, which a worker's
    ``OMP_NUM_THREADS`` has lowered already.

    Returns
    -------
    n_threads : int
    """
    return max(1, min(torch.get_num_threads(), cpu_count(only_physical_cores=True)))


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` torch intra-op threads, then restore them.

    torch's setting is process-wide: two fits running at once in threads of
    one process share it.
    """
    previous = torch.get_num_threads()
    if n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

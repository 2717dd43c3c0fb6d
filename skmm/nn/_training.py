"""Seeding, the training loop and the inference loop shared by skmm's networks.

Everything stochastic in a fit draws from seeds derived once from the
estimator's ``random_state`` (:func:`fit_seeds`):

- initial weights: torch modules draw them from the process-wide generator,
  so :func:`seeded_init` seeds it inside a fork (the caller's state is
  restored) while holding a lock, so that two threads building modules at
  the same time cannot take each other's draws;
- shuffling and augmentation: a ``torch.Generator`` of the fit's own
  (:func:`make_generator`);
- dropout and modality dropout while training: :func:`stochastic_layers`
  makes a generator the current one of the thread, and skmm's
  :class:`Dropout` and :func:`rand` draw from it.

So fits with the same ``random_state`` give the same weights, whether they
run one after the other or in parallel threads.

The estimators train through skorch; the encoders and the aligner that train
a small network of their own on a fixed loss use :func:`train_loop`.
Prediction everywhere goes through :func:`run_in_batches`.
"""

import contextlib
import threading

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn
from torch.nn import functional as F

__all__ = [
    "Dropout",
    "fit_seeds",
    "make_generator",
    "rand",
    "run_in_batches",
    "seeded_init",
    "stochastic_layers",
    "train_loop",
]

_INIT_LOCK = threading.Lock()
_CURRENT = threading.local()


def fit_seeds(random_state, n=2):
    """Draw ``n`` seeds from ``random_state`` for the stochastic parts of a fit.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        As in scikit-learn.
    n : int, default=2
        Number of seeds.

    Returns
    -------
    seeds : list of int
    """
    rng = check_random_state(random_state)
    return [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n)]


@contextlib.contextmanager
def seeded_init(seed):
    """Build modules inside this block to draw their initial weights from ``seed``.

    The process-wide generator is seeded inside a fork, so the caller's
    random state is left as it was, and under a lock, so that threads that
    build modules at the same time each get their own seed's weights.
    """
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def make_generator(seed, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(seed)
    return generator


@contextlib.contextmanager
def stochastic_layers(generator):
    """Make ``generator`` the source of :class:`Dropout` and :func:`rand` draws.

    The generator is the current one of the calling thread only, so that
    fits in parallel threads keep their own random streams.
    """
    previous = getattr(_CURRENT, "generator", None)
    _CURRENT.generator = generator
    try:
        yield generator
    finally:
        _CURRENT.generator = previous


def _current_generator(device):
    generator = getattr(_CURRENT, "generator", None)
    if generator is None or generator.device.type != device.type:
        return None
    return generator


def rand(n, device):
    """``n`` uniform draws on ``device`` from the thread's current generator.

    Falls back to torch's process-wide generator outside
    :func:`stochastic_layers`.
    """
    generator = _current_generator(torch.device(device))
    return torch.rand(n, device=device, generator=generator)


class Dropout(nn.Module):
    """Dropout that draws its masks from the thread's current generator.

    The same as :class:`torch.nn.Dropout`, except that inside
    :func:`stochastic_layers` the masks come from the fit's own generator.

    Parameters
    ----------
    p : float, default=0.5
        Probability of zeroing an element.
    """

    def __init__(self, p=0.5):
        super().__init__()
        self.p = float(p)

    def forward(self, X):
        if not self.training or self.p == 0.0:
            return X
        generator = _current_generator(X.device)
        if generator is None:
            return F.dropout(X, self.p, training=True)
        keep = torch.rand(X.shape, device=X.device, generator=generator) >= self.p
        return X * keep.to(X.dtype) / (1.0 - self.p)

    def extra_repr(self):
        return f"p={self.p}"


def train_loop(
    parameters,
    batch_loss,
    n_samples,
    *,
    max_epochs,
    batch_size,
    lr,
    generator,
    weight_decay=0.0,
    min_batch=1,
    on_epoch=None,
):
    """Minimise ``batch_loss`` with Adam over shuffled mini-batches.

    Parameters
    ----------
    parameters : iterable of Tensor
        What the optimiser updates.
    batch_loss : callable
        ``batch_loss(rows)`` returns the scalar loss of the rows ``rows``
        (a LongTensor of row numbers).
    n_samples : int
        Number of rows.
    max_epochs : int
        Passes over the rows.
    batch_size : int
        Rows per step.
    lr : float
        Learning rate.
    generator : torch.Generator
        Source of the shuffling.
    weight_decay : float, default=0.0
        L2 penalty.
    min_batch : int, default=1
        Batches with fewer rows are skipped (a contrastive loss needs two).
    on_epoch : callable, default=None
        Called as ``on_epoch(epoch, mean_loss)`` after each epoch.

    Returns
    -------
    losses : list of float
        The mean loss of each epoch.
    """
    optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    losses = []
    for epoch in range(max_epochs):
        order = torch.randperm(n_samples, generator=generator)
        total, n_seen = None, 0
        for start in range(0, n_samples, batch_size):
            rows = order[start : start + batch_size]
            if len(rows) < min_batch:
                continue
            loss = batch_loss(rows)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            weighted = loss.detach() * len(rows)
            total = weighted if total is None else total + weighted
            n_seen += len(rows)
        losses.append(float(total) / n_seen if n_seen else float("nan"))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses


def run_in_batches(step, n_samples, batch_size, modules=(), load=None):
    """Apply ``step(rows)`` to consecutive row slices, without autograd.

    Parameters
    ----------
    step : callable
        ``step(rows)`` with ``rows`` a slice; its results are collected.
    n_samples : int
        Number of rows.
    batch_size : int
        Rows per call.
    modules : iterable of torch.nn.Module, default=()
        Put in evaluation mode first.
    load : callable, default=None
        ``load(slices)`` yields the data of each slice in ``slices``, in
        order, which ``step`` then gets in place of the slice: a loader that
        prepares the next batches while ``step`` runs on the current one.

    Returns
    -------
    outputs : list
        ``step``'s result for each batch, in order.
    """
    for module in modules:
        module.eval()
    batches = [
        slice(start, min(start + batch_size, n_samples))
        for start in range(0, n_samples, batch_size)
    ]
    with torch.inference_mode():
        return [step(batch) for batch in (batches if load is None else load(batches))]

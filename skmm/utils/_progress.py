"""Progress reports on stderr, under one switch.

Every step that can take more than a few seconds (encoding, loading a
pretrained model, training) reports its progress when its ``verbose``
parameter is above 0, or when that parameter is left at 0 and
``skmm.get_config()["verbose"]`` is above 0. Reports go to stderr, so that
the standard output of a script stays its own: a bar drawn by tqdm when it
is installed, else a line at every tenth of the work.
"""

import sys
import time

from skmm._config import get_config

__all__ = ["effective_verbose", "epoch_reporter", "report", "track"]


def effective_verbose(verbose):
    """The progress level of a step whose own ``verbose`` parameter is given.

    Parameters
    ----------
    verbose : int or bool
        The step's parameter; 0 (its default) follows the global
        configuration.

    Returns
    -------
    level : int
        ``verbose`` when above 0, else ``get_config()["verbose"]``.
    """
    level = int(verbose or 0)
    return level if level > 0 else int(get_config()["verbose"] or 0)


def print_stderr(*args, **kwargs):
    """``print`` to stderr; a module-level function, so that it pickles."""
    kwargs.setdefault("flush", True)
    print(*args, file=sys.stderr, **kwargs)


def report(name, message):
    """Print ``[name] message`` on stderr."""
    print_stderr(f"[{name}] {message}")


def epoch_reporter(name, max_epochs, verbose):
    """An ``on_epoch(epoch, loss)`` callback printing the loss of some epochs.

    Level 1 prints about ten lines over the training, level 2 one per epoch.
    Returns None when the level (see :func:`effective_verbose`) is 0.
    """
    level = effective_verbose(verbose)
    if not level:
        return None
    every = 1 if level >= 2 else max(1, max_epochs // 10)

    def on_epoch(epoch, loss):
        if (epoch + 1) % every == 0 or epoch + 1 == max_epochs:
            report(name, f"epoch {epoch + 1}/{max_epochs}: loss {loss:.4f}")

    return on_epoch


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def track(iterable, *, total, name, verbose, unit="row", size=None):
    """Yield the items of ``iterable``, reporting the work done on stderr.

    Parameters
    ----------
    iterable : iterable
        The work, item by item.
    total : int
        Units of work in all.
    name : str
        What is working, shown first.
    verbose : int or bool
        The step's ``verbose`` parameter; see :func:`effective_verbose`.
    unit : str, default="row"
        The unit of ``total``.
    size : callable, default=None
        ``size(item)`` is the number of units an item stands for; ``None``
        counts one per item.

    Yields
    ------
    item
        The items of ``iterable``, unchanged.
    """
    if not effective_verbose(verbose) or not total:
        yield from iterable
        return
    size = size or (lambda item: 1)
    tqdm = _tqdm()
    if tqdm is not None:
        with tqdm(total=total, unit=unit, desc=name, file=sys.stderr) as bar:
            for item in iterable:
                yield item
                bar.update(size(item))
        return
    start, done, next_report = time.perf_counter(), 0, 0
    for item in iterable:
        yield item
        done += size(item)
        if done >= next_report or done >= total:
            report(
                name,
                f"{done}/{total} {unit}s ({time.perf_counter() - start:.1f} s)",
            )
            next_report = done + max(1, total // 10)

"""Fits that either succeed or leave the estimator as it was."""

import contextlib

__all__ = ["restored_on_failure"]


@contextlib.contextmanager
def restored_on_failure(estimator):
    """Put back ``estimator``'s attributes when the block raises or is interrupted.

    A fit that runs inside this block may set fitted attributes as it goes:
    if it fails, on bad input, a diverged loss or a ``KeyboardInterrupt``,
    the estimator keeps the fitted state (or the unfitted state) it had
    before, and the exception propagates.
    """
    state = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(state)
        raise

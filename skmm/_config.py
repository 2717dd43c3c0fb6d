"""Global configuration of skmm, in the manner of :func:`sklearn.set_config`.

``cache_dir`` has to reach the worker processes of a parallel search, which
import skmm afresh and see none of the parent's settings. Its default is
therefore read from the environment variable ``SKMM_CACHE_DIR`` when skmm is
imported, and :func:`set_config` exports it to that variable, so that worker
processes started afterwards (loky's, a Dask ``LocalCluster``'s) inherit it.
Workers started before, or on other machines, get it through their
environment: see ``docs/distributed.md``.
"""

import os
import threading
from contextlib import contextmanager

__all__ = ["config_context", "get_config", "set_config"]

CACHE_DIR_ENV = "SKMM_CACHE_DIR"

_DEFAULTS = {
    "verbose": 0,
    "cache_dir": None,
}
_global_config = dict(_DEFAULTS, cache_dir=os.environ.get(CACHE_DIR_ENV) or None)
_local = threading.local()


def _current():
    if not hasattr(_local, "config"):
        _local.config = dict(_global_config)
    return _local.config


def get_config():
    """Return a copy of skmm's current configuration.

    Returns
    -------
    config : dict
        ``verbose`` (int) is the progress level used by every step whose own
        ``verbose`` parameter is left at its default; ``cache_dir`` (str,
        path-like or None) is a folder where frozen encoders also store
        their fitted states and outputs on disk, so that processes sharing
        the folder (the workers of a parallel or distributed search) reuse
        each other's work. Its default is the environment variable
        ``SKMM_CACHE_DIR``, read when skmm is imported.

    Examples
    --------
    >>> import skmm
    >>> skmm.get_config()["verbose"]
    0
    """
    return dict(_current())


def _update(config, params):
    unknown = sorted(set(params) - set(_DEFAULTS))
    if unknown:
        raise TypeError(
            f"Unknown skmm configuration key(s) {unknown}; "
            f"known keys are {sorted(_DEFAULTS)}."
        )
    cache_dir = params.get("cache_dir")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(
            "cache_dir must be a folder path (str or path-like) or None, got "
            f"{cache_dir!r}."
        )
    for key, value in params.items():
        if value is None and key != "cache_dir":
            value = _DEFAULTS[key]
        config[key] = value


def set_config(**params):
    """Set skmm's configuration for the current thread and new threads.

    Parameters
    ----------
    **params
        Any of the keys of :func:`get_config`. ``None`` for a key that is
        not ``cache_dir`` restores its default; ``cache_dir=None`` turns the
        disk cache off. ``cache_dir`` is also exported to the environment
        variable ``SKMM_CACHE_DIR`` (removed for None), so that worker
        processes started afterwards use the same folder.

    Examples
    --------
    >>> import skmm
    >>> skmm.set_config(verbose=1)
    >>> skmm.get_config()["verbose"]
    1
    >>> skmm.set_config(verbose=0)
    """
    _update(_current(), params)
    _update(_global_config, params)
    if "cache_dir" in params:
        if params["cache_dir"] is None:
            os.environ.pop(CACHE_DIR_ENV, None)
        else:
            os.environ[CACHE_DIR_ENV] = os.fspath(params["cache_dir"])


@contextmanager
def config_context(**params):
    """Set skmm's configuration in this thread only, and restore it on exit.

    Examples
    --------
    >>> import skmm
    >>> with skmm.config_context(verbose=2):
    ...     skmm.get_config()["verbose"]
    2
    """
    config = _current()
    old = dict(config)
    _update(config, params)
    try:
        yield
    finally:
        config.clear()
        config.update(old)

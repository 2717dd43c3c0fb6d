"""Global configuration of skmm, in the manner of :func:`sklearn.set_config`."""

import threading
from contextlib import contextmanager

__all__ = ["config_context", "get_config", "set_config"]

_DEFAULTS = {
    "verbose": 0,
    "cache_dir": None,
}
_global_config = dict(_DEFAULTS)
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
        ``verbose`` parameter is left at its default; ``cache_dir`` (str or
        None) is a folder where frozen-encoder features are cached on disk,
        shared by processes, instead of in memory.

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
        not ``cache_dir`` restores its default.

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

"""A process-wide cache of what frozen encoders compute, keyed by content.

Every candidate of a grid search fits a clone of the pipeline, so a cache
held by an encoder instance would not outlive the candidate. The cache here
lives in the module instead: a frozen encoder (one whose output depends only
on its parameters and the data) stores its fitted state and its outputs under
a hash of the parameters and the data, and any clone fitted on the same data
in the same process finds them there. Worker processes of a parallel search
each have their own cache.
"""

import os
import threading
from collections import OrderedDict, namedtuple

import joblib
import torch

__all__ = [
    "FROZEN_OUTPUTS",
    "CacheInfo",
    "OutputCache",
    "block_key",
    "clear_frozen_cache",
    "content_key",
    "frozen_cache_info",
    "file_stamps",
    "module_key",
]

CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "entries", "bytes"])
CacheInfo.__doc__ = """Statistics of an :class:`OutputCache`.

Attributes
----------
hits : int
    Lookups that found their key.
misses : int
    Lookups that did not.
entries : int
    Values stored.
bytes : int
    Their total size, as declared to :meth:`OutputCache.put`.
"""


class OutputCache:
    """A least-recently-used store bounded by the size of its values.

    The lookups and insertions hold a lock, so threads of a joblib search can
    share the cache. Values are stored as given: callers copy what they, or
    their own callers, might modify.

    Parameters
    ----------
    max_bytes : int
        Bound on the total size of the stored values. Storing beyond it
        evicts the least recently used values; a single value larger than
        the bound is not stored.

    Examples
    --------
    >>> from skmm.utils._cache import OutputCache
    >>> cache = OutputCache(max_bytes=100)
    >>> cache.put("a", "first", nbytes=60)
    >>> cache.put("b", "second", nbytes=60)
    >>> cache.get("a") is None, cache.get("b")
    (True, 'second')
    >>> cache.info()
    CacheInfo(hits=1, misses=1, entries=1, bytes=60)
    """

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key):
        """Return the value stored under ``key``, or None when there is none.

        Parameters
        ----------
        key : str
            A key made by :func:`content_key`.

        Returns
        -------
        value : object or None
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry[0]

    def put(self, key, value, nbytes):
        """Store ``value`` under ``key``, evicting the least recently used.

        Parameters
        ----------
        key : str
            A key made by :func:`content_key`.
        value : object
            Anything but None.
        nbytes : int
            Size of ``value`` counted against ``max_bytes``.
        """
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous[1]
            if nbytes > self.max_bytes:
                return
            self._entries[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def clear(self):
        """Drop every value and reset the hit and miss counts."""
        with self._lock:
            self._entries.clear()
            self._bytes = self._hits = self._misses = 0

    def info(self):
        """Return the hits, misses, entries and bytes as a :class:`CacheInfo`."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._entries), self._bytes)


FROZEN_OUTPUTS = OutputCache(max_bytes=512 * 2**20)


def clear_frozen_cache():
    """Empty the cache of frozen encoders' fitted states and outputs.

    Frees its memory (512 MiB at most) and makes the next fits and
    transforms of frozen encoders compute everything again.
    """
    FROZEN_OUTPUTS.clear()


def frozen_cache_info():
    """Report the use of the cache of frozen encoders in this process.

    Returns
    -------
    info : CacheInfo
        ``hits`` and ``misses`` of the lookups since the process started or
        the cache was last cleared, and the ``entries`` and ``bytes`` it
        holds now.

    Examples
    --------
    >>> from skmm.utils import clear_frozen_cache, frozen_cache_info
    >>> clear_frozen_cache()
    >>> frozen_cache_info()
    CacheInfo(hits=0, misses=0, entries=0, bytes=0)
    """
    return FROZEN_OUTPUTS.info()


def content_key(*parts):
    """Return a hex digest of ``parts`` that depends only on their content.

    Parameters
    ----------
    *parts : objects
        Anything :func:`joblib.hash` accepts: arrays (object arrays of
        strings, arrays or PIL images included), strings, tuples, dicts.

    Returns
    -------
    key : str
    """
    return joblib.hash(parts)


def file_stamps(cells):
    """Size and modification time of the file named by each path cell.

    A key that holds paths must hold these too, so that a file edited in
    place is read again.

    Parameters
    ----------
    cells : ndarray of dtype object
        Cells of a column block.

    Returns
    -------
    stamps : list
        ``(st_size, st_mtime_ns)`` per ``str`` or path-like cell that names
        a readable file, in the order of ``cells.flat``; None for any other
        cell.
    """
    stamps = []
    for value in cells.flat:
        stamp = None
        if isinstance(value, (str, os.PathLike)):
            try:
                stat = os.stat(value)
                stamp = (stat.st_size, stat.st_mtime_ns)
            except (OSError, ValueError):
                # An unreadable path fails when it is decoded, before anything
                # is stored under the key.
                pass
        stamps.append(stamp)
    return stamps


def block_key(X):
    """Hash of a checked column block: its cells and the files they name.

    Column names are left out: they shape no number.

    Parameters
    ----------
    X : ndarray
        A block as returned by ``check_column_block``.

    Returns
    -------
    key : str
    """
    stamps = file_stamps(X) if X.dtype == object else None
    return content_key(X, stamps)


def module_key(module):
    """Hash of a torch module: its class, its structure and its weights.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    key : str
        The same for two modules that compute the same function with the
        same parameters and buffers, wherever they are stored.
    """
    cls = type(module)
    state = {}
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            # numpy has no bfloat16: hash the same bits as 16-bit integers.
            tensor = tensor.view(torch.int16)
        state[name] = tensor.numpy()
    return content_key(f"{cls.__module__}.{cls.__qualname__}", repr(module), state)

"""A process-wide cache of what frozen encoders compute, keyed by content.

Every candidate of a grid search fits a clone of the pipeline, so a cache
held by an encoder instance would not outlive the candidate. The cache here
lives in the module instead: a frozen encoder (one whose output depends only
on its parameters and the data) stores its fitted state and its outputs under
a hash of the parameters and the data, and any clone fitted on the same data
in the same process finds them there. Worker processes of a parallel search
each have their own in-memory cache; with ``skmm.set_config(cache_dir=...)``
(or the environment variable ``SKMM_CACHE_DIR``) every value is also stored
in that folder, where the other processes sharing it find it.

Encoders use the cache in one way: :func:`cached` (or :func:`cached_each`,
for one value per text) around what they compute, with a key made of
:func:`params_key` (the parameters, less those the encoder's
``_cache_ignores`` names), what they learned in ``fit`` and
:func:`block_key` (the data). Values are copied on the way in and out, so
neither the caller nor the cache can alter the other's copy.

The disk store keeps one joblib pickle per key, under a folder named after
skmm's version (values pickled by another version are never read). A value
is written to a temporary file in the same folder and moved into place with
:func:`os.replace`, so that a reader sees a whole file or none, however many
processes write the same key at once. As with any pickle, point
``cache_dir`` only at a folder that nobody untrusted can write to.
"""

import copy
import hashlib
import os
import tempfile
import threading
from collections import OrderedDict, namedtuple
from pathlib import Path

import joblib
import numpy as np
import torch

from skmm._config import get_config

__all__ = [
    "FROZEN_OUTPUTS",
    "FROZEN_DISK",
    "CacheInfo",
    "DiskStore",
    "OutputCache",
    "block_key",
    "cached",
    "cached_each",
    "clear_frozen_cache",
    "content_key",
    "file_digests",
    "file_stamps",
    "frozen_cache_info",
    "module_key",
    "params_key",
]

CacheInfo = namedtuple(
    "CacheInfo",
    ["hits", "misses", "entries", "bytes", "disk_hits", "disk_writes"],
    defaults=(0, 0),
)
CacheInfo.__doc__ = """Statistics of an :class:`OutputCache` and of the disk store.

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
disk_hits : int
    Of the misses, those found in the disk store of ``cache_dir``
    (:func:`frozen_cache_info` only).
disk_writes : int
    Values this process computed and wrote to the disk store
    (:func:`frozen_cache_info` only).
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
    >>> cache.info()[:4]
    (1, 1, 1, 60)
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


class DiskStore:
    """Values pickled one file per key in a folder shared by processes.

    Reads and writes are atomic (see the module docstring); the store never
    evicts: delete the folder to free it. Counts of hits and writes are kept
    per process.

    Examples
    --------
    >>> import tempfile
    >>> from skmm.utils._cache import DiskStore
    >>> store = DiskStore()
    >>> folder = tempfile.mkdtemp()
    >>> store.put(folder, "0123abcd", [1, 2])
    >>> store.get(folder, "0123abcd"), store.get(folder, "ffff0000")
    ([1, 2], None)
    """

    def __init__(self):
        self._hits = 0
        self._writes = 0
        self._lock = threading.Lock()

    @staticmethod
    def path(folder, key):
        """Where the value of ``key`` is stored under ``folder``."""
        from skmm import __version__

        return Path(folder) / f"skmm-{__version__}" / key[:2] / f"{key}.pkl"

    def get(self, folder, key):
        """The value stored under ``key`` in ``folder``, or None."""
        try:
            with open(self.path(folder, key), "rb") as file:
                value = joblib.load(file)
        except FileNotFoundError:
            return None
        except Exception:
            # A damaged file, or one written by incompatible code (unpickling
            # garbage raises anything): computed again and replaced.
            return None
        with self._lock:
            self._hits += 1
        return value

    def put(self, folder, key, value):
        """Store ``value`` under ``key`` in ``folder``, atomically."""
        path = self.path(folder, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{key}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                joblib.dump(value, file)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        with self._lock:
            self._writes += 1

    def clear_counts(self):
        with self._lock:
            self._hits = self._writes = 0

    def counts(self):
        """``(hits, writes)`` of this process."""
        with self._lock:
            return self._hits, self._writes


FROZEN_OUTPUTS = OutputCache(max_bytes=512 * 2**20)
FROZEN_DISK = DiskStore()


def clear_frozen_cache():
    """Empty the in-memory cache of frozen encoders' fitted states and outputs.

    Frees its memory (512 MiB at most) and makes the next fits and
    transforms of frozen encoders compute everything again, or read it from
    the disk store of ``cache_dir`` when one is set (delete that folder to
    empty it). Resets the counts of :func:`frozen_cache_info`.
    """
    FROZEN_OUTPUTS.clear()
    FROZEN_DISK.clear_counts()


def frozen_cache_info():
    """Report the use of the cache of frozen encoders in this process.

    Returns
    -------
    info : CacheInfo
        ``hits`` and ``misses`` of the in-memory lookups since the process
        started or the cache was last cleared, the ``entries`` and ``bytes``
        it holds now, and, with ``skmm.set_config(cache_dir=...)``, the
        misses found on disk (``disk_hits``) and the values computed and
        written to disk (``disk_writes``) by this process.

    Examples
    --------
    >>> from skmm.utils import clear_frozen_cache, frozen_cache_info
    >>> clear_frozen_cache()
    >>> frozen_cache_info()
    CacheInfo(hits=0, misses=0, entries=0, bytes=0, disk_hits=0, disk_writes=0)
    """
    return FROZEN_OUTPUTS.info()._replace(
        **dict(zip(("disk_hits", "disk_writes"), FROZEN_DISK.counts()))
    )


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

    Cheaper than :func:`file_digests` (one ``stat`` per file) for large
    files such as model weights, but blind to a file replaced by another of
    the same size and modification time (as ``cp -p`` and ``tar x`` make).

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


def _file_digest(path):
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        while chunk := file.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(cells):
    """Hash of the bytes of the file named by each path cell.

    A key that holds paths must hold these too, so that a file changed in
    place is read again, even when its size and modification time are kept
    (as ``cp -p``, ``rsync -t`` or ``tar x`` keep them).

    Every file is read once more to be hashed (BLAKE2b), which costs a few
    tens of microseconds per small JPEG once the file is in the page cache,
    far less than decoding it, but more than :func:`file_stamps`'s ``stat``
    and more again on a slow or network disk.

    Parameters
    ----------
    cells : ndarray of dtype object
        Cells of a column block.

    Returns
    -------
    digests : list
        A hex digest per ``str`` or path-like cell that names a readable
        file, in the order of ``cells.flat``; None for any other cell.
    """
    digests = []
    for value in cells.flat:
        digest = None
        if isinstance(value, (str, os.PathLike)):
            try:
                digest = _file_digest(value)
            except (OSError, ValueError):
                # An unreadable path fails when it is decoded, before anything
                # is stored under the key.
                pass
        digests.append(digest)
    return digests


def block_key(X):
    """Hash of a checked column block: its cells and the files they name.

    Column names are left out: they shape no number. A path enters the key
    with the hash of its file's bytes (:func:`file_digests`), so a file
    replaced by another is read again whatever its size and modification
    time.

    Parameters
    ----------
    X : ndarray
        A block as returned by ``check_column_block``.

    Returns
    -------
    key : str
    """
    digests = file_digests(X) if X.dtype == object else None
    return content_key(X, digests)


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


def params_key(estimator):
    """The class and parameters of ``estimator`` that shape what it computes.

    The parameters named in the class attribute ``_cache_ignores`` are left
    out: those that shape no number (``n_jobs``, ``verbose``, ``cache``) and
    those that enter the key in another form (``random_state`` as the seed
    it yields, a network as the hash of its weights).

    Parameters
    ----------
    estimator : estimator instance

    Returns
    -------
    key_part : tuple
        The qualified class name and a dict of parameters.
    """
    params = estimator.get_params(deep=False)
    for name in type(estimator)._cache_ignores:
        del params[name]
    cls = type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}", params


def _nbytes(value):
    """Memory held by the arrays, tensors and module weights in ``value``."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, torch.nn.Module):
        return sum(_nbytes(t) for t in value.state_dict().values())
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


def _get(key, folder):
    value = FROZEN_OUTPUTS.get(key)
    if value is not None:
        return copy.deepcopy(value)
    if folder is None:
        return None
    # Unpickled, the value is a fresh copy already: the memory cache keeps it.
    value = FROZEN_DISK.get(folder, key)
    if value is not None:
        FROZEN_OUTPUTS.put(key, copy.deepcopy(value), _nbytes(value))
    return value


def _put(key, value, folder):
    FROZEN_OUTPUTS.put(key, copy.deepcopy(value), _nbytes(value))
    if folder is not None:
        FROZEN_DISK.put(folder, key, value)


def cached(key_parts, compute, *, enabled=True, on_hit=None):
    """Return ``compute()``, computed once per process (or per ``cache_dir``).

    Parameters
    ----------
    key_parts : tuple
        What the value depends on, hashed with :func:`content_key`.
    compute : callable
        Called without arguments when the cache holds no value for the key;
        returns anything but None (arrays, tensors, modules, tuples of them).
    enabled : bool, default=True
        With False, ``compute()`` is returned and the cache left alone.
    on_hit : callable, default=None
        Called without arguments when the value comes from the cache.

    Returns
    -------
    value : object
        A copy of the stored value, or the computed one (the cache stores a
        copy of it).

    Notes
    -----
    With ``skmm.set_config(cache_dir=...)`` a value not in memory is looked
    up in that folder, and a computed one is written there too.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.utils._cache import cached, clear_frozen_cache, frozen_cache_info
    >>> clear_frozen_cache()
    >>> first = cached(("doc", 1), lambda: np.zeros(4))
    >>> again = cached(("doc", 1), lambda: np.ones(4))
    >>> again
    array([0., 0., 0., 0.])
    >>> frozen_cache_info()
    CacheInfo(hits=1, misses=1, entries=1, bytes=32, disk_hits=0, disk_writes=0)
    """
    if not enabled:
        return compute()
    folder = get_config()["cache_dir"]
    key = content_key(*key_parts)
    value = _get(key, folder)
    if value is not None:
        if on_hit is not None:
            on_hit()
        return value
    value = compute()
    _put(key, value, folder)
    return value


def cached_each(keys, compute_missing, *, enabled=True):
    """One value per key, the ones not in the cache computed in one call.

    For values that are best computed together (texts encoded in batches)
    but reused one by one.

    Parameters
    ----------
    keys : list of str
        One key per value, each a digest that depends on the value's content
        only (as made by :func:`content_key`).
    compute_missing : callable
        ``compute_missing(positions)`` returns the values of the keys at
        ``positions``, in order. Not called when every value is stored.
    enabled : bool, default=True
        With False, every value is computed and the cache left alone.

    Returns
    -------
    values : list
        One value per key: copies of the stored ones, the computed ones.
    """
    folder = get_config()["cache_dir"] if enabled else None
    values = [_get(key, folder) for key in keys] if enabled else [None] * len(keys)
    positions = [i for i, value in enumerate(values) if value is None]
    if positions:
        for i, value in zip(positions, compute_missing(positions), strict=True):
            values[i] = value
            if enabled:
                _put(keys[i], value, folder)
    return values

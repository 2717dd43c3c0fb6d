"""Modality blocks: what MultimodalFusion hands to the fusion estimators.

A *block* is the 2-D output of one modality's encoder. A :class:`BlockSpec`
describes what a network tower needs to consume it; a :class:`ModalityBlocks`
holds the blocks of one dataset, keyed by modality name, and indexes by row
like an array so that scikit-learn can split it.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

__all__ = [
    "BLOCK_KINDS",
    "BlockSpec",
    "LazyBlock",
    "ModalityBlocks",
    "block_spec_for",
]

BLOCK_KINDS = ("dense", "tokens", "image")


@dataclass(frozen=True)
class BlockSpec:
    """How a network tower should read one modality block.

    Encoders describe their output by returning a ``BlockSpec`` from a
    ``get_block_spec()`` method; any other transformer's output is a
    ``"dense"`` block.

    Parameters
    ----------
    kind : {"dense", "tokens", "image"}
        ``"dense"``: a feature vector per row (dense or sparse), read by an
        MLP. ``"tokens"``: integer ids, padded, read by Embedding + GRU.
        ``"image"``: flattened ``(C, H, W)`` pixels, read by a CNN.
    n_features : int
        Width of the 2-D block.
    vocab_size : int, default=None
        Number of token ids (``"tokens"`` only), padding included.
    padding_idx : int, default=0
        Id used for padding (``"tokens"`` only).
    image_shape : tuple of int, default=None
        ``(C, H, W)`` of each image (``"image"`` only).
    tower : callable, default=None
        Zero-argument callable returning a fresh ``torch.nn.Module`` that maps
        a batch of this block to ``(batch, tower_dim)`` features. When ``None``
        the estimator builds its default tower for ``kind``.
    tower_dim : int, default=None
        Output width of ``tower``.
    trainable : bool, default=True
        Whether the tower's weights are updated while the estimator trains.
    lr : float, default=None
        Learning rate of ``tower``'s own parameters when they train, for a
        pretrained network fine-tuned more gently than the layers around it.
        ``None`` uses the estimator's ``lr``. Ignored without ``tower``.
    """

    kind: str
    n_features: int
    vocab_size: int | None = None
    padding_idx: int = 0
    image_shape: tuple | None = None
    tower: Any = field(default=None, compare=False)
    tower_dim: int | None = None
    trainable: bool = True
    lr: float | None = None

    def __post_init__(self):
        if self.kind not in BLOCK_KINDS:
            raise ValueError(
                f"BlockSpec.kind must be one of {BLOCK_KINDS}, got {self.kind!r}."
            )
        if self.kind == "tokens" and self.vocab_size is None:
            raise ValueError("A 'tokens' block needs vocab_size.")
        if self.kind == "image":
            if self.image_shape is None or len(self.image_shape) != 3:
                raise ValueError("An 'image' block needs image_shape=(C, H, W).")
            if int(np.prod(self.image_shape)) != self.n_features:
                raise ValueError(
                    f"image_shape {self.image_shape} does not match "
                    f"n_features={self.n_features}."
                )


def block_spec_for(encoder, X_block):
    """Return the spec of ``encoder``'s output block ``X_block``."""
    get_spec = getattr(encoder, "get_block_spec", None)
    if callable(get_spec):
        return get_spec()
    return BlockSpec(kind="dense", n_features=X_block.shape[1])


class LazyBlock:
    """A float32 block whose rows are computed only when a batch needs them.

    An encoder returns one when its output would not fit in memory, such as
    the pixels of images read from files (``CNNImageEncoder(output="lazy")``).
    It stands for a 2-D array of ``shape`` for scikit-learn and
    :class:`ModalityBlocks`: ``len``, ``shape``, ``ndim``, ``dtype`` and row
    indexing (``block[rows]`` is another lazy block) cost nothing, and
    ``np.asarray(block)`` computes every row, for an estimator that needs the
    whole matrix. The fusion estimators never do: they ask for their batches
    with :meth:`iter_batches`, while the network trains or predicts.

    Subclasses implement ``__len__``, ``n_features``, ``_select`` and
    :meth:`iter_batches`.
    """

    ndim = 2
    dtype = np.dtype(np.float32)
    # Rows per batch of np.asarray(block): bounds the memory of the work.
    _ARRAY_BATCH_ROWS = 256

    @property
    def n_features(self):
        """Width of the block."""
        raise NotImplementedError

    @property
    def shape(self):
        return (len(self), self.n_features)

    def __len__(self):
        raise NotImplementedError

    def _select(self, positions):
        """The lazy block of the rows at ``positions`` (an int64 array)."""
        raise NotImplementedError

    def iter_batches(self, batches):
        """Yield the rows of each batch, in order, as float32 tensors.

        Parameters
        ----------
        batches : iterable of slice or array-like of int
            The rows of each batch.

        Yields
        ------
        X : torch.Tensor of shape (n_rows, n_features), dtype float32
        """
        raise NotImplementedError

    def __getitem__(self, key):
        if isinstance(key, tuple):
            # ``block[rows, ...]`` and ``block[rows, :]`` select rows too.
            all_columns = len(key) == 2 and (
                key[1] is Ellipsis
                or (isinstance(key[1], slice) and key[1] == slice(None))
            )
            if not all_columns:
                raise TypeError(
                    f"{type(self).__name__} is indexed by rows only, got {key!r}."
                )
            key = key[0]
        return self._select(np.arange(len(self))[_row_key(key)])

    def __array__(self, dtype=None, copy=None):
        n = len(self)
        out = np.empty(self.shape, dtype=np.float32 if dtype is None else dtype)
        step = self._ARRAY_BATCH_ROWS
        batches = [slice(i, min(i + step, n)) for i in range(0, n, step)]
        for rows, X in zip(batches, self.iter_batches(batches)):
            out[rows] = X.numpy()
        return out


def _row_key(key):
    """A row key numpy understands, from a list, tensor or array of rows."""
    if isinstance(key, slice):
        return key
    if hasattr(key, "numpy"):
        key = key.numpy()
    return np.asarray(key)


def _as_2d_numeric(X):
    if isinstance(X, LazyBlock):
        return X
    if sparse.issparse(X):
        return X.tocsr()
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    return np.asarray(X)


class ModalityBlocks:
    """Modality blocks of one dataset, keyed by modality name.

    Behaves as an array of ``n_samples`` rows for scikit-learn: ``len``,
    ``shape`` and row indexing (``blocks[idx]``) work, so cross-validation can
    split it, and ``np.asarray(blocks)`` gives the flat feature matrix (the
    blocks side by side) that a classic estimator expects. ``blocks["text"]``
    returns one block. A :class:`LazyBlock` stays lazy: indexing it costs
    nothing, and only ``np.asarray(blocks)`` computes its rows.

    Parameters
    ----------
    blocks : dict of str to array-like or sparse matrix
        One 2-D block per modality, all with the same number of rows.
    specs : dict of str to BlockSpec, default=None
        How to read each block; ``"dense"`` where missing.
    """

    def __init__(self, blocks, specs=None):
        if not blocks:
            raise ValueError("ModalityBlocks needs at least one block.")
        specs = dict(specs or {})
        self.blocks = {}
        n_rows = None
        for name, X in blocks.items():
            X = _as_2d_numeric(X)
            if X.ndim != 2:
                raise ValueError(
                    f"Block {name!r} must be 2-D, got an array of shape {X.shape}."
                )
            if n_rows is None:
                n_rows = X.shape[0]
            elif X.shape[0] != n_rows:
                raise ValueError(
                    f"Block {name!r} has {X.shape[0]} rows, the others {n_rows}."
                )
            self.blocks[name] = X
            specs.setdefault(name, BlockSpec(kind="dense", n_features=X.shape[1]))
        self.specs = {name: specs[name] for name in self.blocks}
        self._n_samples = n_rows

    @property
    def names(self):
        return list(self.blocks)

    @property
    def shape(self):
        return (self._n_samples, sum(X.shape[1] for X in self.blocks.values()))

    @property
    def dtype(self):
        """The common dtype of the blocks, that of ``np.asarray(blocks)``."""
        return np.result_type(*(X.dtype for X in self.blocks.values()))

    def __len__(self):
        return self._n_samples

    def keys(self):
        return self.blocks.keys()

    def items(self):
        return self.blocks.items()

    def __contains__(self, name):
        return name in self.blocks

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.blocks[key]
        if isinstance(key, (int, np.integer)):
            key = [key]
        return ModalityBlocks(
            {name: X[key] for name, X in self.blocks.items()}, self.specs
        )

    def toarray(self):
        """Return the blocks side by side as one dense float matrix."""
        parts = [
            X.toarray() if sparse.issparse(X) else np.asarray(X, dtype=np.float64)
            for X in self.blocks.values()
        ]
        return np.hstack(parts)

    def __array__(self, dtype=None, copy=None):
        out = self.toarray()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self):
        parts = ", ".join(
            f"{name}: {self.specs[name].kind} {X.shape[1]}"
            for name, X in self.blocks.items()
        )
        return f"ModalityBlocks(n_samples={self._n_samples}, {parts})"

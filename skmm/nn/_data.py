"""Batches built with one index operation on tensors prepared once.

A torch ``DataLoader`` over a per-row ``Dataset`` indexes every sample in
Python and collates them again; for tabular-sized rows that overhead, not the
model, dominates training time. :class:`BlockDataset` converts each modality
block to a tensor once, and :class:`BatchIterator` gathers a whole batch with
one ``index_select`` per block; without shuffling, a batch is a slice of
consecutive rows, copied in one piece. Sparse blocks stay sparse in memory and
only the rows of the batch are densified. A lazy block (images read from
files) stays lazy: it computes the rows of the batches ahead, in worker
processes, while the network runs on the current one.
"""

import numpy as np
import torch
from scipy import sparse
from torch.utils.data import Dataset

from skmm._blocks import LazyBlock
from skmm.nn._losses import value_weight_key
from skmm.nn._parallel import shard

__all__ = ["BatchIterator", "BlockDataset", "input_statistics"]


def _block_tensor(X, spec):
    if isinstance(X, LazyBlock):
        return X
    if sparse.issparse(X):
        return X.tocsr().astype(np.float32)
    if spec.kind == "tokens":
        return torch.as_tensor(np.asarray(X, dtype=np.int64))
    X = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
    if spec.kind == "image":
        X = X.view(X.shape[0], *spec.image_shape)
    return X


def _take(X, rows):
    """The ``rows`` (a LongTensor or a slice) of a block, as a dense tensor."""
    if isinstance(X, torch.Tensor):
        # A copy either way: the blocks may share memory with the caller's
        # arrays, and a module may modify its input in place.
        return X[rows].clone() if isinstance(rows, slice) else X.index_select(0, rows)
    if not isinstance(rows, slice):
        rows = rows.numpy()
    return torch.from_numpy(X[rows].toarray())


class BlockDataset(Dataset):
    """Modality blocks and targets, held as tensors.

    Parameters
    ----------
    blocks : ModalityBlocks
        The input blocks.
    targets : dict of str to ndarray, default=None
        One target array per task (class indices or float values).
    sample_weight : ndarray, default=None
        One weight per row.
    value_weights : dict of str to ndarray, default=None
        Per task, a weight of each target value in the loss, shaped as the
        task's target; the batches carry it under
        ``value_weight_key(task)``.
    """

    def __init__(self, blocks, targets=None, sample_weight=None, value_weights=None):
        self.X = {
            name: _block_tensor(X, blocks.specs[name]) for name, X in blocks.items()
        }
        self.image_shapes = {
            name: spec.image_shape
            for name, spec in blocks.specs.items()
            if spec.kind == "image"
        }
        self.y = {}
        for task, values in (targets or {}).items():
            values = np.asarray(values)
            dtype = np.int64 if values.dtype.kind in "iub" else np.float32
            self.y[task] = torch.as_tensor(values.astype(dtype, copy=False))
        for task, weight in (value_weights or {}).items():
            self.y[value_weight_key(task)] = torch.as_tensor(
                np.asarray(weight, dtype=np.float32)
            )
        if sample_weight is not None:
            self.y["sample_weight"] = torch.as_tensor(
                np.asarray(sample_weight, dtype=np.float32)
            )
        self.n_samples = len(blocks)

    def __len__(self):
        return self.n_samples

    def batch(self, rows):
        """The ``rows`` (a LongTensor or a slice) as ``(X_batch, y_batch)`` dicts."""
        (batch,) = self.batches([rows])
        return batch

    def batches(self, row_batches):
        """Yield ``(X_batch, y_batch)`` for the rows of each of ``row_batches``.

        Lazy blocks compute the batches ahead while the caller works on the
        current one; see :meth:`~skmm._blocks.LazyBlock.iter_batches`.
        """
        row_batches = list(row_batches)
        lazy = {
            name: X.iter_batches(row_batches)
            for name, X in self.X.items()
            if isinstance(X, LazyBlock)
        }
        try:
            for rows in row_batches:
                Xb = {}
                for name, X in self.X.items():
                    if name not in lazy:
                        Xb[name] = _take(X, rows)
                        continue
                    Xb[name] = next(lazy[name])
                    if name in self.image_shapes:
                        Xb[name] = Xb[name].view(-1, *self.image_shapes[name])
                yb = {task: _take(y, rows) for task, y in self.y.items()}
                yield Xb, yb
        finally:
            # Stops the work ahead when the caller stops early.
            for batches in lazy.values():
                batches.close()

    @property
    def has_lazy_blocks(self):
        """Whether some block computes its rows only when a batch needs them."""
        return any(isinstance(X, LazyBlock) for X in self.X.values())

    def __getitem__(self, i):
        Xb, yb = self.batch(torch.as_tensor([i]))
        return Xb, yb

    def subset(self, idx):
        """A dataset of the rows ``idx``; sparse blocks stay sparse."""
        idx = np.asarray(idx, dtype=np.int64)
        idx_t = torch.from_numpy(idx)
        out = BlockDataset.__new__(BlockDataset)
        out.X = {
            name: X[idx]
            if sparse.issparse(X) or isinstance(X, LazyBlock)
            else X.index_select(0, idx_t)
            for name, X in self.X.items()
        }
        out.image_shapes = self.image_shapes
        out.y = {task: y.index_select(0, idx_t) for task, y in self.y.items()}
        out.n_samples = len(idx)
        return out


class BatchIterator:
    """Iterate over a :class:`BlockDataset` in batches, optionally shuffled.

    Used by the skorch net as ``iterator_train`` / ``iterator_valid``: skorch
    calls ``BatchIterator(dataset, batch_size=..., **iterator_params)``.

    Parameters
    ----------
    dataset : BlockDataset
        The data.
    batch_size : int
        Rows per batch.
    shuffle : bool, default=False
        Draw a new permutation at every pass.
    generator : torch.Generator, default=None
        Source of the permutations, for reproducible shuffling.
    pin_memory : bool, default=False
        Pin each batch so its copy to a GPU can run asynchronously.
    data_parallel : bool, default=False
        Yield only this process's share of each batch's rows, for
        data-parallel training (see :mod:`skmm.nn._parallel`); the
        processes draw the same permutations from generators of the same
        seed.
    """

    def __init__(
        self,
        dataset,
        batch_size,
        shuffle=False,
        generator=None,
        pin_memory=False,
        data_parallel=False,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.pin_memory = pin_memory
        self.data_parallel = data_parallel

    def __len__(self):
        return (len(self.dataset) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        n = len(self.dataset)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        row_batches = [
            slice(start, min(start + self.batch_size, n))
            if order is None
            else order[start : start + self.batch_size]
            for start in range(0, n, self.batch_size)
        ]
        if self.data_parallel:
            shares = (shard(rows) for rows in row_batches)
            row_batches = [rows for rows in shares if rows is not None]
        for Xb, yb in self.dataset.batches(row_batches):
            if self.pin_memory:
                Xb = {k: v.pin_memory() for k, v in Xb.items()}
                yb = {k: v.pin_memory() for k, v in yb.items()}
            yield Xb, yb


def _scales_inputs(spec):
    # Only feature vectors that skmm's own MLP reads: image pixels come
    # standardised from their encoder, token ids are not magnitudes, and a
    # network an encoder hands over expects its encoder's scale.
    return spec.kind == "dense" and spec.tower is None


def input_statistics(dataset, specs):
    """Shift and scale that bring each feature block to a sane scale.

    Dense blocks are standardised per column with the mean and standard
    deviation of their rows that hold data (all-zero rows encode a missing
    value and keep being recognised as such before scaling). A sparse block
    stays sparse: it is only divided by the root mean square norm of its
    rows, so that an L2-normalised TF-IDF block keeps its scale and a block
    of raw counts gets the same one.

    Parameters
    ----------
    dataset : BlockDataset
        The training rows.
    specs : dict of str to BlockSpec
        The blocks.

    Returns
    -------
    stats : dict of str to (ndarray, ndarray)
        ``(shift, scale)`` per scaled block: per column for a dense block,
        a single value for a sparse one.
    """
    stats = {}
    for name, X in dataset.X.items():
        if not _scales_inputs(specs[name]):
            continue
        if sparse.issparse(X):
            sq_norms = np.asarray(X.multiply(X).sum(axis=1)).ravel()
            present = sq_norms > 0
            rms = np.sqrt(sq_norms[present].mean()) if present.any() else 1.0
            stats[name] = (np.zeros(1), np.array([rms if rms > 0 else 1.0]))
            continue
        values = X.numpy().astype(np.float64)
        present = (values != 0).any(axis=1)
        if present.any():
            values = values[present]
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        constant = std <= 1e-8 * np.maximum(1.0, np.abs(mean))
        stats[name] = (mean, np.where(constant, 1.0, std))
    return stats

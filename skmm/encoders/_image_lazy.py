"""Images kept as their cells, decoded a batch at a time.

``CNNImageEncoder(output="lazy")`` returns a :class:`LazyImageBlock`: the
image cells (file paths, typically) and what turning them into the pixels of
``output="pixels"`` needs. The fusion estimators ask it for one batch at a
time; the batches ahead are decoded in worker processes
(:func:`~skmm.utils._prefetch.prefetched`) while the network runs, so memory
holds a few batches of pixels, not all of them.
"""

import math

import numpy as np
import torch

from skmm._blocks import LazyBlock
from skmm.encoders._image_io import decode_cells, flat_rows_to_images, mode_of
from skmm.utils._prefetch import prefetched

__all__ = ["LazyImageBlock", "normalise_images"]


def normalise_images(images, missing, mean, std):
    """Standardise a tensor of images; missing images and pixels become 0.

    ``uint8`` pixels are scaled to [0, 1] first; float pixels are taken in
    their own units. ``output="pixels"`` and ``output="lazy"`` both go
    through here, so they give the same floats.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
        uint8 pixels, or float pixels with NaN where a pixel is missing.
    missing : bool Tensor of shape (n,) or None
        The missing images (zeros in ``images``); ``None`` for float pixels.
    mean, std : ndarray of shape (C,)
        Per-channel statistics, in [0, 1] units for uint8 pixels.

    Returns
    -------
    X : Tensor of shape (n, C, H, W), dtype float32
    """
    scale = 1 / std
    if images.dtype == torch.uint8:
        scale = scale / 255
    shape = (-1, 1, 1)
    X = images.to(torch.float32, copy=True)
    X.mul_(torch.as_tensor(scale, dtype=torch.float32, device=X.device).view(shape))
    X.sub_(
        torch.as_tensor(mean / std, dtype=torch.float32, device=X.device).view(shape)
    )
    if missing is None:
        X.nan_to_num_(nan=0.0)
    else:
        X[missing] = 0.0
    return X


def _decode_flat_rows(X, columns, positions, input_shape, mode, size):
    return flat_rows_to_images(X, columns, positions, input_shape, mode, size), None


class LazyImageBlock(LazyBlock):
    """The standardised pixels of one image column, decoded when needed.

    A :class:`~skmm._blocks.LazyBlock` of ``C * H * W`` float32 columns, the
    rows of ``CNNImageEncoder(output="pixels")``, computed a batch at a time.
    Made by :meth:`CNNImageEncoder.transform` with ``output="lazy"``; it
    holds the cells, not the pixels.

    Parameters
    ----------
    cells : ndarray of shape (n_samples, n_columns)
        The checked block: one column of image cells, or a numeric block of
        flattened images (``input_shape`` set).
    columns : list of str
        Column names, for error messages.
    input_shape : tuple of int or None
        ``(H, W, C)`` of the flattened images of a numeric block.
    image_shape : tuple of int
        ``(C, H, W)`` of the output images.
    mean, std : ndarray of shape (C,) or None
        Per-channel statistics the pixels are standardised with; ``None``
        while they are being learned, when only :meth:`iter_decoded` works.
    n_workers : int
        Worker processes decoding image cells ahead of the batch in use; 0
        decodes in the calling process.
    positions : ndarray of int, default=None
        Row of each cell in the block given to ``transform``, for error
        messages; ``0 .. n_samples - 1`` by default.
    """

    def __init__(
        self,
        cells,
        columns,
        *,
        input_shape,
        image_shape,
        mean,
        std,
        n_workers,
        positions=None,
    ):
        self.cells = cells
        self.columns = list(columns)
        self.input_shape = input_shape
        self.image_shape = tuple(image_shape)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.n_workers = int(n_workers)
        self.positions = (
            np.arange(len(cells), dtype=np.int64) if positions is None else positions
        )

    def __len__(self):
        return len(self.positions)

    @property
    def n_features(self):
        return math.prod(self.image_shape)

    def _select(self, positions):
        return LazyImageBlock(
            self.cells[positions],
            self.columns,
            input_shape=self.input_shape,
            image_shape=self.image_shape,
            mean=self.mean,
            std=self.std,
            n_workers=self.n_workers,
            positions=self.positions[positions],
        )

    def _rows(self, batch):
        if isinstance(batch, slice):
            return np.arange(len(self))[batch]
        if isinstance(batch, torch.Tensor):
            batch = batch.numpy()
        return np.asarray(batch, dtype=np.int64)

    def iter_decoded(self, batches):
        """Yield the decoded images of each batch, before standardisation.

        Parameters
        ----------
        batches : iterable of slice or array-like of int
            The rows of each batch.

        Yields
        ------
        images : ndarray of shape (n_rows, 1, C, H, W)
            uint8 pixels decoded from image cells, or float32 pixels (NaN
            where missing) of a numeric block.
        missing : ndarray of shape (n_rows, 1) or None
            The missing cells; ``None`` for a numeric block.
        """
        mode = mode_of(self.image_shape[0])
        size = self.image_shape[1:]
        numeric = self.input_shape is not None
        tasks = (
            (
                (self.cells[rows], self.columns, self.positions[rows])
                + ((self.input_shape,) if numeric else ())
                + (mode, size)
            )
            for rows in map(self._rows, batches)
        )
        if numeric:
            # The pixels are in memory already: only the resizing is left,
            # not worth a copy to another process.
            return prefetched(_decode_flat_rows, tasks, 0)
        return prefetched(decode_cells, tasks, self.n_workers)

    def iter_batches(self, batches):
        decoded = self.iter_decoded(batches)
        try:
            yield from self._normalised(decoded)
        finally:
            decoded.close()

    def _normalised(self, decoded):
        for images, missing in decoded:
            n_rows = images.shape[0]
            X = normalise_images(
                torch.from_numpy(images).flatten(0, 1),
                None if missing is None else torch.from_numpy(missing).flatten(),
                self.mean,
                self.std,
            )
            yield X.reshape(n_rows, -1)

    def __repr__(self):
        return f"LazyImageBlock(n_samples={len(self)}, image_shape={self.image_shape})"

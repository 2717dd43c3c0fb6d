"""What the image encoders share: decoding, normalising and encoding images.

:class:`CNNImageEncoder` and :class:`PretrainedImageEncoder` read the same
blocks (image cells or flattened images), decode them in chunks, normalise
each channel and run a network over the images, through the cache of frozen
encoders. They differ in two hooks:

- ``_channel_stats()``: the per-channel mean and standard deviation, learned
  in ``fit`` or given as parameters;
- ``_network()`` and ``_tower_dim()``: the network and its width, a
  ``ConvTower`` built (and maybe trained) in ``fit`` or a pretrained module.

and in a few details with a default here: how the network is run
(``_features``), how many images go through it at a time
(``_images_per_pass``: ``batch_size`` counts rows for one encoder, images for
the other) and whether the tower of ``output="pixels"`` trains
(``_tower_training``).
"""

import copy
import math
from functools import partial
from numbers import Integral

import numpy as np
import torch
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from skmm._blocks import BlockSpec
from skmm.encoders._image_io import (
    IMAGE_MODES,
    block_holds_numbers,
    iter_image_chunks,
    mode_of,
    resolve_input_shape,
)
from skmm.encoders._image_lazy import LazyImageBlock, normalise_images
from skmm.nn._towers import pool_features
from skmm.nn._training import run_in_batches
from skmm.utils._cache import block_key, cached, params_key
from skmm.utils._device import resolve_device, runs_on_gpu
from skmm.utils._prefetch import n_workers_for
from skmm.utils._progress import effective_verbose, report, track
from skmm.utils._sklearn_compat import _check_feature_names_in
from skmm.utils._threads import shared_n_threads, torch_threads
from skmm.utils._validation import check_column_block, resolve_paths

__all__ = ["BaseImageEncoder"]

# Rows decoded at a time: bounds the memory of transform whatever the number
# of images, and is large enough to amortise the per-chunk overhead.
CHUNK_ROWS = 256

# The outputs that hand the network to the fusion estimators as a tower.
_PIXEL_OUTPUTS = ("pixels", "lazy")


class BaseImageEncoder(TransformerMixin, BaseEstimator):
    """Base class of the image encoders; not for direct use.

    Subclasses set ``_feature_name`` (the stem of the feature names) and
    ``_cache_ignores`` (the parameters the cache key leaves out), implement
    ``_channel_stats``, ``_network`` and ``_tower_dim``, and in ``fit`` call
    :meth:`_check_fit_block`, then set ``_state_key``: the hash of what
    ``fit`` made, or None to keep the outputs out of the cache.
    """

    _feature_name = "feature"
    _cache_ignores = ()

    def transform(self, X):
        """Encode images with the fitted network.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Image columns, or a numeric block of flattened images, as in
            :term:`fit`.

        Returns
        -------
        Xt : ndarray or LazyImageBlock of shape (n_samples, n_features_out)
            ``output="features"``: the network's features, one set per image
            column. ``output="pixels"``: the normalised ``C * H * W`` pixels
            of the image, float32. ``output="lazy"``: the same pixels as a
            :class:`~skmm._blocks.LazyBlock`, decoded a batch at a time when
            a fusion estimator reads them.
        """
        check_is_fitted(self)
        X, columns = check_column_block(self, X, reset=False)
        X = resolve_paths(X, self.base_dir)
        if block_holds_numbers(X) != (self.input_shape_ is not None):
            fitted = "image cells" if self.input_shape_ is None else "numbers"
            raise ValueError(
                f"{type(self).__name__} was fitted on a block of {fitted} (columns "
                f"{columns}); transform needs the same kind of block."
            )
        device = resolve_device(self.device, fitting=False)
        with torch_threads(self._n_threads()):
            return self._transform_block(X, columns, device)

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Column names; checked against those seen in :term:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``{column}__cnn{i}`` (:class:`CNNImageEncoder`) or
            ``{column}__feature{i}`` (:class:`PretrainedImageEncoder`) per
            image column, ``{column}__pixel{i}`` with ``output="pixels"``;
            for a numeric block, with one image per row, the same without
            the ``{column}__`` prefix.
        """
        check_is_fitted(self)
        self._check_output()
        columns = _check_feature_names_in(self, input_features)
        prefixes = (
            [""] if self.input_shape_ is not None else [f"{c}__" for c in columns]
        )
        if self.output in _PIXEL_OUTPUTS:
            names = [f"pixel{i}" for i in range(math.prod(self.image_shape_))]
        else:
            names = [f"{self._feature_name}{i}" for i in range(self._tower_dim())]
        return np.asarray([p + name for p in prefixes for name in names], dtype=object)

    def get_block_spec(self):
        """Describe the output block for the fusion estimators.

        Returns
        -------
        spec : BlockSpec
            ``output="features"``: a ``"dense"`` block. ``output="pixels"``
            (or ``"lazy"``): an ``"image"`` block whose tower is
            :meth:`make_tower`, of the network's width: trainable for
            :class:`CNNImageEncoder` (behind its training-time augmentation,
            with ``augment``); for :class:`PretrainedImageEncoder` trainable
            unless ``freeze``, at the learning rate ``tower_lr``.
        """
        check_is_fitted(self)
        n_features = self._n_features_out()
        if self.output == "features":
            return BlockSpec(kind="dense", n_features=n_features)
        trainable, lr = self._tower_training()
        return BlockSpec(
            kind="image",
            n_features=n_features,
            image_shape=self.image_shape_,
            tower=self._tower_factory(),
            tower_dim=self._tower_dim(),
            trainable=trainable,
            lr=lr,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = runs_on_gpu(self.device)
        return tags

    # -- hooks ---------------------------------------------------------------

    def _channel_stats(self):
        """Per-channel ``(mean, std)`` of the pixels, as float64 arrays."""
        raise NotImplementedError

    def _network(self):
        """The fitted network, on the CPU, in evaluation mode."""
        raise NotImplementedError

    def _tower_dim(self):
        """Number of features the network gives per image."""
        raise NotImplementedError

    def _features(self, network, images):
        """``(n, tower_dim)`` features of normalised ``(n, C, H, W)`` images."""
        return pool_features(network(images))

    def _images_per_pass(self, n_images_per_row):
        """Images per forward pass: ``batch_size`` rows of images."""
        return self.batch_size * n_images_per_row

    def _tower_factory(self):
        """The zero-argument callable building the tower of the block spec."""
        return self.make_tower

    def _tower_training(self):
        """``(trainable, lr)`` of the tower handed over by ``output="pixels"``."""
        return True, None

    def _n_threads(self):
        """torch threads of ``fit`` and ``transform``; see ``n_threads``."""
        # An encoder pickled before n_threads existed uses the default.
        return getattr(self, "n_threads", None) or shared_n_threads()

    def _verbose(self):
        """The progress level: ``verbose``, or the global one when it is 0."""
        return effective_verbose(self.verbose)

    # -- fit -----------------------------------------------------------------

    def _check_image_size(self, size):
        """Return the ``image_size`` ``size`` as a ``(H, W)`` tuple of ints."""
        if isinstance(size, Integral):
            size = (size, size)
        if len(size) != 2 or not all(isinstance(s, Integral) and s > 0 for s in size):
            raise ValueError(
                "image_size must be a positive int or a (height, width) tuple of "
                f"positive ints, got {size!r}."
            )
        return tuple(int(s) for s in size)

    def _check_fit_block(self, X, size):
        """Validate the block of ``fit`` and record how its images are read.

        Sets ``n_features_in_``, ``feature_names_in_``, ``input_shape_`` and
        ``image_shape_``; returns the checked block and its column names.
        """
        X, columns = check_column_block(self, X, reset=True)
        X = resolve_paths(X, self.base_dir)
        self.input_shape_ = (
            resolve_input_shape(X.shape[1], self.input_shape, X)
            if block_holds_numbers(X)
            else None
        )
        self.image_shape_ = (IMAGE_MODES[self.mode], *size)
        self._check_output()
        return X, columns

    def _n_images_per_row(self):
        return 1 if self.input_shape_ is not None else self.n_features_in_

    def _check_output(self):
        if self.output in _PIXEL_OUTPUTS and self._n_images_per_row() > 1:
            raise ValueError(
                f"output={self.output!r} needs a single image column, got "
                f"{self.n_features_in_}. Use one encoder per image column."
            )

    def _n_features_out(self):
        self._check_output()
        if self.output in _PIXEL_OUTPUTS:
            return math.prod(self.image_shape_)
        return self._n_images_per_row() * self._tower_dim()

    # -- decoding ------------------------------------------------------------

    def _chunk_rows(self, n_rows, n_workers):
        """Rows per decoded chunk, a multiple of ``batch_size``.

        Whole batches per chunk make the forward passes, hence the floats,
        the same however the rows are chunked (``n_jobs``, ``fit_transform``
        or ``transform``).
        """
        max_batches = max(1, CHUNK_ROWS // self.batch_size)
        # Several chunks per worker keep them all busy until the end.
        wanted = math.ceil(n_rows / (4 * n_workers * self.batch_size))
        return self.batch_size * min(max_batches, max(1, wanted))

    def _iter_images(self, X, columns):
        """Yield ``(rows, images, missing)`` chunks; see ``iter_image_chunks``.

        The images are converted to the Pillow mode of the fitted
        ``image_shape_``, the shape the network reads.
        """
        numeric = self.input_shape_ is not None
        n_workers = 1 if numeric else effective_n_jobs(self.n_jobs)
        chunks = iter_image_chunks(
            X,
            columns,
            self._chunk_rows(X.shape[0], n_workers),
            input_shape=self.input_shape_,
            mode=mode_of(self.image_shape_[0]),
            size=self.image_shape_[1:],
            n_jobs=n_workers,
        )
        yield from track(
            chunks,
            total=X.shape[0],
            name=type(self).__name__,
            verbose=self.verbose,
            size=lambda chunk: chunk[0].stop - chunk[0].start,
        )

    def _iter_lazy_images(self, X, columns):
        """``_iter_images`` for ``output="lazy"``: decoded in its workers.

        The workers that will decode the training batches start here, so
        that the first epoch does not wait for them.
        """
        block = self._lazy_block(X, columns, with_stats=False)
        n_rows = X.shape[0]
        slices = [
            slice(start, min(start + CHUNK_ROWS, n_rows))
            for start in range(0, n_rows, CHUNK_ROWS)
        ]
        chunks = (
            (rows, images, missing)
            for rows, (images, missing) in zip(slices, block.iter_decoded(slices))
        )
        yield from track(
            chunks,
            total=n_rows,
            name=type(self).__name__,
            verbose=self.verbose,
            size=lambda chunk: chunk[0].stop - chunk[0].start,
        )

    # -- encoding ------------------------------------------------------------

    def _normalise(self, images, missing):
        """Standardise a tensor of images; see :func:`normalise_images`."""
        return normalise_images(images, missing, *self._channel_stats())

    def _network_on(self, device):
        network = self._network()
        if device.type == "cpu":
            return network
        return copy.deepcopy(network).to(device)

    def _encode_images(self, images, missing, network, device):
        """Output rows of decoded images: normalised pixels or features."""
        n_rows, n_images = images.shape[:2]
        images = torch.from_numpy(images).flatten(0, 1)
        missing = None if missing is None else torch.from_numpy(missing).flatten()
        if self.output == "pixels":
            return self._normalise(images, missing).reshape(n_rows, -1).numpy()
        features = np.empty((len(images), self._tower_dim()), dtype=np.float32)

        def encode_batch(batch):
            batch_missing = None if missing is None else missing[batch].to(device)
            X = self._features(
                network, self._normalise(images[batch].to(device), batch_missing)
            )
            if batch_missing is not None:
                # A missing image encodes as zeros, as a missing value does
                # for every skmm encoder, so fusion models can spot it.
                X[batch_missing] = 0.0
            features[batch] = X.cpu().numpy()

        batch_size = self._images_per_pass(n_images)
        run_in_batches(encode_batch, len(images), batch_size, (network,))
        return features.reshape(n_rows, -1)

    def _encode(self, X, columns, device, decoded=None):
        """Decode (unless ``decoded`` holds the images) and encode a block."""
        network = self._network_on(device) if self.output == "features" else None
        if decoded is not None:
            return self._encode_images(*decoded, network, device)
        Xt = np.empty((X.shape[0], self._n_features_out()), dtype=np.float32)
        for rows, images, missing in self._iter_images(X, columns):
            Xt[rows] = self._encode_images(images, missing, network, device)
        return Xt

    def _transform_block(self, X, columns, device, *, data_key=None, compute=None):
        """Encode a checked block, through the cache when the encoder is frozen.

        ``data_key`` is ``block_key(X)`` when the caller has it already;
        ``compute``, a zero-argument callable returning the output, replaces
        decoding and encoding ``X`` when the caller has done part of it.
        """
        if self.output == "lazy":
            return self._lazy_block(X, columns)
        state_key = getattr(self, "_state_key", None)
        enabled = self.cache and state_key is not None
        key_parts = None
        if enabled:
            data_key = block_key(X) if data_key is None else data_key
            key_parts = (
                "transform",
                params_key(self),
                state_key,
                str(device),
                data_key,
            )
        if compute is None:
            compute = partial(self._encode, X, columns, device)
        return cached(
            key_parts,
            compute,
            enabled=enabled,
            on_hit=self._report_reuse,
        )

    def _lazy_block(self, X, columns, n_workers=None, with_stats=True):
        """The block of ``output="lazy"``: ``X`` with what decoding it needs.

        Its batches are decoded in ``n_workers`` processes, by default those
        of ``n_jobs``; without the channel statistics (``with_stats=False``,
        before they are learned) it only decodes.
        """
        mean, std = self._channel_stats() if with_stats else (None, None)
        return LazyImageBlock(
            X,
            columns,
            input_shape=self.input_shape_,
            image_shape=self.image_shape_,
            mean=mean,
            std=std,
            n_workers=n_workers_for(self.n_jobs) if n_workers is None else n_workers,
        )

    def _report_reuse(self):
        if self._verbose():
            report(
                type(self).__name__,
                "reused the cached result of a frozen encoder with the same "
                "parameters and data",
            )

"""CNN image encoder: image columns -> pooled convolutional features or pixels."""

import copy
import math
import time
from numbers import Integral, Real

import numpy as np
import torch
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_array, check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from skmm._blocks import BlockSpec
from skmm.nn._towers import ConvTower
from skmm.utils._cache import FROZEN_OUTPUTS, block_key, content_key
from skmm.utils._device import resolve_device
from skmm.utils._images import (
    IMAGE_MODES,
    block_holds_numbers,
    iter_image_chunks,
    resolve_input_shape,
)
from skmm.utils._sklearn_compat import (
    Interval,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
)
from skmm.utils._validation import check_column_block, is_missing

__all__ = ["CNNImageEncoder"]

# Rows decoded at a time: bounds the memory of transform whatever the number
# of images, and is large enough to amortise the per-chunk overhead.
_CHUNK_ROWS = 256


def _with_progress(chunks, n_rows, verbose):
    """Yield ``chunks`` while reporting the rows done, with tqdm if installed."""
    if not verbose:
        yield from chunks
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        with tqdm(total=n_rows, unit="row", desc="CNNImageEncoder") as bar:
            for chunk in chunks:
                yield chunk
                bar.update(chunk[0].stop - chunk[0].start)
        return
    start = time.perf_counter()
    for chunk in chunks:
        yield chunk
        print(
            f"[CNNImageEncoder] {chunk[0].stop}/{n_rows} rows encoded "
            f"({time.perf_counter() - start:.1f} s)",
            flush=True,
        )


def _augment(X, generator):
    """Random horizontal flips and random crops of zero-padded images.

    ``X`` holds standardised images, so the zero padding is the channel mean.
    The random numbers come from ``generator``, on the CPU.
    """
    n, _, height, width = X.shape
    flip = (torch.rand(n, generator=generator) < 0.5).to(X.device)
    X = torch.where(flip.view(n, 1, 1, 1), X.flip(3), X)
    pad_h, pad_w = height // 8, width // 8
    if pad_h == pad_w == 0:
        return X
    X = F.pad(X, (pad_w, pad_w, pad_h, pad_h))
    top = torch.randint(0, 2 * pad_h + 1, (n, 1), generator=generator)
    left = torch.randint(0, 2 * pad_w + 1, (n, 1), generator=generator)
    rows = (top + torch.arange(height)).to(X.device)
    cols = (left + torch.arange(width)).to(X.device)
    X = X.gather(2, rows.view(n, 1, height, 1).expand(-1, X.shape[1], -1, X.shape[3]))
    return X.gather(3, cols.view(n, 1, 1, width).expand(-1, X.shape[1], height, -1))


class CNNImageEncoder(TransformerMixin, BaseEstimator):
    """Encode image columns with a small convolutional network.

    Each image is decoded with Pillow, converted to ``mode``, resized to
    ``image_size`` (bilinear), scaled to [0, 1] and standardised per channel
    with the mean and standard deviation learned in :term:`fit`. A
    ``ConvTower`` (3x3 convolutions with ReLU, max-pooling
    between blocks, global average pooling) then maps it to
    ``channels[-1]`` features. With several image columns, every column goes
    through the same network and the features are concatenated.

    Without ``y``, the network keeps its random initialisation, seeded by
    ``random_state``: random convolutional features are a usable frozen
    encoder. With ``y`` and ``max_epochs > 0``, the network is trained with a
    linear head on ``y`` first (cross-entropy for class labels, mean squared
    error on standardised values otherwise).

    With ``output="pixels"`` the encoder returns the standardised pixels
    instead, and :meth:`get_block_spec` hands its network to the fusion
    estimators as a trainable tower, warm-started when it was trained on
    ``y``.

    Missing images (``None``, ``NaN``, ``pd.NA`` cells) become all-zero
    standardised images, i.e. every pixel at the channel mean, in ``fit``
    (where they do not count towards the channel statistics) and in
    ``transform`` alike; with ``output="features"`` their features are all
    zero, the encoding of a missing value that the fusion estimators replace
    with a learned "missing" embedding.

    Parameters
    ----------
    image_size : int or tuple of (int, int), default=32
        Height and width every image is resized to; an int gives square
        images.
    channels : tuple of int, default=(16, 32)
        Output channels of each convolution block; ``channels[-1]`` features
        per image column.
    mode : {"RGB", "L"}, default="RGB"
        Pillow mode images are converted to: 3 colour channels or 1 grey
        channel. An alpha channel is dropped.
    output : {"features", "pixels"}, default="features"
        ``"features"``: pooled CNN features. ``"pixels"``: the standardised
        images flattened in ``(C, H, W)`` order, for a trainable tower inside
        a fusion estimator; needs a single image column.
    input_shape : tuple of int, default=None
        ``(H, W)`` or ``(H, W, C)`` (channels last, C in 1, 3, 4) of the
        images stored in the rows of a numeric block. With ``None``, a
        perfect-square width is a square grey image (64 columns are 8x8) and
        any other width a ``1 x n_columns`` grey strip. Ignored for blocks of
        image cells.
    max_epochs : int, default=0
        Passes over the data when training on ``y``. The default, 0, keeps the
        CNN at its seeded random initialisation (a frozen encoder); train on
        ``y`` only when the image alone predicts it: with an interaction
        between modalities or a multi-task ``y``, use ``output="pixels"`` to
        train the CNN end to end inside a fusion estimator instead.
    batch_size : int, default=64
        Rows per gradient step in training and per forward pass in
        ``transform``.
    lr : float, default=1e-3
        Learning rate of the Adam optimiser.
    augment : bool, default=False
        Whether training on ``y`` sees random horizontal flips and random
        crops of images padded by an eighth of their size. ``transform`` is
        never augmented.
    n_jobs : int, default=None
        Worker processes decoding and resizing image files, in chunks, while
        the main process runs the network. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context; -1 means all processors.
    verbose : int, default=0
        Print progress: a line per chunk of decoded rows (a progress bar if
        tqdm is installed) and the training loss per epoch.
    device : str or torch.device, default="cpu"
        Where the network runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or
        ``"auto"`` for a GPU when there is one. The fitted network is always
        stored on the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the network's initial weights, and the shuffling and
        augmentation of training, without touching the global seeds.
    cache : bool, default=True
        Reuse the fitted state and the outputs of a frozen encoder
        (``max_epochs=0`` or no ``y``) computed earlier in this process for
        the same parameters and data, e.g. by other candidates of a grid
        search. Needs a ``random_state`` other than None, which otherwise
        draws a new network at every fit. See Notes.

    Attributes
    ----------
    cnn_ : ConvTower
        The fitted network, on the CPU, in evaluation mode.
    channel_mean_ : ndarray of shape (C,)
        Mean of each channel over the non-missing fitted images, pixels
        scaled to [0, 1] (numeric blocks: in their own units).
    channel_std_ : ndarray of shape (C,)
        Standard deviation of each channel; 1 for a constant channel.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the images the network reads.
    input_shape_ : tuple of int or None
        ``(H, W, C)`` the rows of the fitted numeric block were read as;
        ``None`` when the block holds image cells.
    trained_on_y_ : bool
        Whether the network was trained on ``y``.
    loss_curve_ : list of float
        Mean training loss of each epoch; empty when not trained on ``y``.
    n_features_in_ : int
        Number of columns seen in :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the columns seen in :term:`fit`, when they are all strings.

    Notes
    -----
    A cell is an image file path (``str`` or path-like), the bytes of an
    encoded file, a PIL image, or an array of shape (H, W), (H, W, 1),
    (H, W, 3) or (H, W, 4), ``uint8`` or float in [0, 1] (quantised to 8
    bits like a decoded file). A numeric block (or an object block holding
    only numbers) is read as one flattened image per row instead, in its own
    units; there NaN marks a missing pixel, filled from its valid neighbours
    when resizing and with the channel mean otherwise.

    ``fit`` keeps the decoded images in memory as ``uint8`` (``C * H * W``
    bytes each); ``transform`` streams them in chunks.

    With ``cache=True``, a frozen encoder stores its fitted state and its
    outputs in a cache shared by the whole process (512 MiB at most, least
    recently used out first), under a hash of its class, its parameters
    (``random_state`` through the seed it yields, ``device`` through the
    device it resolves to; ``n_jobs``, ``verbose`` and ``cache`` do not
    count) and the data: the cells and, for file paths, each file's size and
    modification time, so that a file edited in place is read again. A clone
    fitted on the same data, as in every candidate of a grid search that
    varies only the estimators after the encoder, then decodes nothing and
    returns the same floats. The outputs are copies, safe to modify.
    ``skmm.utils.clear_frozen_cache()`` empties the cache. The worker
    processes of a parallel search each have their own.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm.encoders import CNNImageEncoder
    >>> rng = np.random.RandomState(0)
    >>> X = np.empty((4, 1), dtype=object)
    >>> X[:3, 0] = [rng.randint(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    >>> X[3, 0] = None  # a missing image
    >>> encoder = CNNImageEncoder(image_size=16, channels=(8, 16), random_state=0)
    >>> encoder.fit_transform(X).shape
    (4, 16)
    >>> encoder.get_feature_names_out()[:2]
    array(['x0__cnn0', 'x0__cnn1'], dtype=object)
    """

    _parameter_constraints = {
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple],
        "channels": [tuple, list],
        "mode": [StrOptions(set(IMAGE_MODES))],
        "output": [StrOptions({"features", "pixels"})],
        "input_shape": [tuple, None],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "augment": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "cache": ["boolean"],
    }

    def __init__(
        self,
        *,
        image_size=32,
        channels=(16, 32),
        mode="RGB",
        output="features",
        input_shape=None,
        max_epochs=0,
        batch_size=64,
        lr=1e-3,
        augment=False,
        n_jobs=None,
        verbose=0,
        device="cpu",
        random_state=None,
        cache=True,
    ):
        self.image_size = image_size
        self.channels = channels
        self.mode = mode
        self.output = output
        self.input_shape = input_shape
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.augment = augment
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.device = device
        self.random_state = random_state
        self.cache = cache

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the channel statistics and build, or train, the network.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Image columns, or a numeric block of flattened images.
        y : array-like of shape (n_samples,) or (n_samples, n_targets), \
                default=None
            Target the network is trained on; ``None`` keeps its random
            initialisation. Class labels when scikit-learn's
            :func:`~sklearn.utils.multiclass.type_of_target` finds them binary
            or multiclass, unless they are numbers with more distinct values
            than half the samples; continuous values otherwise.

        Returns
        -------
        self : object
            The fitted encoder.
        """
        self._fit(X, y, transform=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit the encoder and encode ``X``, decoding each image once.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Image columns, or a numeric block of flattened images.
        y : array-like of shape (n_samples,) or (n_samples, n_targets), \
                default=None
            Target the network is trained on; ``None`` keeps its random
            initialisation.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_features_out), dtype float32
            See :meth:`transform`.
        """
        return self._fit(X, y, transform=True)

    def transform(self, X):
        """Encode images with the fitted network.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Image columns, or a numeric block of flattened images, as in
            :term:`fit`.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_features_out), dtype float32
            ``output="features"``: ``channels[-1]`` pooled features per image
            column. ``output="pixels"``: the standardised ``C * H * W``
            pixels of the image.
        """
        check_is_fitted(self)
        X, columns = check_column_block(self, X, reset=False)
        if block_holds_numbers(X) != (self.input_shape_ is not None):
            fitted = "image cells" if self.input_shape_ is None else "numbers"
            raise ValueError(
                f"CNNImageEncoder was fitted on a block of {fitted} (columns "
                f"{columns}); transform needs the same kind of block."
            )
        device = resolve_device(self.device, fitting=False)
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
            ``{column}__cnn{i}`` per image column (``{column}__pixel{i}`` with
            ``output="pixels"``); for a numeric block, with one image per row,
            ``cnn{i}`` (``pixel{i}``).
        """
        check_is_fitted(self)
        self._check_output()
        columns = _check_feature_names_in(self, input_features)
        prefixes = (
            [""] if self.input_shape_ is not None else [f"{c}__" for c in columns]
        )
        if self.output == "pixels":
            names = [f"pixel{i}" for i in range(math.prod(self.image_shape_))]
        else:
            names = [f"cnn{i}" for i in range(self.cnn_.out_features)]
        return np.asarray([p + name for p in prefixes for name in names], dtype=object)

    def get_block_spec(self):
        """Describe the output block for the fusion estimators.

        Returns
        -------
        spec : BlockSpec
            ``output="features"``: a ``"dense"`` block. ``output="pixels"``:
            an ``"image"`` block whose tower is :meth:`make_tower`, trainable.
        """
        check_is_fitted(self)
        n_features = self._n_features_out()
        if self.output == "features":
            return BlockSpec(kind="dense", n_features=n_features)
        return BlockSpec(
            kind="image",
            n_features=n_features,
            image_shape=self.image_shape_,
            tower=self.make_tower,
            tower_dim=self.cnn_.out_features,
            trainable=True,
        )

    def make_tower(self):
        """Return a fresh copy of the fitted network, in training mode.

        It maps a batch of images of shape ``(n, C, H, W)``, standardised as
        by ``output="pixels"``, to ``(n, channels[-1])`` features: the same
        features as ``output="features"`` until it is trained further.

        Returns
        -------
        tower : ConvTower
        """
        check_is_fitted(self)
        return copy.deepcopy(self.cnn_).train()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        try:
            device = resolve_device(self.device, fitting=False)
            tags.non_deterministic = device.type != "cpu"
        except ValueError:
            tags.non_deterministic = False
        return tags

    def _fit(self, X, y, *, transform):
        """Fit; with ``transform``, return the encoded ``X`` as well."""
        size = self._check_params()
        device = resolve_device(self.device)
        X, columns = check_column_block(self, X, reset=True)
        target = (
            None
            if y is None or self.max_epochs == 0
            else self._check_target(y, X.shape[0])
        )
        self.input_shape_ = (
            resolve_input_shape(X.shape[1], self.input_shape)
            if block_holds_numbers(X)
            else None
        )
        self.image_shape_ = (IMAGE_MODES[self.mode], *size)
        self._check_output()
        n_images = self._n_images_per_row()

        rng = check_random_state(self.random_state)
        init_seed, train_seed = (
            int(s) for s in rng.randint(np.iinfo(np.int32).max, size=2)
        )
        train = target is not None and self.max_epochs > 0
        self.loss_curve_ = []
        self.trained_on_y_ = train
        self._fit_key = data_key = None
        if self.cache and not train and self.random_state is not None:
            data_key = block_key(X)
            # The initial seed rather than random_state: a RandomState
            # instance changes state at every fit, the seed it yields is what
            # shapes the network.
            self._fit_key = content_key(
                "fit", self._params_key(), init_seed, str(device), data_key
            )
            state = FROZEN_OUTPUTS.get(self._fit_key)
            if state is not None:
                mean, std, cnn = state
                self.channel_mean_, self.channel_std_ = mean.copy(), std.copy()
                self.cnn_ = copy.deepcopy(cnn)
                self._report_reuse()
                if transform:
                    return self._transform_block(X, columns, device, data_key)
                return None

        images, missing = None, None
        for rows, chunk, chunk_missing in self._iter_images(X, columns):
            if images is None:
                images = np.empty((X.shape[0], *chunk.shape[1:]), dtype=chunk.dtype)
                missing = (
                    None
                    if chunk_missing is None
                    else np.empty((X.shape[0], n_images), dtype=bool)
                )
            images[rows] = chunk
            if missing is not None:
                missing[rows] = chunk_missing
        self.channel_mean_, self.channel_std_ = _channel_stats(images, missing)

        # Modules draw their initial weights from torch's global generator:
        # seed it inside a fork so that the caller's random state is restored.
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(init_seed)
            cnn = ConvTower(self.image_shape_[0], tuple(self.channels))
            head = nn.Linear(n_images * cnn.out_features, target[1]) if train else None
        if train:
            self._train(cnn, head, images, missing, target, device, train_seed)
        self.cnn_ = cnn.cpu().eval()
        if self._fit_key is not None:
            state = (
                self.channel_mean_.copy(),
                self.channel_std_.copy(),
                copy.deepcopy(self.cnn_),
            )
            nbytes = self.channel_mean_.nbytes + self.channel_std_.nbytes
            nbytes += sum(
                t.numel() * t.element_size() for t in self.cnn_.state_dict().values()
            )
            FROZEN_OUTPUTS.put(self._fit_key, state, nbytes)
        if not transform:
            return None
        Xt = self._encode(images, missing, self._network_on(device), device)
        if self._fit_key is not None:
            FROZEN_OUTPUTS.put(self._output_key(device, data_key), Xt.copy(), Xt.nbytes)
        return Xt

    def _params_key(self):
        """The parameters that shape the fitted state or the output."""
        params = self.get_params(deep=False)
        # random_state enters the fit key as the seed it yields.
        for name in ("n_jobs", "verbose", "device", "cache", "random_state"):
            del params[name]
        return f"{type(self).__module__}.{type(self).__qualname__}", params

    def _output_key(self, device, data_key):
        """Key of the output of the fitted frozen encoder on the data hashed."""
        return content_key(
            "transform", self._fit_key, self._params_key(), str(device), data_key
        )

    def _transform_block(self, X, columns, device, data_key=None):
        """Encode a checked block, through the cache when the encoder is frozen."""
        key = None
        if self.cache and getattr(self, "_fit_key", None) is not None:
            if data_key is None:
                data_key = block_key(X)
            key = self._output_key(device, data_key)
            Xt = FROZEN_OUTPUTS.get(key)
            if Xt is not None:
                self._report_reuse()
                return Xt.copy()
        cnn = self._network_on(device)
        Xt = np.empty((X.shape[0], self._n_features_out()), dtype=np.float32)
        for rows, images, missing in self._iter_images(X, columns):
            Xt[rows] = self._encode(images, missing, cnn, device)
        if key is not None:
            FROZEN_OUTPUTS.put(key, Xt.copy(), Xt.nbytes)
        return Xt

    def _report_reuse(self):
        if self.verbose:
            print(
                "[CNNImageEncoder] reused the cached result of a frozen encoder "
                "with the same parameters and data",
                flush=True,
            )

    def _check_params(self):
        """Check what the constraints cannot; return the ``(H, W)`` size."""
        size = self.image_size
        if isinstance(size, Integral):
            size = (size, size)
        if len(size) != 2 or not all(isinstance(s, Integral) and s > 0 for s in size):
            raise ValueError(
                "image_size must be a positive int or a (height, width) tuple of "
                f"positive ints, got {self.image_size!r}."
            )
        if not self.channels or not all(
            isinstance(c, Integral) and c > 0 for c in self.channels
        ):
            raise ValueError(
                "channels must be a non-empty tuple of positive ints, got "
                f"{self.channels!r}."
            )
        return tuple(int(s) for s in size)

    def _check_target(self, y, n_samples):
        """Return ``(target, n_outputs, is_classification)`` for training."""
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        if y.shape[0] != n_samples:
            raise ValueError(
                f"y has {y.shape[0]} rows but X has {n_samples}; they must match."
            )
        if y.dtype == object:
            for i, row in enumerate(y.reshape(n_samples, -1)):
                if any(is_missing(value) for value in row):
                    raise ValueError(f"y has a missing value in row {i}.")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        target_type = type_of_target(y, input_name="y")
        if target_type in ("binary", "multiclass"):
            classes, codes = np.unique(y, return_inverse=True)
            # Integer-valued numbers with many distinct values are a quantity
            # (a count, a price), not class labels.
            if (
                target_type == "binary"
                or y.dtype.kind not in "iuf"
                or len(classes) <= n_samples / 2
            ):
                return codes.astype(np.int64), len(classes), True
        elif target_type not in ("continuous", "continuous-multioutput"):
            raise ValueError(
                f"Unknown label type {target_type!r} for y: CNNImageEncoder trains "
                "on one column of class labels or on continuous targets."
            )
        values = y.astype(np.float64).reshape(n_samples, -1)
        std = values.std(axis=0)
        values = (values - values.mean(axis=0)) / np.where(std > 0, std, 1)
        return values.astype(np.float32), values.shape[1], False

    def _n_images_per_row(self):
        return 1 if self.input_shape_ is not None else self.n_features_in_

    def _check_output(self):
        if self.output == "pixels" and self._n_images_per_row() > 1:
            raise ValueError(
                "output='pixels' needs a single image column, got "
                f"{self.n_features_in_}. Use one encoder per image column."
            )

    def _n_features_out(self):
        self._check_output()
        if self.output == "pixels":
            return math.prod(self.image_shape_)
        return self._n_images_per_row() * self.cnn_.out_features

    def _chunk_rows(self, n_rows, n_workers):
        """Rows per decoded chunk, a multiple of ``batch_size``.

        Whole batches per chunk make the forward passes, hence the floats,
        the same however the rows are chunked (``n_jobs``, ``fit_transform``
        or ``transform``).
        """
        max_batches = max(1, _CHUNK_ROWS // self.batch_size)
        # Several chunks per worker keep them all busy until the end.
        wanted = math.ceil(n_rows / (4 * n_workers * self.batch_size))
        return self.batch_size * min(max_batches, max(1, wanted))

    def _iter_images(self, X, columns):
        """Yield ``(rows, images, missing)`` chunks; see ``iter_image_chunks``."""
        numeric = self.input_shape_ is not None
        n_workers = 1 if numeric else effective_n_jobs(self.n_jobs)
        chunks = iter_image_chunks(
            X,
            columns,
            self._chunk_rows(X.shape[0], n_workers),
            input_shape=self.input_shape_,
            mode="L" if self.image_shape_[0] == 1 else "RGB",
            size=self.image_shape_[1:],
            n_jobs=n_workers,
        )
        yield from _with_progress(chunks, X.shape[0], self.verbose)

    def _normalise(self, images, missing):
        """Standardise a tensor of images; missing images and pixels become 0."""
        scale = 1 / self.channel_std_
        if images.dtype == torch.uint8:
            scale = scale / 255
        shape = (-1, 1, 1)
        X = images.to(torch.float32, copy=True)
        X.mul_(torch.as_tensor(scale, dtype=torch.float32, device=X.device).view(shape))
        X.sub_(
            torch.as_tensor(
                self.channel_mean_ / self.channel_std_,
                dtype=torch.float32,
                device=X.device,
            ).view(shape)
        )
        if missing is None:
            X.nan_to_num_(nan=0.0)
        else:
            X[missing] = 0.0
        return X

    def _network_on(self, device):
        if device.type == "cpu":
            return self.cnn_
        return copy.deepcopy(self.cnn_).to(device)

    def _encode(self, images, missing, cnn, device):
        """Output rows of a decoded chunk: standardised pixels or CNN features."""
        images = torch.from_numpy(images)
        missing = None if missing is None else torch.from_numpy(missing)
        if self.output == "pixels":
            return self._normalise(images, missing).reshape(len(images), -1).numpy()
        Xt = np.empty((len(images), self._n_features_out()), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = slice(start, start + self.batch_size)
                X = self._normalise(
                    images[batch].to(device),
                    None if missing is None else missing[batch].to(device),
                )
                # Channels-last runs the pooling layers several times faster
                # on CPUs, with the same features.
                batch_images = X.flatten(0, 1).contiguous(
                    memory_format=torch.channels_last
                )
                features = cnn(batch_images).reshape(X.shape[0], X.shape[1], -1)
                if missing is not None:
                    # A missing image encodes as zeros, as a missing value does
                    # for every skmm encoder, so fusion models can spot it.
                    features[missing[batch].to(device)] = 0.0
                Xt[batch] = features.reshape(X.shape[0], -1).cpu().numpy()
        return Xt

    def _train(self, cnn, head, images, missing, target, device, seed):
        """Train ``cnn`` with the linear ``head`` on ``target``, with Adam."""
        values, _, classification = target
        loss_fn = F.cross_entropy if classification else F.mse_loss
        generator = torch.Generator().manual_seed(seed)
        images = torch.from_numpy(images)
        missing = None if missing is None else torch.from_numpy(missing)
        values = torch.from_numpy(values)
        cnn.to(device).train()
        head.to(device).train()
        optimizer = torch.optim.Adam(
            [*cnn.parameters(), *head.parameters()], lr=self.lr
        )
        n_samples = len(images)
        for epoch in range(self.max_epochs):
            order = torch.randperm(n_samples, generator=generator)
            total = torch.zeros((), device=device)
            for start in range(0, n_samples, self.batch_size):
                idx = order[start : start + self.batch_size]
                X = self._normalise(
                    images[idx].to(device),
                    None if missing is None else missing[idx].to(device),
                )
                X_flat = X.flatten(0, 1)
                if self.augment:
                    X_flat = _augment(X_flat, generator)
                y_pred = head(cnn(X_flat).reshape(len(idx), -1))
                loss = loss_fn(y_pred, values[idx].to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(idx)
            self.loss_curve_.append(float(total) / n_samples)
            if self.verbose:
                print(
                    f"[CNNImageEncoder] epoch {epoch + 1}/{self.max_epochs}: "
                    f"loss {self.loss_curve_[-1]:.4f}",
                    flush=True,
                )


def _channel_stats(images, missing):
    """Per-channel mean and standard deviation of the valid pixels.

    uint8 images are counted by level, exactly and without a float copy;
    float images skip NaN pixels.
    """
    n_channels = images.shape[2]
    if images.dtype == np.uint8:
        counts = np.zeros((n_channels, 256))
        for start in range(0, len(images), _CHUNK_ROWS):
            rows = slice(start, start + _CHUNK_ROWS)
            valid = images[rows][~missing[rows]]
            for c in range(n_channels):
                counts[c] += np.bincount(valid[:, c].ravel(), minlength=256)
        levels = np.arange(256) / 255
        n_valid = counts.sum(axis=1)
        safe_n = np.maximum(n_valid, 1)
        mean = counts @ levels / safe_n
        var = (counts * (levels - mean[:, None]) ** 2).sum(axis=1) / safe_n
    else:
        mean, var, n_valid = (np.zeros(n_channels) for _ in range(3))
        for c in range(n_channels):
            values = images[:, :, c]
            valid = ~np.isnan(values)
            n_valid[c] = valid.sum()
            if n_valid[c]:
                mean[c] = np.sum(values, where=valid, dtype=np.float64) / n_valid[c]
                var[c] = (
                    np.sum((values - mean[c]) ** 2, where=valid, dtype=np.float64)
                    / n_valid[c]
                )
    std = np.sqrt(var)
    constant = (n_valid == 0) | (std <= 1e-6 * np.maximum(1, np.abs(mean)))
    return np.where(n_valid == 0, 0.0, mean), np.where(constant, 1.0, std)

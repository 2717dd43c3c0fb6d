"""CNN image encoder: image columns -> pooled convolutional features or pixels."""

import copy
import os
from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_array
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from skmm.encoders._image_base import CHUNK_ROWS, BaseImageEncoder
from skmm.encoders._image_io import IMAGE_MODES
from skmm.nn._augment import AugmentedTower, ImageAugmentation, check_augment
from skmm.nn._towers import ConvTower
from skmm.nn._training import fit_seeds, make_generator, seeded_init, train_loop
from skmm.utils._atomic import restored_on_failure
from skmm.utils._cache import block_key, cached, content_key, params_key
from skmm.utils._device import resolve_device
from skmm.utils._progress import epoch_reporter
from skmm.utils._sklearn_compat import Interval, StrOptions, _fit_context
from skmm.utils._threads import torch_threads
from skmm.utils._validation import is_missing

__all__ = ["CNNImageEncoder"]


class CNNImageEncoder(BaseImageEncoder):
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
    encoder, the same network at every fit by default. With ``y`` and
    ``max_epochs > 0``, the network is trained with a linear head on ``y``
    first (cross-entropy for class labels, mean squared error on standardised
    values otherwise).

    With ``standardize=True`` (the default) the features are then
    standardised with the mean and standard deviation of each feature over
    the fitted images, so that any scikit-learn model can use them: the raw
    features of a random network vary on a scale of about 0.01.

    With ``output="pixels"`` the encoder returns the standardised pixels
    instead, and :meth:`get_block_spec` hands its network to the fusion
    estimators as a trainable tower, warm-started when it was trained on
    ``y``. ``output="lazy"`` does the same for image columns that do not fit
    in memory: ``transform`` keeps the cells (file paths) and returns a lazy
    block, whose images the fusion estimators decode a batch at a time, in
    ``n_jobs`` worker processes, while the network trains or predicts.

    Missing images (``None``, ``NaN``, ``pd.NA`` cells) become all-zero
    standardised images, i.e. every pixel at the channel mean, in ``fit``
    (where they do not count towards the channel statistics) and in
    ``transform`` alike; with ``output="features"`` their features are all
    zero (after the standardisation; they do not count towards the feature
    statistics either), the encoding of a missing value that the fusion
    estimators replace with a learned "missing" embedding.

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
    output : {"features", "pixels", "lazy"}, default="features"
        ``"features"``: pooled CNN features. ``"pixels"``: the standardised
        images flattened in ``(C, H, W)`` order, for a trainable tower inside
        a fusion estimator; needs a single image column. ``"lazy"``: the
        same pixels as a :class:`~skmm._blocks.LazyBlock` that holds the
        cells, not the pixels, and decodes them a batch at a time when a
        fusion estimator reads it: for more images than memory holds. ``fit``
        then streams the images to learn the channel statistics (and to
        train on ``y``) without keeping them.
    standardize : bool, default=True
        With ``output="features"``: whether each feature is centred and scaled
        to unit variance with its mean and standard deviation over the
        non-missing images of :term:`fit` (``feature_mean_``,
        ``feature_std_``). ``False`` returns the network's raw features.
    input_shape : tuple of int, default=None
        ``(H, W)`` or ``(H, W, C)`` (channels last, C in 1, 3, 4) of the
        images stored in the rows of a numeric block. With ``None``, a
        perfect-square width is a square grey image (64 columns are 8x8), a
        width of ``3 * k * k`` (k > 1), that of flattened ``k x k`` RGB
        images, raises a ValueError that asks for ``input_shape``, and any
        other width is a ``1 x n_columns`` grey strip. Ignored for blocks of
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
    augment : bool, dict or None, default=False
        Random augmentation of the training images: with ``max_epochs > 0``
        in the training on ``y``, and with ``output="pixels"`` or ``"lazy"``
        in the training of the fusion estimator the tower goes to (it draws
        from the estimator's own seeded generator there). ``True`` flips half
        the images horizontally, crops them to a random box of 60% to 100%
        of their area resized back, and changes their brightness and
        contrast by a random factor in [0.8, 1.2]. A dict turns on what it
        names, e.g. ``{"flip": True, "crop": 0.8, "brightness": 0.1,
        "contrast": 0.1}`` (``"crop"``: the smallest fraction of the area
        kept, or a ``(min, max)`` range). Neither ``transform`` nor
        prediction is ever augmented.
    n_jobs : int, default=None
        Worker processes decoding and resizing image files, in chunks, while
        the main process runs the network. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context; -1 means all processors.
        With ``output="lazy"``, the lazy block decodes its batches in
        ``n_jobs`` worker processes (``None``: 1) ahead of the network.
    n_threads : int, default=None
        torch intra-op threads used by ``fit`` and ``transform``, set for their
        duration and restored afterwards. ``None``: torch's current number of
        threads (lowered already by ``OMP_NUM_THREADS`` in the worker
        processes of joblib and Dask), at most one per physical core, as for
        a fusion estimator with an image or pretrained tower.
    base_dir : str or path-like, default=None
        Folder that relative image paths are read from, such as the folder
        of the CSV file that lists them. ``None`` reads them from the
        working folder. Absolute paths and other cells are kept as they are.
    verbose : int, default=0
        Report progress on stderr: the rows encoded (a progress bar if tqdm
        is installed) and the training loss per epoch. 0 follows
        ``skmm.get_config()["verbose"]``.
    device : str or torch.device, default="auto"
        Where the network runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or
        ``"auto"`` for a GPU when there is one, resolved in :term:`fit` as
        for the fusion estimators. The fitted network is always stored on
        the CPU.
    random_state : int, RandomState instance or None, default=0
        Seeds the network's initial weights, and the shuffling and
        augmentation of training, without touching the global seeds. The
        default gives the same network at every fit, so that the candidates
        of a grid search share one frozen encoder; ``None`` draws a new
        network at every fit and turns the cache off.
    cache : bool, default=True
        Reuse the fitted state and the outputs of a frozen encoder
        (``max_epochs=0`` or no ``y``) computed earlier in this process for
        the same parameters and data, e.g. by other candidates of a grid
        search. Has no effect with ``random_state=None``. See Notes.

    Attributes
    ----------
    cnn_ : ConvTower
        The fitted network, on the CPU, in evaluation mode.
    channel_mean_ : ndarray of shape (C,)
        Mean of each channel over the non-missing fitted images, pixels
        scaled to [0, 1] (numeric blocks: in their own units).
    channel_std_ : ndarray of shape (C,)
        Standard deviation of each channel; 1 for a constant channel.
    feature_mean_ : ndarray of shape (channels[-1],) or None
        Mean of each network feature over the non-missing fitted images
        (every image column counts), subtracted in :meth:`transform`;
        ``None`` unless ``output="features"`` and ``standardize=True``.
    feature_std_ : ndarray of shape (channels[-1],) or None
        Standard deviation of each feature, which :meth:`transform` divides
        by; 1 for a constant feature.
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
    bytes each), except with ``output="lazy"``; ``transform`` streams them in
    chunks. With ``output="lazy"`` a missing or unreadable file is reported,
    with its column and row, when a batch that holds it is decoded.

    With ``cache=True``, a frozen encoder stores its fitted state (the
    network and the channel and feature statistics) and its outputs in a
    cache shared by the whole process (512 MiB at most, least recently used
    out first), under a hash of its class, its parameters
    (``random_state`` through the seed it yields, ``device`` through the
    device it resolves to; ``n_jobs``, ``n_threads``, ``verbose`` and
    ``cache`` do not count) and the data: the cells and, for file paths, a hash of each
    file's bytes, so that a file changed in place is read again even when it
    keeps its size and modification time. A clone
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

    _feature_name = "cnn"
    # random_state enters the key of the fitted state as the seed it yields.
    # base_dir enters the cache keys through the resolved paths instead.
    _cache_ignores = (
        "n_jobs",
        "n_threads",
        "verbose",
        "device",
        "cache",
        "random_state",
        "base_dir",
    )

    _parameter_constraints = {
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple],
        "channels": [tuple, list],
        "mode": [StrOptions(set(IMAGE_MODES))],
        "output": [StrOptions({"features", "pixels", "lazy"})],
        "standardize": ["boolean"],
        "input_shape": [tuple, None],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "augment": ["boolean", dict, None],
        "n_jobs": [Integral, None],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "base_dir": [str, os.PathLike, None],
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
        standardize=True,
        input_shape=None,
        max_epochs=0,
        batch_size=64,
        lr=1e-3,
        augment=False,
        n_jobs=None,
        n_threads=None,
        base_dir=None,
        verbose=0,
        device="auto",
        random_state=0,
        cache=True,
    ):
        self.image_size = image_size
        self.channels = channels
        self.mode = mode
        self.output = output
        self.standardize = standardize
        self.input_shape = input_shape
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.augment = augment
        self.n_jobs = n_jobs
        self.n_threads = n_threads
        self.base_dir = base_dir
        self.verbose = verbose
        self.device = device
        self.random_state = random_state
        self.cache = cache

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the channel statistics, build (or train) the network, then
        learn the feature statistics.

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

    def make_tower(self):
        """Return a fresh copy of the fitted network, in training mode.

        It maps a batch of images of shape ``(n, C, H, W)``, standardised as
        by ``output="pixels"``, to ``(n, channels[-1])`` features: those of
        ``output="features"`` before their standardisation, until it is
        trained further.

        Returns
        -------
        tower : ConvTower
        """
        check_is_fitted(self)
        return copy.deepcopy(self.cnn_).train()

    def __setstate__(self, state):
        # Pickles from before ``standardize`` existed: their features were
        # not standardised, and they load and transform as they did.
        state = dict(state)
        if "standardize" not in state:
            state["standardize"] = False
            if "cnn_" in state:
                state.setdefault("feature_mean_", None)
                state.setdefault("feature_std_", None)
        super().__setstate__(state)

    def _fit(self, X, y, *, transform):
        """Fit; with ``transform``, return the encoded ``X`` as well.

        A fit that fails or is interrupted leaves the encoder as it was.
        """
        with restored_on_failure(self), torch_threads(self._n_threads()):
            return self._fit_unguarded(X, y, transform=transform)

    def _fit_unguarded(self, X, y, *, transform):
        size = self._check_params()
        device = resolve_device(self.device)
        X, columns = self._check_fit_block(X, size)
        target = (
            None
            if y is None or self.max_epochs == 0
            else self._check_target(y, X.shape[0])
        )
        init_seed, train_seed = fit_seeds(self.random_state, 2)
        train = target is not None
        self.trained_on_y_ = train
        self.loss_curve_ = []
        # A frozen encoder with a seed computes the same state from the same
        # data: clones share it through the cache.
        frozen = self.cache and not train and self.random_state is not None
        data_key = self._state_key = None
        if frozen:
            data_key = block_key(X)
            # The initial seed rather than random_state: a RandomState
            # instance changes state at every fit, the seed it yields is what
            # shapes the network.
            self._state_key = content_key(
                "fit", params_key(self), init_seed, str(device), data_key
            )
        # What fit_network decoded and encoded, for fit_transform to reuse.
        scratch = {}

        def fit_network():
            if self.output == "lazy":
                # Streamed: the statistics need the images once, not kept.
                moments = _ChannelMoments()
                for _, chunk, chunk_missing in self._iter_lazy_images(X, columns):
                    moments.add(chunk, chunk_missing)
                self.channel_mean_, self.channel_std_ = moments.result()
            else:
                images, missing = self._decode(X, columns)
                scratch["decoded"] = images, missing
                self.channel_mean_, self.channel_std_ = _channel_mean_std(
                    images, missing
                )
            with seeded_init(init_seed):
                cnn = ConvTower(self.image_shape_[0], tuple(self.channels))
                head = (
                    nn.Linear(self._n_images_per_row() * cnn.out_features, target[1])
                    if train
                    else None
                )
            if train:
                load = (
                    self._lazy_loader(X, columns, device)
                    if self.output == "lazy"
                    else self._memory_loader(*scratch["decoded"], device)
                )
                self._train(cnn, head, load, X.shape[0], target, device, train_seed)
            self.cnn_ = cnn.cpu().eval()
            self.feature_mean_ = self.feature_std_ = None
            if self.output == "features" and self.standardize:
                raw = self._encode_images(
                    images, missing, self._network_on(device), device
                )
                scratch["raw"] = raw
                self.feature_mean_, self.feature_std_ = _feature_mean_std(
                    raw.reshape(-1, self._tower_dim()),
                    None if missing is None else missing.ravel(),
                )
            return (
                self.channel_mean_,
                self.channel_std_,
                self.cnn_,
                self.feature_mean_,
                self.feature_std_,
            )

        (
            self.channel_mean_,
            self.channel_std_,
            self.cnn_,
            self.feature_mean_,
            self.feature_std_,
        ) = cached(
            (self._state_key,), fit_network, enabled=frozen, on_hit=self._report_reuse
        )
        if not transform:
            return None
        compute = None
        if "raw" in scratch:
            compute = partial(
                self._standardise_rows, scratch["raw"], scratch["decoded"][1]
            )
        elif "decoded" in scratch:
            compute = partial(
                self._encode, X, columns, device, decoded=scratch["decoded"]
            )
        return self._transform_block(
            X, columns, device, data_key=data_key, compute=compute
        )

    def _decode(self, X, columns):
        """All the images of a checked block, with their ``missing`` mask."""
        images, missing = None, None
        for rows, chunk, chunk_missing in self._iter_images(X, columns):
            if images is None:
                images = np.empty((X.shape[0], *chunk.shape[1:]), dtype=chunk.dtype)
                missing = (
                    None
                    if chunk_missing is None
                    else np.empty((X.shape[0], chunk.shape[1]), dtype=bool)
                )
            images[rows] = chunk
            if missing is not None:
                missing[rows] = chunk_missing
        return images, missing

    def _check_params(self):
        """Check what the constraints cannot; return the ``(H, W)`` size."""
        size = self._check_image_size(self.image_size)
        check_augment(self.augment)
        if not self.channels or not all(
            isinstance(c, Integral) and c > 0 for c in self.channels
        ):
            raise ValueError(
                "channels must be a non-empty tuple of positive ints, got "
                f"{self.channels!r}."
            )
        return size

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

    def _channel_stats(self):
        return self.channel_mean_, self.channel_std_

    def _augmentation(self):
        """The training-time augmentation of ``augment``, or None."""
        settings = check_augment(self.augment)
        if settings is None:
            return None
        return ImageAugmentation(
            **settings,
            mean=self.channel_mean_,
            std=self.channel_std_,
            # Decoded images lie in [0, 1]; a numeric block has its own units.
            bounded=self.input_shape_ is None,
        )

    def _tower_factory(self):
        if check_augment(self.augment) is None:
            return self.make_tower
        return self._augmented_tower

    def _augmented_tower(self):
        """A fresh copy of the fitted network behind the augmentation."""
        return AugmentedTower(self._augmentation(), self.make_tower())

    def _network(self):
        return self.cnn_

    def _tower_dim(self):
        return self.cnn_.out_features

    def _features(self, network, images):
        # Channels-last runs the pooling layers several times faster on CPUs,
        # with the same features.
        X = network(images.contiguous(memory_format=torch.channels_last))
        return X if self.feature_mean_ is None else self._standardise(X)

    def _standardise(self, X):
        """Standardise a ``(n, channels[-1])`` tensor of raw features."""
        mean = torch.as_tensor(self.feature_mean_, dtype=X.dtype, device=X.device)
        std = torch.as_tensor(self.feature_std_, dtype=X.dtype, device=X.device)
        return (X - mean) / std

    def _standardise_rows(self, raw, missing):
        """Output rows from the raw features of fit, as ``transform`` makes them.

        The same float32 operations as :meth:`_features`, so ``fit_transform``
        and ``transform`` agree to the bit.
        """
        Xt = self._standardise(torch.from_numpy(raw).view(-1, self._tower_dim()))
        if missing is not None:
            Xt[torch.from_numpy(missing).flatten()] = 0.0
        return Xt.reshape(len(raw), -1).numpy()

    def _memory_loader(self, images, missing, device):
        """``load(rows)``: the normalised decoded images of ``rows``."""
        images = torch.from_numpy(images)
        missing = None if missing is None else torch.from_numpy(missing)

        def load(rows):
            return self._normalise(
                images[rows].to(device),
                None if missing is None else missing[rows].to(device),
            )

        return load

    def _lazy_loader(self, X, columns, device):
        """``load(rows)``: the images of ``rows``, decoded from their cells."""
        block = self._lazy_block(X, columns, n_workers=0)

        def load(rows):
            (X_rows,) = block.iter_batches([rows])
            return X_rows.view(len(rows), 1, *self.image_shape_).to(device)

        return load

    def _train(self, cnn, head, load, n_samples, target, device, seed):
        """Train ``cnn`` with the linear ``head`` on ``target``, with Adam.

        ``load(rows)`` returns the normalised images of the rows ``rows``,
        of shape ``(len(rows), n_images_per_row, C, H, W)``.
        """
        values, _, classification = target
        loss_fn = F.cross_entropy if classification else F.mse_loss
        generator = make_generator(seed)
        values = torch.from_numpy(values)
        augmentation = self._augmentation()
        cnn.to(device).train()
        head.to(device).train()
        if augmentation is not None:
            augmentation.to(device).train()

        def batch_loss(rows):
            X_flat = load(rows).flatten(0, 1)
            if augmentation is not None:
                X_flat = augmentation(X_flat, generator=generator)
            y_pred = head(cnn(X_flat).reshape(len(rows), -1))
            return loss_fn(y_pred, values[rows].to(device))

        self.loss_curve_ = train_loop(
            [*cnn.parameters(), *head.parameters()],
            batch_loss,
            n_samples,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            generator=generator,
            on_epoch=epoch_reporter("CNNImageEncoder", self.max_epochs, self.verbose),
        )


def _feature_mean_std(features, missing):
    """Mean and standard deviation of each column of the non-missing rows.

    ``features`` holds one row per image, ``missing`` flags the missing
    images (``None``: none is). A constant feature, including one no image
    sets, gets a standard deviation of 1, so it stays constant rather than
    turning rounding noise into signal.
    """
    if missing is not None:
        features = features[~missing]
    if len(features) == 0:
        return np.zeros(features.shape[1]), np.ones(features.shape[1])
    features = features.astype(np.float64)
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    # float32 features of a constant input can differ in their last bits.
    constant = std <= 1e-5 * np.abs(mean) + 1e-12
    return mean, np.where(constant, 1.0, std)


def _channel_mean_std(images, missing):
    """Per-channel mean and standard deviation of the valid pixels.

    uint8 images are counted by level, exactly and without a float copy;
    float images skip NaN pixels.
    """
    n_channels = images.shape[2]
    if images.dtype == np.uint8:
        moments = _ChannelMoments()
        for start in range(0, len(images), CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            moments.add(images[rows], missing[rows])
        return moments.result()
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
    return _mean_std_result(mean, var, n_valid)


def _mean_std_result(mean, var, n_valid):
    """``(mean, std)``: 0 and 1 for a channel without pixels, std 1 if constant."""
    std = np.sqrt(var)
    constant = (n_valid == 0) | (std <= 1e-6 * np.maximum(1, np.abs(mean)))
    return np.where(n_valid == 0, 0.0, mean), np.where(constant, 1.0, std)


class _ChannelMoments:
    """Per-channel mean and variance of valid pixels, added a chunk at a time.

    uint8 chunks are counted by level, exactly, so the result does not
    depend on the chunks; float chunks (NaN pixels skipped) are merged with
    Chan's formula for the mean and the sum of squared deviations.
    """

    def __init__(self):
        self.counts = None
        self.n = self.mean = self.m2 = None

    def add(self, images, missing):
        """Add ``(n_rows, n_images, C, H, W)`` images; see ``iter_image_chunks``."""
        n_channels = images.shape[2]
        if images.dtype == np.uint8:
            if self.counts is None:
                self.counts = np.zeros((n_channels, 256))
            valid = images[~missing]
            for c in range(n_channels):
                self.counts[c] += np.bincount(valid[:, c].ravel(), minlength=256)
            return
        if self.n is None:
            self.n, self.mean, self.m2 = (np.zeros(n_channels) for _ in range(3))
        for c in range(n_channels):
            values = images[:, :, c]
            values = values[~np.isnan(values)].astype(np.float64)
            if not len(values):
                continue
            mean = values.mean()
            m2 = ((values - mean) ** 2).sum()
            n = self.n[c] + len(values)
            delta = mean - self.mean[c]
            self.m2[c] += m2 + delta**2 * self.n[c] * len(values) / n
            self.mean[c] += delta * len(values) / n
            self.n[c] = n

    def result(self):
        """``(mean, std)`` of each channel, as ``_channel_mean_std`` gives them."""
        if self.counts is not None:
            levels = np.arange(256) / 255
            n_valid = self.counts.sum(axis=1)
            safe_n = np.maximum(n_valid, 1)
            mean = self.counts @ levels / safe_n
            var = (self.counts * (levels - mean[:, None]) ** 2).sum(axis=1) / safe_n
            return _mean_std_result(mean, var, n_valid)
        return _mean_std_result(self.mean, self.m2 / np.maximum(self.n, 1), self.n)

"""Pretrained image encoder: image columns -> features of a pretrained network.

The weights come from a module or a local file, never from a download:
nothing here reaches the network.
"""

import copy
import os
import pickle
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from skmm.encoders._image_base import BaseImageEncoder
from skmm.encoders._image_io import IMAGE_MODES
from skmm.nn._towers import PooledNetwork, pool_features
from skmm.nn._training import run_in_batches, seeded_init
from skmm.utils._cache import module_key
from skmm.utils._device import resolve_device
from skmm.utils._sklearn_compat import Interval, StrOptions, _fit_context

__all__ = ["PretrainedImageEncoder"]


class PretrainedImageEncoder(BaseImageEncoder):
    """Encode image columns with a pretrained torch network.

    Each image is decoded with Pillow, converted to ``mode``, resized to
    ``image_size`` (bilinear), scaled to [0, 1] and normalised with the fixed
    ``mean`` and ``std`` the network was trained with (by default those of
    ImageNet, as torchvision's models expect). The network, with its weights
    loaded from the local file ``weights``, then maps it to features: its
    output of shape ``(batch, d)`` is used as is, and one of shape
    ``(batch, C, h, w)`` is averaged over ``h`` and ``w``. With several image
    columns, every column goes through the same network and the features are
    concatenated.

    With ``output="pixels"`` the encoder returns the normalised pixels
    instead, and :meth:`get_block_spec` hands the network to the fusion
    estimators as a tower: frozen (``freeze=True``: transfer with fixed
    features) or fine-tuned with the rest of the model (``freeze=False``).

    Missing images (``None``, ``NaN``, ``pd.NA`` cells) become all-zero
    normalised images, i.e. every pixel at ``mean``; with
    ``output="features"`` their features are all zero, the encoding of a
    missing value that the fusion estimators replace with a learned
    "missing" embedding.

    Parameters
    ----------
    module : torch.nn.Module or callable
        The network, or a zero-argument callable returning it (a class, a
        torchvision model function). An instance is copied, never modified.
        A callable is called with torch's random generator seeded with 0, so
        that its initial weights, which ``weights`` usually replaces, are
        reproducible; the global random state is left untouched.
    weights : str, path-like or None, default=None
        Path of a file holding the network's ``state_dict`` (as written by
        ``torch.save(network.state_dict(), path)``), loaded on the CPU with
        ``weights_only=True``. ``None`` keeps the module's own weights.
    image_size : int or tuple of (int, int), default=64
        Height and width every image is resized to; an int gives square
        images.
    mode : {"RGB", "L"}, default="RGB"
        Pillow mode images are converted to: 3 colour channels or 1 grey
        channel. An alpha channel is dropped.
    mean : tuple of float, default=(0.485, 0.456, 0.406)
        Per-channel mean subtracted from the [0, 1] pixels; one value per
        channel of ``mode``.
    std : tuple of float, default=(0.229, 0.224, 0.225)
        Per-channel standard deviation the pixels are divided by.
    output : {"features", "pixels"}, default="features"
        ``"features"``: the network's pooled features. ``"pixels"``: the
        normalised images flattened in ``(C, H, W)`` order, for a tower inside
        a fusion estimator; needs a single image column.
    input_shape : tuple of int, default=None
        ``(H, W)`` or ``(H, W, C)`` (channels last, C in 1, 3, 4) of the
        images stored in the rows of a numeric block, with intensities in
        [0, 1]. With ``None``, a perfect-square width is a square grey image
        and any other width a ``1 x n_columns`` grey strip. Ignored for blocks
        of image cells.
    freeze : bool, default=True
        With ``output="pixels"``: whether the tower built from the network
        keeps its weights fixed while the fusion estimator trains.
    tower_lr : float or None, default=None
        With ``output="pixels"`` and ``freeze=False``: learning rate of the
        network's weights, often lower than that of the new layers around
        them (the estimator's ``lr``), which ``None`` uses.
    batch_size : int, default=64
        Images per forward pass.
    n_jobs : int, default=None
        Worker processes decoding and resizing image files, in chunks, while
        the main process runs the network. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context; -1 means all processors.
    device : str or torch.device, default="cpu"
        Where the network runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or
        ``"auto"`` for a GPU when there is one. The fitted network is always
        stored on the CPU, and an encoder fitted on a GPU transforms on the
        CPU where there is none.
    cache : bool, default=True
        Reuse the output computed earlier in this process for the same
        network, weights, parameters and images. See Notes.

    Attributes
    ----------
    module_ : torch.nn.Module
        The network with its weights, on the CPU, in evaluation mode.
    tower_dim_ : int
        Number of features the network gives per image, found by a forward
        pass in :term:`fit`.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the images the network reads.
    input_shape_ : tuple of int or None
        ``(H, W, C)`` the rows of the fitted numeric block are read as;
        ``None`` when the block holds image cells.
    n_features_in_ : int
        Number of columns seen in :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the columns seen in :term:`fit`, when they are all strings.

    See Also
    --------
    CNNImageEncoder : A small CNN, random or trained on the target in fit.

    Notes
    -----
    A cell is an image file path, the bytes of an encoded file, a PIL image,
    or an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), ``uint8``
    or float in [0, 1], as for :class:`CNNImageEncoder`.

    The encoder is frozen: its output depends only on the network, its
    weights, the parameters and the images. With ``cache=True`` each output of
    ``transform`` goes into the cache shared by the frozen encoders of the
    process (512 MiB at most, least recently used out first, see
    :class:`CNNImageEncoder`), under a hash of the network's class,
    structure and weights (taken in :term:`fit`), the parameters that shape
    the output, the device, and the cells with the size and modification
    time of the files they name. A clone fitted in a grid search therefore
    decodes and encodes the same images once, whatever the number of
    candidates. ``n_jobs``, ``cache``, ``freeze`` and ``tower_lr`` do not
    enter the key. The cache is never pickled;
    ``skmm.utils.clear_frozen_cache()`` empties it.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skmm.encoders import PretrainedImageEncoder
    >>> network = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> rng = np.random.RandomState(0)
    >>> X = np.empty((3, 1), dtype=object)
    >>> X[:2, 0] = [rng.randint(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(2)]
    >>> X[2, 0] = None  # a missing image
    >>> encoder = PretrainedImageEncoder(module=network, image_size=16)
    >>> encoder.fit_transform(X).shape
    (3, 8)
    >>> spec = encoder.set_params(output="pixels").fit(X).get_block_spec()
    >>> spec.kind, spec.image_shape, spec.tower_dim, spec.trainable
    ('image', (3, 16, 16), 8, False)
    """

    # The network and its weights enter the key as the hash of the fitted
    # module; freeze and tower_lr only shape the tower of output="pixels".
    _cache_ignores = (
        "module",
        "weights",
        "n_jobs",
        "device",
        "cache",
        "freeze",
        "tower_lr",
    )

    _parameter_constraints = {
        "module": [callable],
        "weights": [str, os.PathLike, None],
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple],
        "mode": [StrOptions(set(IMAGE_MODES))],
        "mean": ["array-like"],
        "std": ["array-like"],
        "output": [StrOptions({"features", "pixels"})],
        "input_shape": [tuple, None],
        "freeze": ["boolean"],
        "tower_lr": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "device": [str, torch.device],
        "cache": ["boolean"],
    }

    def __init__(
        self,
        module,
        *,
        weights=None,
        image_size=64,
        mode="RGB",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        output="features",
        input_shape=None,
        freeze=True,
        tower_lr=None,
        batch_size=64,
        n_jobs=None,
        device="cpu",
        cache=True,
    ):
        self.module = module
        self.weights = weights
        self.image_size = image_size
        self.mode = mode
        self.mean = mean
        self.std = std
        self.output = output
        self.input_shape = input_shape
        self.freeze = freeze
        self.tower_lr = tower_lr
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.device = device
        self.cache = cache

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the network, load its weights and find its output width.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Image columns, or a numeric block of flattened images.
        y : None
            Ignored: the network is not trained here.

        Returns
        -------
        self : object
            The fitted encoder.
        """
        X, _ = self._check_fit_block(X, self._check_params())
        module = self._build_module()
        probe = torch.zeros(1, *self.image_shape_)
        try:
            (features,) = run_in_batches(
                lambda rows: pool_features(module(probe[rows])), 1, 1, (module,)
            )
        except RuntimeError as exc:
            raise ValueError(
                f"The module cannot read images of shape {self.image_shape_} "
                f"(C, H, W), as set by mode={self.mode!r} and image_size="
                f"{self.image_size!r}: {exc}"
            ) from exc
        self.tower_dim_ = int(features.shape[1])
        self.module_ = module
        self._state_key = module_key(module) if self.cache else None
        return self

    def make_tower(self):
        """Return a fresh copy of the network, pooled, in training mode.

        It maps a batch of images of shape ``(n, C, H, W)``, normalised as by
        ``output="pixels"``, to ``(n, tower_dim_)`` features: the features of
        ``output="features"`` until it is trained. With ``freeze=True`` its
        weights take no gradient and the network stays in evaluation mode.

        Returns
        -------
        tower : PooledNetwork
        """
        check_is_fitted(self)
        return PooledNetwork(copy.deepcopy(self.module_), frozen=self.freeze).train()

    def _channel_stats(self):
        return (
            np.asarray(self.mean, dtype=np.float64).ravel(),
            np.asarray(self.std, dtype=np.float64).ravel(),
        )

    def _network(self):
        return self.module_

    def _tower_dim(self):
        return self.tower_dim_

    def _images_per_pass(self, n_images_per_row):
        return self.batch_size

    def _tower_training(self):
        return not self.freeze, self.tower_lr

    def _check_params(self):
        """Check what the constraints cannot; return the ``(H, W)`` size."""
        resolve_device(self.device)
        size = self._check_image_size()
        n_channels = IMAGE_MODES[self.mode]
        for name in ("mean", "std"):
            values = np.asarray(getattr(self, name), dtype=np.float64).ravel()
            if len(values) != n_channels or not np.isfinite(values).all():
                raise ValueError(
                    f"{name} must hold {n_channels} finite value(s), one per channel "
                    f"of mode={self.mode!r}, got {getattr(self, name)!r}."
                )
            if name == "std" and (values <= 0).any():
                raise ValueError(f"std must be positive, got {self.std!r}.")
        return size

    def _build_module(self):
        """The network with its weights, on the CPU, in evaluation mode."""
        if isinstance(self.module, nn.Module):
            module = copy.deepcopy(self.module)
        else:
            with seeded_init(0):
                module = self.module()
            if not isinstance(module, nn.Module):
                raise TypeError(
                    "module must be a torch.nn.Module or a zero-argument callable "
                    f"returning one; {self.module!r} returned "
                    f"{type(module).__name__}."
                )
        if self.weights is not None:
            try:
                module.load_state_dict(self._load_weights())
            except RuntimeError as exc:
                raise ValueError(
                    f"The weights in {os.fspath(self.weights)!r} do not fit the "
                    f"module: {exc}"
                ) from exc
        return module.cpu().eval()

    def _load_weights(self):
        path = os.fspath(self.weights)
        if not os.path.isfile(path):
            raise ValueError(f"The weights file {path!r} does not exist.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise ValueError(
                f"Cannot read a state_dict from the weights file {path!r}: {exc}"
            ) from exc
        if not isinstance(state, dict):
            raise ValueError(
                f"The weights file {path!r} holds a {type(state).__name__}, not a "
                "state_dict; save it with torch.save(network.state_dict(), path)."
            )
        return state

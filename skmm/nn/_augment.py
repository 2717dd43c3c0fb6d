"""Random image augmentation of training batches, as a torch module.

:class:`ImageAugmentation` sits in front of an image tower
(:class:`AugmentedTower`): in training mode it flips, crops and resizes, and
changes the brightness and contrast of each image of the batch at random; in
evaluation mode it passes the batch through, so predictions never see it.
Its random numbers come from the fit's own generator (that of
:func:`~skmm.nn._training.stochastic_layers`, like dropout), so fits with the
same ``random_state`` see the same augmented images. Running inside the
network, it treats images decoded in memory and images streamed from disk
alike, on the device of the network.
"""

import math
from numbers import Real

import torch
from torch import nn
from torch.nn import functional as F

from skmm.nn._training import _current_generator

__all__ = ["AUGMENT_DEFAULTS", "AugmentedTower", "ImageAugmentation", "check_augment"]

# What augment=True turns on; a dict names the ones it wants.
AUGMENT_DEFAULTS = {
    "flip": True,
    "crop": (0.6, 1.0),
    "brightness": 0.2,
    "contrast": 0.2,
}

# Pillow's RGB to L weights (ITU-R 601-2 luma): the grey level contrast is
# stretched around.
_LUMA = (0.299, 0.587, 0.114)
# Aspect ratios of the random crops, as in torchvision's RandomResizedCrop.
_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))


def _check_fraction(name, value, low_open):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"augment[{name!r}] must be a number, got {value!r}.")
    ok = 0 < value <= 1 if low_open else 0 <= value < 1
    if not ok:
        bounds = "in (0, 1]" if low_open else "in [0, 1)"
        raise ValueError(f"augment[{name!r}] must be {bounds}, got {value!r}.")
    return float(value)


def check_augment(augment):
    """The augmentation settings of an encoder's ``augment`` parameter.

    Parameters
    ----------
    augment : bool, dict or None
        ``None`` or ``False``: none. ``True``: :data:`AUGMENT_DEFAULTS`. A
        dict turns on the augmentations it names, the others stay off:
        ``"flip"`` (bool, a horizontal flip of half the images), ``"crop"``
        (the smallest fraction of the image area a random crop keeps, or a
        ``(min, max)`` range of it, resized back to the image size),
        ``"brightness"`` and ``"contrast"`` (``b``: a random factor in
        ``[1 - b, 1 + b]``).

    Returns
    -------
    settings : dict or None
        The keyword arguments of :class:`ImageAugmentation`; ``None`` when
        nothing is on.
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        augment = AUGMENT_DEFAULTS
    if not isinstance(augment, dict):
        raise TypeError(
            f"augment must be None, a bool or a dict, got {type(augment).__name__}."
        )
    unknown = sorted(set(augment) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise ValueError(
            f"augment has unknown keys {unknown}; the keys are "
            f"{sorted(AUGMENT_DEFAULTS)}."
        )
    settings = {"flip": False, "crop": None, "brightness": 0.0, "contrast": 0.0}
    flip = augment.get("flip", False)
    if not isinstance(flip, bool):
        raise TypeError(f"augment['flip'] must be a bool, got {flip!r}.")
    settings["flip"] = flip
    crop = augment.get("crop")
    if crop is not None and crop is not False:
        low, high = (crop, 1.0) if isinstance(crop, Real) else tuple(crop)
        low = _check_fraction("crop", low, low_open=True)
        high = _check_fraction("crop", high, low_open=True)
        if low > high:
            raise ValueError(
                f"augment['crop'] must be (min, max) with min <= max, got {crop!r}."
            )
        if low < 1:
            settings["crop"] = (low, high)
    for name in ("brightness", "contrast"):
        value = augment.get(name)
        if value is not None:
            settings[name] = _check_fraction(name, value, low_open=False)
    if not any(settings.values()):
        return None
    return settings


class ImageAugmentation(nn.Module):
    """Random flips, resized crops and colour jitter of standardised images.

    Parameters
    ----------
    flip : bool, default=False
        Flip half the images horizontally.
    crop : tuple of (float, float), default=None
        Crop each image to a random box holding this range of fractions of
        its area (aspect ratio between 3/4 and 4/3), resized back to the
        image size (bilinear).
    brightness : float, default=0.0
        Multiply the pixels of each image by a random factor in
        ``[1 - brightness, 1 + brightness]``.
    contrast : float, default=0.0
        Stretch the pixels of each image around its mean grey level by a
        random factor in ``[1 - contrast, 1 + contrast]``.
    mean, std : array-like of shape (C,), default=None
        Per-channel statistics the images were standardised with: the colour
        jitter works on the pixels in their own units. ``None``: 0 and 1.
    bounded : bool, default=True
        Clip the jittered pixels to [0, 1], the range of decoded images.
    """

    def __init__(
        self,
        flip=False,
        crop=None,
        brightness=0.0,
        contrast=0.0,
        mean=None,
        std=None,
        bounded=True,
    ):
        super().__init__()
        self.flip = bool(flip)
        self.crop = None if crop is None else (float(crop[0]), float(crop[1]))
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.bounded = bool(bounded)
        n_channels = 1 if mean is None else len(mean)
        mean = torch.zeros(n_channels) if mean is None else torch.as_tensor(mean)
        std = torch.ones(n_channels) if std is None else torch.as_tensor(std)
        self.register_buffer("mean", mean.to(torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", std.to(torch.float32).view(1, -1, 1, 1))

    def forward(self, X, generator=None):
        """Augment the batch ``X`` of shape ``(n, C, H, W)`` in training mode.

        The random numbers come from ``generator``, or else from the
        thread's current generator (:func:`~skmm.nn._training.stochastic_layers`).
        """
        if not self.training:
            return X
        if generator is None:
            generator = _current_generator(X.device)
        n = X.shape[0]
        # Seven numbers per image whatever is on, so that turning one
        # augmentation off leaves the draws of the others as they were.
        draw_on = X.device if generator is None else generator.device
        u = torch.rand((n, 7), generator=generator, device=draw_on).to(X.device)
        if self.brightness or self.contrast:
            X = self._jitter(X, u)
        if self.crop is not None:
            return self._crop(X, u)
        if self.flip:
            flipped = (u[:, 6] < 0.5).view(n, 1, 1, 1)
            return torch.where(flipped, X.flip(3), X)
        return X

    def _jitter(self, X, u):
        n = X.shape[0]
        pixels = X * self.std + self.mean
        if self.brightness:
            factor = 1 + self.brightness * (2 * u[:, 0] - 1)
            pixels = pixels * factor.view(n, 1, 1, 1)
        if self.contrast:
            if pixels.shape[1] == 3:
                luma = torch.tensor(_LUMA, dtype=pixels.dtype, device=pixels.device)
                grey = (pixels * luma.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
            else:
                grey = pixels.mean(dim=1, keepdim=True)
            level = grey.mean(dim=(2, 3), keepdim=True)
            factor = (1 + self.contrast * (2 * u[:, 1] - 1)).view(n, 1, 1, 1)
            pixels = (pixels - level) * factor + level
        if self.bounded:
            pixels = pixels.clamp(0, 1)
        return (pixels - self.mean) / self.std

    def _crop(self, X, u):
        n = X.shape[0]
        low, high = self.crop
        area = low + (high - low) * u[:, 2]
        ratio = torch.exp(_LOG_RATIO[0] + (_LOG_RATIO[1] - _LOG_RATIO[0]) * u[:, 3])
        width = torch.sqrt(area * ratio).clamp(max=1)
        height = torch.sqrt(area / ratio).clamp(max=1)
        # affine_grid's coordinates run from -1 to 1: a box of relative
        # width w has its centre within 1 - w of the middle.
        centre_x = (1 - width) * (2 * u[:, 4] - 1)
        centre_y = (1 - height) * (2 * u[:, 5] - 1)
        sign = torch.ones_like(width)
        if self.flip:
            sign = torch.where(u[:, 6] < 0.5, -sign, sign)
        theta = X.new_zeros((n, 2, 3))
        theta[:, 0, 0] = width * sign
        theta[:, 0, 2] = centre_x
        theta[:, 1, 1] = height
        theta[:, 1, 2] = centre_y
        grid = F.affine_grid(theta, list(X.shape), align_corners=False)
        return F.grid_sample(
            X, grid, mode="bilinear", padding_mode="border", align_corners=False
        )

    def extra_repr(self):
        return (
            f"flip={self.flip}, crop={self.crop}, brightness={self.brightness}, "
            f"contrast={self.contrast}"
        )


class AugmentedTower(nn.Module):
    """An image tower that sees augmented images while it trains.

    Parameters
    ----------
    augmentation : ImageAugmentation
        Applied to the batch in training mode only.
    network : torch.nn.Module
        The tower proper.
    """

    def __init__(self, augmentation, network):
        super().__init__()
        self.augmentation = augmentation
        self.network = network
        self.out_features = getattr(network, "out_features", None)

    def forward(self, X):
        return self.network(self.augmentation(X))

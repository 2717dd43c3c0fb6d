"""Synthetic multimodal tables whose target needs several modalities at once."""

import colorsys
import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

__all__ = ["make_multimodal_classification", "make_multimodal_regression"]

# Two-letter syllables; pool words are built from them so that they are
# readable, cannot collide with the filler words and exist for any n_classes.
_SYLLABLES = (
    "ka", "lo", "mi", "ru", "te", "vo", "sa", "ni", "po", "de",
    "fu", "ga", "zi", "be", "no", "ta", "li", "mo", "ku", "re",
)  # fmt: skip
_WORDS_PER_POOL = 6
# Neutral words shared by every text; none of them is a syllable pair, so the
# latent is carried by pool words only.
_FILLER_WORDS = (
    "the", "and", "with", "this", "that", "very", "item", "really", "just",
    "quite", "also", "one", "about", "look", "feel", "kind", "good", "much",
)  # fmt: skip
_CATEGORIES = ("low", "medium", "high")
_COLUMNS = ["text", "image", "num_0", "num_1", "category"]
_N_STREAMS = 7


def _pool_word(index):
    """Return the pseudo-word number ``index``, at least two syllables long."""
    digits = [index % len(_SYLLABLES)]
    index //= len(_SYLLABLES)
    while index or len(digits) < 2:
        digits.append(index % len(_SYLLABLES))
        index //= len(_SYLLABLES)
    # Shifting each syllable by the previous digit spreads the syllables over
    # the pools instead of giving the first pools a common final syllable, which
    # character n-gram encoders would take for shared signal. It stays
    # one-to-one.
    syllables = [_SYLLABLES[digits[0]]]
    for previous, digit in zip(digits, digits[1:]):
        syllables.append(_SYLLABLES[(digit + previous) % len(_SYLLABLES)])
    return "".join(syllables)


def _word_pool(value):
    """Return the words that signal latent ``value`` in the text column."""
    start = value * _WORDS_PER_POOL
    return [_pool_word(i) for i in range(start, start + _WORDS_PER_POOL)]


def _bar_colours(n_values):
    """Return one RGB colour per latent value, each value its own hue.

    A colour survives the global pooling of a small CNN, so the value is
    readable from the image by the encoders skmm ships; the orientation of
    the bar repeats the parity of the value as a spatial cue.
    """
    colours = [
        colorsys.hsv_to_rgb(value / n_values, 0.8, 1.0) for value in range(n_values)
    ]
    return 230.0 * np.asarray(colours)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int >= {minimum}, got {value!r} of type "
            f"{type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}.")


def _check_real(name, value, low, high=None, *, high_closed=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number, got {value!r} of type "
            f"{type(value).__name__}."
        )
    too_high = high is not None and (value > high if high_closed else value >= high)
    if not value >= low or too_high:
        if high is None:
            expected = f">= {low}"
        else:
            expected = f"in [{low}, {high}{']' if high_closed else ')'}"
        raise ValueError(f"{name} must be {expected}, got {value!r}.")


def _check_common(
    n_samples,
    image_size,
    text_informative,
    image_informative,
    tabular_informative,
    interaction,
    missing_text,
    missing_image,
):
    _check_int("n_samples", n_samples, 1)
    _check_int("image_size", image_size, 4)
    for name, value in [
        ("text_informative", text_informative),
        ("image_informative", image_informative),
        ("tabular_informative", tabular_informative),
    ]:
        _check_real(name, value, 0.0, 1.0)
    if not isinstance(interaction, (bool, np.bool_)):
        raise TypeError(
            f"interaction must be a bool, got {interaction!r} of type "
            f"{type(interaction).__name__}."
        )
    for name, value in [
        ("missing_text", missing_text),
        ("missing_image", missing_image),
    ]:
        _check_real(name, value, 0.0, 1.0, high_closed=False)


def _streams(random_state):
    """Return independent generators, one per part of the table.

    Separate streams keep the other columns unchanged when one parameter
    changes, so a sweep over, say, ``missing_image`` compares like with like.
    """
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    return [
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(_N_STREAMS)
    ]


def _cue(rng, latent, informative, draw):
    """Return what a modality shows: the latent with probability ``informative``.

    The other rows show an independent draw from the same distribution, so the
    marginal distribution of the features does not depend on ``informative``;
    only their link to the latent does.
    """
    shown = rng.random(len(latent)) < informative
    return np.where(shown, latent, draw(rng, len(latent)))


def _make_texts(rng, values, n_values):
    """One short text per row in which the pool of ``values[i]`` dominates."""
    pools = [_word_pool(value) for value in range(n_values)]
    texts = []
    for value in values:
        n_signal = rng.integers(3, 6)
        # Words from another pool are clutter, always fewer than the signal.
        n_clutter = rng.integers(0, n_signal - 1)
        n_filler = rng.integers(4, 9)
        other = (value + rng.integers(1, n_values)) % n_values
        words = [
            *rng.choice(pools[value], n_signal),
            *rng.choice(pools[other], n_clutter),
            *rng.choice(_FILLER_WORDS, n_filler),
        ]
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts


def _make_images(rng, values, n_values, image_size):
    """One noisy RGB image per row with a coloured bar that encodes ``values``.

    The orientation (horizontal for even values, vertical for odd ones) and the
    colour of the bar carry the value; its position and brightness vary at
    random so that no single pixel does.
    """
    n = len(values)
    thickness = max(1, image_size // 5)
    length = max(2, (3 * image_size) // 4)
    across = rng.integers(0, image_size - thickness + 1, size=n)[:, None, None]
    along = rng.integers(0, image_size - length + 1, size=n)[:, None, None]
    rows = np.arange(image_size)[None, :, None]
    cols = np.arange(image_size)[None, None, :]
    horizontal = (
        (rows >= across)
        & (rows < across + thickness)
        & (cols >= along)
        & (cols < along + length)
    )
    vertical = (
        (cols >= across)
        & (cols < across + thickness)
        & (rows >= along)
        & (rows < along + length)
    )
    bar = np.where((values % 2 == 0)[:, None, None], horizontal, vertical)

    brightness = rng.uniform(0.75, 1.0, size=(n, 1, 1, 1))
    colour = _bar_colours(n_values)[values][:, None, None, :] * brightness
    shape = (n, image_size, image_size, 3)
    foreground = colour + rng.normal(0.0, 20.0, size=shape)
    background = rng.uniform(0.0, 90.0, size=shape)
    images = np.where(bar[..., None], foreground, background)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def _tabular_columns(rng, latent, informative):
    """Return ``num_0``, ``num_1`` and ``category`` for the tabular latent."""
    n = len(latent)
    num_0 = _cue(rng, latent, informative, lambda r, size: r.normal(size=size))
    # A distractor on another scale, unrelated to the target.
    num_1 = rng.normal(50.0, 10.0, size=n)
    level = np.digitize(latent, [-1.0, 1.0])
    # Half as reliable as num_0: a weaker, redundant view of the same latent.
    shown = _cue(
        rng, level, informative / 2, lambda r, size: r.integers(0, 3, size=size)
    )
    category = np.asarray(_CATEGORIES, dtype=object)[shown]
    return num_0, num_1, category


def _mask_rows(rng, n_samples, fraction):
    """Return a boolean mask with exactly ``round(fraction * n_samples)`` rows.

    Ranking one uniform draw per row draws the same amount whatever the
    fraction, and makes the rows missing at a smaller fraction a subset of
    those missing at a larger one.
    """
    n_missing = int(np.rint(fraction * n_samples))
    return np.argsort(rng.random(n_samples)).argsort() < n_missing


def _make_frame(
    streams,
    text_values,
    image_values,
    tabular_latent,
    n_values,
    image_size,
    tabular_informative,
    missing_text,
    missing_image,
):
    text_rng, image_rng, tabular_rng, missing_rng = streams
    texts = _make_texts(text_rng, text_values, n_values)
    images = _make_images(image_rng, image_values, n_values, image_size)
    num_0, num_1, category = _tabular_columns(
        tabular_rng, tabular_latent, tabular_informative
    )
    n_samples = len(texts)
    text_column = np.empty(n_samples, dtype=object)
    text_column[:] = texts
    text_column[_mask_rows(missing_rng, n_samples, missing_text)] = None
    image_column = np.empty(n_samples, dtype=object)
    for i in range(n_samples):
        image_column[i] = images[i]
    image_column[_mask_rows(missing_rng, n_samples, missing_image)] = None
    return pd.DataFrame(
        {
            "text": pd.Series(text_column, dtype=object),
            "image": pd.Series(image_column, dtype=object),
            "num_0": num_0,
            "num_1": num_1,
            "category": pd.Series(category, dtype=object),
        },
        columns=_COLUMNS,
    )


def make_multimodal_classification(
    n_samples=500,
    *,
    n_classes=2,
    image_size=16,
    text_informative=1.0,
    image_informative=1.0,
    tabular_informative=1.0,
    interaction=True,
    missing_text=0.0,
    missing_image=0.0,
    noise=0.0,
    random_state=None,
):
    """Generate a text + image + tabular classification problem.

    Each row has three hidden latents: ``a`` and ``b``, drawn uniformly from
    ``{0, ..., n_classes - 1}``, and a standard normal ``c``. The text shows
    ``a``, the image shows ``b`` and the numeric column ``num_0`` shows ``c``.
    The class is

    - ``base = (a + b) mod n_classes`` when ``interaction=True``: an
      interaction between text and image. With ``a`` unknown every class is
      equally likely whatever ``b`` is, so the text alone and the image alone
      are at chance level, while the pair determines ``base``;
    - ``base = (a + b) / 2`` when ``interaction=False``: each of the two
      modalities has a main effect and no interaction;

    then shifted by the tabular latent, ``y = clip(round(base + c / 2), 0,
    n_classes - 1)``, which moves the class up or down by one in about a third
    of the rows (those with ``|c| > 1``). With the defaults the text and the
    image are each at chance, the tabular columns alone reach about 0.65
    accuracy for two classes, text and image together about 0.85, and all
    three modalities together determine the class.

    How each latent is shown:

    - ``text``: a few words from the pool of words of its value (pseudo-words
      such as ``"kaka"``), strictly more of them than clutter words from one
      other pool, mixed with common English filler words. A bag of words
      (TF-IDF) is enough to read it.
    - ``image``: a uint8 RGB array of shape ``(image_size, image_size, 3)``
      with a bright bar on a noisy dark background. Even values give a
      horizontal bar and odd values a vertical one, and every value has its
      own colour. Position and brightness of the bar vary at random, so a
      small CNN reads it, not a single pixel.
    - ``num_0``: the value of ``c``. ``category`` is a weaker, redundant view:
      ``"low"``, ``"medium"`` or ``"high"`` for ``c < -1``, ``|c| <= 1``,
      ``c > 1``. ``num_1`` is an unrelated distractor on another scale.

    Parameters
    ----------
    n_samples : int, default=500
        Number of rows.

    n_classes : int, default=2
        Number of classes; also the number of values of the text and image
        latents. Even with the interaction, classes are balanced only up to
        the clipping of the tabular shift at the lowest and highest class.

    image_size : int, default=16
        Height and width of the images, at least 4.

    text_informative : float, default=1.0
        Probability in ``[0, 1]`` that a row's text shows its latent; the
        other rows show an independent random value. 1.0 is a clean signal,
        0.0 pure noise. The distribution of the texts does not depend on it,
        only their link to the target.

    image_informative : float, default=1.0
        Same as ``text_informative``, for the images.

    tabular_informative : float, default=1.0
        Same as ``text_informative``, for ``num_0``; ``category`` shows its
        level with half this probability.

    interaction : bool, default=True
        Whether the text and image latents interact (``(a + b) mod
        n_classes``) or add up (``(a + b) / 2``). Without the interaction and
        with more than two classes the middle classes are the most frequent,
        as for any sum.

    missing_text : float, default=0.0
        Fraction in ``[0, 1)`` of rows whose text is missing (``None``);
        exactly ``round(missing_text * n_samples)`` rows, chosen at random.

    missing_image : float, default=0.0
        Fraction in ``[0, 1)`` of rows whose image is missing (``None``),
        chosen independently of the missing texts.

    noise : float, default=0.0
        Fraction in ``[0, 1]`` of rows whose class is then replaced by a class
        drawn uniformly at random, as ``flip_y`` in
        :func:`sklearn.datasets.make_classification`.

    random_state : int, RandomState instance or None, default=None
        Determines all random draws. Pass an int for reproducible output
        across calls. Each part of the table (latents, text, image, tabular
        columns, missing rows, label noise) has its own stream, so changing
        one parameter leaves the parts it does not affect unchanged.

    Returns
    -------
    X : DataFrame of shape (n_samples, 5)
        Columns ``text`` (object: str, or None when missing), ``image``
        (object: uint8 ndarray of shape ``(image_size, image_size, 3)``, or
        None when missing), ``num_0`` and ``num_1`` (float64) and
        ``category`` (object: str).

    y : ndarray of shape (n_samples,)
        Integer class labels in ``{0, ..., n_classes - 1}``.

    See Also
    --------
    make_multimodal_regression : The same table with a continuous target.

    Examples
    --------
    >>> from skmm.datasets import make_multimodal_classification
    >>> X, y = make_multimodal_classification(n_samples=6, random_state=0)
    >>> list(X.columns)
    ['text', 'image', 'num_0', 'num_1', 'category']
    >>> X["image"].iloc[0].shape
    (16, 16, 3)
    >>> y.shape
    (6,)
    """
    _check_common(
        n_samples,
        image_size,
        text_informative,
        image_informative,
        tabular_informative,
        interaction,
        missing_text,
        missing_image,
    )
    _check_int("n_classes", n_classes, 2)
    _check_real("noise", noise, 0.0, 1.0)

    latent_rng, text_rng, image_rng, tabular_rng, *others = _streams(random_state)
    missing_rng, label_rng, cue_rng = others
    a = latent_rng.integers(0, n_classes, size=n_samples)
    b = latent_rng.integers(0, n_classes, size=n_samples)
    c = latent_rng.normal(size=n_samples)

    base = (a + b) % n_classes if interaction else (a + b) / 2
    y = np.clip(np.floor(base + c / 2 + 0.5), 0, n_classes - 1).astype(np.int64)
    flipped = label_rng.random(n_samples) < noise
    y[flipped] = label_rng.integers(0, n_classes, size=int(flipped.sum()))

    def draw_value(rng, size):
        return rng.integers(0, n_classes, size=size)

    X = _make_frame(
        [text_rng, image_rng, tabular_rng, missing_rng],
        _cue(cue_rng, a, text_informative, draw_value),
        _cue(cue_rng, b, image_informative, draw_value),
        c,
        n_classes,
        image_size,
        tabular_informative,
        missing_text,
        missing_image,
    )
    return X, y


def make_multimodal_regression(
    n_samples=500,
    *,
    image_size=16,
    text_informative=1.0,
    image_informative=1.0,
    tabular_informative=1.0,
    interaction=True,
    missing_text=0.0,
    missing_image=0.0,
    noise=0.5,
    random_state=None,
):
    """Generate a text + image + tabular regression problem.

    The table is the one of :func:`make_multimodal_classification` with two
    values per latent: the text shows a sign ``a`` in ``{-1, +1}``, the image
    a sign ``b`` in ``{-1, +1}`` and ``num_0`` a standard normal ``c``. The
    target is

    - ``y = 2 * a * b + c + noise * e`` when ``interaction=True``: the text
      alone and the image alone explain none of the variance of ``2 * a * b``,
      the pair explains all of it;
    - ``y = sqrt(2) * (a + b) + c + noise * e`` when ``interaction=False``:
      main effects of the same total variance, no interaction;

    where ``e`` is standard normal. With the defaults the tabular columns
    alone explain about a fifth of the variance of ``y``, text and image
    together about three quarters, and all three modalities together all but the
    noise. See :func:`make_multimodal_classification` for how each latent is
    shown in its column.

    Parameters
    ----------
    n_samples : int, default=500
        Number of rows.

    image_size : int, default=16
        Height and width of the images, at least 4.

    text_informative : float, default=1.0
        Probability in ``[0, 1]`` that a row's text shows its latent; the
        other rows show an independent random sign. 1.0 is a clean signal,
        0.0 pure noise.

    image_informative : float, default=1.0
        Same as ``text_informative``, for the images.

    tabular_informative : float, default=1.0
        Same as ``text_informative``, for ``num_0``; ``category`` shows its
        level with half this probability.

    interaction : bool, default=True
        Whether the text and image latents interact (``2 * a * b``) or add up
        (``sqrt(2) * (a + b)``).

    missing_text : float, default=0.0
        Fraction in ``[0, 1)`` of rows whose text is missing (``None``);
        exactly ``round(missing_text * n_samples)`` rows, chosen at random.

    missing_image : float, default=0.0
        Fraction in ``[0, 1)`` of rows whose image is missing (``None``),
        chosen independently of the missing texts.

    noise : float, default=0.5
        Standard deviation, at least 0, of the Gaussian noise added to the
        target.

    random_state : int, RandomState instance or None, default=None
        Determines all random draws. Pass an int for reproducible output
        across calls. Each part of the table has its own stream, so changing
        one parameter leaves the parts it does not affect unchanged.

    Returns
    -------
    X : DataFrame of shape (n_samples, 5)
        Columns ``text`` (object: str, or None when missing), ``image``
        (object: uint8 ndarray of shape ``(image_size, image_size, 3)``, or
        None when missing), ``num_0`` and ``num_1`` (float64) and
        ``category`` (object: str).

    y : ndarray of shape (n_samples,)
        The float64 target.

    See Also
    --------
    make_multimodal_classification : The same table with a class target.

    Examples
    --------
    >>> from skmm.datasets import make_multimodal_regression
    >>> X, y = make_multimodal_regression(n_samples=6, random_state=0)
    >>> X.shape
    (6, 5)
    >>> y.dtype
    dtype('float64')
    """
    _check_common(
        n_samples,
        image_size,
        text_informative,
        image_informative,
        tabular_informative,
        interaction,
        missing_text,
        missing_image,
    )
    _check_real("noise", noise, 0.0)

    latent_rng, text_rng, image_rng, tabular_rng, *others = _streams(random_state)
    missing_rng, label_rng, cue_rng = others
    a = latent_rng.integers(0, 2, size=n_samples)
    b = latent_rng.integers(0, 2, size=n_samples)
    c = latent_rng.normal(size=n_samples)

    a_sign, b_sign = 2 * a - 1, 2 * b - 1
    if interaction:
        y = 2.0 * a_sign * b_sign + c
    else:
        y = np.sqrt(2.0) * (a_sign + b_sign) + c
    y = y + noise * label_rng.normal(size=n_samples)

    def draw_value(rng, size):
        return rng.integers(0, 2, size=size)

    X = _make_frame(
        [text_rng, image_rng, tabular_rng, missing_rng],
        _cue(cue_rng, a, text_informative, draw_value),
        _cue(cue_rng, b, image_informative, draw_value),
        c,
        2,
        image_size,
        tabular_informative,
        missing_text,
        missing_image,
    )
    return X, y

"""Data of the quality benchmark that skmm.datasets does not provide.

- ``load_spoken_digits``: the Free Spoken Digit Dataset under ``data_home``
  (WAV paths + speaker metadata, official split).
- ``make_xor_scales``: classification whose label is the XOR of a bit carried
  by the text and a bit carried by the image, with numeric blocks in the
  1e3 and 1e-3 ranges that carry a weak signal.
- ``make_product_regression``: regression whose target is a product of a
  numeric block in the 1e-3 range and a quantity carried by the text, plus a
  categorical main effect.

The two generators are deliberately unlike ``make_multimodal_*``: other
vocabularies, another image cue, raw feature scales far from 1 and another
form of interaction. Both are seeded and cheap (16x16 images).
"""

from pathlib import Path

import numpy as np
import pandas as pd


def load_spoken_digits(data_home):
    """The spoken digits as a table: audio path + speaker metadata.

    Returns ``(X, y, is_test)``: ``X`` has the columns ``audio`` (absolute WAV
    path), ``speaker``, ``gender`` and ``accent``; ``y`` the digit; ``is_test``
    marks the official test set (takes 0 to 4).
    """
    folder = Path(data_home).expanduser().resolve() / "spoken_digits"
    recordings = folder / "recordings"
    if not recordings.is_dir():
        raise FileNotFoundError(f"Expected the folder {recordings}.")
    speakers = pd.read_csv(folder / "speakers.csv").set_index("speaker")
    rows = []
    for path in sorted(recordings.glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        rows.append((str(path), speaker, int(digit), int(take)))
    frame = pd.DataFrame(rows, columns=["audio", "speaker", "digit", "take"])
    frame["gender"] = frame["speaker"].map(speakers["gender"])
    frame["accent"] = frame["speaker"].map(speakers["accent"])
    X = frame[["audio", "speaker", "gender", "accent"]]
    return X, frame["digit"].to_numpy(), (frame["take"] < 5).to_numpy()


_CONSONANTS = list("bdfgklmnprstvz")
_VOWELS = ["a", "e", "i", "o", "u", "ei", "au"]


def _vocabulary(rng, size, taken):
    """``size`` new pseudo-words of two or three syllables, none in ``taken``."""
    words = []
    while len(words) < size:
        n = rng.integers(2, 4)
        word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(n))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def _texts(rng, pools, values, filler, n_signal=(2, 6), n_clutter=(0, 2)):
    """One text per row: words of ``pools[value]``, clutter and filler words."""
    texts = []
    for value in values:
        other = rng.choice([v for v in range(len(pools)) if v != value])
        words = [
            *rng.choice(pools[value], rng.integers(*n_signal)),
            *rng.choice(pools[other], rng.integers(*n_clutter)),
            *rng.choice(filler, rng.integers(6, 16)),
        ]
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts


def _rectangle_images(rng, bits, size):
    """Noisy RGB images with a rectangle whose hue family carries ``bits``.

    Bit 0: a warm rectangle (red to yellow), bit 1: a cool one (cyan to
    blue). Size, position and brightness of the rectangle vary at random, and
    a tenth of the rectangles take the other family's hue, so the image is a
    noisy view of the bit.
    """
    images = np.empty(len(bits), dtype=object)
    for i, bit in enumerate(bits):
        image = rng.normal(60, 25, size=(size, size, 3))
        shown = bit if rng.random() > 0.1 else 1 - bit
        hue = rng.uniform(0.0, 0.15) if shown == 0 else rng.uniform(0.5, 0.65)
        colour = _hue_to_rgb(hue) * rng.uniform(140, 230)
        h, w = rng.integers(size // 4, size // 2 + 2, size=2)
        top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        image[top : top + h, left : left + w] = colour + rng.normal(
            0, 15, size=(h, w, 3)
        )
        images[i] = np.clip(image, 0, 255).astype(np.uint8)
    return images


def _hue_to_rgb(hue):
    """Fully saturated RGB in [0, 1] of ``hue`` in [0, 1)."""
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return 1 - np.clip(np.minimum(k, 4 - k), 0, 1)


def make_xor_scales(n_samples=1500, random_state=0):
    """Classification: label = (text bit) XOR (image bit), raw numeric scales.

    - ``text``: pseudo-words from one of two vocabularies (bit ``a``), some
      words of the other vocabulary and filler words.
    - ``image``: 16x16 uint8 RGB array with a warm or cool rectangle (bit
      ``b``, shown wrongly in 10 % of the rows).
    - ``amount_0..2``: a block around 5e3 with spread 1e3; ``amount_0`` has
      a weak link to the label, the others none.
    - ``ratio_0..1``: a block around 2e-3 with spread 1e-3; ``ratio_0`` has a
      weak link to the label, ``ratio_1`` none.

    The text alone or the image alone is at chance; the pair gives about
    90 %; the two numeric blocks together about 0.6.
    """
    rng = np.random.default_rng(random_state)
    a = rng.integers(0, 2, n_samples)
    b = rng.integers(0, 2, n_samples)
    y = a ^ b
    taken = set()
    pools = [_vocabulary(rng, 30, taken), _vocabulary(rng, 30, taken)]
    filler = _vocabulary(rng, 150, taken)
    sign = 2.0 * y - 1
    X = pd.DataFrame(
        {
            "text": _texts(rng, pools, a, filler),
            "image": _rectangle_images(rng, b, 16),
            "amount_0": 5e3 + 1e3 * (0.2 * sign + rng.normal(size=n_samples)),
            "amount_1": 5e3 + 1e3 * rng.normal(size=n_samples),
            "amount_2": 1e3 * rng.gamma(2.0, size=n_samples),
            "ratio_0": 2e-3 + 1e-3 * (0.2 * sign + rng.normal(size=n_samples)),
            "ratio_1": 2e-3 + 1e-3 * rng.normal(size=n_samples),
        }
    )
    return X, y


def make_product_regression(n_samples=1500, random_state=0):
    """Regression: y = 1000 * rate * (text level) + category effect + noise.

    - ``text``: pseudo-words from one of four vocabularies, the level ``t`` in
      ``{-2, -1, 1, 2}``, with clutter and filler words.
    - ``rate``, ``rate_other``: a block in the 1e-3 range; ``rate`` is
      uniform on [0.5e-3, 2.5e-3], ``rate_other`` unrelated.
    - ``region``: one of five categories, each with its own additive offset.

    ``y = 1000 * rate * t + offset[region] + 0.3 * e`` with ``e`` standard
    normal: the text alone or the rate alone explains little of the
    variance, their product most of it.
    """
    rng = np.random.default_rng(random_state)
    levels = np.array([-2.0, -1.0, 1.0, 2.0])
    level_index = rng.integers(0, len(levels), n_samples)
    taken = set()
    pools = [_vocabulary(rng, 25, taken) for _ in levels]
    filler = _vocabulary(rng, 150, taken)
    rate = rng.uniform(0.5e-3, 2.5e-3, n_samples)
    regions = np.array(["north", "south", "east", "west", "centre"])
    offsets = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    region = rng.integers(0, len(regions), n_samples)
    y = (
        1000 * rate * levels[level_index]
        + offsets[region]
        + 0.3 * rng.normal(size=n_samples)
    )
    X = pd.DataFrame(
        {
            "text": _texts(rng, pools, level_index, filler),
            "rate": rate,
            "rate_other": rng.uniform(0.0, 3e-3, n_samples),
            "region": regions[region],
        }
    )
    return X, y

"""Which modality each column of a DataFrame holds, and selectors built on it.

The rules, applied to the non-missing values of each column:

- **image**: file paths (``str`` or path-like) that all end in an image
  extension (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.tif``,
  ``.tiff``, ``.webp``), PIL images, or arrays of 2 or 3 dimensions.
- **audio**: paths that all end in ``.wav``, ``.flac``, ``.ogg`` or ``.mp3``,
  or 1-D arrays of numbers.
- **url**: strings that all start with a scheme (``http://``, ``https://``,
  ``ftp://``, ``s3://``, ``gs://``) or ``www.``. skmm reads nothing over the
  network, so such a column is never an image or audio column, whatever its
  extension, and a list of addresses is no text to learn from either: it is
  dropped. Download the files and give their local paths instead.
- **numeric**: numbers (not booleans), except an identifier (see **id**).
- **id**: an integer column whose values are all different and whose name
  says it is an identifier (``id``, ``house_id``, ``ClothingID``...), an
  integer column counting the rows (all different, in steps of one size,
  like ``0, 1, 2, ...``), or strings without spaces, all different (``"A-1043"``);
  the last two in columns of at least 20 rows only. Such a column names the row
  rather than describing it: it is dropped.
- **categorical**: booleans, pandas categories, and strings with few
  distinct values or of a single word each (``"S"``, ``"M"``, ``"L"``, or
  a product code that repeats); an integer column named as an identifier
  whose values repeat (an item code) too.
- **text**: strings of several words on average with many distinct values,
  or of ``min_text_words`` words or more on average whatever their count.
- **mixed**: a column holding both numbers and strings is read as strings
  (each value through ``str``), then as text or categorical as above.
- **drop**: anything else (all missing, dates, bytes, other objects).

:func:`infer_column_types` gives each column's kind with the reason; the
selectors (:func:`text_columns`, :func:`image_columns`...) return the names
of the columns of one kind, as :func:`sklearn.compose.make_column_selector`
does, so they fit in a :class:`~skmm.MultimodalFusion` directly.
"""

import os
import re
from numbers import Integral, Real

import numpy as np
import pandas as pd

from skmm.utils._validation import is_missing

__all__ = [
    "audio_columns",
    "categorical_columns",
    "image_columns",
    "infer_column_types",
    "numeric_columns",
    "text_columns",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
KINDS = ("text", "image", "audio", "numeric", "categorical", "id", "url", "drop")

_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)", re.IGNORECASE)
# "id", "ID", "house_id", "ClothingID", "Clothing ID", "userId"; not "idea",
# "valid" or "width".
_ID_NAME = re.compile(
    r"(?:^|[^a-zA-Z])(?:id|ID|Id)(?:$|[^a-z])|[a-z](?:ID|Id)(?:$|[^a-z])"
)
# Fewer rows than this cannot tell a row counter or a column of codes that
# never repeat from a short feature column.
_MIN_ROWS_FOR_ID = 20


def _looks_like_id_name(name):
    return bool(_ID_NAME.search(str(name)))


def _extension_kind(values):
    """``"image"``/``"audio"`` when every path ends in such an extension."""
    suffixes = {os.path.splitext(os.fspath(v))[1].lower() for v in values}
    if suffixes and suffixes <= set(IMAGE_EXTENSIONS):
        return "image"
    if suffixes and suffixes <= set(AUDIO_EXTENSIONS):
        return "audio"
    return None


def _array_kind(values):
    """``"image"``/``"audio"`` for cells that are all arrays of one rank."""
    ranks = set()
    for value in values:
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            return None
        ranks.add(value.ndim)
    if ranks == {1}:
        return "audio"
    if ranks and ranks <= {2, 3}:
        return "image"
    return None


def _integer_valued(values):
    return values.dtype.kind in "iu" or (
        values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)
    )


def _numeric_kind(name, values):
    """``(kind, reason)`` of a column of numbers (missing values removed)."""
    n_unique = len(np.unique(values))
    if not _integer_valued(values) or len(values) < 2:
        return "numeric", "numbers"
    if _looks_like_id_name(name):
        if n_unique == len(values):
            return "id", "integers named as an identifier, all different"
        return "categorical", "integers named as an identifier (a code that repeats)"
    steps = np.diff(values)
    if (
        n_unique == len(values)
        and len(values) >= _MIN_ROWS_FOR_ID
        and np.all(steps == steps[0])
    ):
        return "id", "integers counting the rows (all different, constant step)"
    return "numeric", "numbers"


def _string_kind(name, strings, max_categories, min_text_words):
    """``(kind, reason)`` of a column of strings (missing values removed)."""
    n_unique = len(set(strings))
    n_words = np.array([len(s.split()) for s in strings])
    mean_words = float(n_words.mean())
    if mean_words >= min_text_words:
        return "text", f"strings of {mean_words:.1f} words on average"
    if n_unique <= max_categories:
        return "categorical", f"{n_unique} distinct strings"
    if mean_words > 1.5:
        return "text", (
            f"{n_unique} distinct strings of {mean_words:.1f} words on average"
        )
    single_words = bool(np.all(n_words <= 1))
    if single_words and n_unique == len(strings) and len(strings) >= _MIN_ROWS_FOR_ID:
        return "id", "single words, all different"
    return "categorical", f"{n_unique} distinct short strings"


def _column_kind(name, column, max_categories, min_text_words):
    """``(kind, reason)`` of one pandas Series."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical", "pandas category"
    present = column[column.notna()]
    if len(present) == 0:
        return "drop", "all values missing"
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical", "booleans"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(
        dtype
    ):
        return _numeric_kind(name, present.to_numpy(dtype=np.float64))
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "drop", "dates (not supported: derive numbers from them)"
    values = [v for v in present.tolist() if not is_missing(v)]
    if not values:
        return "drop", "all values missing"
    if all(isinstance(v, os.PathLike) for v in values):
        kind = _extension_kind(values)
        return (
            (kind, "paths with its file extension")
            if kind
            else (
                "drop",
                "paths without an image or audio extension",
            )
        )
    kind = _array_kind(values)
    if kind is not None:
        return kind, f"arrays of rank {2 if kind == 'image' else 1}"
    if all(type(v).__module__.startswith("PIL.") for v in values):
        return "image", "PIL images"
    strings = [v for v in values if isinstance(v, str)]
    if len(strings) == len(values):
        if all(_URL.match(s) for s in strings):
            return "url", (
                "web addresses: skmm reads nothing over the network; download "
                "the files and give their local paths"
            )
        kind = _extension_kind(strings)
        if kind is not None:
            return kind, "file paths with an extension of that kind"
        return _string_kind(name, strings, max_categories, min_text_words)
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "categorical", "booleans"
    if all(isinstance(v, (str, Real)) for v in values):
        if not strings:
            return _numeric_kind(name, np.asarray(values, dtype=np.float64))
        kind, reason = _string_kind(
            name, [str(v) for v in values], max_categories, min_text_words
        )
        return kind, f"numbers and strings, read as strings: {reason}"
    found = sorted({type(v).__name__ for v in values})
    return "drop", f"values of types {found} that no encoder reads"


def _check_thresholds(max_categories, min_text_words):
    if not isinstance(max_categories, Integral) or max_categories < 1:
        raise ValueError(
            f"max_categories must be a positive int, got {max_categories!r}."
        )
    if not isinstance(min_text_words, Real) or min_text_words <= 1:
        raise ValueError(
            f"min_text_words must be a number greater than 1, got {min_text_words!r}."
        )


def infer_column_types(X, *, max_categories=30, min_text_words=4):
    """Tell which modality each column of a DataFrame holds, and why.

    The rules are given in :mod:`skmm.compose`. Only the values are read:
    no file is opened.

    Parameters
    ----------
    X : DataFrame
        The data, one column per feature.
    max_categories : int, default=30
        A string column with at most this many distinct values is
        categorical unless its values are long (``min_text_words``).
    min_text_words : float, default=4
        A string column whose values have at least this many words on
        average is text, however few distinct values it has.

    Returns
    -------
    types : DataFrame
        Indexed by column name, with the columns ``kind`` (one of
        ``"text"``, ``"image"``, ``"audio"``, ``"numeric"``,
        ``"categorical"``, ``"id"``, ``"url"``, ``"drop"``) and ``reason``.
        The columns of kinds ``"id"``, ``"url"`` and ``"drop"`` are those
        that :func:`~skmm.make_multimodal_fusion` leaves out.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.compose import infer_column_types
    >>> df = pd.DataFrame({
    ...     "id": [1, 2, 3, 4],
    ...     "size": ["S", "M", "L", "M"],
    ...     "price": [9.5, 12.0, 15.5, 11.0],
    ...     "photo": ["a.jpg", "b.jpg", "c.png", None],
    ...     "review": ["fits well and looks great", "too small for me sadly",
    ...                "the colour is lovely in daylight", None],
    ... })
    >>> infer_column_types(df)["kind"].to_dict()
    {'id': 'id', 'size': 'categorical', 'price': 'numeric', 'photo': 'image', \
'review': 'text'}
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            "Column types are inferred from a pandas DataFrame, with column "
            f"names; got {type(X).__name__}. Build one with pd.DataFrame(X, "
            "columns=[...])."
        )
    _check_thresholds(max_categories, min_text_words)
    rows = []
    for name in X.columns:
        column = X[name]
        if isinstance(column, pd.DataFrame):
            raise ValueError(
                f"The DataFrame has several columns named {name!r}; give each "
                "column a distinct name."
            )
        rows.append(_column_kind(name, column, max_categories, min_text_words))
    return pd.DataFrame(rows, index=X.columns, columns=["kind", "reason"])


class _ColumnTypeSelector:
    """Callable returning the columns of a DataFrame of one inferred kind."""

    def __init__(self, kind, *, exclude=(), max_categories=30, min_text_words=4):
        self.kind = kind
        self.exclude = exclude
        self.max_categories = max_categories
        self.min_text_words = min_text_words

    def __call__(self, X):
        types = infer_column_types(
            X,
            max_categories=self.max_categories,
            min_text_words=self.min_text_words,
        )
        excluded = (
            {self.exclude} if isinstance(self.exclude, str) else set(self.exclude)
        )
        return [
            column
            for column, kind in types["kind"].items()
            if kind == self.kind and column not in excluded
        ]

    def __repr__(self):
        params = []
        if self.exclude:
            params.append(f"exclude={self.exclude!r}")
        if self.max_categories != 30:
            params.append(f"max_categories={self.max_categories!r}")
        if self.min_text_words != 4:
            params.append(f"min_text_words={self.min_text_words!r}")
        return f"{self.kind}_columns({', '.join(params)})"

    def __eq__(self, other):
        return isinstance(other, _ColumnTypeSelector) and vars(self) == vars(other)

    __hash__ = None


_SELECTOR_DOC = """Select the {kind} columns of a DataFrame: {what}.

    Returns a callable that takes a DataFrame and returns the names of its
    {kind} columns, like :func:`sklearn.compose.make_column_selector`: use
    it as the columns of a :class:`~skmm.MultimodalFusion` (or a
    ``ColumnTransformer``) entry, where it is applied to the data given to
    ``fit``. The rules are those of :func:`infer_column_types`.

    Parameters
    ----------
    exclude : str or list of str, default=()
        Columns never selected, such as the target.
    max_categories : int, default=30
        See :func:`infer_column_types`.
    min_text_words : float, default=4
        See :func:`infer_column_types`.

    Returns
    -------
    selector : callable
        ``selector(df)`` is the list of the {kind} columns of ``df``.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.compose import {kind}_columns
    >>> df = pd.DataFrame({{
    ...     "review": ["fits well and looks great", "too small for me sadly"],
    ...     "size": ["S", "M"],
    ...     "price": [9.5, 12.0],
    ...     "photo": ["a.jpg", "b.png"],
    ...     "voice": ["a.wav", "b.wav"],
    ... }})
    >>> {kind}_columns()(df)
    {example}
    """


def _make_selector(kind, what, example):
    def selector(*, exclude=(), max_categories=30, min_text_words=4):
        return _ColumnTypeSelector(
            kind,
            exclude=exclude,
            max_categories=max_categories,
            min_text_words=min_text_words,
        )

    selector.__name__ = selector.__qualname__ = f"{kind}_columns"
    selector.__doc__ = _SELECTOR_DOC.format(kind=kind, what=what, example=example)
    selector.__module__ = "skmm.compose"
    return selector


text_columns = _make_selector(
    "text", "strings of several words, with many distinct values", "['review']"
)
image_columns = _make_selector(
    "image", "image file paths, PIL images, 2-D or 3-D arrays", "['photo']"
)
audio_columns = _make_selector(
    "audio", "audio file paths or 1-D arrays (waveforms)", "['voice']"
)
numeric_columns = _make_selector(
    "numeric", "numbers that are not identifiers", "['price']"
)
categorical_columns = _make_selector(
    "categorical", "booleans, pandas categories and short repeated strings", "['size']"
)

"""Input validation shared by the encoders and estimators."""

import os

import numpy as np

from skmm.utils._sklearn_compat import validate_data

__all__ = ["check_column_block", "is_missing", "relative_path_hint", "resolve_paths"]


def check_column_block(estimator, X, *, reset, dtype=None):
    """Validate a 2-D column block and return it with its column names.

    Records ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame)
    when ``reset`` is true and checks them otherwise. Missing values are
    allowed: what they mean is up to the encoder.

    Parameters
    ----------
    estimator : estimator instance
        The encoder the block is meant for.
    X : array-like or DataFrame of shape (n_samples, n_columns)
        The column block.
    reset : bool
        True in ``fit``, False in ``transform``.
    dtype : dtype or None, default=None
        ``None`` keeps object columns (text, paths, images) as they are.

    Returns
    -------
    X : ndarray of shape (n_samples, n_columns)
    columns : list of str
        The column names, ``"column 0"``, ... when the input has none.
    """
    if isinstance(X, (str, bytes)) or not (
        hasattr(X, "__len__") or hasattr(X, "__array__")
    ):
        raise TypeError(
            f"{type(estimator).__name__} expects a 2-D column block (a DataFrame or "
            f"an array of shape (n_samples, n_columns)), got {type(X).__name__}."
        )
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=dtype,
        ensure_all_finite=False,
        ensure_2d=True,
        ensure_min_features=1,
    )
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names) == X.shape[1]:
        columns = [str(c) for c in names]
    else:
        columns = [f"column {j}" for j in range(X.shape[1])]
    return X, columns


def is_missing(value):
    """True for the values that mean "no data": None, NaN, pandas NA/NaT."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover
        return False


def resolve_paths(X, base_dir):
    """Return the block ``X`` with its relative file paths joined to ``base_dir``.

    Only the cells that are paths (``str`` or path-like) and relative change;
    absolute paths, arrays, images and missing cells are kept. With
    ``base_dir=None``, or a block of numbers, ``X`` itself is returned.
    """
    if base_dir is None or X.dtype != object:
        return X
    base = os.path.expanduser(os.fspath(base_dir))
    resolved = None
    for index, value in np.ndenumerate(X):
        if isinstance(value, (str, os.PathLike)) and not os.path.isabs(value):
            if resolved is None:
                resolved = X.copy()
            resolved[index] = os.path.join(base, os.fspath(value))
    return X if resolved is None else resolved


def relative_path_hint(path):
    """What to do about a relative ``path`` that was not found; "" otherwise."""
    if os.path.isabs(path):
        return ""
    return (
        f" Relative paths are read from the working folder {os.getcwd()!r}: pass "
        "base_dir, the folder they are relative to, to the encoder (or to "
        "make_multimodal_fusion)."
    )

"""Loaders for local copies of real multimodal datasets.

skmm never downloads data: each loader reads files that the user already has,
under a ``data_home`` folder passed explicitly.
"""

import os
from pathlib import Path

import pandas as pd
from sklearn.utils import Bunch

__all__ = ["load_houses", "load_womens_clothing_reviews"]

_REVIEWS_FEATURES = [
    "Clothing ID",
    "Age",
    "Title",
    "Review Text",
    "Positive Feedback Count",
    "Division Name",
    "Department Name",
    "Class Name",
]
_REVIEWS_TARGETS = ["Recommended IND", "Rating"]
_HOUSES_TABULAR = ["bedrooms", "bathrooms", "area", "zipcode"]
_HOUSES_IMAGES = ["frontal_image", "kitchen_image", "bedroom_image", "bathroom_image"]
_HOUSES_COLUMNS = ["house_id", *_HOUSES_TABULAR, "price", *_HOUSES_IMAGES]

_REVIEWS_DESCR = """\
Women's clothing e-commerce reviews
-----------------------------------
23,486 reviews (public domain, CC0). Text: ``Title`` and ``Review Text``
(missing in 3,810 and 845 rows), combined into ``text``. Tabular: ``Age``,
``Positive Feedback Count``, ``Division Name``, ``Department Name``,
``Class Name`` and the item identifier ``Clothing ID`` (a string, not a
number). Targets: ``Recommended IND`` (0/1, classification) and ``Rating``
(1 to 5, regression or ordinal), a natural multi-task pair.
"""

_HOUSES_DESCR = """\
Houses: price from four photos and four attributes
--------------------------------------------------
535 houses, from Ahmed & Moustafa, "House price estimation from visual and
textual features" (2016); cite it when you use the data. Tabular:
``bedrooms``, ``bathrooms``, ``area``, ``zipcode``. Images: absolute paths of
JPEG photos (at most 160 px) of the front, kitchen, bedroom and bathroom.
Target: ``price`` (regression; its log is usually easier to fit).
"""


def _find_file(data_home, *parts):
    """Return the path of a dataset file under ``data_home``, which must exist."""
    if data_home is None or not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            "data_home must be the path (str or path-like) of the folder that "
            f"holds the datasets, got {data_home!r}."
        )
    path = Path(data_home).expanduser().resolve().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected the file {path}, which does not exist. skmm does not "
            "download datasets: copy the data there yourself, or pass as "
            f"data_home the folder that contains {parts[0]}/."
        )
    return path


def _read_csv(path, columns):
    frame = pd.read_csv(path)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks the columns {missing}; expected the columns {columns}."
        )
    return frame[columns]


def load_womens_clothing_reviews(data_home):
    """Load the women's clothing reviews: text + tabular, two targets.

    Reads ``womens_clothing_reviews/reviews.csv`` under ``data_home``; nothing
    is downloaded. The two targets on the same rows make it the natural
    multi-task case (a classification head and a regression head).

    Parameters
    ----------
    data_home : str or path-like
        The folder that contains ``womens_clothing_reviews/reviews.csv``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : DataFrame of shape (23486, 9)
            The features: the columns of the file except the targets, and
            ``text``. ``text`` is ``Title + " . " + Review Text`` with a
            missing part taken as empty, and is itself missing (NaN) in the
            rows that have neither. ``Clothing ID`` is converted to strings so
            that the identifier is not fed to a model as a quantity.
        target : DataFrame of shape (23486, 2)
            ``Recommended IND`` (0 or 1) and ``Rating`` (1 to 5).
        frame : DataFrame of shape (23486, 11)
            ``data`` and ``target`` side by side.
        feature_names : list of str
            The columns of ``data``.
        target_names : list of str
            ``["Recommended IND", "Rating"]``.
        DESCR : str
            A short description of the dataset.

    Raises
    ------
    FileNotFoundError
        If ``reviews.csv`` is not at the expected place; the message names the
        path.

    See Also
    --------
    load_houses : Images + tabular, a regression target.

    Examples
    --------
    >>> from skmm.datasets import load_womens_clothing_reviews
    >>> reviews = load_womens_clothing_reviews("../shared/data")  # doctest: +SKIP
    >>> reviews.target_names  # doctest: +SKIP
    ['Recommended IND', 'Rating']
    """
    path = _find_file(data_home, "womens_clothing_reviews", "reviews.csv")
    frame = _read_csv(path, [*_REVIEWS_FEATURES, *_REVIEWS_TARGETS])
    data = frame[_REVIEWS_FEATURES].copy()
    data["Clothing ID"] = data["Clothing ID"].astype(str)
    has_text = data[["Title", "Review Text"]].notna().any(axis=1)
    text = data["Title"].fillna("") + " . " + data["Review Text"].fillna("")
    data["text"] = text.where(has_text)
    target = frame[_REVIEWS_TARGETS].copy()
    return Bunch(
        data=data,
        target=target,
        frame=pd.concat([data, target], axis=1),
        feature_names=list(data.columns),
        target_names=list(_REVIEWS_TARGETS),
        DESCR=_REVIEWS_DESCR,
    )


def load_houses(data_home):
    """Load the houses dataset: four photos and four attributes per house.

    Reads ``houses/houses.csv`` and checks that every photo it lists exists
    under ``houses/``; nothing is downloaded.

    Parameters
    ----------
    data_home : str or path-like
        The folder that contains ``houses/houses.csv`` and ``houses/images/``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        data : DataFrame of shape (535, 8)
            ``bedrooms``, ``bathrooms``, ``area``, ``zipcode``, then
            ``frontal_image``, ``kitchen_image``, ``bedroom_image`` and
            ``bathroom_image``: absolute paths (str) of the JPEG photos.
            ``house_id``, unique per row, is left out.
        target : Series of shape (535,)
            ``price``, in dollars.
        frame : DataFrame of shape (535, 10)
            ``house_id``, ``data`` and ``price``.
        feature_names : list of str
            The columns of ``data``.
        target_names : list of str
            ``["price"]``.
        DESCR : str
            A short description of the dataset.

    Raises
    ------
    FileNotFoundError
        If ``houses.csv`` or one of the photos it lists is not at the expected
        place; the message names the path.

    See Also
    --------
    load_womens_clothing_reviews : Text + tabular, two targets.

    Examples
    --------
    >>> from skmm.datasets import load_houses
    >>> houses = load_houses("../shared/data")  # doctest: +SKIP
    >>> houses.data["frontal_image"].iloc[0]  # doctest: +SKIP
    '/.../shared/data/houses/images/1_frontal.jpg'
    """
    path = _find_file(data_home, "houses", "houses.csv")
    frame = _read_csv(path, _HOUSES_COLUMNS).copy()
    for column in _HOUSES_IMAGES:
        paths = [path.parent / relative for relative in frame[column]]
        absent = [image for image in paths if not image.is_file()]
        if absent:
            raise FileNotFoundError(
                f"Expected the image {absent[0]}, listed in column {column!r} of "
                f"{path}, which does not exist ({len(absent)} of the "
                f"{len(paths)} images of that column are missing). skmm does not "
                "download datasets: copy the images there yourself."
            )
        frame[column] = [str(image) for image in paths]
    features = [*_HOUSES_TABULAR, *_HOUSES_IMAGES]
    return Bunch(
        data=frame[features].copy(),
        target=frame["price"].copy(),
        frame=frame[["house_id", *features, "price"]].copy(),
        feature_names=features,
        target_names=["price"],
        DESCR=_HOUSES_DESCR,
    )

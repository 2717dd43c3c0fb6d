"""Synthetic multimodal problems and loaders for local copies of real datasets."""

from skmm.datasets._real import load_houses, load_womens_clothing_reviews
from skmm.datasets._synthetic import (
    make_multimodal_classification,
    make_multimodal_regression,
)

__all__ = [
    "load_houses",
    "load_womens_clothing_reviews",
    "make_multimodal_classification",
    "make_multimodal_regression",
]

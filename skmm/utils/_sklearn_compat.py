"""The one place where skmm touches scikit-learn internals or moving APIs.

Keeping them here means a scikit-learn upgrade is mended in one module.
MultimodalFusion also overrides ColumnTransformer's ``_hstack`` (a documented
hook for subclasses) and ``_iter``.
"""

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils._set_output import _get_container_adapter, _safe_set_output
from sklearn.utils.validation import (
    _check_feature_names_in,
    _check_sample_weight,
    validate_data,
)

__all__ = [
    "Interval",
    "StrOptions",
    "_check_feature_names_in",
    "_check_sample_weight",
    "_fit_context",
    "_get_container_adapter",
    "_safe_indexing",
    "_safe_set_output",
    "validate_data",
]

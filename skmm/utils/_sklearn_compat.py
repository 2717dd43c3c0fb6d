"""The one place where skmm touches scikit-learn internals or moving APIs.

Keeping them here means a scikit-learn upgrade is mended in one module.
"""

from sklearn.utils._set_output import _safe_set_output  # noqa: F401
from sklearn.utils.validation import validate_data  # noqa: F401

__all__ = ["validate_data", "_safe_set_output"]

from sklearn.utils._param_validation import (  # noqa: E402,F401
    Interval,
    StrOptions,
)

__all__ += ["Interval", "StrOptions"]

from sklearn.base import _fit_context  # noqa: E402,F401
from sklearn.utils.validation import _check_feature_names_in  # noqa: E402,F401

__all__ += ["_fit_context", "_check_feature_names_in"]


def validate_params(estimator):
    """Check ``estimator``'s parameters against its ``_parameter_constraints``."""
    estimator._validate_params()

"""Targets of the fusion estimators: encoded for training, decoded on predict.

Every task of a fusion estimator is a :class:`TaskTarget`: class labels
encoded as indices (decoded by argmax), or values standardised per column
(decoded by the inverse map). ``FusionClassifier`` has one classification
task, ``FusionRegressor`` one regression task (of one or several columns),
``FusionMultiTask`` one task per target column.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array

__all__ = [
    "TASK_KINDS",
    "TaskTarget",
    "as_float_target",
    "check_target_column",
    "classification_target",
    "normalised_value_weights",
    "regression_target",
]

TASK_KINDS = ("classification", "regression")


@dataclass(frozen=True)
class TaskTarget:
    """One task's target, encoded, and what decoding its head's output needs.

    Parameters
    ----------
    kind : {"classification", "regression"}
        The task.
    values : ndarray
        Class indices, or standardised values of shape ``(n, n_outputs)``.
    classes : ndarray, default=None
        Class labels, in the order of the head's outputs.
    mean, scale : ndarray, default=None
        Per-column standardisation of a regression target.
    value_weight : ndarray, default=None
        Weight of each value's error in the loss, shaped as ``values``:
        ``scale / |y|`` for the absolute percentage error, so that the
        absolute error of a standardised value weighs as its error relative
        to the target in the target's units. None: every value weighs 1.
    """

    kind: str
    values: np.ndarray
    classes: np.ndarray | None = None
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    value_weight: np.ndarray | None = None

    @property
    def head_size(self):
        """Output width of the task's head."""
        if self.kind == "classification":
            return len(self.classes)
        return len(self.mean)

    def without_values(self):
        """The decoding information only, to keep in a fitted estimator."""
        return TaskTarget(self.kind, None, self.classes, self.mean, self.scale)

    def decode(self, output):
        """Labels (argmax) or values in the target's units, from head outputs."""
        if self.kind == "classification":
            return self.classes[np.argmax(output, axis=1)]
        return output.astype(np.float64) * self.scale + self.mean

    @staticmethod
    def probabilities(output):
        """Softmax of a classification head's logits."""
        return torch.softmax(torch.from_numpy(output), dim=1).numpy()


def check_target_column(y, n_samples, name="y"):
    """Check a target's rows: present, finite, as many as ``X``'s."""
    if y is None:
        raise ValueError(
            "This estimator requires y to be passed, but the target y is None."
        )
    y = check_array(
        y,
        ensure_2d=False,
        dtype=None,
        # Missing values are reported below with their row (and, in an
        # object target, by classification_target and as_float_target).
        ensure_all_finite=False,
        input_name=name,
    )
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} rows but y has {len(y)}; they must match.")
    if y.dtype.kind in "fc":
        bad = np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(axis=1))
        if len(bad):
            raise ValueError(
                f"The target {name!r} has a missing or infinite value (NaN or "
                f"inf) at row {bad[0]}; drop or fill those rows first."
            )
    return y


def as_float_target(y, what="y"):
    """A regression target as finite floats; ``what`` names it in errors."""
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        for index, value in np.ndenumerate(np.asarray(y, dtype=object)):
            try:
                float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"The regression target {what!r} must hold numbers; row "
                    f"{index[0]} holds {value!r}. Convert it first, e.g. "
                    "pd.to_numeric after removing currency signs and separators."
                ) from None
        raise
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if len(bad):
        raise ValueError(
            f"The regression target {what!r} has a missing or infinite value at "
            f"row {bad[0]}; drop or fill those rows first."
        )
    return values


def classification_target(y, what="y"):
    """Encode class labels as indices; ``what`` names the target in errors."""
    if y.dtype == object:
        missing = np.flatnonzero(pd.isna(y))
        if len(missing):
            raise ValueError(
                f"The target {what!r} has a missing label (None or NaN) at row "
                f"{missing[0]}; drop or fill those rows first."
            )
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    if len(encoder.classes_) < 2:
        raise ValueError(
            f"{what} needs at least 2 classes, got 1 class: {encoder.classes_[0]!r}."
        )
    return TaskTarget("classification", encoder.transform(y), classes=encoder.classes_)


def regression_target(y, what="y", *, percentage_error_param=None):
    """Standardise each column of a 1-D or 2-D numeric target.

    ``percentage_error_param`` names the parameter that chose the absolute
    percentage error as the loss, if one did: each value then gets the
    weight ``scale / |y|`` (see :class:`TaskTarget`), and a zero value, whose
    percentage error is undefined, raises a ``ValueError`` naming its row.
    """
    y2 = as_float_target(y, what).reshape(len(y), -1)
    mean = y2.mean(axis=0)
    scale = y2.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    value_weight = None
    if percentage_error_param is not None:
        zero = np.argwhere(y2 == 0)
        if len(zero):
            row, column = zero[0]
            where = f"row {row}" + (f", column {column}" if y2.shape[1] > 1 else "")
            raise ValueError(
                f"The target {what!r} is 0 at {where} ({len(zero)} zero "
                f"value(s) in all), but {percentage_error_param}="
                "'absolute_percentage_error' divides each error by the target, "
                "which is undefined for a zero target. Drop those rows, or "
                "choose another loss such as 'absolute_error'."
            )
        value_weight = scale / np.abs(y2)
    return TaskTarget(
        "regression",
        (y2 - mean) / scale,
        mean=mean,
        scale=scale,
        value_weight=value_weight,
    )


def normalised_value_weights(targets, sample_weight):
    """The ``value_weight`` of each task that has one, averaging 1.

    The average is over the rows weighted by ``sample_weight`` (and over a
    target's columns), so that the loss has the scale of an unweighted one
    and a learning rate means the same for every loss.

    Parameters
    ----------
    targets : dict of str to TaskTarget
        The tasks.
    sample_weight : ndarray of shape (n_samples,) or None
        The user's weight of each row.

    Returns
    -------
    weights : dict of str to ndarray
        One array per task with a ``value_weight``, shaped as its values.
    """
    out = {}
    for task, target in targets.items():
        weight = target.value_weight
        if weight is None:
            continue
        rows = weight.mean(axis=1)
        if sample_weight is not None and np.sum(sample_weight) > 0:
            average = np.average(rows, weights=sample_weight)
        else:
            average = rows.mean()
        out[task] = weight / average
    return out

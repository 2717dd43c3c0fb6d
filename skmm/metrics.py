"""Scorers for multi-task models: score one task of a FusionMultiTask."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import get_scorer

__all__ = ["task_scorer"]


class _TaskView(BaseEstimator):
    """A fitted multi-task model seen as a single-task estimator."""

    def __init__(self, model, task):
        self.model = model
        self.task = task

    def predict(self, X):
        return self.model.predict(X)[self.task].to_numpy()


class _ClassificationTaskView(ClassifierMixin, _TaskView):
    @property
    def classes_(self):
        return self.model.classes_[self.task]

    def predict_proba(self, X):
        return self.model.predict_proba(X)[self.task]


class _RegressionTaskView(RegressorMixin, _TaskView):
    pass


class _TaskScorer:
    def __init__(self, task, scoring):
        self.task = task
        self.scoring = scoring
        self._scorer = get_scorer(scoring)

    def __call__(self, estimator, X, y, sample_weight=None):
        model = estimator[-1] if hasattr(estimator, "steps") else estimator
        tasks = getattr(model, "tasks_", None)
        if tasks is None or self.task not in tasks:
            raise ValueError(
                f"task_scorer({self.task!r}) needs a fitted FusionMultiTask (or a "
                f"pipeline ending with one) that has the task {self.task!r}."
            )
        view_class = (
            _ClassificationTaskView
            if tasks[self.task] == "classification"
            else _RegressionTaskView
        )
        view = view_class(_PipelineOutputs(estimator), self.task)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self._scorer(view, X, _task_column(y, self.task, list(tasks)), **kwargs)

    def __repr__(self):
        return f"task_scorer({self.task!r}, {self.scoring!r})"


class _PipelineOutputs:
    """Exposes predict/predict_proba/classes_ of a pipeline or a model."""

    def __init__(self, estimator):
        self.estimator = estimator
        model = estimator[-1] if hasattr(estimator, "steps") else estimator
        self.classes_ = getattr(model, "classes_", None)

    def predict(self, X):
        return self.estimator.predict(X)

    def predict_proba(self, X):
        return self.estimator.predict_proba(X)


def _task_column(y, task, tasks):
    if isinstance(y, pd.DataFrame) and task in y.columns:
        return y[task].to_numpy()
    y = np.asarray(y)
    if y.ndim == 1:
        return y
    return y[:, tasks.index(task)]


def task_scorer(task, scoring):
    """Make a scorer that scores one task of a multi-task model.

    The scorer evaluates the predictions of ``task`` only, with any
    scikit-learn scoring name, so per-task scores can be reported by
    ``cross_validate(scoring={...})`` or chosen as ``GridSearchCV``'s ``refit``.

    Parameters
    ----------
    task : str
        A task name of the :class:`~skmm.FusionMultiTask` being scored.
    scoring : str
        A scikit-learn scorer name, e.g. ``"accuracy"``, ``"roc_auc"``,
        ``"neg_mean_absolute_error"``.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)`` where ``estimator`` is a fitted
        FusionMultiTask or a pipeline ending with one and ``y`` holds every
        task's target, as passed to ``fit``.

    Examples
    --------
    >>> from skmm.metrics import task_scorer
    >>> scoring = {"label_acc": task_scorer("label", "accuracy"),
    ...            "value_mae": task_scorer("value", "neg_mean_absolute_error")}
    """
    return _TaskScorer(task, scoring)

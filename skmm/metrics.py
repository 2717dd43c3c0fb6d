"""Scorers for multi-task models: score one task of a FusionMultiTask."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import check_scoring, get_scorer
from sklearn.utils import check_random_state

from skmm._blocks import ModalityBlocks
from skmm._fusion import MultimodalFusion

__all__ = ["modality_robustness_scorer", "task_scorer"]


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


ROBUSTNESS_MODES = ("remove", "noise")


class _RobustnessScorer:
    def __init__(self, modality, mode, scoring, noise_scale, random_state):
        self.modality = modality
        self.mode = mode
        self.scoring = scoring
        self.noise_scale = noise_scale
        self.random_state = random_state

    def __call__(self, estimator, X, y, sample_weight=None):
        if not (
            hasattr(estimator, "steps") and isinstance(estimator[0], MultimodalFusion)
        ):
            raise ValueError(
                "modality_robustness_scorer needs a pipeline whose first step is a "
                f"MultimodalFusion, got {type(estimator).__name__}."
            )
        blocks = estimator[0].transform(X)
        if not isinstance(blocks, ModalityBlocks) or self.modality not in blocks:
            names = getattr(blocks, "names", [])
            raise ValueError(
                f"No modality {self.modality!r} in the fusion's output; it has "
                f"{names} (the fusion must use output='blocks')."
            )
        block = blocks[self.modality]
        spec = blocks.specs[self.modality]
        dense = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
        rng = check_random_state(self.random_state)
        if spec.kind == "tokens":
            degraded = _degrade_tokens(dense, spec, self.mode, self.noise_scale, rng)
        elif self.mode == "remove":
            # The encoding of a missing value: an all-zero row.
            degraded = np.zeros_like(dense)
        else:
            scale = self.noise_scale * dense.std(axis=0, keepdims=True)
            degraded = dense + rng.normal(size=dense.shape) * scale
            degraded = degraded.astype(dense.dtype, copy=False)
        changed = ModalityBlocks(
            {**dict(blocks.items()), self.modality: degraded}, blocks.specs
        )
        rest = estimator[1:]
        scorer = check_scoring(rest, scoring=self.scoring)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return scorer(rest, changed, y, **kwargs)

    def __repr__(self):
        return (
            f"modality_robustness_scorer({self.modality!r}, mode={self.mode!r}, "
            f"scoring={self.scoring!r})"
        )


def _degrade_tokens(ids, spec, mode, noise_scale, rng):
    """Token ids all padding, or with random ids in place of some tokens."""
    if mode == "remove":
        return np.full_like(ids, spec.padding_idx)
    tokens = ids != spec.padding_idx
    swap = tokens & (rng.uniform(size=ids.shape) < min(noise_scale, 1.0))
    # Uniform over the vocabulary without the padding id.
    random_ids = rng.randint(0, spec.vocab_size - 1, size=ids.shape)
    random_ids += random_ids >= spec.padding_idx
    return np.where(swap, random_ids, ids).astype(ids.dtype, copy=False)


def modality_robustness_scorer(
    modality, *, mode="remove", scoring=None, noise_scale=1.0, random_state=0
):
    """Make a scorer of a model with one modality removed or replaced by noise.

    The pipeline's first step (a :class:`~skmm.MultimodalFusion`) encodes
    ``X``; the block of ``modality`` is then set to the encoding of a missing
    value (``mode="remove"``: all-zero rows, i.e. an empty text or a missing
    image for skmm's encoders, and rows of padding for a block of token ids)
    or perturbed (``mode="noise"``): with Gaussian noise of ``noise_scale``
    times each feature's standard deviation, or, for token ids, by replacing
    each token with probability ``min(noise_scale, 1)`` with an id drawn
    uniformly from the vocabulary. The rest of the pipeline is then scored.
    Usable in ``cross_val_score(scoring=...)`` and ``cross_validate``.

    Parameters
    ----------
    modality : str
        Name of the modality to degrade.
    mode : {"remove", "noise"}, default="remove"
        How to degrade it.
    scoring : str or callable, default=None
        Score of the degraded model; ``None`` uses the estimator's ``score``.
    noise_scale : float, default=1.0
        Noise standard deviation in units of each feature's spread
        (``mode="noise"``); for token ids, the share of tokens replaced.
    random_state : int, RandomState instance or None, default=0
        Seeds the noise.

    Returns
    -------
    scorer : callable
        ``scorer(pipeline, X, y)``.

    Examples
    --------
    >>> from skmm.metrics import modality_robustness_scorer
    >>> scorer = modality_robustness_scorer("image", mode="remove")
    """
    if mode not in ROBUSTNESS_MODES:
        raise ValueError(f"mode must be one of {ROBUSTNESS_MODES}, got {mode!r}.")
    return _RobustnessScorer(modality, mode, scoring, noise_scale, random_state)

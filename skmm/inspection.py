"""Inspection of fitted multimodal models: which modalities do they rely on?"""

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.metrics import check_scoring
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.validation import check_is_fitted

from skmm._blocks import ModalityBlocks
from skmm._fusion import MultimodalFusion

__all__ = [
    "ModalityImportanceDisplay",
    "gate_values",
    "modality_importance",
    "represent",
]


def _blocks_and_model(estimator, X):
    """Split ``estimator`` into the modality blocks of ``X`` and the model after.

    For a pipeline starting with a MultimodalFusion, ``X`` is its input and
    the model is the rest of the pipeline; otherwise ``X`` must already be
    modality blocks and the model is ``estimator``.
    """
    if isinstance(estimator, Pipeline):
        fusion = estimator[0]
        if not isinstance(fusion, MultimodalFusion):
            raise TypeError(
                "modality_importance needs a pipeline whose first step is a "
                f"MultimodalFusion, got a first step {type(fusion).__name__}."
            )
        if len(estimator) < 2:
            raise ValueError(
                "modality_importance needs a model after the MultimodalFusion in "
                "the pipeline, got a pipeline of one step."
            )
        check_is_fitted(fusion)
        blocks, model = fusion.transform(X), estimator[1:]
        if not isinstance(blocks, ModalityBlocks):
            raise ValueError(
                "modality_importance needs the modality blocks of the "
                "MultimodalFusion; fit the pipeline with its default "
                "output='blocks', not output='flat'."
            )
        return blocks, model
    if not isinstance(X, ModalityBlocks):
        raise TypeError(
            "modality_importance needs either a pipeline whose first step is a "
            "MultimodalFusion, with its input X, or an estimator fitted on "
            "modality blocks, with X the ModalityBlocks returned by a "
            f"MultimodalFusion; got {type(estimator).__name__} and X of type "
            f"{type(X).__name__}."
        )
    return X, estimator


def _pyplot(owner):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{owner}.plot needs matplotlib; install it with pip install matplotlib."
        ) from exc
    return plt


def _run_final_step(estimator, X, method):
    """``method`` of the last step, on ``X`` transformed by the steps before."""
    if isinstance(estimator, Pipeline):
        final = estimator[-1]
        if not hasattr(final, method):
            raise TypeError(
                f"{method} needs a pipeline that ends with a fusion estimator "
                "(FusionClassifier, FusionRegressor or FusionMultiTask), got a "
                f"last step {type(final).__name__}."
            )
        check_is_fitted(estimator)
        if len(estimator) > 1:
            X = estimator[:-1].transform(X)
        return getattr(final, method)(X)
    if not hasattr(estimator, method):
        raise TypeError(
            f"{method} needs a fitted fusion estimator, or a pipeline that ends "
            f"with one, got {type(estimator).__name__}."
        )
    return getattr(estimator, method)(X)


def represent(estimator, X):
    """The shared fused representation ``h`` of each row of ``X``.

    The input goes through the steps of the pipeline before its last one
    (the :class:`~skmm.MultimodalFusion`), then the fusion estimator at its
    end gives the representation its heads read: the same as
    ``model[-1].represent(model[:-1].transform(X))``.

    Parameters
    ----------
    estimator : Pipeline or fusion estimator
        A fitted pipeline ending with a :class:`~skmm.FusionClassifier`,
        :class:`~skmm.FusionRegressor` or :class:`~skmm.FusionMultiTask`, or
        such an estimator alone (``X`` then being its modality blocks).
    X : DataFrame, dict, list of dict or ModalityBlocks
        The pipeline's input: a DataFrame, one row as a dict or a list of
        dict rows.

    Returns
    -------
    H : ndarray of shape (n_samples, hidden_dim)
        One representation per row (not defined for ``fusion="late"``).

    See Also
    --------
    gate_values : the gates of each modality, for ``fusion="gated"``.
    FusionClassifier.represent : the same on modality blocks.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import FusionClassifier, MultimodalFusion
    >>> from skmm.inspection import represent
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame(rng.normal(size=(100, 2)), columns=["a", "b"])
    >>> y = (X["a"] > 0).astype(int)
    >>> fusion = MultimodalFusion([("first", StandardScaler(), ["a"]),
    ...                            ("second", StandardScaler(), ["b"])])
    >>> model = make_pipeline(fusion, FusionClassifier(
    ...     hidden_dim=8, max_epochs=5, device="cpu", random_state=0)).fit(X, y)
    >>> represent(model, {"a": 0.5, "b": -1.0}).shape
    (1, 8)
    """
    return _run_final_step(estimator, X, "represent")


def gate_values(estimator, X):
    """The per-row GMU gate of each modality, for ``fusion="gated"``.

    The input goes through the steps of the pipeline before its last one,
    then the gated fusion estimator at its end gives its gates: the same as
    ``model[-1].gate_values(model[:-1].transform(X))``.

    Parameters
    ----------
    estimator : Pipeline or fusion estimator
        A fitted pipeline ending with a fusion estimator with
        ``fusion="gated"``, or such an estimator alone (``X`` then being its
        modality blocks).
    X : DataFrame, dict, list of dict or ModalityBlocks
        The pipeline's input: a DataFrame, one row as a dict or a list of
        dict rows.

    Returns
    -------
    gates : DataFrame of shape (n_samples, n_modalities)
        The gate ``z_m`` averaged over the hidden units, one column per
        modality: how much each modality contributes to ``h`` for that row.

    See Also
    --------
    represent : the fused representation itself.
    modality_importance : the gates' mean and spread beside the importances.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import FusionClassifier, MultimodalFusion
    >>> from skmm.inspection import gate_values
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame(rng.normal(size=(100, 2)), columns=["a", "b"])
    >>> y = (X["a"] > 0).astype(int)
    >>> fusion = MultimodalFusion([("first", StandardScaler(), ["a"]),
    ...                            ("second", StandardScaler(), ["b"])])
    >>> model = make_pipeline(fusion, FusionClassifier(
    ...     fusion="gated", max_epochs=5, device="cpu", random_state=0)).fit(X, y)
    >>> list(gate_values(model, X.head(3)).columns)
    ['first', 'second']
    """
    return _run_final_step(estimator, X, "gate_values")


def _gate_statistics(model, blocks):
    """Mean and standard deviation of each modality's GMU gate over the rows."""
    final = model[-1] if isinstance(model, Pipeline) else model
    if getattr(final, "fusion", None) != "gated" or not hasattr(final, "gate_values"):
        return None
    gates = gate_values(model, blocks)
    return gates.mean(axis=0), gates.std(axis=0, ddof=0)


def _scoring_name(model, scoring):
    """A short name for the score ``scoring`` gives ``model``, for axis labels."""
    if isinstance(scoring, str):
        return scoring
    if scoring is not None:
        metric = getattr(scoring, "_score_func", scoring)
        return getattr(metric, "__name__", type(metric).__name__)
    final = model[-1] if isinstance(model, Pipeline) else model
    if is_classifier(final):
        return "accuracy"
    if is_regressor(final):
        return "R2"
    if hasattr(final, "tasks"):
        return "mean of the task scores"
    return "score"


def modality_importance(
    estimator, X, y, *, scoring=None, n_repeats=5, random_state=None
):
    """Permutation importance of each modality of a fitted multimodal model.

    For each modality, the rows of its block are shuffled, all its columns
    together, while the other modalities are left as they are; the
    importance is the score of the model on the original data minus its
    score on the shuffled data, over ``n_repeats`` shuffles. A modality the
    model ignores scores about 0; the more the model relies on a modality,
    the larger its importance. Shuffling a whole modality, rather than one
    column at a time, measures what the modality brings as a whole, even when
    its columns are redundant with each other.

    The input goes through the MultimodalFusion once: the shuffles are made
    on its modality blocks, and only the model after it is scored again.

    Parameters
    ----------
    estimator : estimator object
        A fitted :class:`~sklearn.pipeline.Pipeline` whose first step is a
        :class:`~skmm.MultimodalFusion` (with ``output="blocks"``), followed by
        any model: a fusion estimator or a classic one. Or an estimator fitted
        on the :class:`~skmm.ModalityBlocks` of a MultimodalFusion, ``X`` then
        being such blocks.
    X : DataFrame, array-like or ModalityBlocks
        Data on which the importances are computed, usually held out: the
        pipeline's input, or modality blocks.
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Targets of ``X``.
    scoring : str, callable or None, default=None
        Scorer, as in :func:`~sklearn.model_selection.cross_val_score`;
        ``None`` uses the model's ``score`` method. Greater must be better.
    n_repeats : int, default=5
        Number of shuffles of each modality.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffles. Every modality is shuffled with the same
        permutations, so that their importances differ by what the
        modalities bring, not by the draws.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        importances_mean : Series of shape (n_modalities,)
            Mean importance of each modality, indexed by modality name.
        importances_std : Series of shape (n_modalities,)
            Standard deviation of the importance over the repeats.
        importances : DataFrame of shape (n_modalities, n_repeats)
            The importance of each modality for each shuffle.
        baseline_score : float
            Score of the model on the unshuffled data.
        scoring : str
            The name of the score: ``scoring`` when it is a name, the name
            of the metric of a callable scorer, or what the model's
            ``score`` method computes (``"accuracy"``, ``"R2"``, or
            ``"mean of the task scores"`` for a multi-task model).
        gate_mean : Series of shape (n_modalities,)
            Only when the final estimator uses ``fusion="gated"``: the mean
            over the rows of ``X`` of each modality's gate (see
            ``gate_values``), how much the modality contributes to the fused
            representation.
        gate_std : Series of shape (n_modalities,)
            Only with ``fusion="gated"``: the standard deviation of the gates
            over the rows.

    See Also
    --------
    ModalityImportanceDisplay : Plot the importances.
    sklearn.inspection.permutation_importance : The same, column by column.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import MultimodalFusion
    >>> from skmm.inspection import modality_importance
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    >>> y = (X["a"] + X["b"] > 0).astype(int)
    >>> fusion = MultimodalFusion([("signal", StandardScaler(), ["a", "b"]),
    ...                            ("noise", StandardScaler(), ["c", "d"])])
    >>> model = make_pipeline(fusion, LogisticRegression()).fit(X, y)
    >>> result = modality_importance(model, X, y, n_repeats=3, random_state=0)
    >>> (result.importances_mean > 0.2).to_dict()
    {'signal': True, 'noise': False}
    >>> result.importances.shape
    (2, 3)
    """
    if (
        not isinstance(n_repeats, Integral)
        or isinstance(n_repeats, bool)
        or n_repeats < 1
    ):
        raise ValueError(f"n_repeats must be a positive int, got {n_repeats!r}.")
    if not (scoring is None or isinstance(scoring, str) or callable(scoring)):
        raise TypeError(
            "scoring must be None, a scorer name or a callable scorer(estimator, "
            f"X, y), got {type(scoring).__name__}."
        )
    blocks, model = _blocks_and_model(estimator, X)
    if len(y) != len(blocks):
        raise ValueError(f"X has {len(blocks)} rows but y has {len(y)}.")
    scorer = check_scoring(model, scoring=scoring)
    baseline = float(scorer(model, blocks, y))

    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    names = blocks.names
    importances = np.empty((len(names), n_repeats))
    for m, name in enumerate(names):
        rng = np.random.RandomState(seed)
        for r in range(n_repeats):
            order = rng.permutation(len(blocks))
            shuffled = ModalityBlocks(
                {
                    key: block[order] if key == name else block
                    for key, block in blocks.items()
                },
                blocks.specs,
            )
            importances[m, r] = baseline - float(scorer(model, shuffled, y))

    index = pd.Index(names, name="modality")
    importances = pd.DataFrame(
        importances, index=index, columns=pd.RangeIndex(n_repeats, name="repeat")
    )
    result = Bunch(
        importances_mean=importances.mean(axis=1).rename("importance_mean"),
        importances_std=importances.std(axis=1, ddof=0).rename("importance_std"),
        importances=importances,
        baseline_score=baseline,
        scoring=_scoring_name(model, scoring),
    )
    gates = _gate_statistics(model, blocks)
    if gates is not None:
        mean, std = gates
        result.gate_mean = mean.rename_axis("modality").rename("gate_mean")
        result.gate_std = std.rename_axis("modality").rename("gate_std")
    return result


class ModalityImportanceDisplay:
    """Modality importance visualization: one horizontal bar per modality.

    Each bar is the mean importance of a modality over the repeats (see
    :func:`modality_importance`), its error bar the standard deviation, the
    most important modality on top. Create it with :meth:`from_estimator` or
    :meth:`from_result`; all parameters are stored as attributes.

    Parameters
    ----------
    importances : DataFrame of shape (n_modalities, n_repeats)
        The importance of each modality (index) for each repeat (columns).
    baseline_score : float, default=None
        Score of the model on the unshuffled data, shown in the axis label.
    scoring : str, default=None
        Name of the score, shown in the axis label (``"score"`` when
        ``None``).

    Attributes
    ----------
    bars_ : matplotlib.container.BarContainer
        The bars, one per modality, from the least to the most important.
    ax_ : matplotlib.axes.Axes
        Axes with the bars.
    figure_ : matplotlib.figure.Figure
        Figure containing the bars.

    See Also
    --------
    modality_importance : Compute the importances.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import MultimodalFusion
    >>> from skmm.inspection import ModalityImportanceDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    >>> y = (X["a"] + X["b"] > 0).astype(int)
    >>> fusion = MultimodalFusion([("signal", StandardScaler(), ["a", "b"]),
    ...                            ("noise", StandardScaler(), ["c", "d"])])
    >>> model = make_pipeline(fusion, LogisticRegression()).fit(X, y)
    >>> display = ModalityImportanceDisplay.from_estimator(
    ...     model, X, y, n_repeats=3, random_state=0)
    >>> [label.get_text() for label in display.ax_.get_yticklabels()]
    ['noise', 'signal']
    """

    def __init__(self, importances, *, baseline_score=None, scoring=None):
        self.importances = importances
        self.baseline_score = baseline_score
        self.scoring = scoring

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        scoring=None,
        n_repeats=5,
        random_state=None,
        ax=None,
    ):
        """Compute the modality importances of a fitted model and plot them.

        Parameters
        ----------
        estimator : estimator object
            A fitted pipeline starting with a MultimodalFusion, or an
            estimator fitted on modality blocks; see
            :func:`modality_importance`.
        X : DataFrame, array-like or ModalityBlocks
            Data on which the importances are computed.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets of ``X``.
        scoring : str, callable or None, default=None
            Scorer; ``None`` uses the model's ``score`` method.
        n_repeats : int, default=5
            Number of shuffles of each modality.
        random_state : int, RandomState instance or None, default=None
            Seeds the shuffles.
        ax : matplotlib Axes, default=None
            Axes to plot on; ``None`` creates a figure.

        Returns
        -------
        display : ModalityImportanceDisplay
        """
        result = modality_importance(
            estimator,
            X,
            y,
            scoring=scoring,
            n_repeats=n_repeats,
            random_state=random_state,
        )
        return cls.from_result(result, ax=ax)

    @classmethod
    def from_result(cls, result, *, ax=None):
        """Plot the output of :func:`modality_importance`.

        Parameters
        ----------
        result : Bunch
            What :func:`modality_importance` returned.
        ax : matplotlib Axes, default=None
            Axes to plot on; ``None`` creates a figure.

        Returns
        -------
        display : ModalityImportanceDisplay
        """
        display = cls(
            result.importances,
            baseline_score=result.baseline_score,
            scoring=result.get("scoring"),
        )
        return display.plot(ax=ax)

    def plot(self, ax=None):
        """Plot the importances as horizontal bars with error bars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; ``None`` creates a figure.

        Returns
        -------
        display : ModalityImportanceDisplay
            ``self``, with ``bars_``, ``ax_`` and ``figure_`` set.
        """
        plt = _pyplot(type(self).__name__)
        importances = pd.DataFrame(self.importances)
        mean = importances.mean(axis=1).sort_values()
        std = importances.std(axis=1, ddof=0)[mean.index]
        if ax is None:
            _, ax = plt.subplots()
        self.bars_ = ax.barh(
            np.arange(len(mean)),
            mean.to_numpy(),
            xerr=std.to_numpy(),
            tick_label=[str(name) for name in mean.index],
            capsize=3,
        )
        ax.axvline(0, color="black", linewidth=0.8)
        metric = self.scoring or "score"
        label = f"Decrease in {metric} when the modality is shuffled"
        if self.baseline_score is not None:
            label += f"\n(baseline {metric} {self.baseline_score:.3f})"
        ax.set_xlabel(label)
        ax.set_ylabel("Modality")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

"""Plots of fitted fusion models: training curves and per-modality gates.

Displays in the manner of scikit-learn's: a class method builds the display
from a fitted estimator and plots it; :meth:`plot` draws it again on other
axes. matplotlib is imported when a plot is drawn, not with skmm.
"""

import numbers

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from skmm._estimators import _BaseFusionEstimator
from skmm.inspection import _pyplot, gate_values

__all__ = ["GateValuesDisplay", "TrainingHistoryDisplay"]

# Keys of a skorch history row that are not a per-epoch score.
_NOT_SCORES = {
    "epoch",
    "dur",
    "batches",
    "train_loss",
    "valid_loss",
    "train_batch_count",
    "valid_batch_count",
}


def _final_estimator(estimator):
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _is_score(key, value):
    return (
        key not in _NOT_SCORES
        and not key.endswith("_best")
        and not key.startswith("event_")
        and isinstance(value, numbers.Real)
        and not isinstance(value, bool)
    )


def _history_frame(history):
    """The per-epoch numbers of a skorch history, one row per epoch."""
    rows = [
        {key: value for key, value in row.items() if isinstance(value, numbers.Real)}
        for row in history
    ]
    frame = pd.DataFrame(rows)
    if "epoch" not in frame:
        frame["epoch"] = np.arange(1, len(frame) + 1)
    return frame.set_index("epoch")


class TrainingHistoryDisplay:
    """Training curves of a fusion estimator: loss and scores per epoch.

    The training loss and, when a validation split was held out, the
    validation loss are drawn against the epoch on the left axis; every
    per-epoch score in the history (the columns recorded by skorch's
    ``EpochScoring`` callbacks, under their ``name``) on a second axis on
    the right. A dashed vertical line marks the epoch whose weights the
    model kept (``best_epoch_``: the lowest validation loss under early
    stopping). Create it with :meth:`from_estimator`; all parameters are
    stored as attributes.

    Parameters
    ----------
    history : list of dict or skorch History
        One dict per epoch, as in ``net_.history`` of a fitted fusion
        estimator.
    best_epoch : int, default=None
        The epoch to mark, counted from 1; ``None`` marks none.
    estimator_name : str, default=None
        Shown in the title.

    Attributes
    ----------
    lines_ : dict of str to matplotlib.lines.Line2D
        One line per curve, keyed by its name in the history
        (``"train_loss"``, ``"valid_loss"``, then the scores).
    best_epoch_line_ : matplotlib.lines.Line2D or None
        The vertical line at ``best_epoch``.
    ax_ : matplotlib.axes.Axes
        Axes with the losses.
    score_ax_ : matplotlib.axes.Axes or None
        Axes with the scores, sharing the epoch axis; ``None`` when the
        history holds no score.
    figure_ : matplotlib.figure.Figure
        Figure containing the curves.

    See Also
    --------
    GateValuesDisplay : The gates of a model with ``fusion="gated"``.

    Examples
    --------
    >>> import numpy as np
    >>> from skorch.callbacks import EpochScoring
    >>> from skmm import FusionClassifier
    >>> from skmm.display import TrainingHistoryDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = FusionClassifier(
    ...     hidden_dim=8, max_epochs=5, early_stopping=True, random_state=0,
    ...     callbacks=[EpochScoring("accuracy", lower_is_better=False)],
    ... ).fit(X, y)
    >>> display = TrainingHistoryDisplay.from_estimator(clf)
    >>> list(display.lines_)
    ['train_loss', 'valid_loss', 'accuracy']
    >>> display.best_epoch_line_.get_xdata()[0] == clf.best_epoch_
    True
    """

    def __init__(self, history, *, best_epoch=None, estimator_name=None):
        self.history = history
        self.best_epoch = best_epoch
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Plot the training history of a fitted fusion estimator.

        Parameters
        ----------
        estimator : estimator object
            A fitted :class:`~skmm.FusionClassifier`,
            :class:`~skmm.FusionRegressor` or :class:`~skmm.FusionMultiTask`,
            or a fitted pipeline ending with one.
        ax : matplotlib Axes, default=None
            Axes to plot on; ``None`` creates a figure.

        Returns
        -------
        display : TrainingHistoryDisplay
        """
        final = _final_estimator(estimator)
        if not isinstance(final, _BaseFusionEstimator):
            raise TypeError(
                "TrainingHistoryDisplay needs a fusion estimator (or a pipeline "
                "ending with one), whose net_.history records the epochs; got "
                f"{type(final).__name__}."
            )
        check_is_fitted(final, "net_")
        display = cls(
            list(final.net_.history),
            best_epoch=getattr(final, "best_epoch_", None),
            estimator_name=type(final).__name__,
        )
        return display.plot(ax=ax)

    def plot(self, ax=None):
        """Plot the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; ``None`` creates a figure.

        Returns
        -------
        display : TrainingHistoryDisplay
            ``self``, with ``lines_``, ``best_epoch_line_``, ``ax_``,
            ``score_ax_`` and ``figure_`` set.
        """
        plt = _pyplot(type(self).__name__)
        frame = _history_frame(self.history)
        if ax is None:
            _, ax = plt.subplots()
        self.lines_ = {}
        for name in ("train_loss", "valid_loss"):
            if name in frame and frame[name].notna().any():
                (self.lines_[name],) = ax.plot(
                    frame.index, frame[name], marker=".", label=name
                )
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Loss")

        scores = [
            key
            for key in frame.columns
            if any(_is_score(key, row.get(key)) for row in self.history)
        ]
        self.score_ax_ = None
        if scores:
            self.score_ax_ = ax.twinx()
            # Scores continue the colour cycle of the losses.
            colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
            for i, key in enumerate(scores, start=len(self.lines_)):
                (self.lines_[key],) = self.score_ax_.plot(
                    frame.index,
                    frame[key],
                    marker=".",
                    linestyle="--",
                    color=colours[i % len(colours)],
                    label=key,
                )
            self.score_ax_.set_ylabel("Score")

        self.best_epoch_line_ = None
        if self.best_epoch is not None:
            self.best_epoch_line_ = ax.axvline(
                self.best_epoch,
                color="grey",
                linestyle=":",
                label=f"kept epoch ({self.best_epoch})",
            )
        handles = [*self.lines_.values()]
        if self.best_epoch_line_ is not None:
            handles.append(self.best_epoch_line_)
        ax.legend(handles=handles, loc="best")
        if self.estimator_name:
            ax.set_title(f"Training history of {self.estimator_name}")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self


class GateValuesDisplay:
    """Per-modality gate values of a model with ``fusion="gated"``.

    The gated multimodal unit weighs each modality's contribution to the
    fused representation, row by row (see ``gate_values`` of the fusion
    estimators). The display draws, for each modality, the distribution of
    its gate over the rows given: a box per modality (``kind="box"``), or a
    bar at the mean with the standard deviation as error bar
    (``kind="bar"``). Create it with :meth:`from_estimator`; all parameters
    are stored as attributes.

    Parameters
    ----------
    gate_values : DataFrame of shape (n_samples, n_modalities)
        The gates, one column per modality, as returned by ``gate_values``.
    kind : {"box", "bar"}, default="box"
        How the gates of each modality are summarised.

    Attributes
    ----------
    artists_ : dict or matplotlib.container.BarContainer
        What matplotlib drew: the dict of ``Axes.boxplot`` for
        ``kind="box"``, the bars for ``kind="bar"``.
    ax_ : matplotlib.axes.Axes
        Axes with the plot.
    figure_ : matplotlib.figure.Figure
        Figure containing the plot.

    See Also
    --------
    skmm.inspection.modality_importance : How much the score drops without
        each modality.
    TrainingHistoryDisplay : The training curves.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import FusionClassifier, MultimodalFusion
    >>> from skmm.display import GateValuesDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame(rng.normal(size=(100, 4)), columns=["a", "b", "c", "d"])
    >>> y = (X["a"] > 0).astype(int)
    >>> fusion = MultimodalFusion([("signal", StandardScaler(), ["a", "b"]),
    ...                            ("noise", StandardScaler(), ["c", "d"])])
    >>> model = make_pipeline(fusion, FusionClassifier(
    ...     fusion="gated", hidden_dim=8, max_epochs=5, random_state=0)).fit(X, y)
    >>> display = GateValuesDisplay.from_estimator(model, X)
    >>> [label.get_text() for label in display.ax_.get_xticklabels()]
    ['signal', 'noise']
    """

    def __init__(self, gate_values, *, kind="box"):
        self.gate_values = gate_values
        self.kind = kind

    @classmethod
    def from_estimator(cls, estimator, X, *, kind="box", ax=None):
        """Compute the gates of a fitted gated model on ``X`` and plot them.

        Parameters
        ----------
        estimator : estimator object
            A fitted pipeline whose first step is a
            :class:`~skmm.MultimodalFusion` and whose last is a fusion
            estimator with ``fusion="gated"``; or such an estimator fitted
            on modality blocks, ``X`` then being those blocks.
        X : DataFrame, array-like or ModalityBlocks
            The rows whose gates are plotted.
        kind : {"box", "bar"}, default="box"
            How the gates of each modality are summarised.
        ax : matplotlib Axes, default=None
            Axes to plot on; ``None`` creates a figure.

        Returns
        -------
        display : GateValuesDisplay
        """
        final = _final_estimator(estimator)
        if not hasattr(final, "gate_values"):
            raise TypeError(
                "GateValuesDisplay needs a fusion estimator (or a pipeline ending "
                f"with one); got {type(final).__name__}, which has no gate_values."
            )
        if getattr(final, "fusion", None) != "gated":
            raise ValueError(
                "GateValuesDisplay needs a model with fusion='gated'; this one "
                f"uses fusion={getattr(final, 'fusion', None)!r}."
            )
        display = cls(gate_values(estimator, X), kind=kind)
        return display.plot(ax=ax)

    def plot(self, ax=None):
        """Plot the gates of each modality.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; ``None`` creates a figure.

        Returns
        -------
        display : GateValuesDisplay
            ``self``, with ``artists_``, ``ax_`` and ``figure_`` set.
        """
        if self.kind not in ("box", "bar"):
            raise ValueError(f"kind must be 'box' or 'bar', got {self.kind!r}.")
        plt = _pyplot(type(self).__name__)
        gates = pd.DataFrame(self.gate_values)
        names = [str(name) for name in gates.columns]
        positions = np.arange(1, len(names) + 1)
        if ax is None:
            _, ax = plt.subplots()
        if self.kind == "box":
            self.artists_ = ax.boxplot(
                [gates[column].to_numpy() for column in gates.columns],
                positions=positions,
            )
            ax.set_xticks(positions, names)
        else:
            self.artists_ = ax.bar(
                positions,
                gates.mean(axis=0).to_numpy(),
                yerr=gates.std(axis=0, ddof=0).to_numpy(),
                tick_label=names,
                capsize=3,
            )
        ax.set_ylim(0, 1)
        ax.set_xlabel("Modality")
        ax.set_ylabel("Gate value (mean over hidden units)")
        ax.set_title(f"GMU gates over {len(gates)} rows")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import make_scorer, mean_absolute_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import EpochScoring

from skmm import FusionClassifier, FusionRegressor, MultimodalFusion
from skmm.display import GateValuesDisplay, TrainingHistoryDisplay
from skmm.inspection import ModalityImportanceDisplay

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

FAST = dict(hidden_dim=8, batch_size=16, lr=1e-2, device="cpu", random_state=0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    """Two modalities of two columns each; only "signal" carries the label."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(160, 4)), columns=["a", "b", "c", "d"])
    y = np.where(X["a"] - X["b"] > 0, "yes", "no")
    return X, y


def _fusion():
    return MultimodalFusion(
        [
            ("signal", StandardScaler(), ["a", "b"]),
            ("noise", StandardScaler(), ["c", "d"]),
        ]
    )


@pytest.fixture(scope="module")
def scored_model(data):
    """Early stopping with patience 3 over 25 epochs, and an accuracy per epoch."""
    X, y = data
    clf = FusionClassifier(
        **FAST,
        max_epochs=25,
        early_stopping=3,
        callbacks=[EpochScoring("accuracy", lower_is_better=False, name="valid_acc")],
    )
    return make_pipeline(_fusion(), clf).fit(X, y)


@pytest.fixture(scope="module")
def gated_model(data):
    X, y = data
    clf = FusionClassifier(**FAST, fusion="gated", max_epochs=10)
    return make_pipeline(_fusion(), clf).fit(X, y)


# -- TrainingHistoryDisplay ------------------------------------------------------


def test_history_draws_losses_scores_and_the_kept_epoch(scored_model):
    clf = scored_model[-1]
    display = TrainingHistoryDisplay.from_estimator(scored_model)
    history = clf.net_.history

    assert list(display.lines_) == ["train_loss", "valid_loss", "valid_acc"]
    epochs = np.arange(1, clf.n_iter_ + 1)
    for name, line in display.lines_.items():
        np.testing.assert_array_equal(line.get_xdata(), epochs)
        np.testing.assert_allclose(line.get_ydata(), history[:, name])
    # Losses on the left axis, the score on its own axis on the right.
    assert display.lines_["train_loss"].axes is display.ax_
    assert display.lines_["valid_acc"].axes is display.score_ax_
    assert display.score_ax_.get_ylabel() == "Score"
    assert display.ax_.get_ylabel() == "Loss"
    assert display.ax_.get_xlabel() == "Epoch"
    # Early stopping kept an earlier epoch than the last one run.
    assert clf.best_epoch_ < clf.n_iter_
    assert display.best_epoch_line_.get_xdata()[0] == clf.best_epoch_
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert legend[-1] == f"kept epoch ({clf.best_epoch_})"
    assert display.figure_ is display.ax_.figure


def test_history_without_validation_has_one_loss_and_no_score_axis(data):
    X, y = data
    clf = FusionRegressor(**FAST, max_epochs=4, early_stopping=False).fit(
        X.to_numpy(), X["a"].to_numpy()
    )
    _, ax = plt.subplots()
    display = TrainingHistoryDisplay.from_estimator(clf, ax=ax)

    assert display.ax_ is ax
    assert list(display.lines_) == ["train_loss"]
    assert display.score_ax_ is None
    assert display.best_epoch_line_.get_xdata()[0] == clf.best_epoch_ == 4


def test_history_plot_draws_again_on_other_axes(scored_model):
    display = TrainingHistoryDisplay.from_estimator(scored_model)
    first_ax = display.ax_
    _, ax = plt.subplots()

    assert display.plot(ax=ax) is display
    assert display.ax_ is ax is not first_ax
    assert len(ax.get_lines()) == 3  # two losses and the kept epoch


def test_history_needs_a_fitted_fusion_estimator(data):
    from sklearn.exceptions import NotFittedError

    X, y = data
    with pytest.raises(TypeError, match="fusion estimator"):
        TrainingHistoryDisplay.from_estimator(LogisticRegression().fit(X, y))
    with pytest.raises(NotFittedError):
        TrainingHistoryDisplay.from_estimator(FusionClassifier())


# -- GateValuesDisplay -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["box", "bar"])
def test_gate_display_summarises_each_modality(gated_model, data, kind):
    X, _ = data
    display = GateValuesDisplay.from_estimator(gated_model, X, kind=kind)
    gates = gated_model[-1].gate_values(gated_model[0].transform(X))

    pd.testing.assert_frame_equal(display.gate_values, gates)
    labels = [label.get_text() for label in display.ax_.get_xticklabels()]
    assert labels == ["signal", "noise"]
    assert display.ax_.get_ylim() == (0, 1)
    assert "Gate value" in display.ax_.get_ylabel()
    if kind == "box":
        medians = [line.get_ydata()[0] for line in display.artists_["medians"]]
        np.testing.assert_allclose(medians, gates.median(axis=0), rtol=1e-6)
    else:
        heights = [bar.get_height() for bar in display.artists_.patches]
        np.testing.assert_allclose(heights, gates.mean(axis=0), rtol=1e-6)


def test_gate_display_takes_blocks_with_the_fusion_estimator(gated_model, data):
    X, _ = data
    blocks = gated_model[0].transform(X)
    display = GateValuesDisplay.from_estimator(gated_model[-1], blocks)

    assert display.gate_values.shape == (len(X), 2)


def test_gate_display_needs_a_gated_model(scored_model, data):
    X, y = data
    with pytest.raises(ValueError, match="fusion='gated'"):
        GateValuesDisplay.from_estimator(scored_model, X)
    with pytest.raises(TypeError, match="gate_values"):
        GateValuesDisplay.from_estimator(
            make_pipeline(_fusion(), LogisticRegression()).fit(X, y), X
        )
    with pytest.raises(ValueError, match="kind"):
        GateValuesDisplay(pd.DataFrame({"a": [0.5]}), kind="violin").plot()


# -- ModalityImportanceDisplay names its metric ----------------------------------


@pytest.mark.parametrize(
    "model, scoring, metric",
    [
        (LogisticRegression(), None, "accuracy"),
        (LogisticRegression(), "balanced_accuracy", "balanced_accuracy"),
        (Ridge(), None, "R2"),
        (
            Ridge(),
            make_scorer(mean_absolute_error, greater_is_better=False),
            "mean_absolute_error",
        ),
    ],
)
def test_importance_axis_names_the_metric(data, model, scoring, metric):
    X, y = data
    target = y if isinstance(model, LogisticRegression) else X["a"].to_numpy()
    pipeline = make_pipeline(_fusion(), model).fit(X, target)
    display = ModalityImportanceDisplay.from_estimator(
        pipeline, X, target, scoring=scoring, n_repeats=2, random_state=0
    )

    label = display.ax_.get_xlabel()
    assert f"Decrease in {metric} when the modality is shuffled" in label
    assert f"baseline {metric} " in label

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import FusionClassifier, MultimodalFusion
from skmm.inspection import (
    ModalityImportanceDisplay,
    gate_values,
    modality_importance,
    represent,
)

FAST = dict(hidden_dim=8, max_epochs=15, lr=1e-2, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    """Two modalities of two columns each; only "signal" carries the label."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(240, 4)), columns=["a", "b", "c", "d"])
    y = np.where(X["a"] - X["b"] > 0, "yes", "no")
    return X, y


def _fusion():
    return MultimodalFusion(
        [
            ("signal", StandardScaler(), ["a", "b"]),
            ("noise", StandardScaler(), ["c", "d"]),
        ]
    )


@pytest.fixture(scope="module", params=["concat", "gated"])
def fusion_model(request, data):
    X, y = data
    return make_pipeline(_fusion(), FusionClassifier(fusion=request.param, **FAST)).fit(
        X, y
    )


def test_the_informative_modality_is_the_important_one(fusion_model, data):
    X, y = data
    result = modality_importance(fusion_model, X, y, n_repeats=4, random_state=0)

    assert list(result.importances_mean.index) == ["signal", "noise"]
    assert result.importances_mean["signal"] > 0.2
    assert abs(result.importances_mean["noise"]) < 0.05
    assert result.baseline_score == pytest.approx(fusion_model.score(X, y))
    assert result.importances.shape == (2, 4)
    np.testing.assert_allclose(result.importances_mean, result.importances.mean(axis=1))
    np.testing.assert_allclose(
        result.importances_std, result.importances.std(axis=1, ddof=0)
    )


class _ScoreRecorder(BaseEstimator):
    """Scores 0 and keeps the blocks it was scored on."""

    def fit(self, X, y):
        self.seen_ = []
        return self

    def score(self, X, y):
        self.seen_.append(X)
        return 0.0


def test_a_modality_is_shuffled_as_a_whole(data):
    X, y = data
    blocks = _fusion().fit_transform(X)
    recorder = _ScoreRecorder().fit(blocks, y)
    modality_importance(recorder, blocks, y, n_repeats=2, random_state=0)

    baseline, *shuffled = recorder.seen_
    assert len(shuffled) == 4  # 2 modalities x 2 repeats
    for i, seen in enumerate(shuffled):
        moved, kept = ("signal", "noise") if i < 2 else ("noise", "signal")
        np.testing.assert_array_equal(seen[kept], blocks[kept])
        # The rows of the shuffled block are whole rows of the original one:
        # all its columns follow one permutation.
        order = np.argsort(seen[moved][:, 0])
        original = np.argsort(blocks[moved][:, 0])
        np.testing.assert_array_equal(seen[moved][order], blocks[moved][original])
        assert not np.array_equal(seen[moved], blocks[moved])


def test_estimator_fitted_on_blocks_gives_the_pipeline_importances(data):
    X, y = data
    model = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)
    result = modality_importance(model, X, y, n_repeats=3, random_state=0)
    blocks = model[0].transform(X)
    same = modality_importance(model[-1], blocks, y, n_repeats=3, random_state=0)

    assert result.importances_mean["signal"] > 0.3
    assert result.importances_mean["noise"] == pytest.approx(0, abs=0.03)
    pd.testing.assert_frame_equal(same.importances, result.importances)


def test_repeats_and_random_state(data):
    X, y = data
    model = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)
    first = modality_importance(model, X, y, n_repeats=2, random_state=3)
    again = modality_importance(model, X, y, n_repeats=2, random_state=3)
    other = modality_importance(model, X, y, n_repeats=2, random_state=4)

    assert first.importances.shape == (2, 2)
    pd.testing.assert_frame_equal(first.importances, again.importances)
    assert not first.importances.equals(other.importances)


def test_scoring_is_used(data):
    X, y = data
    model = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)
    result = modality_importance(
        model, X, y, scoring="neg_log_loss", n_repeats=2, random_state=0
    )

    assert result.baseline_score < 0
    assert result.importances_mean["signal"] > 0.3


def test_gate_statistics_only_for_gated_fusion(fusion_model, data):
    X, y = data
    result = modality_importance(fusion_model, X, y, n_repeats=1, random_state=0)

    if fusion_model[-1].fusion == "gated":
        gates = fusion_model[-1].gate_values(fusion_model[0].transform(X))
        pd.testing.assert_series_equal(
            result.gate_mean, gates.mean().rename_axis("modality"), check_names=False
        )
        assert list(result.gate_std.index) == ["signal", "noise"]
        assert (result.gate_std >= 0).all()
    else:
        assert "gate_mean" not in result and "gate_std" not in result


def test_bad_input_is_a_clear_error(data):
    X, y = data
    model = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="n_repeats must be a positive int"):
        modality_importance(model, X, y, n_repeats=0)
    with pytest.raises(TypeError, match="scoring must be"):
        modality_importance(model, X, y, scoring=["accuracy"])
    with pytest.raises(TypeError, match="first step is a MultimodalFusion"):
        scaled = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        modality_importance(scaled, X, y)
    with pytest.raises(TypeError, match="ModalityBlocks"):
        modality_importance(model[-1], X.to_numpy(), y)
    with pytest.raises(ValueError, match="output='blocks'"):
        flat = make_pipeline(
            _fusion().set_params(output="flat"), LogisticRegression()
        ).fit(X, y)
        modality_importance(flat, X, y)
    with pytest.raises(ValueError, match="rows but y has"):
        modality_importance(model, X, y[:-1])


def test_display_draws_a_bar_per_modality(data):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = data
    model = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)
    display = ModalityImportanceDisplay.from_estimator(
        model, X, y, n_repeats=3, random_state=0
    )
    result = modality_importance(model, X, y, n_repeats=3, random_state=0)

    assert len(display.bars_.patches) == 2
    labels = [label.get_text() for label in display.ax_.get_yticklabels()]
    assert labels == ["noise", "signal"]  # most important on top
    widths = [bar.get_width() for bar in display.bars_.patches]
    np.testing.assert_allclose(widths, result.importances_mean[labels])
    assert display.figure_ is display.ax_.figure

    _, ax = plt.subplots()
    from_result = ModalityImportanceDisplay.from_result(result, ax=ax)
    assert from_result.ax_ is ax
    assert "Decrease in accuracy" in ax.get_xlabel()
    assert "baseline accuracy" in ax.get_xlabel()
    plt.close("all")


def test_represent_and_gate_values_from_a_fitted_pipeline(fusion_model, data):
    X, _ = data
    blocks = fusion_model[0].transform(X)
    final = fusion_model[-1]

    np.testing.assert_allclose(represent(fusion_model, X), final.represent(blocks))
    np.testing.assert_allclose(represent(final, blocks), final.represent(blocks))
    row = X.iloc[3].to_dict()
    np.testing.assert_allclose(
        represent(fusion_model, row)[0], final.represent(blocks)[3], rtol=1e-5
    )
    if final.fusion == "gated":
        gates = gate_values(fusion_model, X)
        pd.testing.assert_frame_equal(gates, final.gate_values(blocks))
        assert list(gates.columns) == ["signal", "noise"]
        rows = [X.iloc[0].to_dict(), X.iloc[1].to_dict()]
        assert gate_values(fusion_model, rows).shape == (2, 2)
    else:
        with pytest.raises(ValueError, match="needs fusion='gated'"):
            gate_values(fusion_model, X)


def test_represent_needs_a_fusion_estimator_at_the_end(data):
    X, y = data
    classic = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)

    with pytest.raises(TypeError, match="last step LogisticRegression"):
        represent(classic, X)
    with pytest.raises(TypeError, match="got LogisticRegression"):
        gate_values(LogisticRegression(), X)

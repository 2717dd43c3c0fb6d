"""The per-task scorer and the modality robustness scorer."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    get_scorer,
    mean_absolute_error,
    roc_auc_score,
)
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import (
    FusionClassifier,
    FusionMultiTask,
    ModalityBlocks,
    MultimodalFusion,
    TfidfTextEncoder,
)
from skmm.metrics import modality_robustness_scorer, task_scorer

TASKS = {"label": "classification", "value": "regression"}
FAST = dict(hidden_dim=16, max_epochs=30, batch_size=32, lr=1e-2, device="cpu")


@pytest.fixture(scope="module")
def two_tasks():
    # The label comes from modality a, the value from modality b.
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(240, 4)), columns=["a0", "a1", "b0", "b1"])
    Y = pd.DataFrame(
        {
            "label": (X["a0"] - X["a1"] > 0).astype(int),
            "value": 2 * X["b0"] + 0.1 * rng.normal(size=240),
        }
    )
    return X, Y


def _fusion(**params):
    return MultimodalFusion(
        [
            ("a", StandardScaler(), ["a0", "a1"]),
            ("b", StandardScaler(), ["b0", "b1"]),
        ],
        **params,
    )


@pytest.fixture(scope="module")
def fitted(two_tasks):
    X, Y = two_tasks
    return make_pipeline(
        _fusion(), FusionMultiTask(tasks=TASKS, **FAST, random_state=0)
    ).fit(X, Y)


def test_task_scorer_scores_the_predictions_of_its_task(fitted, two_tasks):
    X, Y = two_tasks
    pred = fitted.predict(X)
    proba = fitted.predict_proba(X)["label"]
    assert task_scorer("label", "accuracy")(fitted, X, Y) == pytest.approx(
        accuracy_score(Y["label"], pred["label"])
    )
    assert task_scorer("label", "roc_auc")(fitted, X, Y) == pytest.approx(
        roc_auc_score(Y["label"], proba[:, 1])
    )
    assert task_scorer("value", "neg_mean_absolute_error")(
        fitted, X, Y
    ) == pytest.approx(-mean_absolute_error(Y["value"], pred["value"]))


def test_task_scorer_reads_an_array_target_in_task_order(fitted, two_tasks):
    X, Y = two_tasks
    for task, scoring in [("label", "accuracy"), ("value", "r2")]:
        scorer = task_scorer(task, scoring)
        assert scorer(fitted, X, Y.to_numpy()) == pytest.approx(scorer(fitted, X, Y))
    # Columns are found by name in a DataFrame, whatever their order.
    scorer = task_scorer("value", "r2")
    assert scorer(fitted, X, Y[["value", "label"]]) == pytest.approx(
        scorer(fitted, X, Y)
    )


def test_task_scorer_works_on_a_bare_model_and_passes_sample_weight(two_tasks):
    X, Y = two_tasks
    model = FusionMultiTask(tasks=TASKS, **FAST, random_state=0).fit(X.to_numpy(), Y)
    Xa = X.to_numpy()
    pred = model.predict(Xa)
    assert task_scorer("label", "accuracy")(model, Xa, Y) == pytest.approx(
        accuracy_score(Y["label"], pred["label"])
    )
    error = np.abs(pred["value"].to_numpy() - Y["value"].to_numpy())
    # The worse half of the rows weighs five times more.
    w = np.where(error > np.median(error), 5.0, 1.0)
    scorer = task_scorer("value", "neg_mean_absolute_error")
    weighted = scorer(model, Xa, Y, sample_weight=w)
    assert weighted == pytest.approx(
        -mean_absolute_error(Y["value"], pred["value"], sample_weight=w)
    )
    assert weighted < scorer(model, Xa, Y)


def test_task_scorer_needs_a_multitask_model(two_tasks):
    X, Y = two_tasks
    clf = FusionClassifier(**{**FAST, "max_epochs": 1}).fit(X, Y["label"])
    with pytest.raises(ValueError, match="FusionMultiTask"):
        task_scorer("label", "accuracy")(clf, X, Y)
    assert repr(task_scorer("label", "accuracy")) == "task_scorer('label', 'accuracy')"


def test_removing_a_modality_scores_its_blocks_as_missing(fitted, two_tasks):
    X, Y = two_tasks
    scoring = task_scorer("label", "accuracy")
    blocks = fitted[0].transform(X)
    zeroed = ModalityBlocks(
        {"a": np.zeros_like(blocks["a"]), "b": blocks["b"]}, blocks.specs
    )
    expected = accuracy_score(Y["label"], fitted[1:].predict(zeroed)["label"])
    removed = modality_robustness_scorer("a", scoring=scoring)(fitted, X, Y)
    assert removed == pytest.approx(expected)
    clean = scoring(fitted, X, Y)
    assert clean > 0.9 and removed < 0.75
    # The label does not come from b: without b it is still predicted.
    assert modality_robustness_scorer("b", scoring=scoring)(fitted, X, Y) > 0.8


def test_noise_is_scaled_and_seeded(fitted, two_tasks):
    X, Y = two_tasks
    scoring = task_scorer("value", "neg_mean_squared_error")
    clean = scoring(fitted, X, Y)

    def noisy(**params):
        return modality_robustness_scorer("b", mode="noise", scoring=scoring, **params)(
            fitted, X, Y
        )

    assert noisy(noise_scale=0.0) == pytest.approx(clean)
    assert noisy(random_state=3) == noisy(random_state=3)
    assert noisy(random_state=3) != noisy(random_state=4)
    assert noisy(noise_scale=2.0) < noisy(noise_scale=0.5) < clean


def test_removed_text_scores_as_empty_texts():
    rng = np.random.RandomState(0)
    words = np.array(["good", "bad", "fit", "colour", "dress", "size"])
    texts = [" ".join(rng.choice(words, size=4)) for _ in range(120)]
    y = np.array([int("good" in t) for t in texts])
    X = pd.DataFrame({"text": texts, "n": rng.normal(size=120)})
    model = make_pipeline(
        MultimodalFusion(
            [("text", TfidfTextEncoder(), ["text"]), ("n", StandardScaler(), ["n"])]
        ),
        FusionClassifier(**FAST, random_state=0),
    ).fit(X, y)
    removed = modality_robustness_scorer("text", scoring="neg_log_loss")(model, X, y)
    empty = get_scorer("neg_log_loss")(model, X.assign(text=""), y)
    assert removed == pytest.approx(empty)
    assert removed < get_scorer("neg_log_loss")(model, X, y)


def test_robustness_and_task_scorers_in_cross_validate(two_tasks):
    X, Y = two_tasks
    accuracy = task_scorer("label", "accuracy")
    model = make_pipeline(
        _fusion(), FusionMultiTask(tasks=TASKS, **FAST, random_state=0)
    )
    result = cross_validate(
        model,
        X,
        Y,
        cv=KFold(2),
        scoring={
            "clean": accuracy,
            "without_a": modality_robustness_scorer("a", scoring=accuracy),
        },
    )
    assert result["test_clean"].mean() > 0.85
    assert result["test_without_a"].mean() < result["test_clean"].mean() - 0.15


def test_robustness_scorer_needs_a_pipeline_of_blocks(fitted, two_tasks):
    X, Y = two_tasks
    scorer = modality_robustness_scorer("a")
    with pytest.raises(ValueError, match="pipeline"):
        scorer(fitted[-1], fitted[0].transform(X), Y)
    flat = make_pipeline(
        _fusion(output="flat"), FusionClassifier(**{**FAST, "max_epochs": 1})
    ).fit(X, Y["label"])
    with pytest.raises(ValueError, match="output='blocks'"):
        scorer(flat, X, Y["label"])
    assert "mode='remove'" in repr(scorer)

"""Bad input to the fusion estimators gets an error that names what to fix."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from skmm import FusionClassifier, FusionMultiTask, FusionRegressor, MultimodalFusion

FAST = dict(hidden_dim=8, max_epochs=2, device="cpu", random_state=0)


@pytest.fixture
def frame():
    rng = np.random.RandomState(0)
    return pd.DataFrame(
        {
            "size": rng.choice(["small", "medium", "large"], size=30),
            "x": rng.normal(size=30),
        }
    )


def test_a_string_column_passed_through_names_the_block_row_and_value(frame):
    fusion = MultimodalFusion([("num", "passthrough", ["x"])], remainder="passthrough")
    model = make_pipeline(fusion, FusionClassifier(**FAST))
    with pytest.raises(
        ValueError, match="'remainder'.*not a number: '(small|medium|large)' \\(row 0"
    ):
        model.fit(frame, np.arange(30) % 2)
    encoded = MultimodalFusion(
        [("num", "passthrough", ["x"]), ("size", OneHotEncoder(), ["size"])]
    )
    make_pipeline(encoded, FusionClassifier(**FAST)).fit(frame, np.arange(30) % 2)


def test_a_regression_target_of_strings_names_the_row():
    X = np.random.RandomState(0).normal(size=(4, 2))
    with pytest.raises(ValueError, match="must hold numbers; row 1 holds '\\$1,200'"):
        FusionRegressor(**FAST).fit(
            X, np.array(["10", "$1,200", "3", "4"], dtype=object)
        )


def test_a_missing_class_label_names_the_row():
    X = np.random.RandomState(0).normal(size=(4, 2))
    with pytest.raises(ValueError, match="missing label .* at row 2"):
        FusionClassifier(**FAST).fit(X, np.array(["a", "b", None, "a"], dtype=object))


def test_a_nan_in_one_task_names_the_task():
    X = np.random.RandomState(0).normal(size=(4, 2))
    Y = pd.DataFrame({"label": ["a", "b", "a", "b"], "rating": [1.0, np.nan, 2.0, 3.0]})
    model = FusionMultiTask(
        tasks={"label": "classification", "rating": "regression"}, **FAST
    )
    with pytest.raises(ValueError, match="rating"):
        model.fit(X, Y)
    Y["label"] = ["a", None, "a", "b"]
    Y["rating"] = 1.0
    with pytest.raises(ValueError, match="'label' has a missing label .* at row 1"):
        model.fit(X, Y)


def test_inf_in_a_numeric_block_names_the_modality():
    X = pd.DataFrame({"x": [1.0, np.inf, 2.0, 3.0]})
    model = make_pipeline(
        MultimodalFusion([("amounts", "passthrough", ["x"])]), FusionClassifier(**FAST)
    )
    with pytest.raises(ValueError, match="'amounts' contains NaN or infinity"):
        model.fit(X, [0, 1, 0, 1])


def test_a_missing_value_in_an_object_regression_target_names_the_row():
    X = np.random.RandomState(0).normal(size=(4, 2))
    y = np.array(["1.5", "2.0", np.nan, "3.0"], dtype=object)
    with pytest.raises(ValueError, match="missing or infinite value at row 2"):
        FusionRegressor(**FAST).fit(X, y)


@pytest.mark.parametrize("estimator", [FusionClassifier, FusionRegressor])
def test_a_raw_dataframe_points_to_make_multimodal_pipeline(frame, estimator):
    y = np.arange(len(frame)) % 2

    with pytest.raises(ValueError, match="column 'size'.*make_multimodal_pipeline"):
        estimator(**FAST).fit(frame, y)
    # Numbers only still fit directly.
    estimator(**FAST).fit(frame[["x"]], y)

"""The user story at the top of DESIGN.md, as a user writes it."""

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import (
    CNNImageEncoder,
    FusionClassifier,
    FusionMultiTask,
    MultimodalFusion,
    TfidfTextEncoder,
)
from skmm.datasets import make_multimodal_classification


@pytest.fixture(scope="module")
def df_y():
    X, y = make_multimodal_classification(
        n_samples=240, missing_text=0.1, missing_image=0.1, random_state=0
    )
    rng = np.random.RandomState(0)
    df = pd.DataFrame(
        {
            "title": X["text"].str.split().str[:2].str.join(" "),
            "body": X["text"],
            "photo": X["image"],
            "age": X["num_0"],
            "price": X["num_1"],
            "department": X["category"],
        }
    )
    df.loc[rng.rand(len(df)) < 0.1, "title"] = np.nan
    return df, y


def _fusion():
    return MultimodalFusion(
        [
            ("text", TfidfTextEncoder(max_features=20_000), ["title", "body"]),
            ("image", CNNImageEncoder(image_size=16, max_epochs=0), "photo"),
            ("numeric", StandardScaler(), ["age", "price"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["department"]),
        ]
    )


@pytest.mark.slow
def test_design_user_story(df_y, tmp_path):
    df, y = df_y
    model = make_pipeline(
        _fusion(),
        FusionClassifier(
            fusion="gated", max_epochs=10, hidden_dim=16, device="auto", random_state=0
        ),
    )
    search = GridSearchCV(
        model,
        {"fusionclassifier__fusion": ["concat", "late", "gated", "attention"]},
        cv=3,
    )
    search.fit(df, y)
    scores = cross_val_score(search.best_estimator_, df, y, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.5
    joblib.dump(search.best_estimator_, tmp_path / "model.joblib")
    new_df = df.iloc[:7]
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "model.joblib").predict(new_df),
        search.best_estimator_.predict(new_df),
    )


def test_multitask_user_story(df_y):
    df, y = df_y
    Y = pd.DataFrame({"recommended": y, "rating": df["age"] * 2 + 3})
    model = make_pipeline(
        _fusion(),
        FusionMultiTask(
            tasks={"recommended": "classification", "rating": "regression"},
            fusion="gated",
            max_epochs=5,
            device="cpu",
            random_state=0,
        ),
    )
    model.fit(df, Y)
    pred = model.predict(df.iloc[:5])
    assert list(pred.columns) == ["recommended", "rating"]
    assert model.predict_proba(df.iloc[:5])["recommended"].shape == (5, 2)


def test_classic_estimator_user_story(df_y):
    df, y = df_y
    model = make_pipeline(_fusion(), LogisticRegression(max_iter=500)).fit(df, y)
    assert model.predict(df).shape == (len(df),)

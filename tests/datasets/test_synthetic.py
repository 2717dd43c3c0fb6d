import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from skmm.datasets import make_multimodal_classification, make_multimodal_regression
from skmm.datasets._synthetic import _FILLER_WORDS, _word_pool

MAKERS = [make_multimodal_classification, make_multimodal_regression]


def text_latent(texts, n_values):
    """The value whose word pool dominates each text."""
    pools = [set(_word_pool(value)) for value in range(n_values)]
    counts = [
        [sum(word in pool for word in text.split()) for pool in pools] for text in texts
    ]
    return np.argmax(counts, axis=1)


def bar_profiles(images):
    """Spread of the row and of the column brightness profiles of each image.

    A horizontal bar makes the row profile vary more, a vertical one the
    column profile: an orientation statistic that ignores the bar's position.
    """
    gray = np.stack(images).astype(float).mean(axis=3)
    return np.column_stack(
        [gray.mean(axis=2).std(axis=1), gray.mean(axis=1).std(axis=1)]
    )


def modality_features(X, train):
    """Per-modality features that quick sklearn models can use."""
    text = make_pipeline(TfidfVectorizer(), TruncatedSVD(2, random_state=0))
    text.fit(X["text"].iloc[train])
    return {
        "text": text.transform(X["text"]),
        "image": bar_profiles(X["image"]),
        "tabular": X[["num_0"]].to_numpy(),
    }


def holdout_scores(model, features, y, combinations):
    train, test = train_test_split(np.arange(len(y)), test_size=0.5, random_state=0)
    scores = {}
    # On a few hundred rows OpenMP threads cost more than they save, and on a
    # busy machine they make a sub-second fit take seconds.
    with threadpool_limits(limits=1, user_api="openmp"):
        for combination in combinations:
            Xc = np.hstack([features[name] for name in combination])
            model.fit(Xc[train], y[train])
            scores["+".join(combination)] = model.score(Xc[test], y[test])
    return scores


@pytest.mark.parametrize("make", MAKERS)
def test_columns_dtypes_and_shapes(make):
    X, y = make(n_samples=40, image_size=12, random_state=0)

    assert isinstance(X, pd.DataFrame)
    assert list(X.columns) == ["text", "image", "num_0", "num_1", "category"]
    assert X.shape == (40, 5)
    assert isinstance(X.index, pd.RangeIndex)
    assert X["text"].dtype == object
    assert all(isinstance(text, str) and text for text in X["text"])
    assert X["image"].dtype == object
    for image in X["image"]:
        assert isinstance(image, np.ndarray)
        assert image.shape == (12, 12, 3)
        assert image.dtype == np.uint8
    assert X["num_0"].dtype == np.float64
    assert X["num_1"].dtype == np.float64
    assert X["category"].dtype == object
    assert set(X["category"]) <= {"low", "medium", "high"}
    assert isinstance(y, np.ndarray)
    assert y.shape == (40,)


def test_classification_labels():
    X, y = make_multimodal_classification(n_samples=3000, n_classes=3, random_state=0)

    assert y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1, 2}
    # The interaction keeps classes balanced up to the clipped tabular shift.
    np.testing.assert_allclose(np.bincount(y) / len(y), 1 / 3, atol=0.04)


def test_regression_target_is_float():
    _, y = make_multimodal_regression(n_samples=50, random_state=0)

    assert y.dtype == np.float64
    assert np.isfinite(y).all()


def test_pool_words_are_distinct_from_each_other_and_from_filler():
    words = [word for value in range(100) for word in _word_pool(value)]

    assert len(set(words)) == len(words)
    assert not set(words) & set(_FILLER_WORDS)


def assert_frames_equal(X1, X2):
    for column in ["text", "num_0", "num_1", "category"]:
        pd.testing.assert_series_equal(X1[column], X2[column])
    assert len(X1) == len(X2)
    for image1, image2 in zip(X1["image"], X2["image"]):
        if image1 is None or image2 is None:
            assert image1 is None and image2 is None
        else:
            np.testing.assert_array_equal(image1, image2)


@pytest.mark.parametrize("make", MAKERS)
def test_same_random_state_gives_the_same_data(make):
    params = dict(n_samples=60, missing_text=0.2, missing_image=0.3)
    X1, y1 = make(**params, random_state=3)
    X2, y2 = make(**params, random_state=3)
    X3, _ = make(**params, random_state=4)

    assert_frames_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not X1["text"].equals(X3["text"])


def test_random_state_instance_is_accepted():
    X1, y1 = make_multimodal_classification(20, random_state=np.random.RandomState(7))
    X2, y2 = make_multimodal_classification(20, random_state=np.random.RandomState(7))

    assert_frames_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


def test_a_parameter_leaves_the_parts_it_does_not_affect_unchanged():
    X, y = make_multimodal_classification(100, random_state=0)
    X_missing, y_missing = make_multimodal_classification(
        100, missing_image=0.5, random_state=0
    )
    X_noisy_text, y_noisy_text = make_multimodal_classification(
        100, text_informative=0.3, random_state=0
    )

    pd.testing.assert_series_equal(X["text"], X_missing["text"])
    np.testing.assert_array_equal(y, y_missing)
    assert not X["text"].equals(X_noisy_text["text"])
    for image, other in zip(X["image"], X_noisy_text["image"]):
        np.testing.assert_array_equal(image, other)
    np.testing.assert_array_equal(y, y_noisy_text)


@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("missing_text, missing_image", [(0.1, 0.0), (0.25, 0.4)])
def test_missing_fractions(make, missing_text, missing_image):
    n_samples = 200
    X, _ = make(
        n_samples,
        missing_text=missing_text,
        missing_image=missing_image,
        random_state=0,
    )

    text_missing = X["text"].map(lambda text: text is None)
    image_missing = X["image"].map(lambda image: image is None)
    assert text_missing.sum() == round(missing_text * n_samples)
    assert image_missing.sum() == round(missing_image * n_samples)
    assert X[["num_0", "num_1", "category"]].notna().all().all()
    if missing_text and missing_image:
        # Chosen independently: not one set of rows inside the other.
        assert (text_missing & ~image_missing).any()
        assert (image_missing & ~text_missing).any()


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_samples": 0}, ValueError, "n_samples must be an int >= 1, got 0"),
        ({"n_samples": -5}, ValueError, "n_samples must be an int >= 1"),
        ({"n_samples": 10.0}, TypeError, "n_samples must be an int"),
        ({"image_size": 2}, ValueError, "image_size must be an int >= 4"),
        ({"text_informative": 1.5}, ValueError, r"text_informative must be in \[0"),
        ({"image_informative": -0.1}, ValueError, "image_informative must be in"),
        ({"tabular_informative": "high"}, TypeError, "tabular_informative must be"),
        ({"missing_text": 1.0}, ValueError, r"missing_text must be in \[0.0, 1.0\)"),
        ({"missing_image": -0.5}, ValueError, "missing_image must be in"),
        ({"interaction": "yes"}, TypeError, "interaction must be a bool"),
    ],
)
@pytest.mark.parametrize("make", MAKERS)
def test_invalid_parameters(make, params, error, match):
    with pytest.raises(error, match=match):
        make(**params)


@pytest.mark.parametrize(
    "make, params, match",
    [
        (make_multimodal_classification, {"n_classes": 1}, "n_classes must be"),
        (make_multimodal_classification, {"noise": 1.5}, r"noise must be in \[0"),
        (make_multimodal_regression, {"noise": -1.0}, "noise must be >= 0"),
    ],
)
def test_invalid_target_parameters(make, params, match):
    with pytest.raises(ValueError, match=match):
        make(**params)


def test_latent_pair_beats_each_single_latent():
    X, y = make_multimodal_classification(600, random_state=0)
    # With clean cues the latents can be read back exactly from the features.
    text = text_latent(X["text"], 2)
    profiles = bar_profiles(X["image"])
    image = (profiles[:, 1] > profiles[:, 0]).astype(int)
    one_hot = OneHotEncoder(sparse_output=False)
    features = {
        "text": one_hot.fit_transform(text[:, None]),
        "image": one_hot.fit_transform(image[:, None]),
        "pair": one_hot.fit_transform((2 * text + image)[:, None]),
    }

    scores = holdout_scores(
        LogisticRegression(), features, y, [("text",), ("image",), ("pair",)]
    )

    assert scores["text"] < 0.6
    assert scores["image"] < 0.6
    assert scores["pair"] > 0.8


def test_fusion_beats_every_single_modality():
    X, y = make_multimodal_classification(600, random_state=0)
    train, _ = train_test_split(np.arange(600), test_size=0.5, random_state=0)
    features = modality_features(X, train)
    model = HistGradientBoostingClassifier(random_state=0)

    scores = holdout_scores(
        model,
        features,
        y,
        [
            ("text",),
            ("image",),
            ("tabular",),
            ("text", "image"),
            ("text", "image", "tabular"),
        ],
    )

    assert scores["text"] < 0.6
    assert scores["image"] < 0.6
    assert scores["text+image"] > max(scores["text"], scores["image"]) + 0.15
    best_single = max(scores["text"], scores["image"], scores["tabular"])
    assert scores["text+image+tabular"] > best_single + 0.15


def test_without_interaction_each_modality_is_informative_alone():
    X, y = make_multimodal_classification(600, interaction=False, random_state=0)
    train, _ = train_test_split(np.arange(600), test_size=0.5, random_state=0)
    features = modality_features(X, train)

    # Main effects only: a linear model reads each modality on its own.
    scores = holdout_scores(LogisticRegression(), features, y, [("text",), ("image",)])

    assert scores["text"] > 0.6
    assert scores["image"] > 0.6


def test_uninformative_text_removes_the_fusion_gain():
    X, y = make_multimodal_classification(600, text_informative=0.0, random_state=0)
    train, _ = train_test_split(np.arange(600), test_size=0.5, random_state=0)
    features = modality_features(X, train)
    model = HistGradientBoostingClassifier(random_state=0)

    scores = holdout_scores(model, features, y, [("image",), ("text", "image")])

    assert scores["image"] < 0.6
    assert scores["text+image"] < 0.6


def test_regression_fusion_beats_every_single_modality():
    X, y = make_multimodal_regression(600, random_state=0)
    train, _ = train_test_split(np.arange(600), test_size=0.5, random_state=0)
    features = modality_features(X, train)
    model = HistGradientBoostingRegressor(random_state=0)

    scores = holdout_scores(
        model,
        features,
        y,
        [("text",), ("image",), ("tabular",), ("text", "image", "tabular")],
    )

    assert scores["text"] < 0.1
    assert scores["image"] < 0.1
    assert scores["tabular"] < 0.3
    assert scores["text+image+tabular"] > scores["tabular"] + 0.5

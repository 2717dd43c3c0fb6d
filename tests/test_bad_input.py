"""Bad input to the fusion estimators gets an error that names what to fix."""

from functools import partial

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

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


# -- one row per case of bad input: the call, the exception, the words ----------
#
# Cases whose handling is a behaviour rather than an error (16-bit and float
# images, EXIF orientation, PCM audio, byte text, the content-keyed cache,
# parallel fits, single-column selection, pandas output names, refits that
# fail) are tested beside their code; REPORT lists where.


def _rows():
    return np.random.RandomState(0).normal(size=(6, 2))


def _dict_rows():
    image = np.zeros((8, 8, 3))
    return [{"text": "a red car", "photo": image, "price": 1.0} for _ in range(6)]


def _text_frame():
    return pd.DataFrame(
        {"price": np.arange(6.0), "title": ["a b", "c", "d", "e", "f", "g"]}
    )


def _image_column(*cells):
    return pd.DataFrame({"photo": pd.Series(list(cells), dtype=object)})


def _fit(estimator, X, y=None, **fit_params):
    return lambda: estimator.fit(X, y, **fit_params)


def _image_encoder(**params):
    from skmm import CNNImageEncoder

    return CNNImageEncoder(image_size=8, channels=(4,), max_epochs=1, **params)


def _text_encoder():
    from skmm import TfidfTextEncoder

    return TfidfTextEncoder()


def _flat_rgb():
    return np.random.RandomState(0).uniform(size=(4, 3 * 8 * 8))


def _nan_pixel_image():
    image = np.random.RandomState(0).uniform(size=(6, 6, 3))
    image[2, 3, 1] = np.nan
    return image


LABELS = np.array([0, 1] * 3)

CASES = {
    "a list of dict rows given to a fusion estimator": (
        lambda: _fit(FusionClassifier(**FAST), _dict_rows(), LABELS),
        TypeError,
        r"list of dict rows \(keys 'text', 'photo', 'price'\).*MultimodalFusion",
    ),
    "one dict row given to a fusion estimator": (
        lambda: _fit(FusionRegressor(**FAST), _dict_rows()[0], [1.0]),
        TypeError,
        r"a dict row .*Put a MultimodalFusion in front",
    ),
    "a DataFrame with a text column given to a fusion estimator": (
        lambda: _fit(FusionClassifier(**FAST), _text_frame(), LABELS),
        ValueError,
        r"column 'title' holds 'a b' \(row 0\).*MultimodalFusion",
    ),
    "dict rows at predict of an estimator fitted on a matrix": (
        lambda: partial(
            FusionClassifier(**FAST).fit(_rows(), LABELS).predict, _dict_rows()
        ),
        TypeError,
        r"list of dict rows.*MultimodalFusion",
    ),
    "negative sample_weight": (
        lambda: _fit(
            FusionClassifier(**FAST), _rows(), LABELS, sample_weight=-np.ones(6)
        ),
        ValueError,
        r"Negative values in data passed to `sample_weight`",
    ),
    "max_epochs=0 on a fusion estimator": (
        lambda: _fit(FusionRegressor(**{**FAST, "max_epochs": 0}), _rows(), np.ones(6)),
        ValueError,
        r"'max_epochs' parameter of FusionRegressor must be an int in the range \[1",
    ),
    "a NaN in a regression target": (
        lambda: _fit(FusionRegressor(**FAST), _rows(), [1.0, np.nan, 2, 3, 4, 5]),
        ValueError,
        r"The target 'y' has a missing or infinite value \(NaN or inf\) at row 1",
    ),
    "an infinite class label": (
        lambda: _fit(FusionClassifier(**FAST), _rows(), [0.0, 1, 0, np.inf, 1, 0]),
        ValueError,
        r"The target 'y' has a missing or infinite value \(NaN or inf\) at row 3",
    ),
    "X and y of different lengths": (
        lambda: _fit(FusionClassifier(**FAST), _rows(), LABELS[:4]),
        ValueError,
        r"X has 6 rows but y has 4; they must match",
    ),
    "a missing column in MultimodalFusion": (
        lambda: _fit(
            MultimodalFusion([("num", "passthrough", ["price", "weight"])]),
            _text_frame(),
        ),
        ValueError,
        r"weight",
    ),
    "diverged training (an inf loss)": (
        lambda: _fit(
            FusionClassifier(**{**FAST, "optimizer": "sgd", "lr": 1e4}),
            np.random.RandomState(0).normal(size=(80, 2)) * [1.0, 1e30],
            np.arange(80) % 2,
        ),
        ValueError,
        r"Training diverged.*lower lr.*modality 'X'",
    ),
    "a missing image file": (
        lambda: _fit(_image_encoder(), _image_column("/nonexistent/cat.png")),
        ValueError,
        r"The image file '/nonexistent/cat.png' \(column 'photo', row 0\) does not "
        r"exist",
    ),
    "a NaN pixel in an image array": (
        lambda: _fit(
            _image_encoder(), _image_column(np.zeros((6, 6, 3)), _nan_pixel_image())
        ),
        ValueError,
        r"column 'photo', row 1: the image array holds 1 NaN",
    ),
    "a float image array beyond [0, 1]": (
        lambda: _fit(_image_encoder(), _image_column(np.full((6, 6, 3), 200.0))),
        ValueError,
        r"column 'photo', row 0: a float image array must hold finite values in",
    ),
    "a 32-bit float PIL image beyond 0-255": (
        lambda: _fit(
            _image_encoder(),
            _image_column(Image.fromarray(np.full((6, 6), 1000, np.float32))),
        ),
        ValueError,
        r"column 'photo', row 0.*mode 'F'.*scale them to \[0, 1\]",
    ),
    "flattened RGB rows without input_shape": (
        lambda: _fit(_image_encoder(), _flat_rgb()),
        ValueError,
        r"192 columns.*input_shape=\(8, 8, 3\)",
    ),
    "a cell that is not an image": (
        lambda: _fit(_image_encoder(), _image_column(np.zeros((6, 6, 3)), 3.5 + 1j)),
        TypeError,
        r"column 'photo', row 1: expected an image",
    ),
    "infinity reaching a scikit-learn scaler inside MultimodalFusion": (
        lambda: _fit(
            MultimodalFusion([("amounts", StandardScaler(), ["price"])]),
            pd.DataFrame({"price": [1.0, np.inf, 2.0]}),
        ),
        ValueError,
        r"encoder of modality 'amounts' \(columns \['price'\]\) failed: Input X "
        r"contains infinity",
    ),
    "infinity at transform of a fitted scikit-learn scaler": (
        lambda: partial(
            MultimodalFusion([("amounts", StandardScaler(), ["price"])])
            .fit(pd.DataFrame({"price": [1.0, 3.0, 2.0]}))
            .transform,
            pd.DataFrame({"price": [1.0, np.inf, 2.0]}),
        ),
        ValueError,
        r"modality 'amounts' \(columns \['price'\]\).*infinity",
    ),
    "strings and numbers mixed in a category column": (
        lambda: _fit(
            MultimodalFusion([("colour", OneHotEncoder(), ["colour"])]),
            pd.DataFrame({"colour": pd.Series(["red", 3, "blue"], dtype=object)}),
        ),
        TypeError,
        r"modality 'colour' \(columns \['colour'\]\).*uniformly strings or numbers",
    ),
    "values beyond float32 in a block": (
        lambda: _fit(
            make_pipeline(
                MultimodalFusion([("amounts", "passthrough", ["price"])]),
                FusionClassifier(**FAST),
            ),
            pd.DataFrame({"price": [0.0, 1e300, 2.0, 3.0]}),
            [0, 1, 0, 1],
        ),
        ValueError,
        r"modality 'amounts' holds values up to 1e\+300, beyond the float32 range",
    ),
    "invalid UTF-8 bytes in a text cell": (
        lambda: _fit(
            _text_encoder(),
            pd.DataFrame({"review": pd.Series(["good", b"caf\xe9"], dtype=object)}),
        ),
        ValueError,
        r"'review'.*row 1",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_named_error(case):
    make_call, exception, words = CASES[case]
    with pytest.raises(exception, match=words):
        make_call()()


@pytest.mark.parametrize("estimator", [FusionClassifier, FusionRegressor])
def test_a_raw_dataframe_points_to_make_multimodal_pipeline(frame, estimator):
    y = np.arange(len(frame)) % 2

    with pytest.raises(ValueError, match="column 'size'.*make_multimodal_pipeline"):
        estimator(**FAST).fit(frame, y)
    # Numbers only still fit directly.
    estimator(**FAST).fit(frame[["x"]], y)

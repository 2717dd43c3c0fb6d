import joblib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from skmm import (
    AudioEncoder,
    CNNImageEncoder,
    FusionClassifier,
    FusionMultiTask,
    FusionRegressor,
    MultimodalFusion,
    TfidfTextEncoder,
    make_multimodal_fusion,
    make_multimodal_pipeline,
)
from skmm.compose import infer_task, numeric_columns, text_columns

FAST = dict(hidden_dim=16, max_epochs=5, batch_size=32, lr=1e-2, device="cpu")


def _frame(tmp_path, n=40, seed=0):
    """Text, images (relative paths under tmp_path), numbers and categories."""
    rng = np.random.RandomState(seed)
    (tmp_path / "images").mkdir()
    label = np.arange(n) % 2
    for i in range(n):
        pixels = (rng.rand(6, 6, 3) * 80 + 150 * label[i]).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / f"{i}.png")
    words = [["poor quality and a bad fit"], ["great fit and a lovely colour"]]
    return pd.DataFrame(
        {
            "item_id": np.arange(n) + 100,
            "review": [f"{words[y][0]} number {i}" for i, y in enumerate(label)],
            "photo": [f"images/{i}.png" for i in range(n)],
            "price": np.where(rng.rand(n) < 0.1, np.nan, rng.normal(size=n) + label),
            "size": rng.choice(["S", "M", "L", None], n),
            "store": [[3, "north", "south"][i % 3] for i in range(n)],
            "liked": np.array(["no", "yes"])[label],
            "score": rng.normal(size=n) + 2 * label,
        }
    )


def test_fusion_has_one_default_encoder_per_detected_modality(tmp_path):
    df = _frame(tmp_path)

    fusion = make_multimodal_fusion(df, exclude=["liked", "score"], base_dir=tmp_path)

    assert isinstance(fusion, MultimodalFusion)
    names = {name: columns for name, _, columns in fusion.transformers}
    assert names == {
        "text": ["review"],
        "image": ["photo"],
        "numeric": ["price"],
        "categorical": ["size", "store"],
    }
    encoders = dict((name, enc) for name, enc, _ in fusion.transformers)
    assert isinstance(encoders["text"], TfidfTextEncoder)
    assert encoders["image"].get_params()["base_dir"] == tmp_path
    # The mixed column is read as strings before the one-hot encoder.
    assert isinstance(encoders["categorical"], Pipeline)
    assert isinstance(encoders["categorical"][-1], OneHotEncoder)
    assert "CNNImageEncoder" in repr(fusion)

    blocks = fusion.fit_transform(df)
    assert blocks.names == ["text", "image", "numeric", "categorical"]
    assert np.isfinite(blocks["numeric"]).all()
    # S, M, L, missing; 3, north, south.
    assert blocks["categorical"].shape[1] == 7


def test_missing_and_unseen_categories_at_predict(tmp_path):
    df = _frame(tmp_path)
    model = make_multimodal_pipeline(
        df, target="liked", exclude="score", base_dir=tmp_path, random_state=0
    )
    model.set_params(fusionclassifier__max_epochs=5)
    model.fit(df, df["liked"])

    row = df.drop(columns=["liked", "score"]).iloc[0].to_dict()
    row.update(size="XXL", store=None, price=None, review=None)
    y_pred = model.predict(row)

    assert y_pred.shape == (1,)
    assert y_pred[0] in ("no", "yes")


def test_given_columns_override_inference_and_none_leaves_a_modality_out(tmp_path):
    df = _frame(tmp_path)

    fusion = make_multimodal_fusion(
        df,
        categorical=["item_id", "size"],
        text=text_columns(),
        image=None,
        exclude="score",
    )

    names = {name: columns for name, _, columns in fusion.transformers}
    assert names == {
        "text": ["review"],
        "numeric": ["price"],
        "categorical": ["item_id", "size"],
    }
    # A selector leaves out the targets; a column named by hand is taken.
    model = make_multimodal_pipeline(df, target="score", numeric=numeric_columns())
    assert model[0].transformers[-2][2] == ["price"]
    fusion = make_multimodal_fusion(df, numeric=["price", "score"], exclude="score")
    assert dict((n, c) for n, _, c in fusion.transformers)["numeric"] == [
        "price",
        "score",
    ]
    with pytest.raises(ValueError, match=r"numeric=\['nope'\]: no such column"):
        make_multimodal_fusion(df, numeric=["nope"])


def test_encoders_can_be_changed_with_set_params(tmp_path):
    df = _frame(tmp_path)
    fusion = make_multimodal_fusion(df, exclude=["liked", "score"], base_dir=tmp_path)

    fusion.set_params(
        text=TfidfTextEncoder(n_components=3, random_state=0),
        image=CNNImageEncoder(image_size=8, base_dir=tmp_path),
    )
    blocks = clone(fusion).fit_transform(df)

    assert blocks["text"].shape == (len(df), 3)


def test_verbose_reports_each_column(tmp_path, capsys):
    df = _frame(tmp_path)

    make_multimodal_fusion(df, exclude="score", categorical=["size"], verbose=1)

    err = capsys.readouterr().err
    assert "'item_id': left out, id" in err
    assert "'review': text (strings of" in err
    assert "'size': categorical (given)" in err
    assert "'store': left out" in err
    assert "'score': excluded" in err


def test_no_usable_column_is_an_error_naming_the_columns():
    df = pd.DataFrame({"id": np.arange(30), "site": ["http://a.b/c"] * 30})

    with pytest.raises(ValueError, match="'site': url") as exc_info:
        make_multimodal_fusion(df)
    assert "'id': id" in str(exc_info.value)


@pytest.mark.parametrize(
    "target, expected",
    [
        ("liked", FusionClassifier),
        ("score", FusionRegressor),
        (["liked", "score"], FusionMultiTask),
    ],
)
def test_pipeline_chooses_the_estimator_from_the_targets(tmp_path, target, expected):
    df = _frame(tmp_path)

    model = make_multimodal_pipeline(df, target=target, base_dir=tmp_path)

    assert isinstance(model[-1], expected)
    used = {c for _, _, columns in model[0].transformers for c in columns}
    targets = {target} if isinstance(target, str) else set(target)
    assert not used & targets
    assert "photo" in used
    if expected is FusionMultiTask:
        assert model[-1].tasks == {"liked": "classification", "score": "regression"}


def test_multitask_pipeline_fits_saves_and_predicts(tmp_path):
    df = _frame(tmp_path)
    model = make_multimodal_pipeline(
        df, target=["liked", "score"], base_dir=tmp_path, random_state=0
    )
    model.set_params(**{f"fusionmultitask__{k}": v for k, v in FAST.items()})

    model.fit(df, df[["liked", "score"]])
    joblib.dump(model, tmp_path / "model.joblib")
    reloaded = joblib.load(tmp_path / "model.joblib")
    new = df.drop(columns=["liked", "score"])

    y_pred = reloaded.predict(new)
    assert list(y_pred.columns) == ["liked", "score"]
    pd.testing.assert_frame_equal(y_pred, model.predict(new))


def test_a_given_estimator_follows_the_fusion(tmp_path):
    df = _frame(tmp_path)

    model = make_multimodal_pipeline(
        df, LogisticRegression(), target="liked", image=None
    )
    model.fit(df, df["liked"])

    assert model.score(df, df["liked"]) > 0.9
    with pytest.raises(ValueError, match="set them on the estimator"):
        make_multimodal_pipeline(
            df, LogisticRegression(), target="liked", random_state=0
        )
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the data"):
        make_multimodal_pipeline(df, target="nope")
    with pytest.raises(ValueError, match="'classification' or 'regression'"):
        make_multimodal_pipeline(df, target="score", tasks={"score": "ranking"})


def test_infer_task():
    assert infer_task(["a", "b", "a"]) == "classification"
    assert infer_task([True, False]) == "classification"
    assert infer_task(pd.Series([1, 2, 3, 4, 5, np.nan])) == "classification"
    assert infer_task(np.arange(100)) == "regression"
    assert infer_task([0.5, 1.5, 2.25]) == "regression"
    assert infer_task(pd.Series(["1", "2", "2"])) == "classification"


def test_houses_csv_with_base_dir(data_home):
    folder = data_home / "houses"
    if not (folder / "houses.csv").is_file():
        pytest.skip(f"the houses are not available at {folder}")
    df = pd.read_csv(folder / "houses.csv").iloc[:40]

    model = make_multimodal_pipeline(
        df, target="price", base_dir=folder, random_state=0
    )
    model.set_params(
        multimodalfusion__image__image_size=16,
        **{f"fusionregressor__{k}": v for k, v in FAST.items()},
    )
    model.fit(df, np.log(df["price"]))

    assert model[0].transformers[0][2] == [
        "frontal_image",
        "kitchen_image",
        "bedroom_image",
        "bathroom_image",
    ]
    assert np.isfinite(model.predict(df.iloc[:3])).all()


def test_spoken_digits_with_base_dir(data_home):
    folder = data_home / "spoken_digits" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"the spoken digits are not available at {folder}")
    files = sorted(folder.glob("*_jackson_*.wav"))[:60]
    df = pd.DataFrame(
        {
            "clip": [f.name for f in files],
            "digit": [int(f.stem.split("_")[0]) for f in files],
        }
    )

    model = make_multimodal_pipeline(df, target="digit", base_dir=folder)

    assert isinstance(model[0].transformers[0][1], AudioEncoder)
    assert isinstance(model[-1], FusionClassifier)
    blocks = model[0].fit_transform(df)
    assert blocks["audio"].shape == (60, 32 * 20)

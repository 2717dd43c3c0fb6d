import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.preprocessing import StandardScaler

from skmm import MultimodalFusion
from skmm.compose import (
    audio_columns,
    categorical_columns,
    image_columns,
    infer_column_types,
    numeric_columns,
    text_columns,
)

SENTENCES = [
    "the fabric feels soft and the fit is true to size",
    "runs small so order one size up if you can",
    "lovely colour but the seams came apart after a week",
    "perfect for summer evenings with a light jacket",
    "returned it because the zip broke on day one",
]


def _tricky_frame(n=40, seed=0):
    rng = np.random.RandomState(seed)
    return pd.DataFrame(
        {
            # Numeric-looking identifiers: by name, and as a row counter.
            "customer_id": rng.permutation(n) + 1000,
            "row": np.arange(n),
            "age": rng.randint(18, 80, n),
            "price": rng.normal(50, 10, n).round(2),
            "size": rng.choice(["S", "M", "L"], n),
            "member": rng.rand(n) < 0.5,
            "review": [SENTENCES[i % 5] + f" {i}" for i in range(n)],
            "photo": [f"images/{i}.jpg" for i in range(n)],
            "voice": [f"clips/{i}.wav" for i in range(n)],
            "homepage": [f"https://shop.example.com/items/{i}" for i in range(n)],
            "photo_url": [f"https://cdn.example.com/{i}.png" for i in range(n)],
            # Numbers and strings in one column, as a hand-edited CSV gives.
            "store": [[12, "north", 7, "south"][i % 4] for i in range(n)],
            "sku": [f"SKU-{i:04d}" for i in range(n)],
            "empty": [None] * n,
        }
    )


def test_tricky_columns_get_their_kind_and_a_reason():
    types = infer_column_types(_tricky_frame())

    assert types["kind"].to_dict() == {
        "customer_id": "id",
        "row": "id",
        "age": "numeric",
        "price": "numeric",
        "size": "categorical",
        "member": "categorical",
        "review": "text",
        "photo": "image",
        "voice": "audio",
        "homepage": "url",
        "photo_url": "url",
        "store": "categorical",
        "sku": "id",
        "empty": "drop",
    }
    assert "network" in types.loc["photo_url", "reason"]
    assert types.loc["store", "reason"].startswith("numbers and strings")
    assert types["reason"].str.len().min() > 0


def test_selectors_partition_the_usable_columns():
    df = _tricky_frame()
    selected = {
        "text": text_columns()(df),
        "image": image_columns()(df),
        "audio": audio_columns()(df),
        "numeric": numeric_columns()(df),
        "categorical": categorical_columns()(df),
    }

    assert selected == {
        "text": ["review"],
        "image": ["photo"],
        "audio": ["voice"],
        "numeric": ["age", "price"],
        "categorical": ["size", "member", "store"],
    }
    assert numeric_columns(exclude="price")(df) == ["age"]


def test_ids_by_name_repeat_as_codes_and_small_frames_keep_unique_strings():
    df = pd.DataFrame(
        {
            "ClothingID": [3, 3, 8, 8, 9],
            "userId": [1, 5, 2, 4, 3],
            "width": [5, 1, 2, 4, 3],
            "code": ["a1", "b2", "c3", "d4", "e5"],
        }
    )

    kinds = infer_column_types(df)["kind"].to_dict()

    assert kinds == {
        "ClothingID": "categorical",
        "userId": "id",
        "width": "numeric",
        "code": "categorical",
    }


def test_arrays_pil_images_and_path_objects():
    rng = np.random.RandomState(0)
    df = pd.DataFrame(
        {
            "pixels": [rng.rand(4, 4, 3) for _ in range(3)],
            "grey": [rng.rand(4, 4) for _ in range(3)],
            "wave": [rng.rand(100) for _ in range(3)],
            "pil": [Image.new("RGB", (4, 4)) for _ in range(3)],
            "path": [Path(f"x/{i}.PNG") for i in range(3)],
            "doc": [Path(f"x/{i}.txt") for i in range(3)],
        }
    )

    kinds = infer_column_types(df)["kind"].to_dict()

    assert kinds == {
        "pixels": "image",
        "grey": "image",
        "wave": "audio",
        "pil": "image",
        "path": "image",
        "doc": "drop",
    }


def test_text_needs_words_not_only_distinct_values():
    n = 50
    df = pd.DataFrame(
        {
            "title": [f"nice dress {i}" for i in range(n)],
            "colour": ["dark red", "light blue"] * (n // 2),
            "long": ["this is a long sentence here"] * n,
            "city": ["paris", "oslo", "rome", "lima", "kyiv"] * (n // 5),
        }
    )

    kinds = infer_column_types(df)["kind"].to_dict()
    assert kinds == {
        "title": "text",
        "colour": "categorical",
        "long": "text",
        "city": "categorical",
    }
    assert text_columns(max_categories=100)(df) == ["long"]


def test_selector_inside_multimodal_fusion_is_clonable_and_picklable():
    df = _tricky_frame()
    fusion = MultimodalFusion([("numeric", StandardScaler(), numeric_columns())])

    blocks = fusion.fit_transform(df)
    again = pickle.loads(pickle.dumps(clone(fusion))).fit_transform(df)

    assert blocks.names == ["numeric"]
    assert blocks["numeric"].shape == (len(df), 2)
    np.testing.assert_allclose(blocks["numeric"], again["numeric"])
    assert repr(numeric_columns(exclude=["age"])) == "numeric_columns(exclude=['age'])"


def test_bad_input_names_what_to_do():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        text_columns()(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="max_categories"):
        infer_column_types(pd.DataFrame({"a": [1]}), max_categories=0)
    duplicated = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ValueError, match="several columns named 'a'"):
        infer_column_types(duplicated)


@pytest.mark.parametrize(
    "folder, expected",
    [
        (
            "womens_clothing_reviews/reviews.csv",
            {
                "Clothing ID": "categorical",
                "Age": "numeric",
                "Title": "text",
                "Review Text": "text",
                "Positive Feedback Count": "numeric",
                "Division Name": "categorical",
                "Department Name": "categorical",
                "Class Name": "categorical",
            },
        ),
        (
            "houses/houses.csv",
            {
                "house_id": "id",
                "bedrooms": "numeric",
                "bathrooms": "numeric",
                "area": "numeric",
                "zipcode": "numeric",
                "frontal_image": "image",
                "kitchen_image": "image",
                "bedroom_image": "image",
                "bathroom_image": "image",
            },
        ),
    ],
)
def test_real_csv_files(data_home, folder, expected):
    path = data_home / folder
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    df = pd.read_csv(path)

    kinds = infer_column_types(df)["kind"].to_dict()

    assert {column: kinds[column] for column in expected} == expected


def test_spoken_digits_paths(data_home):
    folder = data_home / "spoken_digits" / "recordings"
    if not folder.is_dir():
        pytest.skip(f"the spoken digits are not available at {folder}")
    files = sorted(folder.glob("*.wav"))[:60]
    df = pd.DataFrame(
        {
            "clip": [f.name for f in files],
            "speaker": [f.stem.split("_")[1] for f in files],
            "digit": [int(f.stem.split("_")[0]) for f in files],
        }
    )

    kinds = infer_column_types(df)["kind"].to_dict()

    assert kinds == {"clip": "audio", "speaker": "categorical", "digit": "numeric"}

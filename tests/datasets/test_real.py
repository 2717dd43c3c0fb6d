from pathlib import Path

import pandas as pd
import pytest

from skmm.datasets import load_houses, load_womens_clothing_reviews

HOUSES_IMAGES = ["frontal_image", "kitchen_image", "bedroom_image", "bathroom_image"]
HOUSES_HEADER = (
    "house_id,bedrooms,bathrooms,area,zipcode,price,"
    "frontal_image,kitchen_image,bedroom_image,bathroom_image\n"
)


@pytest.mark.realdata
def test_load_womens_clothing_reviews(data_home):
    reviews = load_womens_clothing_reviews(data_home)

    assert reviews.data.shape == (23486, 9)
    assert list(reviews.target.columns) == ["Recommended IND", "Rating"]
    assert reviews.target_names == ["Recommended IND", "Rating"]
    assert set(reviews.target["Recommended IND"]) == {0, 1}
    assert set(reviews.target["Rating"]) == {1, 2, 3, 4, 5}
    assert reviews.feature_names == list(reviews.data.columns)
    assert "text" in reviews.feature_names
    assert not set(reviews.target_names) & set(reviews.feature_names)
    pd.testing.assert_frame_equal(
        reviews.frame, pd.concat([reviews.data, reviews.target], axis=1)
    )
    assert all(isinstance(item, str) for item in reviews.data["Clothing ID"])
    assert "Women's clothing" in reviews.DESCR


@pytest.mark.realdata
def test_reviews_text_joins_title_and_review(data_home):
    data = load_womens_clothing_reviews(data_home).data
    title, review, text = data["Title"], data["Review Text"], data["text"]

    both = title.notna() & review.notna()
    assert (text[both] == title[both] + " . " + review[both]).all()
    only_review = title.isna() & review.notna()
    assert only_review.any()
    assert (text[only_review] == " . " + review[only_review]).all()
    neither = title.isna() & review.isna()
    assert neither.sum() == 844
    assert text[neither].isna().all()
    assert text[~neither].notna().all()


@pytest.mark.realdata
def test_load_houses(data_home):
    houses = load_houses(data_home)

    assert houses.data.shape == (535, 8)
    assert houses.feature_names == [
        "bedrooms",
        "bathrooms",
        "area",
        "zipcode",
        *HOUSES_IMAGES,
    ]
    assert list(houses.data.columns) == houses.feature_names
    assert houses.target.name == "price"
    assert houses.target_names == ["price"]
    assert (houses.target > 0).all()
    assert list(houses.frame.columns) == ["house_id", *houses.feature_names, "price"]
    for column in HOUSES_IMAGES:
        for image in houses.data[column]:
            assert isinstance(image, str)
            path = Path(image)
            assert path.is_absolute()
            assert path.is_file()
    assert "Ahmed & Moustafa" in houses.DESCR


@pytest.mark.parametrize(
    "load, expected",
    [
        (load_womens_clothing_reviews, ("womens_clothing_reviews", "reviews.csv")),
        (load_houses, ("houses", "houses.csv")),
    ],
)
def test_missing_data_names_the_expected_file(tmp_path, load, expected):
    expected_path = tmp_path.resolve().joinpath(*expected)

    with pytest.raises(FileNotFoundError) as excinfo:
        load(tmp_path)

    message = str(excinfo.value)
    assert str(expected_path) in message
    assert "skmm does not download" in message


def test_missing_house_image_names_the_image(tmp_path):
    folder = tmp_path / "houses"
    (folder / "images").mkdir(parents=True)
    for name in ["1_frontal", "1_kitchen", "1_bedroom"]:
        (folder / "images" / f"{name}.jpg").write_bytes(b"")
    (folder / "houses.csv").write_text(
        HOUSES_HEADER + "1,3,2.0,1500,85255,400000.0,images/1_frontal.jpg,"
        "images/1_kitchen.jpg,images/1_bedroom.jpg,images/1_bathroom.jpg\n"
    )

    with pytest.raises(FileNotFoundError, match="bathroom_image") as excinfo:
        load_houses(str(tmp_path))

    expected = tmp_path.resolve() / "houses" / "images" / "1_bathroom.jpg"
    assert str(expected) in str(excinfo.value)


def test_house_image_paths_are_absolute_for_a_relative_data_home(tmp_path, monkeypatch):
    folder = tmp_path / "houses"
    (folder / "images").mkdir(parents=True)
    for column in HOUSES_IMAGES:
        name = column.removesuffix("_image")
        (folder / "images" / f"7_{name}.jpg").write_bytes(b"")
    (folder / "houses.csv").write_text(
        HOUSES_HEADER + "7,3,2.0,1500,85255,400000.0,images/7_frontal.jpg,"
        "images/7_kitchen.jpg,images/7_bedroom.jpg,images/7_bathroom.jpg\n"
    )
    monkeypatch.chdir(tmp_path)

    houses = load_houses(".")

    assert houses.data.loc[0, "kitchen_image"] == str(
        tmp_path.resolve() / "houses" / "images" / "7_kitchen.jpg"
    )
    assert houses.target.tolist() == [400000.0]


def test_file_lacking_a_column_is_reported(tmp_path):
    folder = tmp_path / "womens_clothing_reviews"
    folder.mkdir()
    (folder / "reviews.csv").write_text("Title,Review Text\nNice,Fits well\n")

    with pytest.raises(ValueError, match="lacks the columns .*'Rating'"):
        load_womens_clothing_reviews(tmp_path)


@pytest.mark.parametrize("load", [load_womens_clothing_reviews, load_houses])
def test_data_home_must_be_a_path(load):
    with pytest.raises(TypeError, match="data_home must be the path"):
        load(None)

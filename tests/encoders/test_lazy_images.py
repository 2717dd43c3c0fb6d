"""Images streamed from disk (output="lazy") and training-time augmentation."""

import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion
from skmm._blocks import LazyBlock, ModalityBlocks
from skmm.nn._augment import AugmentedTower, ImageAugmentation, check_augment
from skmm.nn._data import BatchIterator, BlockDataset
from skmm.nn._training import make_generator, stochastic_layers
from skmm.utils._prefetch import prefetched

ENCODER = dict(image_size=8, channels=(4, 8), random_state=0)
N_ROWS = 48


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A frame of JPEG paths (one missing) whose red level gives the class."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.RandomState(0)
    paths, y = [], np.arange(N_ROWS) % 2
    for i, label in enumerate(y):
        pixels = rng.randint(0, 256, (12, 10, 3), dtype=np.uint8)
        pixels[:, :, 0] = pixels[:, :, 0] // 2 + 120 * label
        path = folder / f"{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    frame = pd.DataFrame({"photo": pd.Series(paths, dtype=object)})
    frame["x"] = rng.normal(size=N_ROWS)
    frame.loc[7, "photo"] = None
    return frame, y


def _model(output, augment=False, n_jobs=None, random_state=0):
    image = CNNImageEncoder(output=output, augment=augment, n_jobs=n_jobs, **ENCODER)
    fusion = MultimodalFusion(
        [("image", image, "photo"), ("x", StandardScaler(), ["x"])]
    )
    net = FusionClassifier(
        hidden_dim=8,
        max_epochs=3,
        batch_size=16,
        early_stopping=2,
        device="cpu",
        random_state=random_state,
    )
    return make_pipeline(fusion, net)


def test_lazy_block_keeps_the_paths_and_decodes_the_pixels_of_output_pixels(photos):
    frame, _ = photos
    X = frame[["photo"]]
    pixels = CNNImageEncoder(output="pixels", **ENCODER).fit(X)
    lazy = CNNImageEncoder(output="lazy", **ENCODER).fit(X)
    block = lazy.transform(X)

    assert isinstance(block, LazyBlock)
    assert block.shape == (N_ROWS, 3 * 8 * 8) and block.dtype == np.float32
    assert list(block.cells[:, 0]) == list(X["photo"])
    np.testing.assert_array_equal(lazy.channel_mean_, pixels.channel_mean_)
    np.testing.assert_array_equal(lazy.channel_std_, pixels.channel_std_)
    np.testing.assert_array_equal(np.asarray(block), pixels.transform(X))
    rows = [30, 7, 2]
    np.testing.assert_array_equal(np.asarray(block[rows]), pixels.transform(X)[rows])
    assert lazy.get_block_spec() == pixels.get_block_spec()
    np.testing.assert_array_equal(
        lazy.get_feature_names_out(), pixels.get_feature_names_out()
    )
    # Two worker processes decode the same pixels as one.
    two = CNNImageEncoder(output="lazy", n_jobs=2, **ENCODER).fit(X).transform(X)
    np.testing.assert_array_equal(np.asarray(two), np.asarray(block))


def test_a_numeric_block_streams_like_its_pixels():
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 10, size=(20, 36))
    X[3, 5] = np.nan
    pixels = CNNImageEncoder(output="pixels", **ENCODER).fit(X)
    lazy = CNNImageEncoder(output="lazy", **ENCODER).fit(X)

    np.testing.assert_allclose(lazy.channel_mean_, pixels.channel_mean_)
    np.testing.assert_allclose(lazy.channel_std_, pixels.channel_std_)
    np.testing.assert_allclose(
        np.asarray(lazy.transform(X)), pixels.transform(X), atol=1e-6
    )


def test_lazy_and_in_memory_pipelines_predict_the_same(photos):
    frame, y = photos
    in_memory = _model("pixels").fit(frame, y)
    lazy = _model("lazy").fit(frame, y)

    blocks = lazy[0].transform(frame)
    assert isinstance(blocks["image"], LazyBlock)
    # Early stopping's validation rows were decoded too: both histories agree.
    assert lazy[-1].n_iter_ == in_memory[-1].n_iter_
    np.testing.assert_allclose(
        lazy[-1].net_.history[:, "valid_loss"],
        in_memory[-1].net_.history[:, "valid_loss"],
    )
    np.testing.assert_allclose(
        lazy.predict_proba(frame), in_memory.predict_proba(frame), atol=1e-6
    )
    np.testing.assert_array_equal(lazy.predict(frame), in_memory.predict(frame))


def test_training_batches_hold_lazy_blocks_until_they_are_drawn(photos):
    frame, y = photos
    fusion = _model("lazy")[0].fit(frame, y)
    dataset = BlockDataset(fusion.transform(frame), {"y": y})
    assert isinstance(dataset.X["image"], LazyBlock)
    assert isinstance(dataset.subset([1, 2]).X["image"], LazyBlock)

    iterator = BatchIterator(
        dataset, batch_size=10, shuffle=True, generator=make_generator(0)
    )
    rows = torch.randperm(N_ROWS, generator=make_generator(0))
    pixels = np.asarray(fusion.transform(frame)["image"])
    for start, (Xb, yb) in zip(range(0, N_ROWS, 10), iterator):
        batch_rows = rows[start : start + 10].numpy()
        assert Xb["image"].shape == (len(batch_rows), 3, 8, 8)
        np.testing.assert_array_equal(
            Xb["image"].reshape(len(batch_rows), -1).numpy(), pixels[batch_rows]
        )
        np.testing.assert_array_equal(yb["y"].numpy(), y[batch_rows])


def test_prefetching_keeps_a_bounded_number_of_results_pending():
    drawn = []

    def tasks():
        for i in range(20):
            drawn.append(i)
            yield (i,)

    results = prefetched(abs, tasks(), n_workers=1, depth=3)
    for consumed, value in enumerate(results, start=1):
        assert value == consumed - 1
        # The results consumed, plus at most ``depth`` ahead.
        assert len(drawn) <= consumed + 3
    assert drawn == list(range(20))


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_a_bad_file_during_training_names_the_file_column_and_row(
    photos, tmp_path, damage
):
    frame, y = photos
    frame = frame.copy()
    bad = tmp_path / "bad.jpg"
    Image.fromarray(np.zeros((12, 10, 3), dtype=np.uint8)).save(bad)
    frame.loc[11, "photo"] = str(bad)
    model = _model("lazy")
    blocks = model[0].fit(frame, y).transform(frame)
    classifier = model[-1].fit(blocks, y)
    before = classifier.predict_proba(blocks)

    if damage == "deleted":
        bad.unlink()
    else:
        bad.write_bytes(b"not a jpeg")
    where = re.escape(f"image file '{bad}' (column 'photo', row 11)")
    expected = f"(Cannot read the|The) {where}"
    with pytest.raises(ValueError, match=expected):
        classifier.fit(blocks, y)
    # The failed refit left the fitted model as it was.
    np.testing.assert_array_equal(classifier.predict_proba(blocks[:10]), before[:10])
    with pytest.raises(ValueError, match=expected):
        classifier.predict(blocks)


def test_a_pickled_pipeline_with_a_lazy_block_predicts_the_same(photos):
    frame, y = photos
    model = _model("lazy").fit(frame, y)
    loaded = pickle.loads(pickle.dumps(model))

    np.testing.assert_array_equal(
        loaded.predict_proba(frame), model.predict_proba(frame)
    )
    block = model[0].transform(frame)["image"]
    np.testing.assert_array_equal(
        np.asarray(pickle.loads(pickle.dumps(block))), np.asarray(block)
    )


def test_flat_output_and_modality_blocks_read_a_lazy_block_whole(photos):
    frame, y = photos
    image = CNNImageEncoder(output="lazy", **ENCODER)
    flat = MultimodalFusion([("image", image, "photo")], output="flat")
    pixels = CNNImageEncoder(output="pixels", **ENCODER).fit_transform(frame[["photo"]])

    np.testing.assert_array_equal(flat.fit_transform(frame), pixels)
    photo = frame[["photo"]]
    blocks = ModalityBlocks({"image": image.fit(photo).transform(photo)})
    assert blocks.shape == pixels.shape
    np.testing.assert_array_equal(np.asarray(blocks[[0, 5]]), pixels[[0, 5]])


def test_an_encoder_trained_on_y_lazily_matches_the_in_memory_one(photos):
    frame, y = photos
    X = frame[["photo"]]
    params = dict(max_epochs=2, batch_size=16, augment=True, **ENCODER)
    lazy = CNNImageEncoder(output="lazy", **params).fit(X, y)
    in_memory = CNNImageEncoder(output="pixels", **params).fit(X, y)

    np.testing.assert_allclose(lazy.loss_curve_, in_memory.loss_curve_, rtol=1e-6)
    for name, value in in_memory.cnn_.state_dict().items():
        torch.testing.assert_close(lazy.cnn_.state_dict()[name], value)


def test_augmentation_changes_training_but_not_prediction(photos):
    frame, y = photos
    plain = _model("lazy").fit(frame, y)
    augmented = _model("lazy", augment=True).fit(frame, y)
    again = _model("lazy", augment=True).fit(frame, y)
    other_seed = _model("lazy", augment=True, random_state=1).fit(frame, y)
    in_memory = _model("pixels", augment=True).fit(frame, y)

    proba = augmented.predict_proba(frame)
    assert not np.allclose(proba, plain.predict_proba(frame))
    # Same seed, same augmented images: the same model, lazy or in memory.
    np.testing.assert_array_equal(again.predict_proba(frame), proba)
    np.testing.assert_allclose(in_memory.predict_proba(frame), proba, atol=1e-6)
    assert not np.allclose(other_seed.predict_proba(frame), proba)
    # Prediction never draws augmentations: it repeats itself exactly.
    np.testing.assert_array_equal(augmented.predict_proba(frame), proba)
    tower = augmented[-1].net_.module_.towers["image"].tower
    assert isinstance(tower, AugmentedTower)
    images = torch.randn(4, 3, 8, 8)
    assert tower.eval().augmentation(images) is images


def test_augmentation_draws_from_the_fit_generator():
    images = torch.randn(6, 3, 8, 8)
    augment = ImageAugmentation(**check_augment(True)).train()
    with stochastic_layers(make_generator(3)):
        first = augment(images)
    with stochastic_layers(make_generator(3)):
        second = augment(images)
    with stochastic_layers(make_generator(4)):
        third = augment(images)

    assert first.shape == images.shape
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.allclose(first, third)


def test_flip_only_mirrors_about_half_the_images():
    images = torch.randn(64, 1, 5, 5)
    flipped = ImageAugmentation(flip=True).train()(images, generator=make_generator(0))
    mirrored = [torch.equal(f, i.flip(2)) for f, i in zip(flipped, images)]
    unchanged = [torch.equal(f, i) for f, i in zip(flipped, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 16 < sum(mirrored) < 48


def test_colour_jitter_keeps_decoded_pixels_in_range():
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3])
    pixels = torch.rand(32, 3, 6, 6)
    images = (pixels - torch.tensor(mean).view(1, 3, 1, 1).float()) / torch.tensor(
        std
    ).view(1, 3, 1, 1).float()
    augment = ImageAugmentation(brightness=0.5, contrast=0.5, mean=mean, std=std)
    out = augment.train()(images, generator=make_generator(0))
    back = out * augment.std + augment.mean
    assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6
    assert not torch.allclose(out, images)


@pytest.mark.parametrize(
    "augment, message",
    [
        ({"flip": True, "rotate": 10}, "unknown keys \\['rotate'\\]"),
        ({"crop": 1.5}, "augment\\['crop'\\] must be in \\(0, 1\\]"),
        ({"crop": (0.9, 0.5)}, "min <= max"),
        ({"brightness": -0.1}, "augment\\['brightness'\\] must be in \\[0, 1\\)"),
    ],
)
def test_bad_augment_settings_name_the_key(photos, augment, message):
    frame, _ = photos
    with pytest.raises(ValueError, match=message):
        CNNImageEncoder(augment=augment, **ENCODER).fit(frame[["photo"]])


def test_augment_settings():
    assert check_augment(None) is None
    assert check_augment(False) is None
    assert check_augment({"brightness": 0.0}) is None
    assert check_augment({"crop": 0.8}) == {
        "flip": False,
        "crop": (0.8, 1.0),
        "brightness": 0.0,
        "contrast": 0.0,
    }
    assert check_augment(True)["flip"] is True

import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skmm._blocks import BlockSpec
from skmm.encoders._image import CNNImageEncoder
from skmm.nn._towers import ConvTower
from skmm.utils import clear_frozen_cache, frozen_cache_info

FAST = dict(image_size=8, channels=(4, 8), random_state=0)


def _rgb(seed, shape=(10, 14)):
    return np.random.RandomState(seed).randint(0, 256, (*shape, 3), dtype=np.uint8)


def _column(cells, name="photo"):
    return pd.DataFrame({name: pd.Series(cells, dtype=object)})


@pytest.fixture
def image_files(tmp_path):
    pixels = _rgb(0)
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(pixels).save(png)
    Image.fromarray(pixels).save(jpg, quality=95)
    return pixels, png, jpg


def test_every_kind_of_cell_is_encoded(image_files):
    pixels, png, jpg = image_files
    cells = [
        str(png),
        jpg,
        png.read_bytes(),
        Image.fromarray(pixels),
        pixels,
        np.dstack([pixels, np.full(pixels.shape[:2], 7, dtype=np.uint8)]),
        pixels[:, :, 0],
        pixels[:, :, :1],
        pixels / 255.0,
        pixels.astype(np.int64),
    ]
    Xt = CNNImageEncoder(**FAST).fit_transform(_column(cells))

    assert Xt.shape == (len(cells), 8)
    assert Xt.dtype == np.float32
    # The same pixels give the same features, however they are passed.
    for row in (2, 3, 4, 8, 9):
        np.testing.assert_array_equal(Xt[row], Xt[0])
    np.testing.assert_array_equal(Xt[7], Xt[6])
    assert not np.array_equal(Xt[6], Xt[0])


def test_rgba_is_read_as_its_rgb_pixels():
    rgb = _rgb(1)
    alpha = np.random.RandomState(2).randint(0, 256, rgb.shape[:2], dtype=np.uint8)
    encoder = CNNImageEncoder(**FAST).fit(_column([rgb, _rgb(3)]))

    np.testing.assert_array_equal(
        encoder.transform(_column([np.dstack([rgb, alpha])])),
        encoder.transform(_column([rgb])),
    )


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_missing_image_is_zero_in_fit_and_transform(missing):
    images = [_rgb(i) for i in range(4)]
    encoder = CNNImageEncoder(**FAST)
    Xt_fit = encoder.fit_transform(_column([*images, missing]))
    Xt = encoder.transform(_column([missing, images[0]]))

    np.testing.assert_array_equal(Xt_fit[-1], Xt[0])
    # Features of a missing image are zeros; its pixels are the mean image.
    np.testing.assert_array_equal(Xt[0], 0.0)
    assert np.abs(Xt[1]).sum() > 0
    pixels = CNNImageEncoder(output="pixels", **FAST).fit(_column(images))
    np.testing.assert_array_equal(pixels.transform(_column([missing])), 0.0)
    # Missing images do not count towards the channel statistics.
    reference = CNNImageEncoder(**FAST).fit(_column(images))
    np.testing.assert_allclose(encoder.channel_mean_, reference.channel_mean_)
    np.testing.assert_allclose(encoder.channel_std_, reference.channel_std_)


def test_unreadable_file_error_names_file_column_and_row(tmp_path, image_files):
    _, png, _ = image_files
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(png.read_bytes()[:60])
    encoder = CNNImageEncoder(**FAST).fit(_column([png]))

    for bad in (corrupt, tmp_path / "absent.jpg"):
        with pytest.raises(ValueError, match=re.escape(str(bad))) as exc_info:
            encoder.transform(_column([png, png, bad]))
        assert "column 'photo', row 2" in str(exc_info.value)


@pytest.mark.parametrize(
    "cell, error, message",
    [
        (3, TypeError, "expected an image"),
        (np.zeros(5, dtype=np.uint8), ValueError, r"shape \(H, W\)"),
        (np.zeros((4, 4, 5), dtype=np.uint8), ValueError, r"got \(4, 4, 5\)"),
        (np.full((4, 4), 2.5), ValueError, r"in \[0, 1\]"),
        (np.zeros((4, 4), dtype=bool), TypeError, "dtype bool"),
    ],
)
def test_cell_that_is_not_an_image_names_column_and_row(cell, error, message):
    X = _column([_rgb(0), _rgb(1), cell], name="picture")

    with pytest.raises(error, match=message) as exc_info:
        CNNImageEncoder(**FAST).fit(X)
    assert "column 'picture', row 2" in str(exc_info.value)


def test_wrong_number_of_columns_or_kind_of_block_at_transform():
    X = np.empty((2, 1), dtype=object)
    X[:, 0] = [_rgb(0), _rgb(1)]
    encoder = CNNImageEncoder(**FAST).fit(X)

    with pytest.raises(ValueError, match="X has 2 features"):
        encoder.transform(np.hstack([X, X]))
    with pytest.raises(ValueError, match="fitted on a block of image cells"):
        encoder.transform(np.zeros((2, 1)))


def test_several_columns_share_the_network():
    a, b = [_rgb(0), _rgb(1), _rgb(2)], [_rgb(3), None, _rgb(4)]
    X = pd.DataFrame({"front": a, "back": b})
    encoder = CNNImageEncoder(**FAST)
    Xt = encoder.fit_transform(X)

    assert Xt.shape == (3, 16)
    names = encoder.get_feature_names_out()
    assert list(names[[0, 7, 8, 15]]) == [
        "front__cnn0",
        "front__cnn7",
        "back__cnn0",
        "back__cnn7",
    ]
    # One network, one set of channel statistics, for both columns.
    swapped = encoder.transform(pd.DataFrame({"front": b, "back": a}))
    np.testing.assert_array_equal(swapped[:, :8], Xt[:, 8:])
    assert encoder.get_block_spec() == BlockSpec(kind="dense", n_features=16)


def test_pixels_output_and_its_block_spec():
    X = _column([_rgb(i) for i in range(5)])
    encoder = CNNImageEncoder(
        image_size=(6, 10), channels=(4, 8), mode="L", output="pixels", random_state=0
    )
    Xt = encoder.fit_transform(X)

    assert Xt.shape == (5, 60)
    np.testing.assert_allclose(Xt.mean(), 0, atol=1e-6)
    np.testing.assert_allclose(Xt.std(), 1, atol=1e-5)
    spec = encoder.get_block_spec()
    assert (spec.kind, spec.n_features, spec.image_shape) == ("image", 60, (1, 6, 10))
    assert (spec.tower_dim, spec.trainable) == (8, True)
    assert encoder.get_feature_names_out()[-1] == "photo__pixel59"

    two_columns = pd.DataFrame({"a": [_rgb(0)], "b": [_rgb(1)]})
    with pytest.raises(ValueError, match="single image column"):
        encoder.fit(two_columns)


def test_tower_on_pixels_gives_the_features():
    X = _column([_rgb(i) for i in range(6)] + [None])
    y = [0, 1, 0, 1, 0, 1, 0]
    encoder = CNNImageEncoder(output="pixels", max_epochs=1, **FAST).fit(X, y)
    spec = encoder.get_block_spec()
    tower = spec.tower()

    assert isinstance(tower, ConvTower) and tower.training
    assert tower is not encoder.cnn_
    pixels = torch.from_numpy(encoder.transform(X)).view(-1, *spec.image_shape)
    with torch.no_grad():
        from_tower = tower(pixels).numpy()
    features = encoder.set_params(output="features").transform(X)
    # The last image is missing: zero features, a zero pixel row for the tower.
    np.testing.assert_allclose(from_tower[:-1], features[:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(features[-1], 0.0)
    # A fresh copy each time: training one tower leaves the encoder as it is.
    next(tower.parameters()).data.add_(1.0)
    np.testing.assert_array_equal(encoder.transform(X), features)


def _squares(n, rng, size=12, side=3):
    """Grey noise with a bright square in the left (y=0) or right (y=1) half."""
    X = np.empty((n, 1), dtype=object)
    y = rng.randint(0, 2, n)
    for i in range(n):
        image = rng.randint(0, 80, (size, size)).astype(np.uint8)
        top = rng.randint(0, size - side + 1)
        half = size // 2
        left = rng.randint(0, half - side + 1) + half * y[i]
        image[top : top + side, left : left + side] = 255
        X[i, 0] = image
    return X, y


def test_training_on_y_changes_the_network_and_learns_the_task():
    rng = np.random.RandomState(0)
    X_train, y_train = _squares(160, rng)
    X_test, y_test = _squares(100, rng)
    params = dict(image_size=12, channels=(4, 8), mode="L", lr=2e-2, batch_size=32)
    frozen = CNNImageEncoder(random_state=0, **params).fit(X_train)
    trained = CNNImageEncoder(max_epochs=8, random_state=0, **params)
    trained.fit(X_train, y_train)

    assert not frozen.trained_on_y_ and trained.trained_on_y_
    assert len(trained.loss_curve_) == 8
    assert trained.loss_curve_[-1] < 0.5 * trained.loss_curve_[0]
    assert not torch.equal(
        frozen.cnn_.features[0].weight, trained.cnn_.features[0].weight
    )
    probe = LogisticRegression().fit(trained.transform(X_train), y_train)
    assert probe.score(trained.transform(X_test), y_test) > 0.9


def test_regression_target_and_augmentation_train():
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(40)]
    y = np.array([image.mean() for image in images])
    encoder = CNNImageEncoder(max_epochs=4, lr=1e-2, augment=True, **FAST)
    encoder.fit(_column(images), y)

    assert encoder.trained_on_y_
    assert encoder.loss_curve_[-1] < encoder.loss_curve_[0]
    with pytest.raises(ValueError, match="NaN"):
        encoder.fit(_column(images), np.r_[y[:-1], np.nan])
    with pytest.raises(ValueError, match="rows"):
        encoder.fit(_column(images), y[:-1])


def test_same_random_state_same_features_and_global_rng_untouched():
    X = _column([_rgb(i) for i in range(8)])
    y = [0, 1] * 4
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()

    first = CNNImageEncoder(max_epochs=2, augment=True, **FAST).fit_transform(X, y)
    second = CNNImageEncoder(max_epochs=2, augment=True, **FAST).fit(X, y).transform(X)
    other = CNNImageEncoder(max_epochs=2, **{**FAST, "random_state": 1})

    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other.fit_transform(X, y))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


def test_pickle_round_trip(tmp_path, image_files):
    _, png, jpg = image_files
    X = _column([png, jpg, None])
    encoder = CNNImageEncoder(output="pixels", max_epochs=1, **FAST).fit(X, [0, 1, 0])

    restored = pickle.loads(pickle.dumps(encoder))
    np.testing.assert_array_equal(restored.transform(X), encoder.transform(X))
    assert torch.equal(
        restored.make_tower().features[0].weight, encoder.cnn_.features[0].weight
    )


def test_parallel_decoding_gives_identical_output(tmp_path):
    paths = []
    for i in range(40):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(_rgb(i, shape=(24, 20))).save(paths[-1])
    X = pd.DataFrame({"a": paths, "b": paths[::-1]})
    X.loc[3, "b"] = None
    # No cache, so that the parallel encoder really decodes the files.
    serial = CNNImageEncoder(batch_size=8, cache=False, **FAST).fit(X)
    parallel = CNNImageEncoder(batch_size=8, n_jobs=2, cache=False, **FAST).fit(X)

    np.testing.assert_array_equal(parallel.channel_mean_, serial.channel_mean_)
    np.testing.assert_array_equal(parallel.transform(X), serial.transform(X))
    (tmp_path / "7.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"7\.jpg.*column 'a', row 7"):
        parallel.transform(X)


def test_numeric_block_is_read_as_flattened_images():
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    encoder = CNNImageEncoder(**FAST)
    Xt = encoder.fit_transform(X)

    assert Xt.shape == (200, 8)
    assert encoder.input_shape_ == (8, 8, 1)
    assert encoder.get_feature_names_out()[0] == "cnn0"
    # An object block of numbers is the same numeric block.
    np.testing.assert_array_equal(encoder.transform(X.astype(object)), Xt)
    with pytest.raises(ValueError, match="fitted on a block of numbers"):
        encoder.transform(np.empty((1, 64), dtype=object))


def test_numeric_block_shapes_and_missing_pixels():
    rng = np.random.RandomState(0)
    rows = rng.uniform(size=(5, 4 * 6 * 3))
    colour = CNNImageEncoder(input_shape=(4, 6, 3), **FAST).fit(rows)
    strip = CNNImageEncoder(**FAST).fit(rows)

    assert colour.input_shape_ == (4, 6, 3)
    assert strip.input_shape_ == (1, 72, 1)
    with pytest.raises(ValueError, match="holds 48 values"):
        CNNImageEncoder(input_shape=(4, 4, 3), **FAST).fit(rows)

    with_gaps = rows.copy()
    with_gaps[0] = np.nan
    with_gaps[1, :10] = np.nan
    Xt = colour.transform(with_gaps)
    assert np.isfinite(Xt).all()
    with torch.no_grad():
        mean_image = colour.cnn_(torch.zeros(1, 3, 8, 8)).numpy()[0]
    expected = (mean_image - colour.feature_mean_) / colour.feature_std_
    np.testing.assert_allclose(Xt[0], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="infinity"):
        colour.transform(np.where(np.isnan(with_gaps), np.inf, with_gaps))


def test_pandas_output_and_progress(capsys):
    X = _column([_rgb(0), _rgb(1)])
    encoder = CNNImageEncoder(verbose=1, **FAST).set_output(transform="pandas")
    Xt = encoder.fit_transform(X)

    assert isinstance(Xt, pd.DataFrame)
    assert list(Xt.columns) == [f"photo__cnn{i}" for i in range(8)]
    captured = capsys.readouterr()
    assert "CNNImageEncoder" in captured.out + captured.err


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(image_size=(8, 0)), "image_size"),
        (dict(channels=()), "channels"),
        (dict(device="quantum"), "device"),
        (dict(mode="CMYK"), "mode"),
    ],
)
def test_invalid_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        CNNImageEncoder(**params).fit(_column([_rgb(0)]))


def test_auto_device_runs_where_it_can():
    encoder = CNNImageEncoder(device="auto", **FAST).fit(_column([_rgb(0)]))

    assert next(encoder.cnn_.parameters()).device.type == "cpu"
    assert encoder.__sklearn_tags__().non_deterministic == torch.cuda.is_available()
    assert (
        CNNImageEncoder().__sklearn_tags__().non_deterministic
        == torch.cuda.is_available()
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_gives_a_cpu_model():
    X = _column([_rgb(i) for i in range(16)])
    y = [0, 1] * 8
    gpu = CNNImageEncoder(device="cuda", max_epochs=2, **FAST).fit(X, y)
    cpu_copy = pickle.loads(pickle.dumps(gpu)).set_params(device="cpu")

    assert next(gpu.cnn_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(
        cpu_copy.transform(X), gpu.transform(X), rtol=1e-4, atol=1e-5
    )


def _coloured_squares(n, rng, size=16, side=3):
    """RGB noise with a small red (y=0) or blue (y=1) square anywhere."""
    X = np.empty((n, 1), dtype=object)
    y = rng.randint(0, 2, n)
    for i in range(n):
        image = rng.randint(0, 200, (size, size, 3)).astype(np.uint8)
        top, left = rng.randint(0, size - side + 1, 2)
        image[top : top + side, left : left + side] = (
            (255, 0, 0) if y[i] == 0 else (0, 0, 255)
        )
        X[i, 0] = image
    return X, y


def test_features_are_standardised_on_the_fitted_images():
    rng = np.random.RandomState(0)
    X, _ = _coloured_squares(60, rng)
    X[::10, 0] = None
    encoder = CNNImageEncoder(image_size=16)
    Xt = encoder.fit_transform(X)

    present = np.ones(len(X), dtype=bool)
    present[::10] = False
    assert encoder.feature_mean_.shape == encoder.feature_std_.shape == (32,)
    # Missing images stay all-zero rows and do not count in the statistics.
    np.testing.assert_array_equal(Xt[~present], 0.0)
    np.testing.assert_allclose(Xt[present].mean(axis=0), 0.0, atol=1e-5)
    varying = encoder.feature_std_ != 1.0
    assert varying.sum() > 16
    np.testing.assert_allclose(Xt[present][:, varying].std(axis=0), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(encoder.transform(X), Xt)

    raw = CNNImageEncoder(image_size=16, standardize=False).fit(X)
    assert raw.feature_mean_ is None and raw.feature_std_ is None
    Xt_raw = raw.transform(X)
    np.testing.assert_allclose(
        (Xt_raw[present] - encoder.feature_mean_) / encoder.feature_std_,
        Xt[present],
        rtol=1e-4,
        atol=1e-4,
    )
    # The raw features of a random network sit on a far smaller scale.
    assert Xt_raw[present].std(axis=0).max() < 0.5


def test_standardised_features_serve_a_plain_linear_model():
    rng = np.random.RandomState(0)
    X_train, y_train = _coloured_squares(120, rng)
    X_test, y_test = _coloured_squares(100, rng)
    scores = {}
    for standardize in (True, False):
        model = make_pipeline(
            CNNImageEncoder(image_size=16, standardize=standardize),
            LogisticRegression(),
        )
        scores[standardize] = model.fit(X_train, y_train).score(X_test, y_test)

    assert scores[True] > 0.95
    # Raw features of a random network are too small for the default
    # regularisation of a linear model.
    assert scores[True] > scores[False] + 0.05


def test_default_network_is_the_same_at_every_fit():
    X = _column([_rgb(i) for i in range(4)])
    first = CNNImageEncoder(image_size=8).fit_transform(X)

    assert CNNImageEncoder().random_state == 0
    np.testing.assert_array_equal(
        CNNImageEncoder(image_size=8, cache=False).fit_transform(X), first
    )
    unseeded = CNNImageEncoder(image_size=8, random_state=None, cache=False)
    assert not np.allclose(unseeded.fit_transform(X), first)


def test_cached_fitted_state_holds_the_feature_statistics():
    clear_frozen_cache()
    X = _column([_rgb(i) for i in range(5)])
    first = CNNImageEncoder(**FAST).fit(X)
    hits = frozen_cache_info().hits
    again = clone(first).fit(X)

    assert frozen_cache_info().hits == hits + 1
    np.testing.assert_array_equal(again.feature_mean_, first.feature_mean_)
    np.testing.assert_array_equal(again.feature_std_, first.feature_std_)
    np.testing.assert_array_equal(again.transform(X), first.transform(X))
    clear_frozen_cache()


def test_a_pickle_from_before_standardize_loads_and_transforms_as_before(
    monkeypatch,
):
    X = pd.DataFrame(
        {"photo": list(np.random.RandomState(0).uniform(size=(12, 8, 8, 3)))}
    )
    encoder = CNNImageEncoder(standardize=False, max_epochs=1, **FAST).fit(X)
    expected = encoder.transform(X)
    current = CNNImageEncoder.__getstate__

    def state_without_standardize(self):
        state = dict(current(self))
        for name in ("standardize", "feature_mean_", "feature_std_"):
            del state[name]
        return state

    monkeypatch.setattr(CNNImageEncoder, "__getstate__", state_without_standardize)
    old_pickle = pickle.dumps(encoder)
    monkeypatch.undo()

    loaded = pickle.loads(old_pickle)
    assert loaded.standardize is False
    np.testing.assert_array_equal(loaded.transform(X), expected)
    assert clone(loaded).get_params()["standardize"] is False


def test_base_dir_resolves_relative_paths(tmp_path, image_files, monkeypatch):
    _, png, jpg = image_files
    absolute = _column([png, str(jpg), None])
    relative = _column([png.name, jpg.name, None])
    expected = CNNImageEncoder(**FAST).fit_transform(absolute)

    # Relative paths are read from base_dir, not from the working folder.
    monkeypatch.chdir(tmp_path.parent)
    encoder = CNNImageEncoder(base_dir=tmp_path, **FAST)
    np.testing.assert_allclose(encoder.fit_transform(relative), expected)
    np.testing.assert_allclose(encoder.transform(relative), expected)
    # Absolute paths are kept.
    np.testing.assert_allclose(encoder.transform(absolute), expected)


def test_missing_file_error_names_resolved_path_column_and_row(tmp_path, image_files):
    _, png, _ = image_files
    X = _column([png.name, "absent.png"])

    with pytest.raises(ValueError) as exc_info:
        CNNImageEncoder(base_dir=tmp_path, **FAST).fit(X)
    message = str(exc_info.value)
    assert repr(str(tmp_path / "absent.png")) in message
    assert "column 'photo', row 1" in message
    assert "does not exist" in message

    with pytest.raises(ValueError, match="pass base_dir"):
        CNNImageEncoder(**FAST).fit(X)

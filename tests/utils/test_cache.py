import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skmm.encoders import _image_io
from skmm.encoders._image import CNNImageEncoder
from skmm.encoders._image_pretrained import PretrainedImageEncoder
from skmm.utils import frozen_cache_info
from skmm.utils._cache import (
    FROZEN_OUTPUTS,
    CacheInfo,
    OutputCache,
    clear_frozen_cache,
    content_key,
)

FAST = dict(image_size=8, channels=(4, 8), batch_size=4, random_state=0)


def _rgb(seed, shape=(10, 12)):
    return np.random.RandomState(seed).randint(0, 256, (*shape, 3), dtype=np.uint8)


def _column(cells, name="photo"):
    return pd.DataFrame({name: pd.Series(cells, dtype=object)})


@pytest.fixture(autouse=True)
def _empty_cache():
    clear_frozen_cache()
    yield
    clear_frozen_cache()


@pytest.fixture
def count_decoded(monkeypatch):
    """Count the image cells decoded from now on."""
    decoded = []
    decode_cells = _image_io.decode_cells

    def counting(cells, *args):
        decoded.append(cells.size)
        return decode_cells(cells, *args)

    monkeypatch.setattr(_image_io, "decode_cells", counting)
    return lambda: sum(decoded)


def _assert_same_fitted_state(first, second):
    np.testing.assert_array_equal(first.channel_mean_, second.channel_mean_)
    np.testing.assert_array_equal(first.channel_std_, second.channel_std_)
    first_weights, second_weights = first.cnn_.state_dict(), second.cnn_.state_dict()
    assert first_weights.keys() == second_weights.keys()
    for name, weight in first_weights.items():
        assert torch.equal(weight, second_weights[name])
    assert first.image_shape_ == second.image_shape_
    assert first.input_shape_ == second.input_shape_
    assert first.n_features_in_ == second.n_features_in_
    np.testing.assert_array_equal(first.feature_names_in_, second.feature_names_in_)
    assert first.loss_curve_ == second.loss_curve_ == []
    assert not first.trained_on_y_ and not second.trained_on_y_


def test_lru_evicts_the_least_recently_used_values_beyond_the_bytes_bound():
    cache = OutputCache(max_bytes=100)
    cache.put("a", "A", nbytes=40)
    cache.put("b", "B", nbytes=40)
    assert cache.get("a") == "A"
    cache.put("c", "C", nbytes=40)

    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("A", "C")
    assert cache.info() == CacheInfo(hits=3, misses=1, entries=2, bytes=80)

    cache.put("a", "A2", nbytes=10)
    cache.put("huge", "H", nbytes=101)
    assert cache.get("huge") is None
    assert cache.get("a") == "A2"
    assert cache.info().bytes == 50

    cache.clear()
    assert cache.info() == CacheInfo(hits=0, misses=0, entries=0, bytes=0)


def test_content_key_follows_content_not_identity():
    cells = np.empty(2, dtype=object)
    cells[:] = [_rgb(0), "a.png"]
    same = np.empty(2, dtype=object)
    same[:] = [_rgb(0), "a.png"]
    other = np.empty(2, dtype=object)
    other[:] = [_rgb(1), "a.png"]

    assert content_key(cells, ["photo"]) == content_key(same, ["photo"])
    assert content_key(cells, ["photo"]) != content_key(other, ["photo"])
    assert content_key(cells, ["photo"]) != content_key(cells, ["image"])


def test_clone_on_the_same_data_reuses_fitted_state_and_output(monkeypatch, capsys):
    X, X_new = _column([_rgb(i) for i in range(6)]), _column([_rgb(9), None])
    encoder = CNNImageEncoder(**FAST)
    Xt = encoder.fit_transform(X)
    Xt_new = encoder.transform(X_new)
    before = FROZEN_OUTPUTS.info()

    def no_decoding(*args):
        raise AssertionError("a cached encoder decoded images")

    monkeypatch.setattr(_image_io, "decode_cells", no_decoding)
    # verbose is not part of the key; it reports the reuse.
    again = clone(encoder).set_params(verbose=1)
    Xt_again = again.fit_transform(X)
    # The cache keeps its own copy of what it hands out.
    Xt_again[:] = 0.0

    np.testing.assert_array_equal(again.transform(X_new), Xt_new)
    np.testing.assert_array_equal(clone(encoder).fit(X).transform(X), Xt)
    # Column names shape no number: they are recorded, not looked up.
    renamed = clone(encoder).fit(X.rename(columns={"photo": "image"}))
    assert renamed.get_feature_names_out()[0] == "image__cnn0"
    assert FROZEN_OUTPUTS.info().hits == before.hits + 6
    assert FROZEN_OUTPUTS.info().misses == before.misses
    assert "reused the cached result" in capsys.readouterr().err
    _assert_same_fitted_state(again, encoder)
    assert again.cnn_ is not encoder.cnn_

    monkeypatch.undo()
    uncached = CNNImageEncoder(cache=False, **FAST)
    np.testing.assert_array_equal(uncached.fit_transform(X), Xt)
    np.testing.assert_array_equal(uncached.transform(X_new), Xt_new)
    _assert_same_fitted_state(uncached, encoder)


@pytest.mark.parametrize(
    "change",
    [
        dict(params=dict(random_state=1)),
        dict(params=dict(channels=(4, 6))),
        dict(params=dict(mode="L")),
        dict(params=dict(output="pixels")),
        dict(cell=_rgb(7)),
    ],
)
def test_other_parameters_or_data_are_a_miss(change):
    cells = [_rgb(i) for i in range(4)]
    encoder = CNNImageEncoder(**FAST)
    Xt = encoder.fit_transform(_column(cells))

    if "cell" in change:
        cells[2] = change["cell"]
    other = clone(encoder).set_params(**change.get("params", {}))
    X_other = _column(cells)
    Xt_other = other.fit_transform(X_other)

    assert FROZEN_OUTPUTS.info().hits == 0
    assert not np.array_equal(Xt_other, Xt)
    np.testing.assert_array_equal(
        Xt_other, clone(other).set_params(cache=False).fit_transform(X_other)
    )


def test_only_frozen_seeded_encoders_with_cache_on_are_cached():
    X, y = _column([_rgb(i) for i in range(6)]), [0, 1] * 3
    for _ in range(2):
        CNNImageEncoder(max_epochs=1, **FAST).fit_transform(X, y).copy()
        CNNImageEncoder(cache=False, **FAST).fit_transform(X)
        CNNImageEncoder(**{**FAST, "random_state": None}).fit_transform(X)
    assert FROZEN_OUTPUTS.info() == CacheInfo(hits=0, misses=0, entries=0, bytes=0)

    # With max_epochs=0, y is ignored: the encoder is frozen.
    CNNImageEncoder(**FAST).fit(X, y)
    assert FROZEN_OUTPUTS.info().entries == 1


def test_random_state_instance_gives_the_same_sequence_of_networks():
    X = _column([_rgb(i) for i in range(4)])

    def two_fits(cache):
        encoder = CNNImageEncoder(
            **{**FAST, "random_state": np.random.RandomState(0)}, cache=cache
        )
        return [encoder.fit_transform(X) for _ in range(2)]

    uncached = two_fits(cache=False)
    first, second = two_fits(cache=True), two_fits(cache=True)

    assert not np.array_equal(uncached[0], uncached[1])
    for Xt_uncached, Xt_first, Xt_second in zip(uncached, first, second):
        np.testing.assert_array_equal(Xt_first, Xt_uncached)
        np.testing.assert_array_equal(Xt_second, Xt_uncached)
    assert FROZEN_OUTPUTS.info().hits == 4


def test_an_edited_image_file_is_read_again(tmp_path):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(_rgb(i)).save(paths[-1])
    X = _column(paths)
    encoder = CNNImageEncoder(**FAST)
    Xt = encoder.fit_transform(X)
    fitted_on_original = CNNImageEncoder(cache=False, **FAST).fit(X)

    Image.fromarray(_rgb(10)).save(paths[1])
    stat = os.stat(paths[1])
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    Xt_refitted = clone(encoder).fit_transform(X)
    Xt_transformed = encoder.transform(X)

    assert FROZEN_OUTPUTS.info().hits == 0
    assert not np.array_equal(Xt_transformed[1], Xt[1])
    np.testing.assert_array_equal(Xt_transformed, fitted_on_original.transform(X))
    np.testing.assert_array_equal(
        Xt_refitted, CNNImageEncoder(cache=False, **FAST).fit_transform(X)
    )


@pytest.mark.parametrize("encoder", ["cnn", "pretrained"])
def test_a_file_replaced_with_the_same_size_and_mtime_is_read_again(tmp_path, encoder):
    # Uncompressed BMP files of one shape all have the same size.
    paths = [tmp_path / f"{i}.bmp" for i in range(3)]
    for i, path in enumerate(paths):
        Image.fromarray(_rgb(i)).save(path)
    X = _column(paths)
    first = CNNImageEncoder(**FAST) if encoder == "cnn" else _pretrained()
    Xt = first.fit_transform(X)

    # As `cp -p` or `tar x` replace a file: other bytes, same size and mtime.
    before = os.stat(paths[1])
    Image.fromarray(_rgb(10)).save(paths[1])
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(paths[1])
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    Xt_refitted = clone(first).fit_transform(X)
    Xt_transformed = first.transform(X)

    assert not np.array_equal(Xt_refitted[1], Xt[1])
    assert not np.array_equal(Xt_transformed[1], Xt[1])
    # The fitted state is the first one: the other rows are unchanged.
    np.testing.assert_array_equal(Xt_transformed[[0, 2]], Xt[[0, 2]])
    np.testing.assert_array_equal(
        Xt_refitted, clone(first).set_params(cache=False).fit_transform(X)
    )


@pytest.mark.parametrize("encoder", ["cnn", "pretrained"])
def test_grid_search_decodes_each_fold_once(count_decoded, encoder):
    rng = np.random.RandomState(0)
    X = _column([_rgb(i) for i in range(12)])
    y = rng.randint(0, 2, size=12)
    y[:2] = [0, 1]
    grid = {"logisticregression__C": [0.1, 1.0, 10.0]}

    def decoded_by_search(cache):
        if encoder == "cnn":
            step = CNNImageEncoder(**FAST, cache=cache)
        else:
            step = _pretrained(cache=cache)
        start = count_decoded()
        search = GridSearchCV(make_pipeline(step, LogisticRegression()), grid, cv=2)
        search.fit(X, y)
        return count_decoded() - start, search

    decoded_uncached, uncached = decoded_by_search(cache=False)
    decoded_cached, cached = decoded_by_search(cache=True)

    # Each fold decodes its training and test rows: 12 images per fold.
    assert decoded_uncached == 3 * 2 * 12 + 12
    if encoder == "cnn":
        assert decoded_cached == 2 * 12 + 12
    else:
        # PretrainedImageEncoder learns nothing in fit, so its output depends
        # on the rows transformed only: with cv=2 the second fold's training
        # rows are the first fold's test rows and the reverse.
        assert decoded_cached == 12 + 12
    np.testing.assert_array_equal(
        cached.cv_results_["mean_test_score"], uncached.cv_results_["mean_test_score"]
    )


# -- PretrainedImageEncoder -----------------------------------------------------


def _small_network(seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)
        )


def _pretrained(seed=0, **params):
    return PretrainedImageEncoder(
        _small_network(seed), image_size=8, batch_size=4, **params
    )


@pytest.mark.parametrize("output", ["features", "pixels"])
def test_pretrained_image_clone_reuses_the_output(count_decoded, output):
    X, X_new = _column([_rgb(i) for i in range(6)]), _column([_rgb(9), None])
    encoder = _pretrained(output=output)
    Xt, Xt_new = encoder.fit_transform(X), encoder.transform(X_new)
    decoded = count_decoded()

    again = clone(encoder).fit(X)
    Xt_again = again.transform(X)
    # The cache keeps its own copy of what it hands out.
    Xt_again[:] = 0.0

    np.testing.assert_array_equal(again.transform(X), Xt)
    np.testing.assert_array_equal(again.transform(X_new), Xt_new)
    assert count_decoded() == decoded == 8
    uncached = clone(encoder).set_params(cache=False).fit(X)
    np.testing.assert_array_equal(uncached.transform(X), Xt)
    assert count_decoded() == decoded + 6


@pytest.mark.parametrize(
    "change",
    [
        dict(module=_small_network(1)),
        dict(image_size=6),
        dict(mean=(0.5, 0.5, 0.5)),
        dict(std=(0.3, 0.3, 0.3)),
    ],
)
def test_pretrained_image_other_network_or_parameters_are_a_miss(change):
    X = _column([_rgb(i) for i in range(4)])
    Xt = _pretrained().fit_transform(X)

    other = _pretrained().set_params(**change)
    Xt_other = other.fit_transform(X)

    assert FROZEN_OUTPUTS.info().hits == 0
    assert not np.array_equal(Xt_other, Xt)
    np.testing.assert_array_equal(
        Xt_other, clone(other).set_params(cache=False).fit_transform(X)
    )


def test_pretrained_image_key_follows_the_weights_file_not_its_path(tmp_path):
    X = _column([_rgb(i) for i in range(4)])
    path = tmp_path / "weights.pt"
    torch.save(_small_network(0).state_dict(), path)
    Xt = _pretrained(seed=5, weights=path).fit_transform(X)

    torch.save(_small_network(1).state_dict(), path)
    Xt_new_weights = _pretrained(seed=5, weights=path).fit_transform(X)

    assert FROZEN_OUTPUTS.info().hits == 0
    assert not np.array_equal(Xt_new_weights, Xt)
    np.testing.assert_array_equal(Xt_new_weights, _pretrained(1).fit_transform(X))
    # The same weights as a module instance: the same key, a hit.
    assert FROZEN_OUTPUTS.info().hits == 1


def test_pretrained_image_edited_file_is_read_again(tmp_path):
    path = tmp_path / "0.png"
    Image.fromarray(_rgb(0)).save(path)
    X = _column([path])
    encoder = _pretrained()
    Xt = encoder.fit_transform(X)

    Image.fromarray(_rgb(1)).save(path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    assert not np.array_equal(encoder.transform(X), Xt)
    assert FROZEN_OUTPUTS.info().hits == 0


def test_frozen_cache_info_reports_the_shared_cache():
    X = _column([_rgb(i) for i in range(3)])
    encoder = _pretrained()
    Xt = encoder.fit_transform(X)
    encoder.transform(X)

    info = frozen_cache_info()
    assert (info.hits, info.misses, info.entries) == (1, 1, 1)
    assert info.bytes == Xt.nbytes
    clear_frozen_cache()
    assert frozen_cache_info() == CacheInfo(0, 0, 0, 0)

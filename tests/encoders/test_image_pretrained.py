import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skmm import FusionClassifier, MultimodalFusion
from skmm.encoders._image_pretrained import PretrainedImageEncoder
from skmm.nn._towers import PooledNetwork

# -- PretrainedImageEncoder -----------------------------------------------------

SIZE = 8
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class TinyNet(nn.Module):
    """A small convolutional network standing in for a pretrained one."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, X):
        return torch.relu(self.norm(self.conv(X)))


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(1)
    net = TinyNet()
    net.norm.running_mean.uniform_(-0.5, 0.5)
    net.norm.running_var.uniform_(0.5, 2)
    path = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), path)
    return path, net


def _images(n, seed=0):
    rng = np.random.RandomState(seed)
    cells = np.empty((n, 1), dtype=object)
    for i in range(n):
        cells[i, 0] = rng.randint(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return cells


def _manual_features(net, cells):
    pixels = np.stack([cell for cell in cells[:, 0]]).astype(np.float32) / 255
    X = torch.from_numpy(((pixels - MEAN) / STD).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        return net.eval()(X).mean(dim=(2, 3)).numpy()


def test_features_come_from_the_loaded_weights(weights):
    path, net = weights
    X = _images(5)
    encoder = PretrainedImageEncoder(TinyNet, weights=path, image_size=SIZE)
    Xt = encoder.fit_transform(X)

    assert Xt.shape == (5, 4) and Xt.dtype == np.float32
    assert encoder.tower_dim_ == 4
    np.testing.assert_allclose(Xt, _manual_features(net, X), rtol=1e-5, atol=1e-6)
    random_init = PretrainedImageEncoder(TinyNet, image_size=SIZE).fit_transform(X)
    assert not np.allclose(Xt, random_init)


def test_features_are_deterministic(weights):
    path, _ = weights
    X = _images(4)
    encoder = PretrainedImageEncoder(TinyNet, weights=path, image_size=SIZE)

    np.testing.assert_array_equal(encoder.fit_transform(X), encoder.transform(X))
    np.testing.assert_array_equal(clone(encoder).fit_transform(X), encoder.transform(X))
    # A callable without weights is seeded: the same random features each fit.
    random_init = PretrainedImageEncoder(TinyNet, image_size=SIZE)
    np.testing.assert_array_equal(
        random_init.fit_transform(X), clone(random_init).fit_transform(X)
    )


def test_a_module_instance_is_copied_not_modified(weights):
    path, net = weights
    module = TinyNet()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    encoder = PretrainedImageEncoder(module, weights=path, image_size=SIZE).fit(
        _images(2)
    )

    assert encoder.module_ is not module
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_missing_image_gives_zero_features_and_zero_pixels(weights):
    path, _ = weights
    X = _images(2)
    X[1, 0] = None
    params = dict(weights=path, image_size=SIZE)
    Xt = PretrainedImageEncoder(TinyNet, **params).fit_transform(X)
    np.testing.assert_array_equal(Xt[1], 0.0)
    assert np.abs(Xt[0]).sum() > 0
    pixels = PretrainedImageEncoder(TinyNet, output="pixels", **params)
    np.testing.assert_array_equal(pixels.fit_transform(X)[1], 0.0)


def test_spatial_maps_are_pooled_and_vectors_kept():
    X = _images(3)
    flat = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(72, 5))
    encoder = PretrainedImageEncoder(flat, image_size=SIZE).fit(X)

    assert encoder.transform(X).shape == (3, 5)
    assert encoder.get_feature_names_out(["photo"])[0] == "photo__feature0"


def test_pixels_output_hands_the_network_over_as_a_frozen_tower(weights):
    path, _ = weights
    X = _images(4)
    features = PretrainedImageEncoder(
        TinyNet, weights=path, image_size=SIZE
    ).fit_transform(X)
    encoder = PretrainedImageEncoder(
        TinyNet, weights=path, image_size=SIZE, output="pixels"
    )
    pixels = encoder.fit_transform(X)
    spec = encoder.get_block_spec()

    assert pixels.shape == (4, 3 * SIZE * SIZE)
    assert spec.kind == "image" and spec.image_shape == (3, SIZE, SIZE)
    assert spec.tower_dim == 4 and spec.trainable is False
    tower = spec.tower()
    assert isinstance(tower, PooledNetwork) and tower.training
    # Frozen: no gradient, and batch norm keeps its inference statistics.
    assert not any(p.requires_grad for p in tower.parameters())
    assert not tower.network.training
    with torch.no_grad():
        out = tower(torch.from_numpy(pixels).view(4, 3, SIZE, SIZE))
    np.testing.assert_allclose(out.numpy(), features, rtol=1e-5, atol=1e-6)


def test_unfrozen_tower_is_trainable(weights):
    path, _ = weights
    encoder = PretrainedImageEncoder(
        TinyNet, weights=path, image_size=SIZE, output="pixels", freeze=False
    ).fit(_images(2))
    tower = encoder.get_block_spec().tower()

    assert encoder.get_block_spec().trainable is True
    assert all(p.requires_grad for p in tower.parameters())
    assert tower.network.training


def _fusion_data(n=48):
    rng = np.random.RandomState(0)
    y = np.arange(n) % 2
    photos = np.empty(n, dtype=object)
    for i in range(n):
        image = rng.randint(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
        image[:, :, 0] += np.uint8(120 * y[i])
        photos[i] = image
    df = pd.DataFrame({"photo": photos, "x": rng.normal(size=n)})
    return df, y


@pytest.mark.parametrize("freeze", [True, False])
def test_fusion_classifier_trains_the_tower_only_when_unfrozen(weights, freeze):
    path, _ = weights
    df, y = _fusion_data()
    encoder = PretrainedImageEncoder(
        TinyNet,
        weights=path,
        image_size=SIZE,
        output="pixels",
        freeze=freeze,
        tower_lr=1e-3,
    )
    fusion = MultimodalFusion(
        [("image", encoder, "photo"), ("numeric", StandardScaler(), ["x"])]
    )
    model = make_pipeline(
        fusion,
        FusionClassifier(
            hidden_dim=8, max_epochs=3, lr=1e-2, device="cpu", random_state=0
        ),
    ).fit(df, y)

    start = model[0].named_transformers_["image"].module_.state_dict()
    trained = model[-1].net_.module_.towers["image"].tower.network.state_dict()
    changed = [key for key in start if not torch.equal(start[key], trained[key].cpu())]
    groups = model[-1].net_.optimizer_.param_groups
    if freeze:
        assert changed == []
        assert [g["lr"] for g in groups] == [1e-2]
    else:
        assert "conv.weight" in changed and "norm.running_mean" in changed
        # The network at tower_lr, the rest of the model at lr.
        assert [g["lr"] for g in groups] == [1e-3, 1e-2]
        network = model[-1].net_.module_.towers["image"].tower
        assert {id(p) for p in groups[0]["params"]} == {
            id(p) for p in network.parameters()
        }
    assert model.predict(df).shape == (len(df),)


def test_numeric_block_holds_pixels_in_unit_range():
    cells = _images(3)
    flat = np.stack([c.reshape(-1) for c in cells[:, 0]]).astype(np.float64) / 255
    net = TinyNet()
    from_cells = PretrainedImageEncoder(net, image_size=SIZE).fit_transform(cells)
    encoder = PretrainedImageEncoder(net, image_size=SIZE, input_shape=(SIZE, SIZE, 3))

    np.testing.assert_allclose(
        encoder.fit_transform(flat), from_cells, rtol=1e-4, atol=1e-5
    )
    assert encoder.get_feature_names_out()[0] == "feature0"


def test_pickle_round_trip(weights):
    path, _ = weights
    X = _images(3)
    encoder = PretrainedImageEncoder(TinyNet, weights=path, image_size=SIZE).fit(X)
    loaded = pickle.loads(pickle.dumps(encoder))

    np.testing.assert_array_equal(loaded.transform(X), encoder.transform(X))


def test_bad_weights_and_modules_are_clear_errors(tmp_path, weights):
    X = _images(2)
    with pytest.raises(ValueError, match="does not exist"):
        PretrainedImageEncoder(TinyNet, weights=tmp_path / "no.pt").fit(X)
    other = tmp_path / "other.pt"
    torch.save(nn.Linear(2, 2).state_dict(), other)
    with pytest.raises(ValueError, match="do not fit the module"):
        PretrainedImageEncoder(TinyNet, weights=other).fit(X)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Cannot read a state_dict"):
        PretrainedImageEncoder(TinyNet, weights=garbage).fit(X)
    with pytest.raises(TypeError, match="returned int"):
        PretrainedImageEncoder(lambda: 3).fit(X)
    with pytest.raises(ValueError, match=r"\(batch, d\)"):
        PretrainedImageEncoder(nn.Flatten(0)).fit(X)
    with pytest.raises(ValueError, match="mean must hold 1 finite value"):
        PretrainedImageEncoder(TinyNet, mode="L").fit(X)
    with pytest.raises(ValueError, match=r"cannot read images of shape \(1, 8, 8\)"):
        PretrainedImageEncoder(
            TinyNet, mode="L", mean=(0.5,), std=(0.2,), image_size=SIZE
        ).fit(X)
    with pytest.raises(ValueError, match="single image column"):
        PretrainedImageEncoder(TinyNet, output="pixels").fit(np.hstack([X, X]))


def test_base_dir_resolves_relative_paths(tmp_path, weights):
    from PIL import Image

    path, _ = weights
    cells = _images(2)
    for i, pixels in enumerate(cells[:, 0]):
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    encoder = PretrainedImageEncoder(TinyNet, weights=path, base_dir=tmp_path)

    relative = pd.DataFrame({"photo": ["0.png", "1.png"]})
    absolute = pd.DataFrame({"photo": [str(tmp_path / f"{i}.png") for i in range(2)]})

    np.testing.assert_allclose(
        encoder.fit(relative).transform(relative), encoder.transform(absolute)
    )
    with pytest.raises(ValueError, match=r"absent\.png.*column 'photo', row 0"):
        encoder.transform(pd.DataFrame({"photo": ["absent.png"]}))

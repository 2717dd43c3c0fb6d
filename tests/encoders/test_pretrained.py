import os
import pickle
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skmm import FusionClassifier, MultimodalFusion
from skmm.encoders._pretrained import PretrainedImageEncoder, SentenceTextEncoder
from skmm.nn._towers import PooledNetwork, SentenceTower
from skmm.utils._cache import clear_frozen_cache

# -- SentenceTextEncoder --------------------------------------------------------

TEXTS = [
    "A red summer dress made of light cotton.",
    "A light cotton dress in red, for the summer.",
    "The central bank raised interest rates again.",
]


@pytest.fixture(scope="module")
def sentence_encoder():
    """Loading the model takes seconds: one fitted encoder for the module."""
    pytest.importorskip("sentence_transformers")
    return SentenceTextEncoder().fit(pd.DataFrame({"text": TEXTS}))


def _column(texts, name="text"):
    return pd.DataFrame({name: pd.Series(texts, dtype=object)})


def test_sentence_embeddings_have_the_model_width(sentence_encoder):
    Xt = sentence_encoder.transform(_column(TEXTS))

    assert Xt.shape == (3, 384)
    assert Xt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Xt, axis=1), 1, rtol=1e-5)
    assert sentence_encoder.embedding_dim_ == 384
    assert sentence_encoder.get_block_spec().kind == "dense"
    assert sentence_encoder.get_block_spec().n_features == 384
    assert sentence_encoder.get_feature_names_out()[-1] == "embedding383"


def test_identical_texts_give_identical_rows(sentence_encoder):
    Xt = sentence_encoder.transform(_column([TEXTS[2], TEXTS[0], TEXTS[2]]))

    np.testing.assert_array_equal(Xt[0], Xt[2])
    assert not np.allclose(Xt[0], Xt[1])


def test_close_sentences_are_closer_than_unrelated_ones(sentence_encoder):
    Xt = sentence_encoder.transform(_column(TEXTS))
    similarity = Xt @ Xt.T  # unit vectors: cosine similarities

    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_text_columns_are_joined_with_a_space(sentence_encoder):
    joined = sentence_encoder.transform(_column(["red dress", "a", None]))
    X = pd.DataFrame({"t": ["red", "a", None], "b": ["dress", None, None]})
    encoder = clone(sentence_encoder).fit(X)

    np.testing.assert_allclose(encoder.transform(X), joined, atol=1e-6)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA, "", "  "])
def test_missing_text_is_the_empty_text_a_zero_row(sentence_encoder, missing):
    Xt = sentence_encoder.transform(_column([missing, "", TEXTS[0]]))

    np.testing.assert_array_equal(Xt[0], Xt[1])
    np.testing.assert_array_equal(Xt[0], np.zeros(384, dtype=np.float32))
    assert np.abs(Xt[2]).sum() > 0


def test_second_transform_reads_the_cache(sentence_encoder):
    clear_frozen_cache()
    texts = ["cached text one", "cached text two", "cached text one"]
    encoder = clone(sentence_encoder).fit(_column(texts))

    first = encoder.transform(_column(texts))
    assert encoder.cache_info() == {"hits": 1, "misses": 2}
    second = encoder.transform(_column(texts[::-1]))

    assert encoder.cache_info() == {"hits": 4, "misses": 2}
    np.testing.assert_array_equal(second, first[::-1])


def test_clones_read_the_cache(sentence_encoder):
    # A grid search fits clones of the same encoder: they encode a text once.
    clear_frozen_cache()
    texts = _column(["shared between clones"])
    first = clone(sentence_encoder).fit(texts)
    expected = first.transform(texts)
    second = clone(sentence_encoder).fit(texts)

    np.testing.assert_array_equal(second.transform(texts), expected)
    assert first.cache_info() == {"hits": 0, "misses": 1}
    assert second.cache_info() == {"hits": 1, "misses": 0}


def test_cache_false_encodes_every_time(sentence_encoder):
    texts = _column(["never cached", "never cached"])
    encoder = clone(sentence_encoder).set_params(cache=False).fit(texts)
    Xt = encoder.transform(texts)
    encoder.transform(texts)

    np.testing.assert_array_equal(Xt[0], Xt[1])
    assert encoder.cache_info() == {"hits": 2, "misses": 2}


def test_a_model_saved_again_in_place_is_not_mixed_up(sentence_encoder, tmp_path):
    clear_frozen_cache()
    sentence_encoder.model_.save(str(tmp_path))
    texts = _column(["saved in place"])
    encoder = SentenceTextEncoder(model=tmp_path).fit(texts)
    encoder.transform(texts)
    os.utime(tmp_path / "model.safetensors", ns=(0, 0))
    refitted = clone(encoder).fit(texts)
    refitted.transform(texts)

    assert refitted.cache_info() == {"hits": 0, "misses": 1}


def test_pickle_leaves_the_weights_out_and_reloads_them(sentence_encoder):
    X = _column(TEXTS)
    expected = sentence_encoder.transform(X)
    data = pickle.dumps(sentence_encoder)
    loaded = pickle.loads(data)

    assert len(data) < 1_000_000
    assert "_model" not in vars(loaded)
    np.testing.assert_allclose(loaded.transform(X), expected, atol=1e-6)
    assert loaded.model_ is not None


def test_keep_model_in_pickle_stores_the_weights(sentence_encoder):
    encoder = clone(sentence_encoder).set_params(keep_model_in_pickle=True)
    encoder.fit(_column(TEXTS))
    data = pickle.dumps(encoder)

    assert len(data) > 10_000_000
    assert "_model" in vars(pickle.loads(data))


def test_missing_model_directory_is_a_clear_error(sentence_encoder, tmp_path):
    with pytest.raises(ValueError, match="not a local directory"):
        SentenceTextEncoder(model=tmp_path / "absent").fit(_column(TEXTS))
    with pytest.raises(ValueError, match="Cannot load a sentence-transformers"):
        SentenceTextEncoder(model=tmp_path).fit(_column(TEXTS))


def test_missing_sentence_transformers_asks_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)

    with pytest.raises(ImportError, match=r'pip install "skmm\[pretrained\]"'):
        SentenceTextEncoder().fit(_column(TEXTS))


# -- SentenceTextEncoder(output="tokens"): the model as a tower -------------------


@pytest.fixture(scope="module")
def token_encoder(sentence_encoder):
    return (
        clone(sentence_encoder)
        .set_params(output="tokens", max_length=16)
        .fit(_column(TEXTS))
    )


def test_tokens_output_pads_truncates_and_leaves_empty_text_all_padding(
    token_encoder,
):
    long_text = " ".join(["dress"] * 40)
    Xt = token_encoder.transform(_column([TEXTS[0], None, "  ", long_text]))
    pad = token_encoder.padding_idx_

    assert Xt.shape == (4, 16) and Xt.dtype == np.int64
    assert (Xt[0] != pad).sum() > 5 and Xt[0, -1] == pad
    assert (Xt[1] == pad).all() and (Xt[2] == pad).all()
    assert (Xt[3] != pad).all()  # truncated to max_length
    assert list(token_encoder.get_feature_names_out()[[0, -1]]) == [
        "token0",
        "token15",
    ]
    spec = token_encoder.get_block_spec()
    assert (spec.kind, spec.n_features, spec.padding_idx) == ("tokens", 16, pad)
    assert spec.vocab_size == len(token_encoder.model_.tokenizer)
    assert (spec.tower_dim, spec.trainable, spec.lr) == (384, False, 2e-5)


def test_tokens_are_right_padded_whatever_side_the_tokenizer_pads(
    token_encoder, monkeypatch
):
    monkeypatch.setattr(token_encoder.model_.tokenizer, "padding_side", "left")
    Xt = token_encoder.transform(_column([TEXTS[0]]))

    pad = token_encoder.padding_idx_
    assert Xt[0, 0] != pad and Xt[0, -1] == pad


def test_tower_gives_the_sentence_embeddings_until_trained(
    sentence_encoder, token_encoder
):
    texts = _column([*TEXTS, None])
    ids = torch.from_numpy(token_encoder.transform(texts))
    tower = token_encoder.make_tower()

    assert isinstance(tower, SentenceTower) and tower.training
    # Frozen: no gradient, and no dropout inside the model.
    assert not any(p.requires_grad for p in tower.parameters())
    assert not tower.network.training
    with torch.no_grad():
        out = tower(ids)
        # Extra padding columns do not change what the tower computes.
        padded = tower(
            torch.nn.functional.pad(ids, (0, 8), value=token_encoder.padding_idx_)
        )
    embeddings = sentence_encoder.transform(texts)
    np.testing.assert_allclose(out[:3].numpy(), embeddings[:3], atol=1e-5)
    assert torch.isfinite(out[3]).all()
    torch.testing.assert_close(padded, out)


def test_tokens_need_a_refit_after_embeddings(sentence_encoder):
    encoder = clone(sentence_encoder).fit(_column(TEXTS))
    encoder.set_params(output="tokens")
    with pytest.raises(ValueError, match="fit it again"):
        encoder.transform(_column(TEXTS))


def _review_data():
    good = ["I love this dress", "great fit and soft", "beautiful colour, perfect"]
    bad = ["cheap fabric, returned", "terrible fit", "poor quality, too small"]
    texts = (good + bad) * 4
    y = np.array(([1] * 3 + [0] * 3) * 4)
    texts[5] = None  # a missing text trains and predicts
    return pd.DataFrame({"text": texts, "x": np.linspace(-1, 1, 24)}), y


@pytest.mark.parametrize("freeze", [True, False])
def test_fusion_classifier_fine_tunes_the_model_only_when_unfrozen(
    token_encoder, freeze
):
    X, y = _review_data()
    encoder = clone(token_encoder).set_params(freeze=freeze, tower_lr=1e-4)
    model = make_pipeline(
        MultimodalFusion(
            [("text", encoder, ["text"]), ("numeric", StandardScaler(), ["x"])]
        ),
        FusionClassifier(
            hidden_dim=8, max_epochs=2, batch_size=8, device="cpu", random_state=0
        ),
    ).fit(X, y)

    pretrained = token_encoder.model_.state_dict()
    tower = model[-1].net_.module_.towers["text"].tower
    tuned = tower.network.state_dict()
    changed = [k for k in pretrained if not torch.equal(pretrained[k], tuned[k])]
    groups = model[-1].net_.optimizer_.param_groups
    if freeze:
        assert changed == []
        assert [g["lr"] for g in groups] == [1e-3]
    else:
        assert len(changed) > 50
        # The model at tower_lr; the new layers, projection included, at lr.
        model_params = {id(p) for p in tower.parameters()}
        assert groups[0]["lr"] == 1e-4 and groups[1]["lr"] == 1e-3
        assert {id(p) for p in groups[0]["params"]} == model_params
    proba = model.predict_proba(X)

    # The fine-tuned weights travel with the pickle, not the pretrained ones.
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(loaded.predict_proba(X), proba, atol=1e-6)
    reloaded = loaded[-1].net_.module_.towers["text"].tower.network.state_dict()
    for key in changed[:5]:
        torch.testing.assert_close(reloaded[key], tuned[key])


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

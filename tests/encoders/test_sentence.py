import json
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

from skmm import FusionClassifier, MultimodalFusion
from skmm.encoders import _sentence
from skmm.encoders._sentence import SentenceTextEncoder
from skmm.nn._towers import SentenceTower
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


def test_pickle_of_the_packaged_model_names_the_package_not_its_path(
    sentence_encoder, tmp_path, monkeypatch
):
    X = _column(TEXTS)
    expected = sentence_encoder.transform(X)
    installed = sentence_encoder.model_path_
    data = pickle.dumps(sentence_encoder)

    site_packages = os.path.dirname(os.path.dirname(installed))
    assert os.fsencode(site_packages) not in data
    # Another environment: the same package installed somewhere else.
    elsewhere = tmp_path / "other-env" / "model"
    elsewhere.parent.mkdir()
    elsewhere.symlink_to(installed, target_is_directory=True)
    monkeypatch.setattr(_sentence, "_packaged_model_path", lambda: str(elsewhere))
    loaded = pickle.loads(data)

    assert loaded.model_path_ == str(elsewhere)
    np.testing.assert_allclose(loaded.transform(X), expected, atol=1e-6)


def test_pickle_keeps_an_explicit_model_path(sentence_encoder, tmp_path, monkeypatch):
    local = tmp_path / "my-model"
    local.symlink_to(sentence_encoder.model_path_, target_is_directory=True)
    encoder = SentenceTextEncoder(model=local).fit(_column(TEXTS))
    monkeypatch.setattr(_sentence, "_packaged_model_path", lambda: str(tmp_path))
    loaded = pickle.loads(pickle.dumps(encoder))

    assert loaded.model_path_ == str(local)
    assert loaded.transform(_column(TEXTS)).shape == (3, 384)


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


def test_the_model_is_loaded_without_trusting_its_code(sentence_encoder, monkeypatch):
    import sentence_transformers

    calls = []
    real = sentence_transformers.SentenceTransformer

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    clone(sentence_encoder).fit(_column(TEXTS))

    assert [kwargs["trust_remote_code"] for kwargs in calls] == [False]
    assert calls[0]["local_files_only"] is True


def _module(idx, path, class_ref):
    return {"idx": idx, "name": str(idx), "path": path, "type": class_ref}


_MODULES = [
    _module(0, "", "sentence_transformers.models.Transformer"),
    _module(1, "1_Pooling", "sentence_transformers.models.Pooling"),
]


@pytest.mark.parametrize(
    "file_name, config, named",
    [
        (
            "config.json",
            {"model_type": "bert", "auto_map": {"AutoModel": "modeling_evil.Evil"}},
            "auto_map",
        ),
        (
            "tokenizer_config.json",
            {"auto_map": {"AutoTokenizer": ["tokenization_evil.Evil", None]}},
            "auto_map",
        ),
        (
            "modules.json",
            [*_MODULES, _module(2, "", "modeling_evil.Evil")],
            "'modeling_evil.Evil'",
        ),
        (
            "1_Pooling/wordembedding_config.json",
            {"tokenizer_class": "modeling_evil.EvilTokenizer"},
            "'modeling_evil.EvilTokenizer'",
        ),
        (
            "1_Pooling/config.json",
            {"activation_function": "modeling_evil.evil"},
            "'modeling_evil.evil'",
        ),
    ],
)
def test_a_model_asking_for_its_own_code_is_refused_before_loading(
    tmp_path, monkeypatch, file_name, config, named
):
    pytest.importorskip("sentence_transformers")
    model_dir = tmp_path / "model"
    (model_dir / "1_Pooling").mkdir(parents=True)
    (model_dir / "modules.json").write_text(json.dumps(_MODULES))
    (model_dir / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (model_dir / file_name).write_text(json.dumps(config))
    # Code a loader would import: it must never run.
    ran = tmp_path / "code-ran"
    (model_dir / "modeling_evil.py").write_text(
        f"open({str(ran)!r}, 'w').close()\nEvil = EvilTokenizer = evil = object\n"
    )
    monkeypatch.syspath_prepend(str(model_dir))

    with pytest.raises(ValueError, match="not part of sentence-transformers") as info:
        SentenceTextEncoder(model=model_dir).fit(_column(TEXTS))

    message = str(info.value)
    assert repr(str(model_dir / file_name)) in message
    assert named in message
    assert not ran.exists()


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
            hidden_dim=8,
            max_epochs=2,
            batch_size=8,
            lr=1e-3,
            device="cpu",
            random_state=0,
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

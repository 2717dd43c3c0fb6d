"""skmm.save and skmm.load: every fitted model round-trips, nothing untrusted loads."""

import io
import pickle
import sys
import zipfile
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

import skmm
from skmm import (
    AudioEncoder,
    CNNImageEncoder,
    CrossModalAligner,
    FusionClassifier,
    FusionMultiTask,
    FusionRegressor,
    MultimodalFusion,
    PretrainedImageEncoder,
    SentenceTextEncoder,
    SequenceTextEncoder,
    TfidfTextEncoder,
)
from skmm.datasets import make_multimodal_classification

pytest.importorskip("skops")

FAST = dict(hidden_dim=8, max_epochs=2, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = make_multimodal_classification(
        n_samples=60, missing_text=0.1, missing_image=0.1, random_state=0
    )
    rng = np.random.RandomState(0)
    numbers = rng.normal(size=(60, 4))
    tasks = pd.DataFrame(
        {"label": (numbers[:, 0] > 0).astype(int), "value": numbers[:, 1]}
    )
    return {"frame": X, "y": y, "numbers": numbers, "tasks": tasks}


def _dense(values):
    values = values.toarray() if hasattr(values, "toarray") else values
    return np.asarray(values)


def _outputs(model, X):
    """Everything a fitted model answers, as arrays."""
    if hasattr(model, "predict"):
        out = [model.predict(X)]
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(X)
            out += list(proba.values()) if isinstance(proba, dict) else [proba]
        return [np.asarray(o) for o in out]
    return [_dense(model.transform(X))]


def _round_trip(model, tmp_path):
    path = tmp_path / "model.skops"
    skmm.save(model, path)
    return skmm.load(path)


# name: (estimator, input, target), input and target named in ``data``.
CASES = {
    "classifier": (FusionClassifier(**FAST), "numbers", "label"),
    "classifier-gated": (FusionClassifier(fusion="gated", **FAST), "numbers", "label"),
    "classifier-attention": (
        FusionClassifier(fusion="attention", **FAST),
        "numbers",
        "label",
    ),
    "classifier-lowrank": (
        FusionClassifier(fusion="lowrank", early_stopping=True, **FAST),
        "numbers",
        "label",
    ),
    "regressor": (FusionRegressor(optimizer="sgd", **FAST), "numbers", "value"),
    "multitask": (
        FusionMultiTask(
            tasks={"label": "classification", "value": "regression"},
            uncertainty_weighting=True,
            **FAST,
        ),
        "numbers",
        "tasks",
    ),
    "aligner": (
        CrossModalAligner(n_components=2, max_epochs=2, random_state=0),
        "numbers",
        None,
    ),
    "tfidf": (TfidfTextEncoder(n_components=2, random_state=0), "text", None),
    "sequence": (SequenceTextEncoder(max_length=8), "text", None),
    "cnn": (
        CNNImageEncoder(image_size=8, channels=(4,), max_epochs=1, random_state=0),
        "image",
        "y",
    ),
    "pretrained-module": (
        PretrainedImageEncoder(partial(nn.Conv2d, 3, 4, 3), image_size=8),
        "image",
        None,
    ),
    "audio": (
        AudioEncoder(n_mels=8, n_fft=16, hop_length=8, n_time_bins=3),
        "clips",
        None,
    ),
}


def _inputs(data, name):
    if name in ("text", "image"):
        return data["frame"][[name]]
    if name == "clips":
        return np.random.RandomState(0).normal(size=(10, 64))
    if name in ("label", "value"):
        return data["tasks"][name].to_numpy()
    return data[name]


@pytest.mark.parametrize("name", list(CASES))
def test_every_fitted_estimator_round_trips(name, data, tmp_path):
    estimator, X_name, y_name = CASES[name]
    X = _inputs(data, X_name)
    model = (
        estimator.fit(X) if y_name is None else estimator.fit(X, _inputs(data, y_name))
    )
    loaded = _round_trip(model, tmp_path)
    assert type(loaded) is type(model)
    for before, after in zip(_outputs(model, X), _outputs(loaded, X)):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("output", ["embeddings", "tokens"])
def test_sentence_encoder_round_trips_by_package_name(output, data, tmp_path):
    pytest.importorskip("sentence_transformers")
    X = data["frame"][["text"]].iloc[:8]
    encoder = SentenceTextEncoder(output=output, max_length=8).fit(X)
    loaded = _round_trip(encoder, tmp_path)
    np.testing.assert_array_equal(loaded.transform(X), encoder.transform(X))


def test_packaged_image_backbone_round_trips_by_name(data, tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    X = data["frame"][["image"]].iloc[:4]
    encoder = PretrainedImageEncoder(image_size=32).fit(X)
    loaded = _round_trip(encoder, tmp_path)
    np.testing.assert_array_equal(loaded.transform(X), encoder.transform(X))


def test_a_whole_text_image_tabular_pipeline_round_trips(data, tmp_path):
    X, y = data["frame"], data["y"]
    fusion = MultimodalFusion(
        [
            ("text", TfidfTextEncoder(), "text"),
            ("tokens", SequenceTextEncoder(max_length=8), "text"),
            (
                "image",
                CNNImageEncoder(
                    image_size=8, channels=(4,), max_epochs=1, random_state=0
                ),
                "image",
            ),
            ("numeric", StandardScaler(), ["num_0", "num_1"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
        ]
    )
    model = make_pipeline(fusion, FusionClassifier(fusion="gated", **FAST)).fit(X, y)
    loaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("output", ["pixels", "lazy"])
def test_a_trainable_cnn_tower_with_augmentation_round_trips(output, data, tmp_path):
    X, y = data["frame"], data["y"]
    encoder = CNNImageEncoder(
        image_size=8, channels=(4,), output=output, augment=True, random_state=0
    )
    fusion = MultimodalFusion(
        [
            ("image", encoder, "image"),
            ("numeric", StandardScaler(), ["num_0", "num_1"]),
        ]
    )
    model = make_pipeline(fusion, FusionClassifier(**FAST)).fit(X, y)
    loaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_training_continues_after_loading_with_the_optimizer_state(data, tmp_path):
    X, y = data["numbers"], data["tasks"]["label"].to_numpy()
    model = FusionClassifier(warm_start=True, **FAST).fit(X, y)
    loaded = _round_trip(model, tmp_path)
    optimizer, module = loaded.net_.optimizer_, loaded.net_.module_
    assert optimizer.param_groups[0]["params"][0] is next(module.parameters())
    model.fit(X, y)
    loaded.fit(X, y)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_model_saved_for_a_gpu_loads_on_the_cpu(data, tmp_path, monkeypatch):
    X, y = data["numbers"], data["tasks"]["label"].to_numpy()
    model = FusionClassifier(**FAST).fit(X, y)
    expected = model.predict_proba(X)
    model.net_.device = "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = _round_trip(model, tmp_path)
    assert loaded.net_.device == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


class _Untrusted:
    def __init__(self, value):
        self.value = value


def test_a_file_holding_an_untrusted_type_is_refused(tmp_path):
    path = tmp_path / "payload.skops"
    skmm.save({"model": _Untrusted(1)}, path)
    with pytest.raises(TypeError, match="does not trust.*_Untrusted"):
        skmm.load(path)
    name = f"{_Untrusted.__module__}._Untrusted"
    assert skmm.load(path, trusted=[name])["model"].value == 1


def test_a_tensor_entry_holding_a_pickled_object_is_refused(data, tmp_path):
    X, y = data["numbers"], data["tasks"]["label"].to_numpy()
    path = tmp_path / "model.skops"
    skmm.save(FusionClassifier(**FAST).fit(X, y), path)
    # A crafted file: every tensor entry replaced by a pickle of another object.
    payload = io.BytesIO()
    torch.save(_Untrusted(2), payload)
    crafted = tmp_path / "crafted.skops"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(crafted, "w") as dst:
        for item in src.infolist():
            data_ = src.read(item)
            dst.writestr(
                item, payload.getvalue() if item.filename.endswith(".pt") else data_
            )
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only load failed"):
        skmm.load(crafted)


def test_without_skops_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(ImportError, match=r"pip install skmm\[safe\]"):
        skmm.save(FusionClassifier(), tmp_path / "model.skops")
    with pytest.raises(ImportError, match=r"pip install skmm\[safe\]"):
        skmm.load(tmp_path / "model.skops")


def test_a_pretrained_tower_inside_a_fusion_network_asks_for_joblib(tmp_path):
    pytest.importorskip("sentence_transformers")
    X = pd.DataFrame({"review": ["good car", "bad car", "red", "ok"] * 3})
    fusion = MultimodalFusion(
        [("review", SentenceTextEncoder(output="tokens", max_length=8), "review")]
    )
    model = make_pipeline(fusion, FusionClassifier(**FAST)).fit(X, [0, 1] * 6)
    path = tmp_path / "model.skops"
    with pytest.raises(TypeError, match="cannot store this Pipeline.*joblib"):
        skmm.save(model, path)
    assert not path.exists()

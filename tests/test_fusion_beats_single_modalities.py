"""Fusion must measurably beat every single modality on multimodal data."""

import pytest
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification

MODEL = dict(hidden_dim=64, dropout=0.0, max_epochs=60, lr=3e-3, device="cpu")


def _modalities():
    return [
        ("text", TfidfTextEncoder(n_components=8, random_state=0), ["text"]),
        # Not trained on y: with an interaction, y is unreadable from the image
        # alone, so a CNN trained on it alone would learn nothing useful.
        (
            "image",
            CNNImageEncoder(image_size=16, max_epochs=0, random_state=0),
            ["image"],
        ),
        ("tabular", StandardScaler(), ["num_0", "num_1"]),
        ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
    ]


def _scores(interaction, strategies):
    X, y = make_multimodal_classification(
        n_samples=900, interaction=interaction, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.33, stratify=y, random_state=0
    )
    single = {}
    for modality in _modalities():
        model = make_pipeline(
            MultimodalFusion([modality]), FusionClassifier(**MODEL, random_state=0)
        )
        single[modality[0]] = model.fit(X_train, y_train).score(X_test, y_test)
    fused = {}
    for strategy in strategies:
        model = make_pipeline(
            MultimodalFusion(_modalities()),
            FusionClassifier(fusion=strategy, **MODEL, random_state=0),
        )
        fused[strategy] = model.fit(X_train, y_train).score(X_test, y_test)
    return single, fused


@pytest.mark.slow
def test_interaction_needs_fusion():
    # y depends on text XOR image: text and image alone are at chance.
    single, fused = _scores(True, ["concat", "gated", "attention", "tensor", "lowrank"])
    assert single["text"] < 0.6 and single["image"] < 0.6
    best_single = max(single.values())
    for strategy, score in fused.items():
        assert score > best_single + 0.15, (strategy, score, single)


@pytest.mark.slow
def test_late_fusion_beats_single_modalities_on_additive_signal():
    # Late fusion adds per-modality predictions: it combines main effects but
    # cannot model a cross-modal interaction, so it is tested without one.
    single, fused = _scores(False, ["late", "concat"])
    best_single = max(single.values())
    for strategy, score in fused.items():
        assert score > best_single + 0.08, (strategy, score, single)

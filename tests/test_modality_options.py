"""Per-modality options of the fusion network and the scorer that measures them.

Missing-modality embeddings, modality dropout, the shared space, the
alignment loss, and the robustness scorer.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import (
    FusionClassifier,
    ModalityBlocks,
    MultimodalFusion,
    SequenceTextEncoder,
    TfidfTextEncoder,
)
from skmm.metrics import modality_robustness_scorer

FAST = dict(hidden_dim=16, max_epochs=30, batch_size=32, lr=1e-2, device="cpu")


@pytest.fixture(scope="module")
def redundant():
    # Both modalities carry the same signal, so either one suffices.
    rng = np.random.RandomState(0)
    z = rng.normal(size=400)
    X = pd.DataFrame(
        {
            "a0": z + 0.3 * rng.normal(size=400),
            "a1": rng.normal(size=400),
            "b0": -z + 0.3 * rng.normal(size=400),
            "b1": rng.normal(size=400),
        }
    )
    return X, (z > 0).astype(int)


def _fusion():
    return MultimodalFusion(
        [("a", StandardScaler(), ["a0", "a1"]), ("b", StandardScaler(), ["b0", "b1"])]
    )


def test_missing_rows_get_the_learned_missing_embedding(redundant):
    X, y = redundant
    model = make_pipeline(_fusion(), FusionClassifier(**FAST, random_state=0))
    model.fit(X, y)
    blocks = model[0].transform(X.iloc[:4])
    module = model[-1].net_.module_.eval()
    a = torch.as_tensor(blocks["a"], dtype=torch.float32)
    a[1] = 0.0
    with torch.no_grad():
        emb = module.embed(a=a, b=torch.as_tensor(blocks["b"], dtype=torch.float32))
    torch.testing.assert_close(emb[0][1], module.missing[0])
    assert not torch.allclose(emb[0][0], module.missing[0])


def test_empty_text_trains_and_predicts():
    texts = ["good fit", "bad fit", None, "", "good colour", "bad colour"] * 10
    X = pd.DataFrame({"text": texts, "n": np.arange(60.0)})
    y = np.array([1, 0, 1, 0, 1, 0] * 10)
    model = make_pipeline(
        MultimodalFusion(
            [("text", TfidfTextEncoder(), ["text"]), ("n", StandardScaler(), ["n"])]
        ),
        FusionClassifier(**FAST, random_state=0),
    ).fit(X, y)
    # NaN and "" are the same missing text, in fit and in predict.
    proba = model.predict_proba(pd.DataFrame({"text": [None, ""], "n": [5.0, 5.0]}))
    np.testing.assert_allclose(proba[0], proba[1])


def test_modality_dropout_makes_the_model_robust_to_a_missing_modality():
    # Modality a is clean, b noisy: without modality dropout the model leans on
    # a and fails when a is missing; with it, b alone still carries the rows.
    rng = np.random.RandomState(0)
    z = rng.normal(size=400)
    X = pd.DataFrame(
        {
            "a0": z + 0.05 * rng.normal(size=400),
            "a1": rng.normal(size=400),
            "b0": -z + 0.5 * rng.normal(size=400),
            "b1": rng.normal(size=400),
        }
    )
    y = (z > 0).astype(int)
    train, test = slice(0, 300), slice(300, 400)
    without_a = modality_robustness_scorer("a", mode="remove")
    scores = {}
    for p in (0.0, 0.3):
        # All 30 epochs on all rows, long enough to come to lean on a.
        clf = FusionClassifier(
            **FAST, modality_dropout=p, early_stopping=False, random_state=0
        )
        model = make_pipeline(_fusion(), clf).fit(X[train], y[train])
        assert model.score(X[test], y[test]) > 0.9
        scores[p] = without_a(model, X[test], y[test])
    assert scores[0.0] < 0.7
    assert scores[0.3] > 0.8


def test_robustness_scorer_in_cross_val_score(redundant):
    X, y = redundant
    model = make_pipeline(_fusion(), FusionClassifier(**FAST, random_state=0))
    noisy = cross_val_score(
        model, X, y, cv=3, scoring=modality_robustness_scorer("b", mode="noise")
    )
    clean = cross_val_score(model, X, y, cv=3)
    assert noisy.shape == (3,)
    assert noisy.mean() < clean.mean()
    with pytest.raises(ValueError, match="mode"):
        modality_robustness_scorer("b", mode="shuffle")
    fitted = model.fit(X, y)
    with pytest.raises(ValueError, match="'c'"):
        modality_robustness_scorer("c")(fitted, X, y)


@pytest.mark.parametrize("mode", ["remove", "noise"])
def test_robustness_scorer_degrades_token_ids_into_valid_ids(monkeypatch, mode):
    rng = np.random.RandomState(0)
    words = np.array(["good", "bad", "fit", "colour", "dress", "size"])
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(120)]
    y = np.array([int("good" in t.split()[:3]) for t in texts])
    X = pd.DataFrame({"text": texts, "n": rng.normal(size=120)})
    model = make_pipeline(
        MultimodalFusion(
            [
                ("text", SequenceTextEncoder(max_length=8), ["text"]),
                ("n", StandardScaler(), ["n"]),
            ]
        ),
        FusionClassifier(**FAST, random_state=0),
    ).fit(X, y)
    spec = model[0].block_specs_["text"]
    ids = np.asarray(model[0].transform(X)["text"])
    seen = []
    predict = type(model[-1]).predict

    def recording(self, blocks):
        seen.append(np.asarray(blocks["text"]))
        return predict(self, blocks)

    monkeypatch.setattr(type(model[-1]), "predict", recording)
    scorer = modality_robustness_scorer("text", mode=mode, noise_scale=0.5)
    score = scorer(model, X, y)

    degraded = seen[-1]
    assert degraded.dtype == ids.dtype
    assert ((degraded >= 0) & (degraded < spec.vocab_size)).all()
    padding = ids == spec.padding_idx
    if mode == "remove":
        assert (degraded == spec.padding_idx).all()
    else:
        # Padding stays padding; about half of the tokens are replaced.
        np.testing.assert_array_equal(degraded == spec.padding_idx, padding)
        assert 0.35 < (degraded != ids)[~padding].mean() < 0.6
    assert score < model.score(X, y)


def test_tied_shared_space_uses_one_projection(redundant):
    X, y = redundant
    tied = make_pipeline(
        _fusion(), FusionClassifier(**FAST, shared_space="tied", random_state=0)
    ).fit(X, y)
    projections = tied[-1].net_.module_.shared_space
    assert projections[0] is projections[1]
    separate = make_pipeline(
        _fusion(), FusionClassifier(**FAST, shared_space="projected", random_state=0)
    ).fit(X, y)
    projections = separate[-1].net_.module_.shared_space
    assert projections[0] is not projections[1]
    assert tied.score(X, y) > 0.85 and separate.score(X, y) > 0.85


def _retrieval_top1(model, blocks):
    module = model.net_.module_.eval()
    with torch.no_grad():
        a, b = module.embed(
            **{k: torch.as_tensor(v, dtype=torch.float32) for k, v in blocks.items()}
        )
    a = torch.nn.functional.normalize(a, dim=1)
    b = torch.nn.functional.normalize(b, dim=1)
    return (torch.argmax(a @ b.t(), dim=1) == torch.arange(len(a))).float().mean()


def test_alignment_loss_aligns_the_modality_embeddings():
    # Paired modalities: two views of one latent vector per row.
    rng = np.random.RandomState(0)
    z = rng.normal(size=(300, 6))
    A = z @ rng.normal(size=(6, 12)) + 0.1 * rng.normal(size=(300, 12))
    B = np.tanh(z @ rng.normal(size=(6, 10))) + 0.1 * rng.normal(size=(300, 10))
    y = (z[:, 0] > 0).astype(int)
    blocks = ModalityBlocks({"text": A, "image": B})
    params = dict(FAST, max_epochs=60, dropout=0.0)
    aligned = FusionClassifier(**params, alignment_weight=1.0, random_state=0)
    plain = FusionClassifier(**params, random_state=0)
    aligned.fit(blocks[:200], y[:200])
    plain.fit(blocks[:200], y[:200])
    held_out = blocks[200:]
    chance = 1 / 100
    assert _retrieval_top1(aligned, held_out) > 20 * chance
    assert _retrieval_top1(plain, held_out) < 5 * chance
    assert aligned.score(held_out, y[200:]) > 0.8

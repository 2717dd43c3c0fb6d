"""FusionMultiTask, per-task scorers and the seed model end to end."""

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    cross_val_predict,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from skmm import (
    CNNImageEncoder,
    FusionMultiTask,
    MultimodalFusion,
    SequenceTextEncoder,
)
from skmm.metrics import task_scorer
from skmm.nn._towers import ConvTower, SequenceTower

TASKS = {"label": "classification", "value": "regression"}
FAST = dict(hidden_dim=16, max_epochs=30, batch_size=32, lr=1e-2, device="cpu")


@pytest.fixture(scope="module")
def tabular_tasks():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(240, 4)), columns=list("abcd"))
    Y = pd.DataFrame(
        {
            "label": np.where(X["a"] > 0, "pos", "neg"),
            "value": 3 * X["b"] - X["c"] + 0.1 * rng.normal(size=240),
        }
    )
    return X, Y


def _pipeline(**params):
    fusion = MultimodalFusion(
        [
            ("left", StandardScaler(), ["a", "b"]),
            ("right", StandardScaler(), ["c", "d"]),
        ]
    )
    return make_pipeline(
        fusion, FusionMultiTask(tasks=TASKS, **{**FAST, **params}, random_state=0)
    )


def test_per_task_scorers_in_cross_validate(tabular_tasks):
    X, Y = tabular_tasks
    scoring = {
        "label_acc": task_scorer("label", "accuracy"),
        "label_auc": task_scorer("label", "roc_auc"),
        "value_mae": task_scorer("value", "neg_mean_absolute_error"),
        "value_r2": task_scorer("value", "r2"),
    }
    result = cross_validate(_pipeline(), X, Y, cv=KFold(3), scoring=scoring)
    assert result["test_label_acc"].mean() > 0.85
    assert result["test_label_auc"].mean() > 0.9
    assert result["test_value_r2"].mean() > 0.8
    assert -result["test_value_mae"].mean() < 1.0


def test_grid_search_refits_on_one_task(tabular_tasks):
    X, Y = tabular_tasks
    search = GridSearchCV(
        _pipeline(),
        {"fusionmultitask__fusion": ["concat", "tensor", "lowrank"]},
        scoring={
            "acc": task_scorer("label", "accuracy"),
            "mae": task_scorer("value", "neg_mean_absolute_error"),
        },
        refit="mae",
        cv=KFold(2),
    ).fit(X, Y)
    best = np.argmax(search.cv_results_["mean_test_mae"])
    assert search.best_index_ == best
    assert list(search.predict(X).columns) == ["label", "value"]


def test_tools_that_need_one_probability_matrix_say_what_to_use(tabular_tasks):
    X, Y = tabular_tasks
    model = make_pipeline(
        StandardScaler(),
        FusionMultiTask(tasks={"label": "classification"}, **{**FAST, "max_epochs": 5}),
    )
    with pytest.raises(AttributeError, match=r"dict of arrays.*task_scorer\('label'"):
        cross_val_predict(model, X, Y["label"], cv=KFold(2), method="predict_proba")
    with pytest.warns(UserWarning, match=r"predict_proba returns a dict of arrays"):
        scores = cross_validate(model, X, Y["label"], cv=KFold(2), scoring="roc_auc")
    assert np.isnan(scores["test_score"]).all()
    proba = model.fit(X, Y).predict_proba(X)
    assert isinstance(proba, dict) and list(proba) == ["label"]
    with pytest.raises(TypeError, match=r"index it by task, e.g. \['label'\]"):
        np.asarray(proba)
    # The way that works: a scorer of the task.
    auc = cross_val_score(
        model, X, Y, cv=KFold(2), scoring=task_scorer("label", "roc_auc")
    )
    assert auc.mean() > 0.8


def test_task_scorer_rejects_an_unknown_task(tabular_tasks):
    X, Y = tabular_tasks
    model = _pipeline(max_epochs=1).fit(X, Y)
    with pytest.raises(ValueError, match="rating"):
        task_scorer("rating", "r2")(model, X, Y)


def test_task_weights_and_uncertainty_weighting(tabular_tasks):
    X, Y = tabular_tasks
    only_label = _pipeline(task_weights={"label": 1.0, "value": 0.0}).fit(X, Y)
    # A zero-weight task is not learned: its head stays near its start.
    r2_ignored = task_scorer("value", "r2")(only_label, X, Y)
    r2_learned = task_scorer("value", "r2")(_pipeline().fit(X, Y), X, Y)
    assert r2_learned > 0.8 > r2_ignored
    learned = _pipeline(uncertainty_weighting=True).fit(X, Y)
    log_vars = learned[-1].net_.criterion_.log_vars.detach().numpy()
    assert log_vars.shape == (2,) and np.all(log_vars != 0)
    assert learned.score(X, Y) > 0.8


def test_multitask_pickles_and_clones(tabular_tasks, tmp_path):
    X, Y = tabular_tasks
    model = _pipeline().fit(X, Y)
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    pd.testing.assert_frame_equal(loaded.predict(X), model.predict(X))
    again = clone(model).fit(X, Y)
    pd.testing.assert_frame_equal(again.predict(X), model.predict(X))


def test_multitask_sample_weight(tabular_tasks):
    X, Y = tabular_tasks
    flipped = Y.assign(label=np.where(Y["label"] == "pos", "neg", "pos"))
    X2, Y2 = pd.concat([X, X]), pd.concat([Y, flipped])
    w = np.r_[np.zeros(len(X)), np.ones(len(X))]
    model = _pipeline().fit(X2, Y2, fusionmultitask__sample_weight=w)
    assert (model.predict(X)["label"] == flipped["label"]).mean() > 0.85


class _WeightsAtStart(Callback):
    """Copies the GRU and convolution weights when training starts."""

    def on_train_begin(self, net, **kwargs):
        towers = net.module_.towers
        self.gru = towers["text"].gru.weight_ih_l0.detach().clone()
        conv = next(m for m in towers["image"].modules() if isinstance(m, ConvTower))
        self.conv = conv.features[0].weight.detach().clone()


@pytest.fixture(scope="module")
def seed_data():
    # The label is the XOR of a word cue and a colour cue, so it needs both
    # towers; the score adds them.
    rng = np.random.RandomState(0)
    n = 400
    positive = rng.rand(n) < 0.5
    red = rng.rand(n) < 0.5
    filler = np.array(["the", "a", "dress", "fits", "was", "very", "and", "colour"])
    texts = [
        " ".join(
            [*rng.choice(filler, 4), "great" if p else "poor", *rng.choice(filler, 3)]
        )
        for p in positive
    ]
    images = rng.randint(0, 60, size=(n, 16, 16, 3)).astype(np.uint8)
    images[red, 4:12, 4:12, 0] = 220
    images[~red, 4:12, 4:12, 2] = 220
    X = pd.DataFrame({"text": texts, "image": list(images)})
    Y = pd.DataFrame(
        {
            "label": (positive ^ red).astype(int),
            "score": 2.0 * positive + red + 0.1 * rng.normal(size=n),
        }
    )
    return X, Y


def test_seed_model_trains_gru_and_convolutions_jointly(seed_data):
    X, Y = seed_data
    snapshot = _WeightsAtStart()
    model = make_pipeline(
        MultimodalFusion(
            [
                ("text", SequenceTextEncoder(max_length=16), ["text"]),
                (
                    "image",
                    CNNImageEncoder(image_size=16, output="pixels", random_state=0),
                    ["image"],
                ),
            ]
        ),
        FusionMultiTask(
            tasks={"label": "classification", "score": "regression"},
            fusion="concat",
            hidden_dim=32,
            max_epochs=20,
            lr=5e-3,
            dropout=0.0,
            callbacks=[("weights_at_start", snapshot)],
            device="cpu",
            random_state=0,
        ),
    )
    train, test = slice(0, 300), slice(300, 400)
    model.fit(X[train], Y[train])
    module = model[-1].net_.module_
    assert isinstance(module.towers["text"], SequenceTower)
    conv = next(m for m in module.towers["image"].modules() if isinstance(m, ConvTower))
    # Gradients reached the GRU and the convolutions: their weights moved.
    assert not torch.allclose(module.towers["text"].gru.weight_ih_l0, snapshot.gru)
    assert not torch.allclose(conv.features[0].weight, snapshot.conv)
    pred = model.predict(X[test])
    accuracy = (pred["label"].to_numpy() == Y["label"][test].to_numpy()).mean()
    r2 = task_scorer("score", "r2")(model, X[test], Y[test])
    assert accuracy > 0.8
    assert r2 > 0.5

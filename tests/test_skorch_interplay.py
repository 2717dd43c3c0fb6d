"""skorch's habits on the fusion estimators: per-epoch scoring, warm starts."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score
from skorch.callbacks import BatchScoring, Callback, EpochScoring

from skmm import FusionClassifier, FusionMultiTask, FusionRegressor

FAST = dict(hidden_dim=8, max_epochs=4, batch_size=16, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4))
    labels = np.where(X[:, 0] > 0, "yes", "no")
    return X, labels, X[:, 1] * 3 + 10


class _Recorder:
    """A scorer that keeps what it was given and scores it with ``metric``."""

    def __init__(self, metric):
        self.metric = metric
        self.calls = []

    def __call__(self, net, X, y):
        y_pred = net.predict(X)
        self.calls.append((y, y_pred))
        return self.metric(y, y_pred)


class InterruptAt(Callback):
    """Raise KeyboardInterrupt at the end of the given epoch, like Ctrl-C."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


# -- per-epoch scoring ---------------------------------------------------------


@pytest.mark.parametrize("on_train", [False, True])
def test_epoch_scoring_records_accuracy_on_the_labels(data, on_train):
    X, labels, _ = data
    recorder = _Recorder(accuracy_score)
    clf = FusionClassifier(
        early_stopping=True,
        callbacks=[
            EpochScoring(
                "accuracy", on_train=on_train, lower_is_better=False, name="acc"
            ),
            EpochScoring(recorder, on_train=on_train, name="recorded"),
        ],
        **{**FAST, "max_epochs": 15},
    )
    clf.fit(X, labels)

    history = clf.net_.history
    acc = history[:, "acc"]
    assert len(acc) == clf.n_iter_ == 15
    assert all(0 <= a <= 1 for a in acc)
    # One row per scored sample, in the original label space.
    n_scored = 108 if on_train else 12
    for y_true, y_pred in recorder.calls:
        assert len(y_true) == len(y_pred) == n_scored
        assert set(y_true) <= {"no", "yes"} and set(y_pred) <= {"no", "yes"}
    # The same rows at every epoch (shuffled when training).
    assert sorted(y_true) == sorted(recorder.calls[0][0])
    np.testing.assert_allclose(acc, history[:, "recorded"])
    # An easy task: the curve ends well above chance.
    assert acc[-1] > 0.75
    assert history[-1, "acc_best"] in (True, False)


def test_epoch_scoring_reads_probabilities_for_roc_auc(data):
    X, labels, _ = data
    clf = FusionClassifier(
        early_stopping=True,
        callbacks=[EpochScoring("roc_auc", lower_is_better=False)],
        **{**FAST, "max_epochs": 10},
    ).fit(X, labels)
    assert clf.net_.history[-1, "roc_auc"] > 0.8


def test_batch_scoring_scores_each_batch_on_the_labels(data):
    X, labels, _ = data
    clf = FusionClassifier(
        callbacks=[BatchScoring("accuracy", on_train=True, name="batch_acc")],
        **FAST,
    ).fit(X, labels)
    scores = clf.net_.history[-1, "batch_acc"]
    assert 0 <= scores <= 1


def test_epoch_scoring_on_a_regressor_is_in_the_target_units(data):
    X, _, values = data
    mae = _Recorder(mean_absolute_error)
    reg = FusionRegressor(
        early_stopping=True,
        callbacks=[
            EpochScoring("r2", lower_is_better=False),
            EpochScoring("neg_mean_absolute_error", lower_is_better=False),
            EpochScoring(mae, name="mae"),
        ],
        **{**FAST, "max_epochs": 30},
    ).fit(X, values)
    history = reg.net_.history
    # The recorded targets are the rows' values (around 10), not standardised.
    y_true, y_pred = mae.calls[-1]
    assert y_true.shape == y_pred.shape == (12,)
    assert np.abs(y_true[:, None] - values[None, :]).min(axis=1).max() < 1e-4
    np.testing.assert_allclose(
        history[:, "neg_mean_absolute_error"], -np.array(history[:, "mae"])
    )
    r2 = history[:, "r2"]
    assert r2[-1] > r2[0] and r2[-1] > 0.5
    assert r2[-1] == pytest.approx(r2_score(y_true, y_pred))


def test_epoch_scoring_on_several_tasks_gives_a_field_per_task(data):
    X, labels, values = data

    def label_accuracy(net, X, y):
        return accuracy_score(y["label"], net.predict(X)["label"])

    Y = pd.DataFrame({"label": labels, "value": values})
    model = FusionMultiTask(
        tasks={"label": "classification", "value": "regression"},
        early_stopping=True,
        callbacks=[EpochScoring(label_accuracy, lower_is_better=False)],
        **{**FAST, "max_epochs": 10},
    ).fit(X, Y)
    assert model.net_.history[-1, "label_accuracy"] > 0.6


def test_a_scoring_callback_is_reused_across_fits_with_other_classes(data):
    X, labels, _ = data
    scoring = EpochScoring("accuracy", on_train=True, lower_is_better=False)
    clf = FusionClassifier(callbacks=[scoring], **FAST)
    clf.fit(X, labels)
    clf.fit(X, np.where(labels == "yes", 1, 2))
    assert 0 <= clf.net_.history[-1, "accuracy"] <= 1


def test_a_net_with_scoring_callbacks_pickles(data):
    X, labels, _ = data
    clf = FusionClassifier(
        callbacks=[EpochScoring("accuracy", on_train=True)], **FAST
    ).fit(X, labels)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(X), clf.predict(X))


# -- warm start ------------------------------------------------------------------


def test_warm_start_continues_training(data):
    X, labels, _ = data
    clf = FusionClassifier(warm_start=True, **FAST).fit(X, labels)
    first_net, first_losses = clf.net_, clf.net_.history[:, "train_loss"]
    clf.fit(X, labels)
    losses = clf.net_.history[:, "train_loss"]
    assert clf.n_iter_ == clf.best_epoch_ == 2 * FAST["max_epochs"]
    assert losses[: FAST["max_epochs"]] == first_losses
    # The same network trains on: its loss goes on from where it was, rather
    # than starting again from that of fresh weights.
    assert losses[FAST["max_epochs"]] < first_losses[0]
    # The first fit's net was trained on a copy, and is left as it was.
    assert len(first_net.history) == FAST["max_epochs"]

    cold = FusionClassifier(**FAST).fit(X, labels).fit(X, labels)
    assert cold.n_iter_ == FAST["max_epochs"]


def test_warm_start_keeps_the_regression_scale(data):
    X, _, values = data
    # Targets shifted by 100 read, in the first fit's standardisation, as far
    # above the predictions: the network moves up towards them, where on the
    # same targets it stays about where it was. (Standardised anew, the
    # shifted targets would look the same as the old ones.)
    rises = {}
    for shift in (0, 100):
        reg = FusionRegressor(warm_start=True, **FAST).fit(X, values)
        before = reg.predict(X).mean()
        reg.set_params(max_epochs=3).fit(X, values + shift)
        rises[shift] = reg.predict(X).mean() - before
        assert reg.n_iter_ == FAST["max_epochs"] + 3
    assert rises[100] > 1 and rises[100] > 5 * abs(rises[0])
    # Gradually: the outputs are still decoded in the first fit's units.
    assert rises[100] < 50


def test_warm_start_with_early_stopping_marks_the_best_epoch_of_this_fit(data):
    X, labels, _ = data
    clf = FusionClassifier(warm_start=True, **FAST).fit(X, labels)
    clf.set_params(early_stopping=True, max_epochs=6)
    clf.fit(X, labels)
    history = clf.net_.history
    assert clf.n_iter_ == len(history) > FAST["max_epochs"]
    valid = history[FAST["max_epochs"] :, "valid_loss"]
    assert clf.best_epoch_ == FAST["max_epochs"] + 1 + int(np.argmin(valid))


def test_an_interrupted_warm_start_keeps_the_previous_model(data):
    X, labels, values = data
    for model, y in [
        (FusionClassifier(warm_start=True, **FAST), labels),
        (FusionRegressor(warm_start=True, **FAST), values),
    ]:
        model.fit(X, y)
        before, net = model.predict(X), model.net_
        model.set_params(callbacks=[InterruptAt(FAST["max_epochs"] + 2)])
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y)
        assert model.net_ is net and model.n_iter_ == FAST["max_epochs"]
        assert len(net.history) == FAST["max_epochs"]
        np.testing.assert_array_equal(model.predict(X), before)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda X, labels: (X[:, :3], labels), "modality blocks"),
        (lambda X, labels: (X, np.where(X[:, 1] > 0, "a", "b")), "classes"),
    ],
)
def test_warm_start_on_other_data_says_why(data, change, message):
    X, labels, _ = data
    clf = FusionClassifier(warm_start=True, **FAST).fit(X, labels)
    before = clf.predict(X)
    with pytest.raises(ValueError, match=message):
        clf.fit(*change(X, labels))
    np.testing.assert_array_equal(clf.predict(X), before)
    assert clf.n_iter_ == FAST["max_epochs"]


def test_warm_start_on_other_tasks_or_outputs_says_why(data):
    X, labels, values = data
    reg = FusionRegressor(warm_start=True, **FAST).fit(X, values)
    with pytest.raises(ValueError, match="output"):
        reg.fit(X, np.c_[values, values])
    model = FusionMultiTask(
        tasks={"label": "classification"}, warm_start=True, **FAST
    ).fit(X, labels)
    model.set_params(tasks={"value": "regression"})
    with pytest.raises(ValueError, match="tasks"):
        model.fit(X, values)

"""A failed or interrupted fit leaves the fitted model as it was, and says so."""

import numpy as np
import pytest
from skorch.callbacks import Callback

from skmm import CrossModalAligner, FusionClassifier, FusionMultiTask, FusionRegressor

FAST = dict(hidden_dim=8, max_epochs=3, batch_size=16, device="cpu", random_state=0)


class InterruptAt(Callback):
    """Raise KeyboardInterrupt at the end of the given epoch, like Ctrl-C."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4))
    labels = np.where(X[:, 0] > 0, "yes", "no")
    return X, labels, X[:, 1] * 3 + 10


def _fitted_models(data):
    X, labels, values = data
    return [
        (FusionClassifier(**FAST).fit(X, labels), labels),
        (FusionRegressor(**FAST).fit(X, values), values),
        (
            FusionMultiTask(tasks={"label": "classification"}, **FAST).fit(X, labels),
            labels,
        ),
    ]


def test_a_refit_with_bad_input_leaves_the_model_unchanged(data):
    X, _, _ = data
    for model, y in _fitted_models(data):
        before = model.predict(X)
        net = model.net_
        with pytest.raises(ValueError):
            # New labels or values, then a sample_weight of the wrong length.
            model.fit(X, y[::-1], sample_weight=np.ones(5))
        with pytest.raises(ValueError):
            model.fit(X[:, :2], y[:-1])
        assert model.net_ is net
        np.testing.assert_array_equal(np.asarray(model.predict(X)), np.asarray(before))
        assert model.n_features_in_ == 4


def test_an_interrupt_propagates_and_keeps_the_previous_model(data):
    X, _, _ = data
    for model, y in _fitted_models(data):
        before = model.predict(X)
        model.set_params(callbacks=[InterruptAt(1)])
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y)
        np.testing.assert_array_equal(np.asarray(model.predict(X)), np.asarray(before))
        assert len(model.net_.history) == FAST["max_epochs"]


def test_an_interrupted_first_fit_leaves_the_model_unfitted(data):
    X, labels, _ = data
    clf = FusionClassifier(**{**FAST, "callbacks": [InterruptAt(1)]})
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, labels)
    assert not hasattr(clf, "net_") and not hasattr(clf, "classes_")


def test_a_failed_aligner_refit_keeps_the_fitted_projections():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 6))
    aligner = CrossModalAligner(n_components=2, max_epochs=2, random_state=0).fit(X)
    before = aligner.transform(X)
    with pytest.raises(ValueError):
        aligner.set_params(split=10).fit(X)
    aligner.set_params(split=None)
    np.testing.assert_array_equal(aligner.transform(X), before)


@pytest.mark.parametrize(
    "params",
    [dict(optimizer="sgd", lr=1e4), dict(scale_inputs=False, lr=1e2)],
)
def test_a_diverged_loss_is_an_error_that_says_what_to_try(params):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3)) * np.array([1.0, 1e30, 1.0])
    y = (X[:, 0] > 0).astype(int)
    clf = FusionClassifier(**{**FAST, **params})
    with pytest.raises(ValueError, match="lower lr") as info:
        clf.fit(X, y)
    message = str(info.value)
    assert "diverged" in message and "'X'" in message and "e+30" in message
    assert not hasattr(clf, "net_")


def test_negative_sample_weight_and_zero_epochs_are_refused(data):
    X, labels, _ = data
    with pytest.raises(ValueError, match="[Nn]egative"):
        FusionClassifier(**FAST).fit(X, labels, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="max_epochs"):
        FusionClassifier(**{**FAST, "max_epochs": 0}).fit(X, labels)


def test_a_failed_refit_of_a_trained_cnn_keeps_the_fitted_network():
    from skmm import CNNImageEncoder

    rng = np.random.RandomState(0)
    X = np.empty((12, 1), dtype=object)
    for i in range(12):
        X[i, 0] = rng.randint(0, 256, (8, 8, 3), dtype=np.uint8)
    y = np.arange(12) % 2
    encoder = CNNImageEncoder(image_size=8, channels=(4,), max_epochs=1).fit(X, y)
    before = encoder.transform(X)
    with pytest.raises(ValueError):
        # Two image columns, then a target of the wrong length.
        encoder.fit(np.hstack([X, X]), y[:5])
    np.testing.assert_array_equal(encoder.transform(X), before)
    assert encoder.trained_on_y_

"""The estimators' defaults learn on data nobody tuned them for.

The task here is unlike ``skmm.datasets``: the label is the XOR of a bit read
from a dense block and a bit read from a sparse block of word counts, so each
modality alone is at chance, and the blocks come at scales no encoder would
choose.
"""

import numpy as np
import pytest
from scipy import sparse

from skmm import (
    CNNImageEncoder,
    CrossModalAligner,
    FusionClassifier,
    FusionMultiTask,
    FusionRegressor,
    ModalityBlocks,
    PretrainedImageEncoder,
    SentenceTextEncoder,
)
from skmm.utils._device import resolve_device

N_TRAIN = 600


def _xor_blocks(n, seed, dense_scale=1.0):
    rng = np.random.RandomState(seed)
    a = rng.randint(2, size=n)
    b = rng.randint(2, size=n)
    dense = rng.normal(size=(n, 8))
    dense[:, 0] = (2 * a - 1) * (0.5 + rng.rand(n))
    # Word counts: 40 filler words, and one of two marker words for bit b.
    counts = rng.poisson(0.3, size=(n, 42)).astype(np.float64)
    counts[:, 40] = np.where(b == 0, rng.randint(1, 4, size=n), 0)
    counts[:, 41] = np.where(b == 1, rng.randint(1, 4, size=n), 0)
    blocks = ModalityBlocks(
        {"dense": dense * dense_scale, "words": sparse.csr_matrix(counts)}
    )
    return blocks, a ^ b


@pytest.fixture(scope="module")
def xor_task():
    X, y = _xor_blocks(N_TRAIN + 400, seed=0)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


@pytest.mark.parametrize("fusion", ["concat", "gated", "attention"])
@pytest.mark.parametrize("dense_scale", [1.0, 1e-3, 1e3])
def test_default_fusion_learns_an_interaction_at_any_scale(fusion, dense_scale):
    X, y = _xor_blocks(N_TRAIN + 400, seed=0, dense_scale=dense_scale)
    clf = FusionClassifier(fusion=fusion, device="cpu", random_state=0)
    clf.fit(X[:N_TRAIN], y[:N_TRAIN])
    assert clf.score(X[N_TRAIN:], y[N_TRAIN:]) >= 0.85


@pytest.mark.parametrize("name", ["dense", "words"])
def test_a_single_modality_is_at_chance(xor_task, name):
    X_train, y_train, X_test, y_test = xor_task
    clf = FusionClassifier(device="cpu", random_state=0)
    clf.fit(X_train[name], y_train)
    assert abs(clf.score(X_test[name], y_test) - 0.5) < 0.1


def test_inputs_are_scaled_inside_the_network_unless_turned_off(xor_task):
    X_train, y_train, X_test, y_test = xor_task
    tiny = ModalityBlocks({"dense": X_train["dense"] * 1e-3, "words": X_train["words"]})
    scaled = FusionClassifier(max_epochs=20, device="cpu", random_state=0)
    raw = FusionClassifier(
        max_epochs=20, scale_inputs=False, device="cpu", random_state=0
    )
    scaler = scaled.fit(tiny, y_train).net_.module_.scalers["dense"]
    np.testing.assert_allclose(
        scaler.scale.numpy(), X_train["dense"].std(axis=0) * 1e-3, rtol=1e-4
    )
    assert "dense" not in raw.fit(tiny, y_train).net_.module_.scalers
    # A sparse block keeps its zeros: it is only divided, never shifted.
    assert float(scaled.net_.module_.scalers["words"].shift.abs().sum()) == 0.0
    test = ModalityBlocks({"dense": X_test["dense"] * 1e-3, "words": X_test["words"]})
    assert scaled.score(test, y_test) > raw.score(test, y_test) + 0.2


def test_early_stopping_is_on_for_large_data_and_off_for_tiny_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1500, 5))
    y = X[:, 0] + 0.5 * rng.normal(size=1500)
    large = FusionRegressor(device="cpu", random_state=0).fit(X, y)
    history = large.net_.history
    assert "valid_loss" in history[-1]
    assert large.n_iter_ < large.max_epochs
    # The kept weights are those of the best epoch, the last one before
    # patience ran out.
    assert large.best_epoch_ == large.n_iter_ - 10
    assert np.argmin(history[:, "valid_loss"]) + 1 == large.best_epoch_

    tiny = FusionRegressor(max_epochs=15, device="cpu", random_state=0)
    tiny.fit(X[:200], y[:200])
    assert "valid_loss" not in tiny.net_.history[-1]
    assert tiny.n_iter_ == tiny.best_epoch_ == 15


def test_auto_chooses_the_epochs_of_small_data_then_trains_on_all_rows():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(500, 5))
    y = X[:, 0] + rng.normal(size=500)
    auto = FusionRegressor(device="cpu", random_state=0).fit(X, y)
    # The number of epochs is the one of least validation loss over all
    # max_epochs epochs (a patience of 100 never stops them), plus a tenth;
    # the last training has no validation rows.
    chosen = FusionRegressor(early_stopping=100, device="cpu", random_state=0)
    chosen.fit(X, y)
    assert chosen.n_iter_ == 100
    epochs = round(chosen.best_epoch_ * 1.1)
    assert 1 <= epochs < 100
    assert "valid_loss" not in auto.net_.history[-1]
    assert auto.n_iter_ == auto.best_epoch_ == epochs
    # ... and it is a fit on all the rows from the same initial network.
    plain = FusionRegressor(
        max_epochs=epochs, early_stopping=False, device="cpu", random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(auto.predict(X), plain.predict(X))


def test_auto_says_when_it_trains_again(capsys):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = X[:, 0]
    reg = FusionRegressor(max_epochs=4, verbose=1, device="cpu", random_state=0)
    reg.fit(X, y)
    err = capsys.readouterr().err
    assert "valid_loss" in err  # the table of the training that chose
    assert (
        f"early_stopping='auto' on 300 rows: the validation rows were best after "
        f"epoch {round(reg.n_iter_ / 1.1)}" in err
    )
    assert f"training again on all the rows for {reg.n_iter_} epochs" in err
    FusionRegressor(max_epochs=4, device="cpu").fit(X, y)
    assert "early_stopping" not in capsys.readouterr().err


def test_auto_keeps_small_noisy_data_from_overfitting():
    # A generator unlike skmm.datasets: a linear target under heavy noise,
    # where training for max_epochs overfits.
    rng = np.random.RandomState(1)
    X = rng.normal(size=(800, 10))
    y = X[:, :3].sum(axis=1) + 3 * rng.normal(size=800)
    train, test = slice(0, 400), slice(400, None)

    def r2(early_stopping):
        reg = FusionRegressor(
            early_stopping=early_stopping, device="cpu", random_state=0
        )
        return reg.fit(X[train], y[train]).score(X[test], y[test])

    assert r2("auto") > r2(False) + 0.05


def test_early_stopping_can_be_forced_either_way():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1200, 3))
    y = X[:, 0]
    off = FusionRegressor(max_epochs=7, early_stopping=False, device="cpu")
    assert "valid_loss" not in off.fit(X, y).net_.history[-1]
    on = FusionRegressor(max_epochs=3, early_stopping=True, device="cpu")
    assert "valid_loss" in on.fit(X[:100], y[:100]).net_.history[-1]


@pytest.mark.parametrize(
    "estimator",
    [
        CNNImageEncoder(),
        PretrainedImageEncoder(),
        SentenceTextEncoder(),
        CrossModalAligner(),
        FusionClassifier(),
        FusionRegressor(),
        FusionMultiTask(tasks={"y": "regression"}),
    ],
    ids=lambda estimator: type(estimator).__name__,
)
def test_every_torch_estimator_defaults_to_the_same_auto_device(estimator):
    assert estimator.get_params()["device"] == "auto"


def test_auto_device_of_an_encoder_resolves_in_fit_as_for_an_estimator():
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (8, 64)).astype(np.uint8)
    expected = resolve_device("auto").type

    encoder = CNNImageEncoder(image_size=8, channels=(4,), max_epochs=1)
    encoder.fit(images, np.arange(8) % 2)
    estimator = FusionClassifier(max_epochs=1).fit(rng.normal(size=(8, 3)), [0, 1] * 4)

    # Both ran where "auto" resolves; the encoder keeps its fitted network on
    # the CPU, so that it predicts on a machine without a GPU.
    assert estimator.net_.device == expected
    assert encoder.get_params()["device"] == estimator.get_params()["device"]
    assert next(encoder.cnn_.parameters()).device.type == "cpu"

"""Mixed precision, torch.compile and the device copies of the fusion estimators."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from skorch.helper import predefined_split

from skmm import FusionClassifier, FusionRegressor, ModalityBlocks
from skmm.nn._data import BatchIterator, BlockDataset
from skmm.nn._fusion_network import FusionNetwork
from skmm.nn._losses import MultiTaskLoss
from skmm.nn._skorch_net import FusionNeuralNet


def _easy_task():
    X, y = make_classification(
        n_samples=500, n_features=12, n_informative=6, random_state=0
    )
    return X[:400], X[400:], y[:400], y[400:]


def _linear_output_dtypes(module):
    """Record the dtype of every Linear layer's output from now on."""
    dtypes = set()
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    return dtypes


def test_bf16_mixed_trains_on_cpu_as_well_as_float32_and_predicts_float32():
    X, X_test, y, y_test = _easy_task()
    params = dict(max_epochs=30, device="cpu", random_state=0)
    fp32 = FusionClassifier(**params).fit(X, y)
    bf16 = FusionClassifier(precision="bf16-mixed", **params).fit(X, y)

    assert bf16.score(X_test, y_test) >= fp32.score(X_test, y_test) - 0.03
    assert bf16.score(X_test, y_test) > 0.8
    proba = bf16.predict_proba(X_test)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # Weights stay float32; the forward pass, in training and prediction,
    # runs in bfloat16.
    assert {p.dtype for p in bf16.net_.module_.parameters()} == {torch.float32}
    dtypes = _linear_output_dtypes(bf16.net_.module_)
    bf16.predict(X_test[:5])
    assert dtypes == {torch.bfloat16}
    assert bf16.represent(X_test[:5]).dtype == np.float32

    # A regressor predicts in the dtype of y, whatever the precision.
    reg = FusionRegressor(precision="bf16-mixed", **params).fit(X, X[:, 0])
    assert reg.predict(X_test).dtype == np.float64
    assert reg.score(X_test, X_test[:, 0]) > 0.9


def test_16_mixed_on_a_cpu_is_refused_and_leaves_the_fitted_model_as_it_was():
    X, X_test, y, _ = _easy_task()
    clf = FusionClassifier(max_epochs=3, device="cpu", random_state=0).fit(X, y)
    before = clf.predict_proba(X_test)
    net = clf.net_
    with pytest.raises(ValueError, match="precision='16-mixed'.*CUDA.*bf16-mixed"):
        clf.set_params(precision="16-mixed").fit(X, y)
    assert clf.net_ is net
    np.testing.assert_array_equal(clf.predict_proba(X_test), before)


def test_precision_is_validated():
    X, _, y, _ = _easy_task()
    with pytest.raises(ValueError, match="precision"):
        FusionClassifier(precision="fp8").fit(X, y)


def _net_fit(precision):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(96, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    blocks = ModalityBlocks({"X": X})
    data = BlockDataset(blocks, {"y": y})
    torch.manual_seed(0)
    net = FusionNeuralNet(
        module=FusionNetwork(blocks.specs, {"y": 2}, hidden_dim=8, dropout=0.0),
        criterion=MultiTaskLoss({"y": "classification"}),
        optimizer=torch.optim.SGD,
        lr=0.1,
        max_epochs=5,
        batch_size=16,
        iterator_train=BatchIterator,
        iterator_valid=BatchIterator,
        train_split=predefined_split(data.subset(np.arange(80, 96))),
        precision=precision,
        verbose=0,
    )
    return net.fit(data.subset(np.arange(80)), y=None)


def test_the_gradient_scaler_of_16_mixed_leaves_the_updates_unchanged():
    # Off CUDA, "16-mixed" runs no autocast but still scales the loss and
    # unscales the gradients: by powers of two, so the updates are exact.
    scaled, plain = _net_fit("16-mixed"), _net_fit("32")
    assert isinstance(scaled.grad_scaler_, torch.amp.GradScaler)
    assert scaled.grad_scaler_.get_scale() > 1.0
    np.testing.assert_allclose(
        scaled.history[:, "train_loss"], plain.history[:, "train_loss"], rtol=1e-6
    )
    for name, weight in plain.module_.state_dict().items():
        torch.testing.assert_close(scaled.module_.state_dict()[name], weight)
    assert pickle.loads(pickle.dumps(scaled)).grad_scaler_ is None


class _Compiled(torch.nn.Module):
    """What torch.compile returns: a wrapper that keeps the module as _orig_mod."""

    def __init__(self, module):
        super().__init__()
        self._orig_mod = module

    def forward(self, *args, **kwargs):
        return self._orig_mod(*args, **kwargs)


def test_compile_compiles_the_network_for_training_and_keeps_it_uncompiled(
    monkeypatch,
):
    compiled = []

    def fake_compile(module, **kwargs):
        compiled.append(module)
        return _Compiled(module)

    monkeypatch.setattr(torch, "compile", fake_compile)
    X, X_test, y, _ = _easy_task()
    # One training (early_stopping="auto" would train twice on 400 rows).
    params = dict(max_epochs=3, early_stopping=False, device="cpu", random_state=0)
    clf = FusionClassifier(compile=True, **params).fit(X, y)

    assert [type(m) for m in compiled if isinstance(m, FusionNetwork)] == [
        FusionNetwork
    ]
    assert type(clf.net_.module_) is FusionNetwork
    assert not clf.net_.compile
    np.testing.assert_allclose(
        clf.predict_proba(X_test),
        FusionClassifier(**params).fit(X, y).predict_proba(X_test),
        rtol=1e-5,
    )
    pickle.loads(pickle.dumps(clf)).predict(X_test)


def test_a_model_pickled_before_precision_and_n_threads_existed_still_predicts():
    X, X_test, y, _ = _easy_task()
    clf = FusionClassifier(max_epochs=2, device="cpu", random_state=0).fit(X, y)
    expected = clf.predict_proba(X_test)
    old = pickle.loads(pickle.dumps(clf))
    for name in ("precision", "compile", "n_threads"):
        delattr(old, name)
    del old.net_.precision
    np.testing.assert_array_equal(old.predict_proba(X_test), expected)
    np.testing.assert_array_equal(
        old.net_.predict(BlockDataset(ModalityBlocks({"X": X_test}))),
        clf.predict(X_test),
    )

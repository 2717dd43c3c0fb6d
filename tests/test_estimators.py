import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import mean_absolute_percentage_error
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from skmm import (
    FusionClassifier,
    FusionMultiTask,
    FusionRegressor,
    ModalityBlocks,
    MultimodalFusion,
)

FAST = dict(hidden_dim=16, max_epochs=15, batch_size=32, lr=1e-2, device="cpu")
STRATEGIES = ["concat", "late", "gated", "attention", "tensor", "lowrank"]


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(
        n_samples=200, n_features=6, n_informative=4, random_state=0
    )


@pytest.fixture(scope="module")
def two_modalities():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    y = np.where(X["a"] + X["c"] > 0, "yes", "no")
    fusion = MultimodalFusion(
        [
            ("left", StandardScaler(), ["a", "b"]),
            ("right", StandardScaler(), ["c", "d"]),
        ]
    )
    return X, y, fusion


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_learns_two_modalities(two_modalities, strategy):
    X, y, fusion = two_modalities
    model = make_pipeline(
        fusion,
        FusionClassifier(fusion=strategy, **{**FAST, "max_epochs": 30}, random_state=0),
    )
    model.fit(X, y)
    assert set(model.predict(X)) <= {"yes", "no"}
    assert model.score(X, y) > 0.85


def test_predict_returns_original_labels_and_probabilities(clf_data):
    X, y = clf_data
    labels = np.array(["cat", "dog"])[y]
    clf = FusionClassifier(**FAST, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog"]
    assert set(clf.predict(X)) <= {"cat", "dog"}
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))


def test_same_random_state_same_predictions(clf_data):
    X, y = clf_data
    a = FusionClassifier(fusion="gated", dropout=0.3, **FAST, random_state=3).fit(X, y)
    b = FusionClassifier(fusion="gated", dropout=0.3, **FAST, random_state=3).fit(X, y)
    c = FusionClassifier(fusion="gated", dropout=0.3, **FAST, random_state=4).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X))


def test_fit_leaves_global_torch_seed_alone(clf_data):
    X, y = clf_data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    FusionClassifier(**FAST, random_state=0).fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_regressor_single_and_multi_output():
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    reg = FusionRegressor(**{**FAST, "max_epochs": 40}, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (200,)
    assert reg.score(X, y) > 0.9
    Y = np.c_[y, -2 * y + 1000]
    reg2 = FusionRegressor(**{**FAST, "max_epochs": 40}, random_state=0).fit(X, Y)
    pred = reg2.predict(X)
    assert pred.shape == (200, 2)
    # Targets on very different scales are both learned (standardised inside).
    assert np.corrcoef(pred[:, 1], Y[:, 1])[0, 1] > 0.95


def test_sample_weight_zero_removes_rows():
    # Two copies of the same inputs with opposite labels: only the weighted
    # copy can be learned.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(int)
    X2, y2 = np.r_[X, X], np.r_[y, 1 - y]
    w = np.r_[np.ones(100), np.zeros(100)]
    clf = FusionClassifier(**{**FAST, "max_epochs": 30}, random_state=0)
    clf.fit(X2, y2, sample_weight=w)
    assert clf.score(X, y) > 0.9
    clf.fit(X2, y2, sample_weight=1 - w)
    assert clf.score(X, 1 - y) > 0.9


def test_class_weight_balanced_favours_the_minority():
    X, y = make_classification(
        n_samples=300, weights=[0.9, 0.1], flip_y=0.05, class_sep=0.5, random_state=1
    )
    plain = FusionClassifier(**FAST, random_state=0).fit(X, y)
    balanced = FusionClassifier(**FAST, class_weight="balanced", random_state=0)
    balanced.fit(X, y)
    assert (balanced.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()


def test_validation_split_and_early_stopping(clf_data):
    X, y = clf_data
    clf = FusionClassifier(
        **{**FAST, "max_epochs": 300},
        validation_fraction=0.25,
        early_stopping=3,
        random_state=0,
    ).fit(X, y)
    history = clf.net_.history
    assert "valid_loss" in history[-1]
    assert len(history) < 300
    no_split = FusionClassifier(**FAST, random_state=0).fit(X, y)
    assert "valid_loss" not in no_split.net_.history[-1]
    assert len(no_split.net_.history) == FAST["max_epochs"]


def test_callbacks_optimizer_and_verbose(clf_data, capsys):
    X, y = clf_data

    class CountEpochs(Callback):
        def initialize(self):
            self.epochs = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    counter = CountEpochs()
    clf = FusionClassifier(
        **{**FAST, "max_epochs": 4},
        optimizer="sgd",
        optimizer_kwargs={"momentum": 0.9},
        callbacks=[("count", counter)],
        verbose=1,
        random_state=0,
    ).fit(X, y)
    assert isinstance(clf.net_.optimizer_, torch.optim.SGD)
    assert clf.net_.optimizer_.param_groups[0]["momentum"] == 0.9
    assert counter.epochs == 4
    err = capsys.readouterr().err
    assert "train_loss" in err and err.count("\n") >= 4


def test_gate_values_are_per_sample(two_modalities):
    X, y, fusion = two_modalities
    model = make_pipeline(
        fusion, FusionClassifier(fusion="gated", **FAST, random_state=0)
    ).fit(X, y)
    blocks = model[0].transform(X)
    gates = model[-1].gate_values(blocks)
    assert list(gates.columns) == ["left", "right"]
    assert gates.shape == (len(X), 2)
    assert ((gates > 0) & (gates < 1)).all().all()
    assert gates["left"].std() > 0
    concat = FusionClassifier(**FAST, random_state=0).fit(blocks, y)
    with pytest.raises(ValueError, match="gated"):
        concat.gate_values(blocks)


def test_represent_gives_the_shared_layer(clf_data):
    X, y = clf_data
    clf = FusionClassifier(**FAST, random_state=0).fit(X, y)
    assert clf.represent(X).shape == (len(X), FAST["hidden_dim"])


def test_pipeline_grid_search_and_cross_validation(two_modalities):
    X, y, fusion = two_modalities
    model = make_pipeline(fusion, FusionClassifier(**FAST, random_state=0))
    search = GridSearchCV(
        model,
        {
            "fusionclassifier__fusion": ["concat", "gated"],
            "multimodalfusion__left__with_mean": [True, False],
        },
        cv=2,
        n_jobs=2,
    ).fit(X, y)
    assert search.best_score_ > 0.7
    assert cross_val_score(search.best_estimator_, X, y, cv=3).mean() > 0.7
    result = cross_validate(model, X, y, cv=3, scoring=["accuracy", "f1_macro"])
    assert result["test_accuracy"].shape == (3,)


def test_joblib_round_trip(two_modalities, tmp_path):
    X, y, fusion = two_modalities
    model = make_pipeline(fusion, FusionClassifier(**FAST, random_state=0)).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert clone(model).get_params()["fusionclassifier__hidden_dim"] == 16


def test_model_marked_as_cuda_loads_on_a_cpu_only_machine(clf_data, monkeypatch):
    # Stand-in for a model trained on a GPU: the net records device="cuda".
    X, y = clf_data
    clf = FusionClassifier(**FAST, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    clf.net_.device = "cuda"
    clf.device_ = "cuda"
    buffer = io.BytesIO()
    pickle.dump(clf, buffer)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    buffer.seek(0)
    with pytest.warns(Warning, match="CUDA"):
        loaded = pickle.load(buffer)
    assert str(loaded.net_.device) == "cpu"
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-6)


def test_device_handling(clf_data, monkeypatch):
    X, y = clf_data
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    clf = FusionClassifier(**{**FAST, "device": "auto"}, random_state=0).fit(X, y)
    assert clf.device_ == "cpu"
    with pytest.raises(ValueError, match="CUDA"):
        FusionClassifier(**{**FAST, "device": "cuda"}).fit(X, y)


def test_bad_input_errors(clf_data, two_modalities):
    X, y = clf_data
    with pytest.raises(ValueError, match="rows"):
        FusionClassifier(**FAST).fit(X, y[:-1])
    y_nan = y.astype(float)
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FusionRegressor(**FAST).fit(X, y_nan)
    with pytest.raises(ValueError, match="fusion"):
        FusionClassifier(fusion="sum").fit(X, y)
    with pytest.raises(ValueError, match="2 classes"):
        FusionClassifier(**FAST).fit(X, np.zeros(len(X)))
    Xdf, ydf, fusion = two_modalities
    blocks = clone(fusion).fit_transform(Xdf)
    clf = FusionClassifier(**FAST, random_state=0).fit(blocks, ydf)
    with pytest.raises(ValueError, match="modality blocks"):
        clf.predict(np.asarray(blocks))
    other = ModalityBlocks({"left": blocks["left"]})
    with pytest.raises(ValueError, match="right"):
        clf.predict(other)


def test_multitask_predicts_every_task():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4))
    Y = pd.DataFrame(
        {"label": np.where(X[:, 0] > 0, "pos", "neg"), "value": 3 * X[:, 1] + 10}
    )
    model = FusionMultiTask(
        tasks={"label": "classification", "value": "regression"},
        **{**FAST, "max_epochs": 40},
        random_state=0,
    ).fit(X, Y)
    pred = model.predict(X)
    assert list(pred.columns) == ["label", "value"]
    assert (pred["label"] == Y["label"]).mean() > 0.9
    assert np.corrcoef(pred["value"], Y["value"])[0, 1] > 0.95
    proba = model.predict_proba(X)
    assert set(proba) == {"label"} and proba["label"].shape == (300, 2)
    assert 0.9 < model.score(X, Y) <= 1.0
    # An array y reads the columns in the order of ``tasks``.
    model_arr = clone(model).fit(X, Y.to_numpy())
    np.testing.assert_array_equal(model_arr.predict(X)["label"], pred["label"])
    with pytest.raises(ValueError, match="value"):
        model.fit(X, Y[["label"]].rename(columns={"label": "other"}).assign(label=1))
    with pytest.raises(ValueError, match="kind"):
        FusionMultiTask(tasks={"a": "ranking"}).fit(X, Y["label"])


def test_absolute_error_loss_ignores_outliers_that_pull_the_squared_error():
    # Heavy-tailed noise: the median fit stays on the signal, the mean fit not.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 4))
    y = X[:, 0] + 0.3 * rng.standard_cauchy(600)
    errors = {}
    for loss in ("squared_error", "absolute_error", "huber"):
        reg = FusionRegressor(loss=loss, max_epochs=40, random_state=0)
        reg.fit(X[:400], y[:400])
        errors[loss] = np.median(np.abs(reg.predict(X[400:]) - X[400:, 0]))
    assert errors["absolute_error"] < 0.5 * errors["squared_error"]
    assert errors["huber"] < errors["squared_error"]


def _skewed_positive_target(n_samples, random_state):
    # A price-like target: positive, multiplicative noise, a long right tail.
    rng = np.random.RandomState(random_state)
    X = rng.normal(size=(n_samples, 3))
    return X, np.exp(0.5 * X[:, 0] + rng.normal(size=n_samples))


def test_absolute_percentage_error_loss_lowers_the_mape():
    # The huge values of the tail pull the squared error, and weigh as much as
    # any other row in the absolute error; divided by the target, they weigh
    # what they weigh in the MAPE.
    X, y = _skewed_positive_target(400, 0)
    mape = {}
    for loss in ("squared_error", "absolute_error", "absolute_percentage_error"):
        reg = FusionRegressor(loss=loss, hidden_dim=16, max_epochs=30, random_state=0)
        reg.fit(X[:300], y[:300])
        mape[loss] = mean_absolute_percentage_error(y[300:], reg.predict(X[300:]))
    assert mape["absolute_percentage_error"] < 0.8 * mape["absolute_error"]
    assert mape["absolute_error"] < mape["squared_error"]


def test_absolute_percentage_error_loss_names_a_zero_target():
    X, y = _skewed_positive_target(60, 0)
    y[7] = 0.0
    reg = FusionRegressor(loss="absolute_percentage_error", max_epochs=1)
    with pytest.raises(
        ValueError, match=r"'y' is 0 at row 7.*loss='absolute_percentage_error'"
    ):
        reg.fit(X, y)
    with pytest.raises(ValueError, match=r"row 7, column 1"):
        reg.fit(X, np.c_[y + 1.0, y])
    # Negative targets are fine: the error is relative to |y|.
    FusionRegressor(loss="absolute_percentage_error", max_epochs=1).fit(X, -y - 1)


def test_absolute_percentage_error_loss_respects_sample_weight():
    # Two copies of the same inputs with different targets: only the
    # weighted copy can be learned.
    X, y = _skewed_positive_target(200, 1)
    y_other = 5.0 * np.exp(-X[:, 0])
    X2, y2 = np.r_[X, X], np.r_[y, y_other]
    w = np.r_[np.ones(200), np.zeros(200)]
    reg = FusionRegressor(
        loss="absolute_percentage_error", **{**FAST, "max_epochs": 30}, random_state=0
    )
    to_first = reg.fit(X2, y2, sample_weight=w).predict(X)
    to_other = clone(reg).fit(X2, y2, sample_weight=1 - w).predict(X)
    err = mean_absolute_percentage_error
    assert err(y_other, to_other) < 0.5 * err(y_other, to_first)
    assert err(y, to_first) < err(y, to_other)


def test_absolute_percentage_error_loss_continues_with_warm_start():
    X, y = _skewed_positive_target(200, 0)
    reg = FusionRegressor(
        loss="absolute_percentage_error", warm_start=True, **FAST, random_state=0
    )
    before = mean_absolute_percentage_error(y, reg.fit(X, y).predict(X))
    after = mean_absolute_percentage_error(y, reg.fit(X, y).predict(X))
    assert reg.n_iter_ == 2 * FAST["max_epochs"]
    assert after < before


def test_multitask_regression_loss_per_task_is_checked():
    from skmm import FusionMultiTask

    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    Y = pd.DataFrame({"label": X[:, 0] > 0, "value": X[:, 1]})
    tasks = {"label": "classification", "value": "regression"}
    model = FusionMultiTask(
        tasks=tasks, regression_loss={"value": "absolute_error"}, max_epochs=2
    )
    assert list(model.fit(X, Y).predict(X[:2]).columns) == ["label", "value"]
    assert model.net_.criterion_.regression_losses == {"value": "absolute_error"}
    with pytest.raises(ValueError, match="task 'label', which is a classification"):
        FusionMultiTask(tasks=tasks, regression_loss={"label": "huber"}).fit(X, Y)
    with pytest.raises(
        ValueError, match=r"regression_loss names unknown tasks \['x'\]"
    ):
        FusionMultiTask(tasks=tasks, regression_loss={"x": "huber"}).fit(X, Y)
    with pytest.raises(ValueError, match=r"regression_loss\['value'\] is 'l1'"):
        FusionMultiTask(tasks=tasks, regression_loss={"value": "l1"}).fit(X, Y)


def test_multitask_regression_loss_reaches_the_regression_head():
    from skmm import FusionMultiTask

    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 4))
    Y = pd.DataFrame(
        {"label": X[:, 0] > 0, "value": X[:, 1] + 0.3 * rng.standard_cauchy(600)}
    )
    tasks = {"label": "classification", "value": "regression"}

    def median_error(**params):
        model = FusionMultiTask(tasks=tasks, max_epochs=30, random_state=0, **params)
        pred = model.fit(X[:400], Y[:400]).predict(X[400:])["value"]
        return np.median(np.abs(pred - X[400:, 1])), pred

    squared, _ = median_error()
    absolute, pred_all = median_error(regression_loss="absolute_error")
    _, pred_by_task = median_error(regression_loss={"value": "absolute_error"})
    assert absolute < 0.5 * squared
    # One name for every regression task is the same as naming each.
    np.testing.assert_array_equal(pred_by_task, pred_all)


def test_sparse_blocks_are_densified_one_batch_at_a_time(monkeypatch):
    from scipy import sparse

    rng = np.random.RandomState(0)
    # More rows than a prediction batch (1,024 rows).
    n_samples = 1100
    text = sparse.random(n_samples, 50, density=0.05, format="csr", random_state=rng)
    numbers = rng.normal(size=(n_samples, 2))
    y = (numbers[:, 0] > 0).astype(int)
    densified = []
    for cls in (sparse.csr_matrix, sparse.csr_array, sparse.coo_matrix):
        toarray = cls.toarray

        def recording(self, *args, _toarray=toarray, **kwargs):
            densified.append(self.shape[0])
            return _toarray(self, *args, **kwargs)

        monkeypatch.setattr(cls, "toarray", recording)
    X = ModalityBlocks({"text": text, "numbers": numbers})
    clf = FusionClassifier(
        max_epochs=2, batch_size=32, early_stopping=True, device="cpu", random_state=0
    ).fit(X, y)
    assert densified and max(densified) <= 32
    densified.clear()
    clf.predict_proba(X)
    assert densified and max(densified) < n_samples


def test_multitask_absolute_percentage_error_per_task():
    X, price = _skewed_positive_target(400, 0)
    Y = pd.DataFrame({"label": X[:, 1] > 0, "price": price, "size": X[:, 2]})
    tasks = {"label": "classification", "price": "regression", "size": "regression"}

    def model(regression_loss):
        return FusionMultiTask(
            tasks=tasks,
            regression_loss=regression_loss,
            hidden_dim=16,
            max_epochs=30,
            random_state=0,
        )

    by_task = model({"price": "absolute_percentage_error"}).fit(X[:300], Y[:300])
    assert by_task.net_.criterion_.regression_losses == {
        "price": "absolute_percentage_error",
        "size": "squared_error",
    }
    squared = model("squared_error").fit(X[:300], Y[:300])
    mape = {
        name: mean_absolute_percentage_error(
            price[300:], model.predict(X[300:])["price"]
        )
        for name, model in [("by_task", by_task), ("squared", squared)]
    }
    assert mape["by_task"] < 0.8 * mape["squared"]
    # "size" crosses zero: only a task trained on the percentage error needs
    # a non-zero target, and the error names that task's parameter.
    Y_zero = Y.assign(size=np.where(np.arange(400) == 3, 0.0, Y["size"]))
    with pytest.raises(ValueError, match=r"row 3 .*regression_loss\['size'\]="):
        model({"size": "absolute_percentage_error"}).fit(X, Y_zero)
    with pytest.raises(ValueError, match=r"'size' is 0 at row 3.*regression_loss="):
        model("absolute_percentage_error").fit(X, Y_zero)
    model({"price": "absolute_percentage_error"}).set_params(max_epochs=1).fit(
        X, Y_zero
    )

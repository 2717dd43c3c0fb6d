"""MultiTaskLoss against the losses written out by hand, and InfoNCE."""

import math

import numpy as np
import pytest
import torch

from skmm._targets import normalised_value_weights, regression_target
from skmm.nn import MultiTaskLoss, info_nce
from skmm.nn._losses import value_weight_key

TASKS = {"label": "classification", "value": "regression"}


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 3, generator=generator)
    value = torch.randn(8, 1, generator=generator)
    y_pred = {"label": logits, "value": value}
    y_true = {
        "label": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]),
        "value": torch.randn(8, generator=generator),
    }
    return y_pred, y_true


def _by_hand(y_pred, y_true):
    """Per-sample cross-entropy and squared error, written out."""
    log_p = y_pred["label"] - y_pred["label"].exp().sum(dim=1, keepdim=True).log()
    ce = -log_p[torch.arange(8), y_true["label"]]
    se = (y_pred["value"][:, 0] - y_true["value"]) ** 2
    return ce, se


def test_loss_is_cross_entropy_plus_squared_error(batch):
    y_pred, y_true = batch
    ce, se = _by_hand(y_pred, y_true)
    loss = MultiTaskLoss(TASKS)(y_pred, y_true)
    torch.testing.assert_close(loss, ce.mean() + se.mean())
    per_task = MultiTaskLoss(TASKS).per_task(y_pred, y_true)
    torch.testing.assert_close(per_task["label"], ce)
    torch.testing.assert_close(per_task["value"], se)


def test_sample_weight_gives_a_weighted_mean(batch):
    y_pred, y_true = batch
    ce, se = _by_hand(y_pred, y_true)
    w = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0, 3.0, 0.5, 0.0])
    loss = MultiTaskLoss(TASKS)(y_pred, {**y_true, "sample_weight": w})
    expected = (w * ce).sum() / w.sum() + (w * se).sum() / w.sum()
    torch.testing.assert_close(loss, expected)
    # A row with zero weight does not count at all.
    y_true_changed = {**y_true, "value": y_true["value"].clone()}
    y_true_changed["value"][0] = 1e6
    changed = MultiTaskLoss(TASKS)(y_pred, {**y_true_changed, "sample_weight": w})
    torch.testing.assert_close(changed, loss)


def test_task_weights_scale_each_task(batch):
    y_pred, y_true = batch
    ce, se = _by_hand(y_pred, y_true)
    loss = MultiTaskLoss(TASKS, task_weights={"value": 0.25})(y_pred, y_true)
    torch.testing.assert_close(loss, ce.mean() + 0.25 * se.mean())
    only_label = MultiTaskLoss(TASKS, task_weights={"value": 0.0})(y_pred, y_true)
    torch.testing.assert_close(only_label, ce.mean())


def test_class_weights_weight_each_row_by_its_class(batch):
    y_pred, y_true = batch
    ce, se = _by_hand(y_pred, y_true)
    weights = torch.tensor([1.0, 4.0, 0.5])
    criterion = MultiTaskLoss(TASKS, class_weights={"label": weights})
    expected = (weights[y_true["label"]] * ce).mean() + se.mean()
    torch.testing.assert_close(criterion(y_pred, y_true), expected)
    # A buffer: saved with the loss and moved with it.
    assert any(torch.equal(b, weights) for b in criterion.buffers())


def test_uncertainty_weighting_learns_a_log_variance_per_task(batch):
    y_pred, y_true = batch
    ce, se = _by_hand(y_pred, y_true)
    criterion = MultiTaskLoss(TASKS, uncertainty=True)
    assert [p.shape for p in criterion.parameters()] == [(2,)]
    # At zero the weights are 1 and 1/2 (Kendall et al.).
    torch.testing.assert_close(criterion(y_pred, y_true), ce.mean() + 0.5 * se.mean())
    s = torch.tensor([0.3, -0.7])
    with torch.no_grad():
        criterion.log_vars.copy_(s)
    expected = (
        torch.exp(-s[0]) * ce.mean() + s[0] + 0.5 * torch.exp(-s[1]) * se.mean() + s[1]
    )
    torch.testing.assert_close(criterion(y_pred, y_true), expected)
    criterion(y_pred, y_true).backward()
    assert (criterion.log_vars.grad != 0).all()
    assert list(MultiTaskLoss(TASKS).parameters()) == []


def test_alignment_term_is_added(batch):
    y_pred, y_true = batch
    plain = MultiTaskLoss(TASKS)(y_pred, y_true)
    with_alignment = MultiTaskLoss(TASKS)(
        {**y_pred, "_alignment": torch.tensor(0.75)}, y_true
    )
    torch.testing.assert_close(with_alignment, plain + 0.75)


def test_multi_output_regression_averages_the_outputs():
    y_pred = {"v": torch.tensor([[1.0, 2.0], [0.0, 0.0]])}
    y_true = {"v": torch.tensor([[0.0, 0.0], [1.0, 3.0]])}
    criterion = MultiTaskLoss({"v": "regression"})
    torch.testing.assert_close(
        criterion.per_task(y_pred, y_true)["v"], torch.tensor([2.5, 5.0])
    )


def _percentage_error_loss(y, y_pred, sample_weight=None):
    """The training loss of ``y_pred`` for ``y``, both in the target's units."""
    target = regression_target(y, percentage_error_param="loss")
    (weight,) = normalised_value_weights({"v": target}, sample_weight).values()
    y_true = {
        "v": torch.tensor(target.values),
        value_weight_key("v"): torch.tensor(weight),
    }
    if sample_weight is not None:
        y_true["sample_weight"] = torch.tensor(sample_weight)
    pred = torch.tensor(
        (y_pred.reshape(target.values.shape) - target.mean) / target.scale
    )
    criterion = MultiTaskLoss(
        {"v": "regression"}, regression_losses={"v": "absolute_percentage_error"}
    )
    return float(criterion({"v": pred}, y_true)), target


def test_absolute_percentage_error_is_the_mape_in_the_targets_units():
    rng = np.random.RandomState(0)
    y = np.exp(rng.normal(scale=2.0, size=50)) * rng.choice([-1, 1], size=50)
    y_pred = y * (1 + rng.normal(scale=0.3, size=50)) + rng.normal(size=50)
    ape = np.abs(y - y_pred) / np.abs(y)
    loss, target = _percentage_error_loss(y, y_pred)
    # Weights average 1: the loss is the MAPE over the mean weight, whatever
    # the target's scale.
    mean_weight = np.mean(target.scale / np.abs(y))
    np.testing.assert_allclose(loss, ape.mean() / mean_weight, rtol=1e-5)
    np.testing.assert_allclose(
        _percentage_error_loss(1e6 * y, 1e6 * y_pred)[0], loss, rtol=1e-5
    )
    # The user's sample weights weigh the rows on top, and the weights then
    # average 1 over the weighted rows.
    w = rng.uniform(0, 3, size=50)
    loss_w, _ = _percentage_error_loss(y, y_pred, w)
    mean_weight_w = np.average(target.scale / np.abs(y), weights=w)
    np.testing.assert_allclose(
        loss_w,
        np.average(ape, weights=w) / mean_weight_w,
        rtol=1e-5,
    )


def test_absolute_percentage_error_of_several_outputs_averages_their_mape():
    rng = np.random.RandomState(1)
    y = np.c_[rng.uniform(1, 2, size=40), rng.uniform(1000, 5000, size=40)]
    y_pred = y * (1 + rng.normal(scale=0.2, size=y.shape))
    loss, target = _percentage_error_loss(y, y_pred)
    # Each output's error counts relative to its own target: the loss is
    # the uniform average of the per-output MAPEs (up to the normalisation).
    mape = (np.abs(y - y_pred) / np.abs(y)).mean()
    np.testing.assert_allclose(
        loss, mape / np.mean(target.scale / np.abs(y)), rtol=1e-5
    )


def test_absolute_percentage_error_without_its_weights_raises(batch):
    y_pred, y_true = batch
    criterion = MultiTaskLoss(
        TASKS, regression_losses={"value": "absolute_percentage_error"}
    )
    with pytest.raises(ValueError, match="task 'value' needs the weight"):
        criterion(y_pred, y_true)


def test_info_nce_is_symmetric_low_for_pairs_high_for_shuffled_rows():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(32, 16, generator=generator)
    b = a + 0.1 * torch.randn(32, 16, generator=generator)
    torch.testing.assert_close(info_nce(a, b, 0.1), info_nce(b, a, 0.1))
    aligned = float(info_nce(a, b, 0.1))
    shuffled = float(info_nce(a, b[torch.randperm(32, generator=generator)], 0.1))
    assert aligned < 0.1
    assert shuffled > math.log(32)
    # Only directions count: rescaling a row changes nothing.
    scales = torch.rand(32, 1, generator=generator) * 100 + 0.01
    torch.testing.assert_close(info_nce(a * scales, b, 0.1), info_nce(a, b, 0.1))


def test_info_nce_temperature_sharpens_the_match():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=generator)
    b = a + 0.3 * torch.randn(16, 8, generator=generator)
    losses = [float(info_nce(a, b, t)) for t in (1.0, 0.1, 0.01)]
    assert np.all(np.diff(losses) < 0)

"""Losses: the multi-task loss of the fusion estimators and InfoNCE."""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "PERCENTAGE_ERROR",
    "REGRESSION_LOSSES",
    "MultiTaskLoss",
    "info_nce",
    "value_weight_key",
]

#: The loss whose per-value weights (``1 / |y|`` in the target's units) come
#: with the targets; see :func:`value_weight_key`.
PERCENTAGE_ERROR = "absolute_percentage_error"

#: Losses of a regression task, named as scikit-learn's estimators name them.
#: Targets are standardised in training, so Huber's threshold is one standard
#: deviation of the target. The absolute percentage error is the absolute
#: error weighted by the per-value weights that come with the targets.
REGRESSION_LOSSES = {
    "squared_error": lambda diff: diff**2,
    "absolute_error": torch.abs,
    "huber": lambda diff: F.huber_loss(
        diff, torch.zeros_like(diff), reduction="none", delta=1.0
    ),
    PERCENTAGE_ERROR: torch.abs,
}


def value_weight_key(task):
    """The key of ``task``'s per-value loss weights in a batch's targets.

    A tuple, so that it cannot be the name of a task.
    """
    return ("value_weight", task)


def info_nce(a, b, temperature):
    """Symmetric InfoNCE between paired rows of ``a`` and ``b``.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are a positive pair; every other
    row of the batch is a negative.
    """
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = a @ b.t() / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses, with optional sample weights.

    Cross-entropy for classification tasks; for regression tasks the
    squared error unless ``regression_losses`` names another loss. With
    ``uncertainty=True`` the task weights are learned as in Kendall et al.
    (2018): ``sum_t exp(-s_t) * L_t + s_t`` (with a factor 1/2 on the
    regression terms), ``s_t`` a learned log-variance per task.

    ``y_true`` is a dict with one tensor per task and, optionally,
    ``"sample_weight"``; a task trained on the absolute percentage error
    also needs its per-value weights, under ``value_weight_key(task)``,
    shaped as its target (``scale / |y|`` for a standardised target, averaging
    1): they multiply the per-value loss before ``sample_weight`` weighs the
    rows.

    Parameters
    ----------
    tasks : dict of str to {"classification", "regression"}
        The task of each head.
    task_weights : dict of str to float, default=None
        Fixed weight of each task's loss; 1.0 where missing.
    class_weights : dict of str to Tensor, default=None
        Per-class weights of a classification task's cross-entropy.
    uncertainty : bool, default=False
        Learn the task weights from the data.
    regression_losses : dict of str to str, default=None
        Loss of each regression task, a key of ``REGRESSION_LOSSES``;
        ``"squared_error"`` where missing.
    """

    def __init__(
        self,
        tasks,
        task_weights=None,
        class_weights=None,
        uncertainty=False,
        regression_losses=None,
    ):
        super().__init__()
        self.tasks = dict(tasks)
        self.regression_losses = {
            t: (regression_losses or {}).get(t, "squared_error")
            for t, kind in self.tasks.items()
            if kind == "regression"
        }
        self.task_weights = {t: float((task_weights or {}).get(t, 1.0)) for t in tasks}
        # Buffers, so they follow the module to the training device.
        self._class_weighted = []
        for i, (task, weight) in enumerate((class_weights or {}).items()):
            self.register_buffer(f"class_weight_{i}", weight.float())
            self._class_weighted.append(task)
        self.uncertainty = uncertainty
        if uncertainty:
            self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def per_task(self, y_pred, y_true):
        """Per-sample loss of each task, ``{task: (batch,) tensor}``."""
        losses = {}
        for task, kind in self.tasks.items():
            pred, target = y_pred[task], y_true[task]
            if kind == "classification":
                weight = (
                    getattr(self, f"class_weight_{self._class_weighted.index(task)}")
                    if task in self._class_weighted
                    else None
                )
                losses[task] = F.cross_entropy(
                    pred.float(), target.long(), weight=weight, reduction="none"
                )
            else:
                name = self.regression_losses[task]
                diff = REGRESSION_LOSSES[name](
                    pred.float() - target.float().view_as(pred)
                )
                weight = y_true.get(value_weight_key(task))
                if weight is not None:
                    diff = diff * weight.view_as(diff)
                elif name == PERCENTAGE_ERROR:
                    raise ValueError(
                        f"The loss {PERCENTAGE_ERROR!r} of task {task!r} needs "
                        "the weight of each target value, under "
                        f"y_true[{value_weight_key(task)!r}]; none was given."
                    )
                losses[task] = diff.mean(dim=1) if diff.ndim > 1 else diff
        return losses

    def forward(self, y_pred, y_true):
        sample_weight = y_true.get("sample_weight")
        total = y_pred.get("_alignment")
        for i, (task, loss) in enumerate(self.per_task(y_pred, y_true).items()):
            if sample_weight is None:
                loss = loss.mean()
            else:
                loss = (loss * sample_weight).sum() / sample_weight.sum().clamp_min(
                    1e-12
                )
            if self.uncertainty:
                scale = 1.0 if self.tasks[task] == "classification" else 0.5
                loss = scale * torch.exp(-self.log_vars[i]) * loss + self.log_vars[i]
            if self.task_weights[task] != 1.0:
                loss = self.task_weights[task] * loss
            total = loss if total is None else total + loss
        return total

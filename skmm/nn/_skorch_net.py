"""The skorch net that trains a FusionNetwork, with a lean per-batch path.

skorch's :class:`~skorch.NeuralNet` does a fixed amount of Python work per
batch: it walks every module to set the training mode, notifies every
callback of every batch event, converts the batch with ``to_tensor`` and
measures it with ``get_len``. For the small networks of tabular-sized rows a
step costs well under a millisecond, and that work becomes a large share of
the training time. :class:`FusionNeuralNet` keeps the loop, the callbacks,
the history and the device handling of ``NeuralNet`` and does less per batch:

- the training mode is set once per epoch, and again for a batch only when
  a module has left it;
- a batch event reaches only the callbacks that handle it (those overriding
  the no-op of :class:`~skorch.callbacks.Callback`), listed once per epoch;
- a batch that is a dict of tensors is moved to the device key by key,
  without the generic conversion, and its length is read from one tensor;
- the loss and the size of a batch go into the history in one update.

Anything else (arrays, lists, fit parameters) takes ``NeuralNet``'s path, so
the losses, the history and the callbacks' view of training are the same.

With ``precision="bf16-mixed"`` or ``"16-mixed"`` the forward pass runs under
``torch.autocast`` (bfloat16 or float16) and the loss is computed in float32
from the outputs cast back; ``"16-mixed"`` scales the loss with a
``torch.amp.GradScaler`` so that small float16 gradients do not vanish, and
unscales the gradients before the optimizers (and any ``on_grad_computed``
callback) see them.

Given the ``targets`` it was trained for, the net also speaks the targets'
language to skorch's scoring callbacks: ``predict`` decodes the network's
outputs into class labels or values in the target's units, and an
``EpochScoring`` or ``BatchScoring`` that keeps skorch's default
``target_extractor`` gets one that decodes the batches' targets the same
way, so ``EpochScoring("accuracy")`` scores in the original label space.
"""

import math

import numpy as np
import torch
from sklearn.utils import ClassifierTags, RegressorTags
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import get_len, unpack_data
from skorch.history import History
from skorch.utils import TeeGenerator, to_numpy

from skmm.nn import _parallel
from skmm.utils._device import autocast

__all__ = [
    "FusionNeuralNet",
    "TargetDecoder",
    "TrainingDiverged",
    "TrainingInterrupted",
]


class TrainingInterrupted(Exception):
    """Raised in place of a ``KeyboardInterrupt`` during ``fit``.

    skorch's ``partial_fit`` catches ``KeyboardInterrupt`` and keeps the
    partly trained net; an exception of another type passes through it, so
    that the caller can put the previous model back and re-raise the
    interrupt. The ``KeyboardInterrupt`` by which skorch's ``EarlyStopping``
    ends training is left alone.
    """


class TrainingDiverged(ValueError):
    """The training or validation loss became NaN or infinite."""


_BATCH_EVENTS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


def _handles(callback, event):
    """Whether ``callback`` does something on ``event``."""
    method = getattr(callback, event, None)
    if method is None:
        return False
    return getattr(method, "__func__", None) is not getattr(Callback, event)


def _is_tensor_dict(data):
    # Exactly a dict, as BatchIterator yields: other mappings take skorch's path.
    if type(data) is not dict:
        return False
    for value in data.values():
        if not isinstance(value, torch.Tensor):
            return False
    return True


class FusionNeuralNet(NeuralNet):
    """A skorch ``NeuralNet`` with less Python work per batch.

    It takes the parameters of :class:`skorch.NeuralNet` and behaves like it:
    same training loop, callbacks, history (``train_loss``, ``valid_loss``,
    ``dur`` per epoch; loss and size per batch), device handling and early
    stopping. Batches that are dicts of tensors, as yielded by
    :class:`~skmm.nn._data.BatchIterator`, take a shorter path: see the module
    docstring.

    Batch events call the hooks directly rather than through :meth:`notify`,
    which still carries the epoch and training events: override the hooks
    (``on_batch_begin``, ...), not ``notify``, to act on every batch.

    Parameters
    ----------
    *args, **kwargs
        The parameters of :class:`skorch.NeuralNet`.
    targets : dict of str to TaskTarget, default=None
        The tasks the module's outputs answer, with what decoding them
        needs. When given, :meth:`predict` returns labels or values in the
        targets' units and skorch's scoring callbacks score in them (see
        :meth:`decode_targets`); ``None`` keeps ``NeuralNet``'s behaviour.
    precision : {"32", "bf16-mixed", "16-mixed"}, default="32"
        The precision of the forward pass; see the module docstring.
        ``"16-mixed"`` needs a CUDA device.
    data_parallel : bool, default=False
        Train as one of the processes of a data-parallel launch: start from
        process 0's weights, average the gradients of every step over the
        processes and record the losses of whole batches (see
        :mod:`skmm.nn._parallel`). The iterators must then yield this
        process's share of each batch (``BatchIterator(data_parallel=True)``).
    """

    # What a net pickled before these parameters existed trained with.
    precision = "32"
    data_parallel = False

    def __init__(
        self, *args, targets=None, precision="32", data_parallel=False, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.targets = targets
        self.precision = precision
        self.data_parallel = data_parallel

    # -- callbacks -----------------------------------------------------------

    def _batch_listeners(self):
        """The callbacks that handle each batch event, by event."""
        return {
            event: [cb for _, cb in self.callbacks_ if _handles(cb, event)]
            for event in _BATCH_EVENTS
        }

    def initialize_callbacks(self):
        super().initialize_callbacks()
        self.batch_listeners_ = None
        if self.targets is not None:
            # skorch's scoring callbacks pass each batch's target through
            # ``target_extractor`` and concatenate the results, which fails on
            # a dict of tasks; one left at skorch's default (or given by
            # another fit) gets the decoder of this net's targets instead.
            for _, cb in self.callbacks_:
                extractor = getattr(cb, "target_extractor", None)
                if extractor is to_numpy or isinstance(extractor, TargetDecoder):
                    cb.target_extractor = TargetDecoder(self.targets)
        return self

    def __getstate__(self):
        state = super().__getstate__()
        # The listeners are derived from the callbacks at each epoch; pickled,
        # they would keep callbacks that were removed after fit alive. The
        # gradient scaler is training scratch, made again by the next step.
        state["batch_listeners_"] = None
        state["grad_scaler_"] = None
        return state

    def _listeners(self, event):
        listeners = getattr(self, "batch_listeners_", None)
        if listeners is None:
            listeners = self.batch_listeners_ = self._batch_listeners()
        return listeners[event]

    def _hooks(self, event):
        """The net's own hook of ``event``, then those of its listeners."""
        return [getattr(self, event)] + [
            getattr(cb, event) for cb in self._listeners(event)
        ]

    # -- training mode -------------------------------------------------------

    def _ensure_training(self, training):
        """Set the training mode, unless every module is already in it."""
        for name in self._modules + self._criteria:
            module = getattr(self, name + "_")
            if isinstance(module, torch.nn.Module) and module.training != training:
                self._set_training(training)
                return

    # -- loop ----------------------------------------------------------------

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        self.batch_listeners_ = self._batch_listeners()
        on_begin = self._hooks("on_batch_begin")
        on_end = self._hooks("on_batch_end")
        self._set_training(training)
        parallel = self.data_parallel
        if parallel and not training:
            # Buffers that training updates (a fine-tuned backbone's batch
            # statistics) follow each process's share: validate with process 0's.
            self._broadcast_modules()
        history = self.history
        # A plain History takes the batch entries as one dict update; a
        # DistributedHistory needs its own record_batch.
        direct = type(history) is History
        loss_key, size_key = prefix + "_loss", prefix + "_batch_size"
        batch_count = 0
        for batch in iterator:
            for hook in on_begin:
                hook(self, batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            loss, size = step["loss"].item(), _batch_len(batch)
            if parallel:
                loss, size = _parallel.reduce_batch_loss(
                    loss, size, torch.device(self.device)
                )
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the {prefix} loss became {loss} at epoch {len(history)}, "
                    f"batch {batch_count + 1}"
                )
            entries = {loss_key: loss, size_key: size}
            if direct:
                list.__getitem__(history, -1)["batches"][-1].update(entries)
            else:
                for key, value in entries.items():
                    history.record_batch(key, value)
            for hook in on_end:
                hook(self, batch=batch, training=training, **step)
            batch_count += 1
        history.record(prefix + "_batch_count", batch_count)

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        if self.data_parallel:
            self._broadcast_modules()
        try:
            super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as exc:
            # skorch's EarlyStopping stops training with a KeyboardInterrupt
            # too: that one is the normal end of training.
            if not self._stopped_early():
                raise TrainingInterrupted("Training was interrupted.") from exc
            if self.data_parallel:
                self._broadcast_modules()
            raise
        if self.data_parallel:
            self._broadcast_modules()
        return self

    def _broadcast_modules(self):
        """Give every process process 0's weights and buffers."""
        device = torch.device(self.device)
        for name in self._modules + self._criteria:
            module = getattr(self, name + "_", None)
            if isinstance(module, torch.nn.Module):
                _parallel.broadcast_module(module, device)

    def _stopped_early(self):
        return any(
            isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience
            for _, cb in self.callbacks_
        )

    def _grad_scaler(self):
        """The gradient scaler of ``precision="16-mixed"``, or None."""
        if self.precision != "16-mixed":
            return None
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            scaler = self.grad_scaler_ = torch.amp.GradScaler(
                torch.device(self.device).type
            )
        return scaler

    def train_step(self, batch, **fit_params):
        step_accumulator = self.get_train_step_accumulator()
        on_grad = self._hooks("on_grad_computed")
        # NeuralNet's own hook does nothing: with no listener, skip it and the
        # generator of parameters it would be given.
        own_noop = type(self).on_grad_computed is NeuralNet.on_grad_computed
        if len(on_grad) == 1 and own_noop:
            on_grad = []
        scaler = self._grad_scaler()

        def step_fn():
            self._zero_grad_optimizer()
            step = self.train_step_single(batch, **fit_params)
            step_accumulator.store_step(step)
            if self.data_parallel:
                _parallel.average_gradients(
                    (p for _, p in self.get_all_learnable_params()),
                    _batch_len(batch),
                )
            if scaler is not None:
                for name in self._optimizers:
                    scaler.unscale_(getattr(self, name + "_"))
            if on_grad:
                named_parameters = TeeGenerator(self.get_all_learnable_params())
                for hook in on_grad:
                    hook(
                        self,
                        named_parameters=named_parameters,
                        batch=batch,
                        training=True,
                    )
            return step["loss"]

        if scaler is None:
            self._step_optimizer(step_fn)
        else:
            # A scaled step skips the update when the gradients overflowed;
            # it cannot re-evaluate a closure, so the step runs once here.
            step_fn()
            for name in self._optimizers:
                scaler.step(getattr(self, name + "_"))
            scaler.update()
        return step_accumulator.get_step()

    def train_step_single(self, batch, **fit_params):
        self._ensure_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler = self._grad_scaler()
        (loss if scaler is None else scaler.scale(loss)).backward()
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        self._ensure_training(False)
        Xi, yi = unpack_data(batch)
        with torch.no_grad():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    # -- predictions in the targets' units -----------------------------------

    def _outputs(self, X):
        """The module's output for ``X``, per task, as arrays on the CPU."""
        outputs = list(self.forward_iter(X, training=False))
        return {
            task: torch.cat([o[task] for o in outputs]).detach().float().cpu().numpy()
            for task in self.targets
        }

    def decode_targets(self, y):
        """Targets as ``predict`` gives them, from their encoded form.

        Parameters
        ----------
        y : dict of str to tensor or ndarray
            Encoded targets per task (class indices, standardised values),
            as in the batches; other keys (``"sample_weight"``) are ignored.

        Returns
        -------
        y : ndarray
            For one task, its labels or values (one column of values as a
            1-D array); for several, a structured array with a field per task.
        """
        return TargetDecoder(self.targets)(y)

    def predict(self, X):
        """Class labels or values in the targets' units; see :meth:`decode_targets`.

        Without ``targets``, as :meth:`skorch.NeuralNet.predict`.
        """
        if self.targets is None:
            return super().predict(X)
        return _decoded(self.targets, self._outputs(X), encoded=False)

    def predict_proba(self, X):
        """Class probabilities of a classification task.

        For one task: its probabilities (columns in the order of
        ``classes_``), or its values for a regression task. For several: a
        dict of these per task. Without ``targets``, as
        :meth:`skorch.NeuralNet.predict_proba`.
        """
        if self.targets is None:
            return super().predict_proba(X)
        outputs = self._outputs(X)
        out = {
            task: (
                target.probabilities(outputs[task])
                if target.kind == "classification"
                else _column(target.decode(outputs[task]))
            )
            for task, target in self.targets.items()
        }
        return next(iter(out.values())) if len(out) == 1 else out

    def _single_target(self):
        if self.targets is not None and len(self.targets) == 1:
            return next(iter(self.targets.values()))
        return None

    @property
    def classes_(self):
        """The class labels of a single classification task."""
        target = self._single_target()
        if target is None or target.kind != "classification":
            raise AttributeError(
                "classes_ is defined for a net of one classification task."
            )
        return target.classes

    def __sklearn_tags__(self):
        # A net of one task is a classifier or a regressor for scikit-learn's
        # scorers: "roc_auc" or "neg_log_loss" then read predict_proba.
        tags = super().__sklearn_tags__()
        target = self._single_target()
        if target is not None and target.kind == "classification":
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        elif target is not None:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        return tags

    # -- conversion ----------------------------------------------------------

    def _to_device(self, data):
        # Pinned batches (``pin_memory=True``) copy to a GPU asynchronously.
        device = self.device
        return {key: value.to(device, non_blocking=True) for key, value in data.items()}

    def infer(self, x, **fit_params):
        with autocast(self.precision, torch.device(self.device)):
            if fit_params or not _is_tensor_dict(x):
                return super().infer(x, **fit_params)
            return self.module_(**self._to_device(x))

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if self.precision != "32":
            y_pred = _as_float32(y_pred)
        if not _is_tensor_dict(y_true):
            return super().get_loss(y_pred, y_true, X=X, training=training)
        return self.criterion_(y_pred, self._to_device(y_true))


class TargetDecoder:
    """Decode a dict of encoded targets per task; see ``decode_targets``.

    The ``target_extractor`` that :class:`FusionNeuralNet` gives skorch's
    scoring callbacks: each batch's targets come out as labels or values in
    the targets' units, arrays that skorch can concatenate.

    Parameters
    ----------
    targets : dict of str to TaskTarget
        The tasks and what decoding them needs.
    """

    def __init__(self, targets):
        self.targets = targets

    def __call__(self, y):
        values = {task: to_numpy(y[task]) for task in self.targets}
        return _decoded(self.targets, values, encoded=True)


def _column(values):
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def _decoded(targets, values, *, encoded):
    """Labels or values per task, from encoded targets or from head outputs."""
    columns = {}
    for task, target in targets.items():
        if encoded and target.kind == "classification":
            column = target.classes[np.asarray(values[task], dtype=np.int64)]
        else:
            column = target.decode(values[task])
        columns[task] = _column(column)
    if len(columns) == 1:
        return next(iter(columns.values()))
    out = np.empty(
        len(next(iter(columns.values()))),
        dtype=[
            (task, column.dtype, column.shape[1:]) for task, column in columns.items()
        ],
    )
    for task, column in columns.items():
        out[task] = column
    return out


def _as_float32(outputs):
    """Floating tensors of ``outputs`` (a tensor or a dict of them) in float32."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {key: _as_float32(value) for key, value in outputs.items()}
    return outputs


def _batch_len(batch):
    Xi = batch[0] if isinstance(batch, (tuple, list)) else batch
    if _is_tensor_dict(Xi) and Xi:
        return next(iter(Xi.values())).shape[0]
    return get_len(Xi)

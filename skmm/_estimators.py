"""Fusion estimators: scikit-learn estimators that train a FusionNetwork.

Each estimator is a plain scikit-learn estimator that builds a
:class:`~skmm.nn.FusionNetwork` in ``fit`` and trains it with a skorch
``NeuralNet`` kept as ``net_``. The wrapper owns the scikit-learn contract
(parameters, validation, label encoding, ``n_features_in_``); skorch owns the
loop, callbacks, history and device handling.
"""

import copy
import inspect
import numbers

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d
from skorch.callbacks import EarlyStopping, ProgressBar
from skorch.helper import predefined_split

from skmm._blocks import LazyBlock, ModalityBlocks
from skmm._targets import (
    TASK_KINDS,
    TaskTarget,
    as_float_target,
    check_target_column,
    classification_target,
    normalised_value_weights,
    regression_target,
)
from skmm.nn._data import BatchIterator, BlockDataset, input_statistics
from skmm.nn._fusion_layers import FUSION_STRATEGIES
from skmm.nn._fusion_network import FusionNetwork
from skmm.nn._losses import PERCENTAGE_ERROR, REGRESSION_LOSSES, MultiTaskLoss
from skmm.nn._parallel import broadcast_seed, setup_data_parallel, world
from skmm.nn._skorch_net import (
    FusionNeuralNet,
    TrainingDiverged,
    TrainingInterrupted,
)
from skmm.nn._training import (
    fit_seeds,
    make_generator,
    run_in_batches,
    seeded_init,
    stochastic_layers,
)
from skmm.utils._atomic import restored_on_failure
from skmm.utils._device import (
    PRECISIONS,
    autocast,
    check_precision,
    resolve_device,
    runs_on_gpu,
)
from skmm.utils._progress import effective_verbose, print_stderr
from skmm.utils._sklearn_compat import (
    Interval,
    StrOptions,
    _check_sample_weight,
    _fit_context,
    validate_data,
)
from skmm.utils._threads import default_n_threads, torch_threads

__all__ = ["FusionClassifier", "FusionMultiTask", "FusionRegressor"]

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

_PREDICT_BATCH_SIZE = 1024
# From this many training rows, early_stopping="auto" holds out a validation
# split and keeps the best epoch's weights.
_AUTO_EARLY_STOPPING_ROWS = 1000
# From this many rows (a validation tenth of at least 30 rows) up to the
# previous threshold, early_stopping="auto" chooses the number of epochs on a
# validation split, then trains again on all the rows, which are too few to
# lose a tenth of; fewer rows are too few to judge by.
_AUTO_EPOCHS_ROWS = 300
# The retraining on all rows runs this many times the chosen epochs, as it
# sees a tenth more rows per epoch.
_REFIT_EPOCHS = 1.1
# Epochs without improvement before early stopping ends training.
_PATIENCE = 10


_SHARED_PARAMS_DOC = """
    fusion : {"concat", "late", "gated", "attention", "tensor", "lowrank"}, \
default="concat"
        How the modality embeddings are combined; see the user guide.
        ``"concat"``: concatenation then a dense layer. ``"late"``: one head
        per modality, predictions combined with learned weights. ``"gated"``:
        gated multimodal unit (GMU). ``"attention"``: self-attention over the
        modality embeddings. ``"tensor"``: outer-product tensor fusion.
        ``"lowrank"``: its low-rank factorisation.
    hidden_dim : int, default=64
        Width of each modality embedding and of the shared representation.
    dropout : float, default=0.1
        Dropout in the towers and on the shared representation.
    rank : int, default=4
        Rank of ``fusion="lowrank"``.
    tensor_dim : int, default=8
        Per-modality width before the outer product of ``fusion="tensor"``.
    modality_dropout : float, default=0.0
        During training, the probability that a modality of a row is replaced
        by that modality's learned "missing" embedding, so that the model does
        not lean on one modality. Rows whose block holds no data (an empty
        text, a missing image: all-zero or all-padding rows) always get the
        "missing" embedding, in fit and in predict alike.
    shared_space : {None, "projected", "tied"}, default=None
        Project every modality embedding into one shared space of width
        ``hidden_dim`` before fusion, with a projection per modality
        (``"projected"``) or one projection shared by all (``"tied"``).
    alignment_weight : float, default=0.0
        Weight of a contrastive InfoNCE loss (in-batch negatives) between the
        embeddings of each pair of modalities, added to the task loss.
    temperature : float, default=0.1
        Temperature of the InfoNCE loss.
    max_epochs : int, default=100
        Most passes over the training data. With early stopping (on by
        default from 1,000 rows) training usually stops well before.
    batch_size : int, default=64
        Rows per gradient step.
    lr : float, default=3e-3
        Learning rate. A pretrained tower whose block sets its own rate
        (``BlockSpec.lr``, e.g. ``SentenceTextEncoder(tower_lr=...)``) trains
        at that rate in its own optimizer parameter group.
    optimizer : {"adam", "adamw", "sgd", "rmsprop", "adagrad"} or \
torch optimizer class, default="adam"
        The optimizer.
    optimizer_kwargs : dict, default=None
        Extra arguments of the optimizer (``momentum``, ``betas``, ...).
    weight_decay : float, default=0.0
        L2 penalty of the optimizer.
    early_stopping : "auto", bool or int, default="auto"
        Hold out ``validation_fraction`` of the training rows (stratified
        for classifiers), stop when their loss has not improved for 10
        epochs (or for the given number of epochs) and restore the weights
        of the best epoch. ``"auto"``: on when the training data has at
        least 1,000 rows, as scikit-learn's ``HistGradientBoosting*`` do
        (from 10,000 rows there); ``net_.history`` and ``best_epoch_`` show
        where it stopped. From 300 to 999 rows, ``"auto"`` uses the
        validation split only to choose the number of epochs: it trains for
        ``max_epochs`` epochs, takes the epoch of least validation loss, and
        trains the network again from its initial weights on all the rows
        for that many epochs (plus 10 %), so that small data neither
        overfits for ``max_epochs`` epochs nor loses a tenth of its rows;
        ``n_iter_`` is then the number of epochs of that last training.
        Below 300 rows it is off. A ``warm_start`` continuation never trains
        twice.
    validation_fraction : float, default=0.1
        Fraction of the training rows held out for early stopping; unused
        without it.
    scale_inputs : bool, default=True
        Bring every feature block to a sane scale inside the network, with
        statistics of the training rows kept in the fitted model: dense
        blocks are standardised per column, sparse blocks (TF-IDF, counts)
        stay sparse and are divided by the root mean square norm of their
        rows. Blocks a user already scaled lose nothing; ``False`` feeds the
        blocks to the towers as they are. Image, token and pretrained-tower
        blocks are never rescaled.
    warm_start : bool, default=False
        When fitted already, continue training the fitted network for
        ``max_epochs`` more epochs instead of building a new one; its
        ``net_.history`` keeps growing and ``n_iter_`` counts every epoch.
        The blocks must have the specs of the previous fit and the targets
        the same tasks, classes and number of outputs, else ``fit`` raises a
        ``ValueError``. The network, its optimizer state and the settings
        that built them are those of the first fit; ``max_epochs``,
        ``early_stopping``, ``validation_fraction``, ``callbacks`` and
        ``verbose`` are read at each fit. Regression targets keep the
        standardisation of the first fit.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks (or ``(name, callback)`` tuples), e.g. a
        learning-rate scheduler or a checkpoint. A scoring callback scores
        in the targets' own labels and units:
        ``EpochScoring("accuracy", lower_is_better=False)`` records the
        accuracy of the predicted class labels on the validation rows
        (``on_train=True``: on the training batches) in ``net_.history``.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train. ``"auto"`` uses a GPU when there is one.
    precision : {"32", "bf16-mixed", "16-mixed"}, default="32"
        Precision of the network's forward pass, in training and prediction.
        ``"32"``: float32. ``"bf16-mixed"``: ``torch.autocast`` to bfloat16,
        on GPUs that support it and on CPUs. ``"16-mixed"``: autocast to
        float16 with a gradient scaler; it needs a CUDA device (``fit``
        raises on a CPU; a model trained so predicts in float32 on a CPU).
        Weights, the loss and the optimizer state stay float32, and
        predictions are float32 arrays whatever the precision.
    compile : bool, default=False
        Compile the network with ``torch.compile`` for training. The fitted
        model keeps the uncompiled network (same weights), so that it
        pickles and loads anywhere; continuing a fit with ``warm_start``
        trains it uncompiled.
    data_parallel : bool, default=False
        Train one model over several processes at once, as torch's
        ``DistributedDataParallel`` does: start the script with ``torchrun``
        (``torchrun --nproc_per_node=4 train.py``, one process per GPU);
        each process fits the estimator on the same data, trains on its
        share of every batch on its own GPU (``cuda:LOCAL_RANK``) or CPU,
        and averages its gradients with the others' before each step, so
        that every process ends with the same model. ``batch_size`` is the
        size of the whole batch, shared out between the processes: the
        steps are those of one process training on all the rows. ``fit``
        raises when the script was not started so. See the GPU page of the
        documentation.
    n_threads : int, default=None
        torch intra-op threads used by ``fit`` and the prediction methods,
        set for their duration and restored afterwards. ``None``: one thread
        for networks of feature-vector and token towers, too small to gain
        from more (and much slower with more on a loaded machine); for a
        network with an image or pretrained tower, torch's current number
        of threads (lowered already by ``OMP_NUM_THREADS`` in the worker
        processes of joblib and Dask), at most one per physical core.
    verbose : int, default=0
        Progress on stderr. 0: silent, unless ``skmm.get_config()["verbose"]``
        is above 0, whose level it then follows. 1: skorch's table, one line
        per epoch. 2: also a progress bar per epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, dropout and the validation
        split, without touching the global random state."""


def _shared_attributes_doc(extra=""):
    return (
        """
    net_ : FusionNeuralNet
        The fitted skorch net (a ``skorch.NeuralNet`` with a leaner batch
        loop); its module is ``net_.module_`` and its training
        history ``net_.history``.
    block_specs_ : dict of str to BlockSpec
        The modality blocks the network was built for.
    n_features_in_ : int
        Number of input features (the width of all blocks together).
    feature_names_in_ : ndarray of str
        Input feature names, when fitted on a DataFrame.
    device_ : str
        The device the network was trained on.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        The epoch whose weights the model kept: the one with the lowest
        validation loss under early stopping, the last one otherwise."""
        + extra
    )


class _BaseFusionEstimator(BaseEstimator):
    """Shared machinery of the fusion estimators.

    ``fit`` is written once here: validate the parameters and the blocks,
    encode the targets (the subclass's :meth:`_encode_targets`), train, and
    keep what decoding the predictions needs. A fit that fails or is
    interrupted leaves the estimator as it was.
    """

    _parameter_constraints = {
        "fusion": [StrOptions(set(FUSION_STRATEGIES))],
        "hidden_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "rank": [Interval(numbers.Integral, 1, None, closed="left")],
        "tensor_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "modality_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "shared_space": [StrOptions({"projected", "tied"}), None],
        "alignment_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "optimizer_kwargs": [dict, None],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": [
            StrOptions({"auto"}),
            "boolean",
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "scale_inputs": ["boolean"],
        "warm_start": ["boolean"],
        "callbacks": [list, None],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS))],
        "compile": ["boolean"],
        "data_parallel": ["boolean"],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        fusion="concat",
        hidden_dim=64,
        dropout=0.1,
        rank=4,
        tensor_dim=8,
        modality_dropout=0.0,
        shared_space=None,
        alignment_weight=0.0,
        temperature=0.1,
        max_epochs=100,
        batch_size=64,
        lr=3e-3,
        optimizer="adam",
        optimizer_kwargs=None,
        weight_decay=0.0,
        early_stopping="auto",
        validation_fraction=0.1,
        scale_inputs=True,
        warm_start=False,
        callbacks=None,
        device="auto",
        precision="32",
        compile=False,
        data_parallel=False,
        n_threads=None,
        verbose=0,
        random_state=None,
    ):
        self.fusion = fusion
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.rank = rank
        self.tensor_dim = tensor_dim
        self.modality_dropout = modality_dropout
        self.shared_space = shared_space
        self.alignment_weight = alignment_weight
        self.temperature = temperature
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.scale_inputs = scale_inputs
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.device = device
        self.precision = precision
        self.compile = compile
        self.data_parallel = data_parallel
        self.n_threads = n_threads
        self.verbose = verbose
        self.random_state = random_state

    # -- the subclass's part ---------------------------------------------------

    def _encode_targets(self, y, n_samples):
        """Return ``{task: TaskTarget}`` for ``y``; raise on a bad target."""
        raise NotImplementedError

    def _loss_options(self, targets):
        """Extra arguments of :class:`~skmm.nn.MultiTaskLoss`."""
        return {}

    def _set_target_attributes(self, targets):
        """Set the public fitted attributes that describe the targets."""

    # -- fit -----------------------------------------------------------------

    def _fit(self, X, y, sample_weight):
        with restored_on_failure(self):
            warm = self.warm_start and hasattr(self, "net_")
            previous_specs = self.block_specs_ if warm else None
            blocks = self._check_blocks(X, reset=True)
            targets = self._encode_targets(y, len(blocks))
            if sample_weight is not None:
                sample_weight = _check_sample_weight(
                    sample_weight, np.empty(len(blocks)), ensure_non_negative=True
                )
            if warm:
                targets = self._warm_start_targets(previous_specs, blocks, targets)
                first_epoch = len(self.net_.history)
                with torch_threads(self._n_threads(blocks.specs)):
                    self.net_ = self._continue_training(blocks, targets, sample_weight)
            else:
                first_epoch = 0
                with torch_threads(self._n_threads(blocks.specs)):
                    self.net_ = self._train(blocks, targets, sample_weight)
            history = self.net_.history
            self.n_iter_ = len(history)
            # Early stopping restores the best epoch of this fit's epochs.
            self.best_epoch_ = first_epoch + _best_epoch(history, first_epoch)
            self._targets = {task: t.without_values() for task, t in targets.items()}
            self._set_target_attributes(self._targets)
        return self

    def _warm_start_targets(self, previous_specs, blocks, targets):
        """``targets`` encoded as the fitted network reads them; raise if it cannot.

        Classes are encoded in sorted order, so the same classes give the same
        indices; regression targets are standardised as in the first fit.
        """
        name = type(self).__name__
        if dict(blocks.specs) != previous_specs:
            raise ValueError(
                f"warm_start=True continues training the network of {name}, built "
                f"for the modality blocks {_describe_specs(previous_specs)}, but "
                f"fit got {_describe_specs(blocks.specs)}. Pass blocks from the "
                "same MultimodalFusion, or set warm_start=False to train a new "
                "network."
            )
        before = {task: t.kind for task, t in self._targets.items()}
        now = {task: t.kind for task, t in targets.items()}
        if now != before:
            raise ValueError(
                f"warm_start=True continues training a network for the tasks "
                f"{before} (name: kind), but fit got {now}; set warm_start=False "
                "to train a new network."
            )
        out = {}
        for task, target in targets.items():
            fitted = self._targets[task]
            if target.kind == "classification":
                if not np.array_equal(target.classes, fitted.classes):
                    raise ValueError(
                        f"warm_start=True needs the classes of the previous fit "
                        f"in the target {task!r}: {fitted.classes.tolist()}, but y "
                        f"has {target.classes.tolist()}; set warm_start=False to "
                        "train a new network."
                    )
                out[task] = target
                continue
            if target.head_size != fitted.head_size:
                raise ValueError(
                    f"warm_start=True needs the {fitted.head_size} output(s) of "
                    f"the previous fit in the target {task!r}, but y has "
                    f"{target.head_size}; set warm_start=False to train a new "
                    "network."
                )
            values = target.values * target.scale + target.mean
            out[task] = TaskTarget(
                "regression",
                (values - fitted.mean) / fitted.scale,
                mean=fitted.mean,
                scale=fitted.scale,
                value_weight=None
                if target.value_weight is None
                else target.value_weight / target.scale * fitted.scale,
            )
        return out

    # -- input -------------------------------------------------------------

    def _check_blocks(self, X, *, reset):
        if isinstance(X, ModalityBlocks):
            _check_finite_blocks(X)
            if reset:
                self.block_specs_ = dict(X.specs)
                self.n_features_in_ = X.shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
                return X
            expected = {n: s.n_features for n, s in self.block_specs_.items()}
            found = {n: X[n].shape[1] for n in X.names}
            if found != expected:
                raise ValueError(
                    f"{type(self).__name__} was fitted on the modality blocks "
                    f"{expected} (name: width) but got {found}."
                )
            return X
        if not reset and "X" not in self.block_specs_:
            raise ValueError(
                f"{type(self).__name__} was fitted on the modality blocks "
                f"{list(self.block_specs_)}; pass the output of the same "
                "MultimodalFusion, not a plain array."
            )
        _check_plain_input(X, type(self).__name__)
        X = validate_data(self, X, reset=reset, accept_sparse="csr", dtype=np.float32)
        blocks = ModalityBlocks({"X": X})
        if reset:
            self.block_specs_ = dict(blocks.specs)
        return blocks

    # -- training ------------------------------------------------------------

    def _datasets(self, blocks, targets, sample_weight, seed, *, validate=None):
        """Training rows, validation rows (or None) and the early-stopping patience.

        ``validate=None`` splits when :meth:`_early_stopping` is on; ``True``
        splits with no early stopping (patience 0), ``False`` does neither.
        """
        dataset = BlockDataset(
            blocks,
            {task: t.values for task, t in targets.items()},
            sample_weight,
            value_weights=normalised_value_weights(targets, sample_weight),
        )
        stratify = next(
            (t.values for t in targets.values() if t.kind == "classification"), None
        )
        patience = self._early_stopping(len(dataset)) if validate is None else 0
        split = bool(patience) if validate is None else validate
        train_ds, valid_ds = (
            self._split(dataset, seed, stratify) if split else (dataset, None)
        )
        if self.data_parallel:
            _check_shares(train_ds, valid_ds)
        return train_ds, valid_ds, patience

    def _n_threads(self, specs):
        # A model pickled before n_threads existed predicts with the default.
        return getattr(self, "n_threads", None) or default_n_threads(specs)

    def _train(self, blocks, targets, sample_weight):
        """Build the network for ``blocks`` and ``targets``; return the fitted net."""
        device = resolve_device(self.device)
        check_precision(self.precision, device)
        (seed,) = fit_seeds(self.random_state, 1)
        if self.data_parallel:
            device = setup_data_parallel(device)
            seed = broadcast_seed(seed, device)
        self.device_ = str(device)
        if self._chooses_epochs(len(blocks)):
            # Choose the number of epochs, up to max_epochs, of least
            # validation loss (a patience of a few epochs is only a few dozen
            # steps on so few rows), then train the same initial network on
            # all the rows for that many.
            chosen = self._build_and_fit(
                blocks, targets, sample_weight, seed, self.max_epochs, validate=True
            )
            best = _best_epoch(chosen.history)
            epochs = max(1, min(self.max_epochs, round(best * _REFIT_EPOCHS)))
            self._sink()(
                f"early_stopping='auto' on {len(blocks)} rows: the validation "
                f"rows were best after epoch {best}; training again on all the "
                f"rows for {epochs} epochs."
            )
            return self._build_and_fit(
                blocks, targets, sample_weight, seed, epochs, validate=False
            )
        return self._build_and_fit(
            blocks, targets, sample_weight, seed, self.max_epochs
        )

    def _build_and_fit(
        self, blocks, targets, sample_weight, seed, max_epochs, *, validate=None
    ):
        """Build a network for ``blocks`` and ``targets``; return it trained.

        ``validate``: hold out validation rows (for all ``max_epochs``
        epochs, without early stopping) or not (nor early stopping); by
        default, as :meth:`_early_stopping` says.
        """
        tasks = {task: t.kind for task, t in targets.items()}
        train_ds, valid_ds, early_stopping = self._datasets(
            blocks, targets, sample_weight, seed, validate=validate
        )
        input_stats = (
            input_statistics(train_ds, blocks.specs) if self.scale_inputs else None
        )
        with seeded_init(seed):
            module = FusionNetwork(
                blocks.specs,
                {task: t.head_size for task, t in targets.items()},
                fusion=self.fusion,
                hidden_dim=self.hidden_dim,
                dropout=self.dropout,
                fusion_options={"rank": self.rank, "tensor_dim": self.tensor_dim},
                modality_dropout=self.modality_dropout,
                shared_space=self.shared_space,
                alignment_weight=self.alignment_weight,
                temperature=self.temperature,
                input_stats=input_stats,
            )
            criterion = MultiTaskLoss(tasks, **self._loss_options(targets))
        net = FusionNeuralNet(
            module=module,
            criterion=criterion,
            optimizer=OPTIMIZERS.get(self.optimizer, self.optimizer),
            lr=self.lr,
            max_epochs=max_epochs,
            batch_size=self.batch_size,
            iterator_train=BatchIterator,
            iterator_valid=BatchIterator,
            iterator_train__shuffle=True,
            iterator_train__generator=make_generator(seed),
            iterator_train__pin_memory=self.device_ != "cpu",
            iterator_train__data_parallel=self.data_parallel,
            iterator_valid__data_parallel=self.data_parallel,
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            callbacks=self._callbacks(early_stopping),
            device=self.device_,
            precision=self.precision,
            data_parallel=self.data_parallel,
            compile=self.compile,
            verbose=self._verbose(),
            callbacks__print_log__sink=self._sink(),
            targets={task: t.without_values() for task, t in targets.items()},
            **{
                f"optimizer__{k}": v
                for k, v in self._optimizer_params(module, blocks.specs).items()
            },
        )
        self._run_training(net, train_ds, blocks, seed, net.fit)
        if self.compile:
            _uncompile(net)
        return net

    def _continue_training(self, blocks, targets, sample_weight):
        """Train a copy of ``net_`` for ``max_epochs`` more epochs; return it."""
        (seed,) = fit_seeds(self.random_state, 1)
        if self.data_parallel:
            setup_data_parallel(torch.device(self.net_.device))
            seed = broadcast_seed(seed, torch.device(self.net_.device))
        # Another seed per continuation, so that it does not replay the
        # shuffling and dropout draws of the first epochs.
        seed = (seed + len(self.net_.history)) % np.iinfo(np.int32).max
        train_ds, valid_ds, early_stopping = self._datasets(
            blocks, targets, sample_weight, seed
        )
        # Training changes a net in place: an interrupted or failed
        # continuation must leave the fitted one as it was.
        net = copy.deepcopy(self.net_)
        check_precision(net.precision, torch.device(net.device))
        net.max_epochs = self.max_epochs
        net.verbose = self._verbose()
        net.callbacks__print_log__sink = self._sink()
        net.train_split = None if valid_ds is None else predefined_split(valid_ds)
        net.iterator_train__generator = make_generator(seed)
        net.data_parallel = self.data_parallel
        net.iterator_train__data_parallel = self.data_parallel
        net.iterator_valid__data_parallel = self.data_parallel
        # Set as attributes, then initialised: skorch's set_params would
        # initialise the callbacks before taking the new list, and rebuild
        # the module for an iterator parameter.
        net.callbacks = self._callbacks(early_stopping)
        net.initialize_callbacks()
        self._run_training(net, train_ds, blocks, seed, net.partial_fit)
        return net

    def _run_training(self, net, train_ds, blocks, seed, fit):
        """Run ``fit`` (the net's ``fit`` or ``partial_fit``) on ``train_ds``."""
        if self.data_parallel:
            # Dropout masks of its own for each process's rows.
            seed = (seed + world()[0]) % np.iinfo(np.int32).max
        try:
            with stochastic_layers(make_generator(seed, self.device_)):
                fit(train_ds, y=None)
        except TrainingInterrupted:
            raise KeyboardInterrupt from None
        except TrainingDiverged as exc:
            raise ValueError(
                f"Training diverged: {exc}. {self._divergence_hint(blocks)}"
            ) from None
        # The validation rows and the shuffling state are fit-time scratch.
        net.train_split = None
        net.iterator_train__generator = None

    def _divergence_hint(self, blocks):
        """What to try after a non-finite loss, naming the largest block."""
        largest = {}
        for name, X in blocks.items():
            if isinstance(X, LazyBlock):
                continue
            values = X.data if sparse.issparse(X) else np.asarray(X)
            if values.size and values.dtype.kind in "fiub":
                largest[name] = float(np.max(np.abs(values)))
        hint = f"Try a lower lr (now {self.lr})"
        if largest:
            name = max(largest, key=largest.get)
            hint += (
                f", or scale the block of modality {name!r}, whose values reach "
                f"{largest[name]:.3g}"
            )
            if not self.scale_inputs:
                hint += " (scale_inputs=True scales every block)"
        return hint + "."

    def _optimizer_params(self, module, specs):
        """Optimizer arguments, with a parameter group per tower ``lr``."""
        params = {"weight_decay": self.weight_decay, **(self.optimizer_kwargs or {})}
        groups = module.param_groups(
            {
                name: spec.lr
                for name, spec in specs.items()
                if spec.tower is not None and spec.trainable and spec.lr is not None
            }
        )
        if groups:
            params["param_groups"] = [*params.get("param_groups", []), *groups]
        return params

    def _chooses_epochs(self, n_samples):
        """Whether ``"auto"`` trains twice: epochs chosen, then all rows."""
        return (
            self.early_stopping == "auto"
            and _AUTO_EPOCHS_ROWS <= n_samples < _AUTO_EARLY_STOPPING_ROWS
        )

    def _early_stopping(self, n_samples):
        """Patience of early stopping for ``n_samples`` rows; 0 when it is off."""
        if self.early_stopping == "auto":
            return _PATIENCE if n_samples >= _AUTO_EARLY_STOPPING_ROWS else 0
        if self.early_stopping is True:
            return _PATIENCE
        return int(self.early_stopping)

    def _split(self, dataset, seed, stratify):
        idx = np.arange(len(dataset))
        try:
            train_idx, valid_idx = train_test_split(
                idx,
                test_size=self.validation_fraction,
                random_state=seed,
                stratify=stratify,
            )
        except ValueError:
            # Too few rows of some class to stratify: split without it.
            train_idx, valid_idx = train_test_split(
                idx, test_size=self.validation_fraction, random_state=seed
            )
        return dataset.subset(train_idx), dataset.subset(valid_idx)

    def _verbose(self):
        """The progress level: ``verbose``, or the global one when it is 0."""
        return effective_verbose(self.verbose)

    def _sink(self):
        """Where the callbacks print: stderr, or nowhere when silent."""
        return print_stderr if self._verbose() else _silent

    def _callbacks(self, patience):
        callbacks = list(self.callbacks or [])
        if patience:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=patience,
                        load_best=True,
                        sink=self._sink(),
                    ),
                )
            )
        if self._verbose() >= 2:
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    # -- inference -----------------------------------------------------------

    def _run(self, X, step):
        """Apply ``step(module, batch)`` to every batch of ``X``, in eval mode."""
        check_is_fitted(self, "net_")
        dataset = BlockDataset(self._check_blocks(X, reset=False))
        module = self.net_.module_
        device = torch.device(self.net_.device)
        # A model fitted before precision existed trained in float32.
        precision = getattr(self.net_, "precision", "32")
        pin = device.type == "cuda"

        def run_batch(batch):
            Xb, _ = batch
            if pin:
                Xb = {k: v.pin_memory() for k, v in Xb.items()}
            Xb = {k: v.to(device, non_blocking=pin) for k, v in Xb.items()}
            with autocast(precision, device):
                return step(module, Xb)

        # Rows decoded a batch at a time (images) come in training-sized
        # batches, so that prediction needs no more memory than training.
        batch_size = self.batch_size if dataset.has_lazy_blocks else _PREDICT_BATCH_SIZE
        with torch_threads(self._n_threads(self.block_specs_)):
            return run_in_batches(
                run_batch,
                len(dataset),
                batch_size,
                modules=[module],
                load=dataset.batches,
            )

    def _forward(self, X):
        outputs = self._run(X, lambda module, Xb: module(**Xb))
        return {
            task: torch.cat([o[task] for o in outputs]).float().cpu().numpy()
            for task in outputs[0]
            if not task.startswith("_")
        }

    def represent(self, X):
        """Return the shared fused representation ``h`` of each row.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_dim)
            The representation the heads read (not defined for late fusion).

        See Also
        --------
        skmm.inspection.represent : the same from a fitted pipeline and its
            raw input.
        """
        outputs = self._run(X, lambda module, Xb: module.represent(**Xb))
        return torch.cat(outputs).float().cpu().numpy()

    def gate_values(self, X):
        """Return the per-sample GMU gate of each modality (``fusion="gated"``).

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        gates : DataFrame of shape (n_samples, n_modalities)
            The gate ``z_m`` averaged over the hidden units, one column per
            modality: how much each modality contributes to ``h`` for that row.

        See Also
        --------
        skmm.inspection.gate_values : the same from a fitted pipeline and its
            raw input.
        """
        check_is_fitted(self, "net_")
        if self.fusion != "gated":
            raise ValueError(
                f"gate_values needs fusion='gated'; this model uses {self.fusion!r}."
            )
        outputs = self._run(X, lambda module, Xb: module.gates(**Xb))
        values = torch.cat(outputs).float().cpu().numpy()
        return pd.DataFrame(values, columns=list(self.block_specs_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.non_deterministic = runs_on_gpu(self.device)
        return tags


def _check_shares(train_ds, valid_ds):
    """Raise when a process of a data-parallel fit would get no rows at all."""
    n_processes = world()[1]
    for what, dataset in (("training", train_ds), ("validation", valid_ds)):
        if dataset is not None and len(dataset) < n_processes:
            raise ValueError(
                f"data_parallel=True shares every batch between {n_processes} "
                f"processes, but the {what} part has only {len(dataset)} rows"
                + (
                    "; raise validation_fraction or turn early_stopping off."
                    if what == "validation"
                    else "."
                )
            )


def _best_epoch(history, first=0):
    """The epoch whose weights training kept, counted from epoch ``first`` + 1.

    Among the epochs of ``history`` after ``first``: the one of least
    validation loss under early stopping, else the last.
    """
    epochs = list.__getitem__(history, slice(first, None))
    if epochs and "valid_loss" in epochs[-1]:
        return int(np.argmin([epoch["valid_loss"] for epoch in epochs])) + 1
    return len(epochs)


def _extends_base_init(init):
    """Give a subclass ``__init__`` the signature of its own and the base parameters.

    The subclass writes only its own parameters and passes the rest to
    ``_BaseFusionEstimator.__init__``; scikit-learn's ``get_params`` reads
    the parameters from this signature.
    """
    own = [
        p
        for p in inspect.signature(init).parameters.values()
        if p.kind != p.VAR_KEYWORD
    ]
    base = list(inspect.signature(_BaseFusionEstimator.__init__).parameters.values())
    init.__signature__ = inspect.Signature(own + base[1:])
    return init


def _uncompile(net):
    """Put back the modules ``torch.compile`` wrapped, with the same weights."""
    for name in net._modules + net._criteria:
        module = getattr(net, name + "_")
        setattr(net, name + "_", getattr(module, "_orig_mod", module))
    net.compile = False


def _describe_specs(specs):
    return {
        name: f"{spec.kind}, {spec.n_features} features" for name, spec in specs.items()
    }


_PUT_A_FUSION_FIRST = (
    "A fusion estimator reads the modality blocks of a MultimodalFusion, or "
    "one numeric matrix. Put a MultimodalFusion in front of it, with an "
    'encoder per column, e.g. make_pipeline(MultimodalFusion([("text", '
    'TfidfTextEncoder(), "text"), ("image", CNNImageEncoder(), '
    '"image"), ("numeric", StandardScaler(), ["age"])]), {name}()), or let '
    "skmm.make_multimodal_pipeline(df, target=...) build one from the "
    "DataFrame's columns"
)


def _check_plain_input(X, name):
    """Raise on input that only a MultimodalFusion can read: dict rows, text columns.

    Without this, such input fails deep in numpy's float conversion, with a
    message that names no column and may print whole images.
    """
    if sparse.issparse(X):
        # A DOK matrix is a dict.
        return
    first = X[0] if isinstance(X, (list, tuple)) and len(X) else X
    if isinstance(first, dict):
        what = "a list of dict rows" if first is not X else "a dict row"
        keys = ", ".join(repr(str(key)) for key in list(first)[:10])
        raise TypeError(
            f"{name} got {what} (keys {keys}). "
            + _PUT_A_FUSION_FIRST.format(name=name)
            + "; a fitted pipeline predicts on dict rows."
        )
    if not isinstance(X, pd.DataFrame):
        return
    for column in X.columns:
        values = X[column]
        if values.dtype.kind in "biufc":
            continue
        try:
            values.astype(np.float64)
        except (TypeError, ValueError):
            row = next(i for i, value in enumerate(values) if not _is_number(value))
            raise ValueError(
                f"{name} got a DataFrame whose column {column!r} holds "
                f"{values.iloc[row]!r} (row {row}), not a number. "
                + _PUT_A_FUSION_FIRST.format(name=name)
                + "."
            ) from None


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _first_non_number(values):
    """``(row, column, value)`` of the first cell that is not a number."""
    for (row, column), value in np.ndenumerate(values):
        try:
            float(value)
        except (TypeError, ValueError):
            return row, column, value
    raise AssertionError("a block that failed to convert holds only numbers")


def _check_finite_blocks(blocks):
    for name, X in blocks.items():
        if isinstance(X, LazyBlock):
            # Its rows are made by an encoder, finite by construction, and
            # reading them all here would defeat its purpose.
            continue
        values = X.data if sparse.issparse(X) else np.asarray(X)
        if values.dtype.kind not in "fiub":
            try:
                values = values.astype(np.float64)
            except (TypeError, ValueError):
                # Only on failure: look for the first offending cell, one by one.
                row, column, value = _first_non_number(values)
                raise ValueError(
                    f"The block of modality {name!r} holds a value that is not a "
                    f"number: {value!r} (row {row}, column {column} of the "
                    "block). A fusion estimator reads numbers only: give that "
                    "column an encoder (e.g. OneHotEncoder for categories, "
                    "TfidfTextEncoder for text) instead of passing it through."
                ) from None
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(
                f"The block of modality {name!r} contains NaN or infinity. Its "
                "encoder must handle missing values, e.g. put a SimpleImputer "
                "before a StandardScaler."
            )
        if values.dtype.kind in "fiu" and values.size:
            # The network computes in float32: larger values become infinity.
            largest = float(np.max(np.abs(values)))
            if largest > float(np.finfo(np.float32).max):
                raise ValueError(
                    f"The block of modality {name!r} holds values up to "
                    f"{largest:.3g}, beyond the float32 range the network "
                    "computes in (about 3.4e38). Scale or clip that block in its "
                    "encoder, e.g. with a StandardScaler or a log transform."
                )


class _PerTaskArrays(dict):
    """``{task: array}`` that says so when read as one array.

    scikit-learn's tools that need one probability matrix and one array of
    classes (``cross_val_predict(method="predict_proba")``, the ``"roc_auc"``
    scorer) convert them with numpy or read their ``shape``; both get an
    error that says what to use instead, not one about a dict or an object
    array.
    """

    _WHAT = "holds"

    def _error(self):
        tasks = list(self)
        return (
            f"FusionMultiTask.{self._WHAT} a dict of arrays, one per "
            f"classification task ({', '.join(map(repr, tasks))}), not one "
            f"array: index it by task, e.g. [{tasks[0]!r}]. Score a task in "
            "cross_val_score, cross_validate or GridSearchCV with "
            f"skmm.metrics.task_scorer({tasks[0]!r}, 'roc_auc')."
        )

    def __array__(self, dtype=None, copy=None):
        raise TypeError(self._error())

    @property
    def shape(self):
        raise AttributeError(self._error())


class _TaskProbabilities(_PerTaskArrays):
    _WHAT = "predict_proba returns"


class _TaskClasses(_PerTaskArrays):
    _WHAT = "classes_ is"


def _silent(*args, **kwargs):
    """A sink that drops messages."""


class FusionClassifier(ClassifierMixin, _BaseFusionEstimator):
    __doc__ = (
        """Multimodal neural classifier: one tower per modality, fused, one head.

    Takes the :class:`~skmm.ModalityBlocks` of a :class:`~skmm.MultimodalFusion`
    (or a plain 2-D array as a single modality) and trains, end to end, a
    tower per modality (an MLP for feature vectors, Embedding + GRU for token
    ids, a CNN for images), the fusion strategy, a shared layer and a softmax
    head.

    Parameters
    ----------"""
        + _SHARED_PARAMS_DOC
        + """
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the cross-entropy.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels."""
        + _shared_attributes_doc()
        + """

    See Also
    --------
    FusionRegressor : the regression counterpart.
    FusionMultiTask : several classification and regression heads at once.
    MultimodalFusion : builds the modality blocks from a DataFrame.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from skmm import FusionClassifier
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> clf = FusionClassifier(max_epochs=10, device="cpu", random_state=0)
    >>> clf.fit(X, y).score(X, y) > 0.8
    True
    """
    )

    _parameter_constraints = {
        **_BaseFusionEstimator._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    @_extends_base_init
    def __init__(self, *, class_weight=None, **params):
        super().__init__(**params)
        self.class_weight = class_weight

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X`` and the labels ``y``.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Modality blocks from a MultimodalFusion, or one feature matrix.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row in the loss.

        Returns
        -------
        self : FusionClassifier
        """
        return self._fit(X, y, sample_weight)

    def _encode_targets(self, y, n_samples):
        y = check_target_column(y, n_samples)
        if y.ndim == 2 and y.shape[1] != 1:
            raise ValueError(
                f"y must be 1-D for FusionClassifier, got shape {y.shape}; use "
                "FusionMultiTask for several targets."
            )
        return {"y": classification_target(column_or_1d(y, warn=True), "y")}

    def _loss_options(self, targets):
        if self.class_weight is None:
            return {}
        target = targets["y"]
        weights = compute_class_weight(
            self.class_weight, classes=target.classes, y=target.classes[target.values]
        )
        return {"class_weights": {"y": torch.as_tensor(weights, dtype=torch.float32)}}

    def _set_target_attributes(self, targets):
        self.classes_ = targets["y"].classes

    def predict_proba(self, X):
        """Class probabilities of each row.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y_proba : ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        return TaskTarget.probabilities(self._forward(X)["y"])

    def predict(self, X):
        """Predicted class label of each row.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        scores = self._forward(X)["y"]
        return self._targets["y"].decode(scores)


class FusionRegressor(RegressorMixin, _BaseFusionEstimator):
    __doc__ = (
        """Multimodal neural regressor: one tower per modality, fused, one head.

    As :class:`FusionClassifier`, with a linear head and, by default, a mean
    squared error loss. Targets are standardised for training and mapped back
    on predict; a 2-D ``y`` trains one output per column.

    Parameters
    ----------
    loss : {"squared_error", "absolute_error", "huber", \
            "absolute_percentage_error"}, default="squared_error"
        The training loss, on the standardised target. ``"squared_error"``
        predicts the conditional mean; ``"absolute_error"`` the conditional
        median, which suits a model judged by its mean absolute error, or a
        target with outliers; ``"huber"`` is squared within one standard
        deviation of the target and absolute beyond it.
        ``"absolute_percentage_error"`` minimises the mean absolute
        percentage error ``|y - y_pred| / |y|`` in the units of ``y``: the
        absolute error of each value, weighted by ``1 / |y|`` (times the
        row's ``sample_weight``), the weights scaled to average 1. Choose it
        when the model is judged by its MAPE and the target is positive and
        spread over orders of magnitude, such as prices, and fit ``y``
        itself rather than ``log(y)``; a zero in ``y`` raises a
        ``ValueError``. The small values weigh the most and need the most
        precision on the standardised scale; fitting ``log(y)`` with
        ``"absolute_error"`` is the alternative to compare (it also makes
        errors relative), and was the better one on the houses data of the
        user guide."""
        + _SHARED_PARAMS_DOC
        + """

    Attributes
    ----------"""
        + _shared_attributes_doc(
            """
    n_outputs_ : int
        Number of target columns."""
        )
        + """

    See Also
    --------
    FusionClassifier : the classification counterpart.
    FusionMultiTask : several classification and regression heads at once.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from skmm import FusionRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, random_state=0)
    >>> reg = FusionRegressor(max_epochs=50, device="cpu", random_state=0)
    >>> reg.fit(X, y).score(X, y) > 0.8
    True
    """
    )

    _parameter_constraints = {
        **_BaseFusionEstimator._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
    }

    @_extends_base_init
    def __init__(self, *, loss="squared_error", **params):
        super().__init__(**params)
        self.loss = loss

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X`` and the targets ``y``.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Modality blocks from a MultimodalFusion, or one feature matrix.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row in the loss.

        Returns
        -------
        self : FusionRegressor
        """
        return self._fit(X, y, sample_weight)

    def _encode_targets(self, y, n_samples):
        y = check_target_column(y, n_samples)
        self._y_1d = y.ndim == 1
        percentage_error = "loss" if self.loss == PERCENTAGE_ERROR else None
        return {"y": regression_target(y, "y", percentage_error_param=percentage_error)}

    def _loss_options(self, targets):
        return {"regression_losses": {"y": self.loss}}

    def _set_target_attributes(self, targets):
        self.n_outputs_ = targets["y"].head_size

    def predict(self, X):
        """Predicted target of each row.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions, in the units of ``y``.
        """
        y_pred = self._forward(X)["y"]
        y_pred = self._targets["y"].decode(y_pred)
        return y_pred.ravel() if self._y_1d else y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _has_classification_task(estimator):
    return "classification" in dict(estimator.tasks).values()


class FusionMultiTask(_BaseFusionEstimator):
    __doc__ = (
        """Multimodal multi-task network: one fused representation, a head per task.

    Every task reads the same shared representation ``h``. The loss is the
    weighted sum of the task losses (cross-entropy for classification, mean
    squared error on standardised targets for regression), with fixed
    ``task_weights`` or weights learned from homoscedastic uncertainty
    (Kendall et al., 2018).

    Parameters
    ----------
    tasks : dict of str to {"classification", "regression"}
        The targets, in order: a name and the kind of each.
    task_weights : dict of str to float, default=None
        Weight of each task's loss; 1.0 where missing.
    uncertainty_weighting : bool, default=False
        Learn the task weights (a log-variance per task) instead.
    regression_loss : str or dict of str to str, default="squared_error"
        Loss of the regression tasks: one of ``"squared_error"``,
        ``"absolute_error"``, ``"huber"`` and ``"absolute_percentage_error"``
        for all of them, or a loss per task name (``"squared_error"`` where
        missing). ``"absolute_percentage_error"`` trains a task on its mean
        absolute percentage error, for a positive target judged by its MAPE
        (a price), and needs no zero in that task's target. See
        :class:`FusionRegressor`'s ``loss``."""
        + _SHARED_PARAMS_DOC
        + """

    Attributes
    ----------
    classes_ : dict of str to ndarray
        The class labels of each classification task.
    tasks_ : dict of str to str
        The validated tasks."""
        + _shared_attributes_doc()
        + """

    See Also
    --------
    skmm.metrics.task_scorer : score one task in ``cross_validate`` or
        ``GridSearchCV``.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skmm import FusionMultiTask
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4))
    >>> Y = pd.DataFrame({"label": X[:, 0] > 0, "value": X[:, 1] * 2.0})
    >>> model = FusionMultiTask(tasks={"label": "classification",
    ...                                "value": "regression"},
    ...                         max_epochs=30, device="cpu", random_state=0)
    >>> list(model.fit(X, Y).predict(X[:2]).columns)
    ['label', 'value']
    """
    )

    _parameter_constraints = {
        **_BaseFusionEstimator._parameter_constraints,
        "tasks": [dict],
        "task_weights": [dict, None],
        "uncertainty_weighting": ["boolean"],
        "regression_loss": [StrOptions(set(REGRESSION_LOSSES)), dict],
    }

    @_extends_base_init
    def __init__(
        self,
        tasks,
        *,
        task_weights=None,
        uncertainty_weighting=False,
        regression_loss="squared_error",
        **params,
    ):
        super().__init__(**params)
        self.tasks = tasks
        self.task_weights = task_weights
        self.uncertainty_weighting = uncertainty_weighting
        self.regression_loss = regression_loss

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X`` and every task's target.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Modality blocks from a MultimodalFusion, or one feature matrix.
        y : DataFrame or array-like of shape (n_samples, n_tasks)
            One column per task (named as in ``tasks`` for a DataFrame, in
            the order of ``tasks`` otherwise). A 1-D array for a single task.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row in every task's loss.

        Returns
        -------
        self : FusionMultiTask
        """
        return self._fit(X, y, sample_weight)

    def _check_tasks(self):
        if not self.tasks:
            raise ValueError("tasks must name at least one target.")
        for name, kind in self.tasks.items():
            if kind not in TASK_KINDS:
                raise ValueError(
                    f"Task {name!r} has kind {kind!r}; expected one of {TASK_KINDS}."
                )
        for param in ("task_weights", "regression_loss"):
            value = getattr(self, param)
            unknown = set(value if isinstance(value, dict) else {}) - set(self.tasks)
            if unknown:
                raise ValueError(
                    f"{param} names unknown tasks {sorted(unknown)}; the tasks "
                    f"are {list(self.tasks)}."
                )
        if isinstance(self.regression_loss, dict):
            for task, loss in self.regression_loss.items():
                if self.tasks[task] != "regression":
                    raise ValueError(
                        f"regression_loss gives a loss to task {task!r}, which is "
                        f"a {self.tasks[task]} task; only regression tasks take "
                        "one."
                    )
                if loss not in REGRESSION_LOSSES:
                    raise ValueError(
                        f"regression_loss[{task!r}] is {loss!r}; expected one of "
                        f"{sorted(REGRESSION_LOSSES)}."
                    )
        return dict(self.tasks)

    def _split_targets(self, y, n_samples, tasks):
        names = list(tasks)
        if y is None:
            raise ValueError(
                "This estimator requires y to be passed, but the target y is None."
            )
        if isinstance(y, pd.Series):
            y = y.to_frame()
        if isinstance(y, pd.DataFrame) and not any(n in y.columns for n in names):
            # No task-named column: read the columns by position, as an array.
            y = y.to_numpy()
        if isinstance(y, pd.DataFrame):
            missing = [name for name in names if name not in y.columns]
            if missing:
                raise ValueError(
                    f"y has no column {missing[0]!r}; the tasks need the columns "
                    f"{names}, y has {list(y.columns)}."
                )
            columns = {name: y[name].to_numpy() for name in names}
        else:
            y = np.asarray(y)
            if y.ndim == 1 and len(names) == 1:
                y = y.reshape(-1, 1)
            if y.ndim != 2 or y.shape[1] != len(names):
                raise ValueError(
                    f"y must have one column per task ({len(names)}: {names}), "
                    f"got shape {y.shape}."
                )
            columns = {name: y[:, j] for j, name in enumerate(names)}
        out = {}
        for name, values in columns.items():
            if tasks[name] == "regression":
                values = as_float_target(values, name)
            out[name] = check_target_column(values, n_samples, name)
        return out

    def _encode_targets(self, y, n_samples):
        tasks = self._check_tasks()
        losses = self._regression_losses(tasks)
        targets = {}
        for name, values in self._split_targets(y, n_samples, tasks).items():
            if tasks[name] == "classification":
                targets[name] = classification_target(values, name)
                continue
            param = None
            if losses[name] == PERCENTAGE_ERROR:
                param = (
                    f"regression_loss[{name!r}]"
                    if isinstance(self.regression_loss, dict)
                    else "regression_loss"
                )
            targets[name] = regression_target(
                values, name, percentage_error_param=param
            )
        return targets

    def _regression_losses(self, tasks):
        """The loss of each regression task, ``{task: name}``."""
        if isinstance(self.regression_loss, str):
            return {
                task: self.regression_loss
                for task, kind in tasks.items()
                if kind == "regression"
            }
        return {
            task: self.regression_loss.get(task, "squared_error")
            for task, kind in tasks.items()
            if kind == "regression"
        }

    def _loss_options(self, targets):
        return {
            "task_weights": self.task_weights,
            "uncertainty": self.uncertainty_weighting,
            "regression_losses": self._regression_losses(
                {task: t.kind for task, t in targets.items()}
            ),
        }

    def _set_target_attributes(self, targets):
        self.tasks_ = {task: t.kind for task, t in targets.items()}
        self.classes_ = _TaskClasses(
            (task, t.classes)
            for task, t in targets.items()
            if t.kind == "classification"
        )

    def predict(self, X):
        """Predict every task.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y_pred : DataFrame of shape (n_samples, n_tasks)
            One column per task: labels for classification tasks, values in
            the target's units for regression tasks.
        """
        outputs = self._forward(X)
        columns = {}
        for name, target in self._targets.items():
            y_pred = target.decode(outputs[name])
            columns[name] = y_pred if y_pred.ndim == 1 else y_pred[:, 0]
        return pd.DataFrame(columns)

    @available_if(_has_classification_task)
    def predict_proba(self, X):
        """Class probabilities of each classification task.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y_proba : dict of str to ndarray of shape (n_samples, n_classes)
            Per classification task, columns in the order of ``classes_[task]``.

        Notes
        -----
        scikit-learn's tools that read one probability matrix cannot read a
        dict of them: ``cross_val_predict(method="predict_proba")`` raises,
        and a scorer such as ``"roc_auc"`` or ``"neg_log_loss"`` gives a NaN
        score in ``cross_validate``, with a warning; both messages say what
        to use instead. Score a task
        with :func:`skmm.metrics.task_scorer` (``task_scorer("label",
        "roc_auc")``), which works in ``cross_val_score``, ``cross_validate``
        and ``GridSearchCV``, and read a task's probabilities as
        ``predict_proba(X)[task]``.
        """
        outputs = self._forward(X)
        return _TaskProbabilities(
            (name, TaskTarget.probabilities(outputs[name])) for name in self.classes_
        )

    def score(self, X, y, sample_weight=None):
        """Mean of the per-task scores: accuracy or R², one per task.

        Parameters
        ----------
        X : ModalityBlocks or array-like of shape (n_samples, n_features)
            Input data.
        y : DataFrame or array-like of shape (n_samples, n_tasks)
            True targets, as in ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights.

        Returns
        -------
        score : float
        """
        y_pred = self.predict(X)
        columns = self._split_targets(y, len(y_pred), self.tasks_)
        scores = []
        for name, kind in self.tasks_.items():
            metric = accuracy_score if kind == "classification" else r2_score
            scores.append(
                metric(columns[name], y_pred[name], sample_weight=sample_weight)
            )
        return float(np.mean(scores))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        # predict always returns one column per task, even for a single task.
        tags.target_tags.single_output = False
        return tags

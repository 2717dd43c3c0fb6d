"""Cross-modal alignment: project two paired modalities into one shared space.

:class:`CrossModalAligner` learns one projection per modality so that the two
views of a row land close together and the views of different rows far
apart, with the symmetric InfoNCE (contrastive) loss of CLIP. Its output is a
plain feature matrix, so it can sit in front of any scikit-learn estimator;
:meth:`CrossModalAligner.transform_modality` projects one modality alone, as
a cross-modal retrieval system needs.
"""

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from skmm._blocks import ModalityBlocks
from skmm.nn._losses import info_nce
from skmm.nn._training import (
    fit_seeds,
    make_generator,
    run_in_batches,
    seeded_init,
    train_loop,
)
from skmm.utils._atomic import restored_on_failure
from skmm.utils._device import resolve_device, runs_on_gpu
from skmm.utils._progress import epoch_reporter
from skmm.utils._sklearn_compat import (
    Interval,
    _check_feature_names_in,
    _fit_context,
    validate_data,
)
from skmm.utils._threads import torch_threads

__all__ = ["CrossModalAligner"]

_TRANSFORM_BATCH_SIZE = 1024
_ARRAY_MODALITIES = ("a", "b")


def _standardise(X, mean, scale):
    """Dense float32 rows of the dense or sparse block ``X``, standardised."""
    if sparse.issparse(X):
        X = X.toarray()
    return ((X - mean) / scale).astype(np.float32)


def _feature_stats(X):
    """Per-feature mean and scale; constant features get a scale of 1."""
    if sparse.issparse(X):
        mean, var = mean_variance_axis(X, axis=0)
    else:
        mean, var = X.mean(axis=0, dtype=np.float64), X.var(axis=0, dtype=np.float64)
    std = np.sqrt(var)
    constant = std <= 1e-8 * np.maximum(1.0, np.abs(mean))
    return mean.astype(np.float64), np.where(constant, 1.0, std)


def _make_projection(n_features, n_components, hidden_dim):
    if hidden_dim is None:
        return nn.Linear(n_features, n_components)
    return nn.Sequential(
        nn.Linear(n_features, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, n_components),
    )


class CrossModalAligner(TransformerMixin, BaseEstimator):
    """Align two paired modalities in one shared space with a contrastive loss.

    Row ``i`` of the first modality and row ``i`` of the second are two views
    of the same sample. The aligner standardises the features of each
    modality, then trains one projection per modality (linear, or a
    one-hidden-layer MLP) with Adam on the symmetric InfoNCE loss: within each
    mini-batch, the cosine similarity of a row's two projections, divided by
    ``temperature``, must beat that of every mismatched pair of the batch, in
    both directions. Paired rows thus end up close together and unrelated
    rows apart, whatever the features of each modality.

    :meth:`transform` returns the L2-normalised projections of both
    modalities side by side, a plain feature matrix for any scikit-learn
    estimator; :meth:`transform_modality` projects one modality alone, for
    cross-modal retrieval (a query of one modality, answers of the other,
    ranked by the dot product of their projections).

    Parameters
    ----------
    modalities : tuple of two str, default=None
        With :class:`~skmm.ModalityBlocks` input, the names of the two blocks
        to align; ``None`` takes the first two blocks. With a plain array,
        the names given to its two parts in the output feature names;
        ``None`` names them ``"a"`` and ``"b"``.
    split : int, default=None
        With a plain 2-D array, the number of leading columns that belong to
        the first modality; the other columns belong to the second. ``None``
        gives the first modality half of the columns (rounded down). Must be
        ``None`` with :class:`~skmm.ModalityBlocks` input.
    n_components : int, default=32
        Dimension of the shared space, per modality.
    hidden_dim : int, default=None
        ``None``: each projection is linear. An int: each projection is an
        MLP with one hidden ReLU layer of this width.
    temperature : float, default=0.1
        Divides the cosine similarities before the softmax of the loss; a
        lower temperature weighs the hardest mismatched pairs more.
    max_epochs : int, default=100
        Number of passes over the training rows. ``0`` keeps the randomly
        initialised projections: the state before alignment.
    batch_size : int, default=128
        Rows per mini-batch; the other rows of a batch are the negatives of a
        row, so a larger batch gives a harder task. A trailing batch of a
        single row, which has no negative, is left out of that epoch.
    lr : float, default=1e-2
        Learning rate of Adam.
    weight_decay : float, default=0.0
        Weight decay (L2 penalty) of Adam.
    device : str or torch.device, default="auto"
        Device the projections are trained on: ``"cpu"``, ``"cuda"``,
        ``"cuda:N"``, or ``"auto"`` (resolved in :term:`fit`, as for the
        fusion estimators) for a GPU when one is visible. The fitted
        projections are kept on the CPU, where :meth:`transform` runs.
    n_threads : int, default=None
        torch intra-op threads used by ``fit``, :meth:`transform` and
        :meth:`transform_modality`, set for their duration and restored
        afterwards. ``None``: one thread, as for a fusion estimator's
        feature-vector towers: the projections are too small to gain from
        more, and much slower with more on a loaded machine.
    verbose : int, default=0
        Report the training loss of each epoch on stderr. 0 follows
        ``skmm.get_config()["verbose"]``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights and the shuffling of the rows, without
        touching torch's global random state.

    Attributes
    ----------
    projection_a_ : torch.nn.Module
        Fitted projection of the first modality, on the CPU, in eval mode.
    projection_b_ : torch.nn.Module
        Fitted projection of the second modality, on the CPU, in eval mode.
    modalities_ : tuple of two str
        Names of the first and second modality.
    split_ : int or None
        Number of leading columns of the first modality when fitted on a
        plain array; ``None`` when fitted on :class:`~skmm.ModalityBlocks`.
    mean_ : tuple of two ndarray
        Per-feature mean of each modality, seen during :term:`fit`.
    scale_ : tuple of two ndarray
        Per-feature standard deviation of each modality (``1`` for a constant
        feature), seen during :term:`fit`.
    loss_curve_ : list of float
        Mean training loss of each epoch; empty when ``max_epochs=0``.
    n_features_in_ : int
        Number of features seen during :term:`fit`: the width of the array,
        or of all the modality blocks together.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X` is
        a DataFrame with column names that are all strings.

    See Also
    --------
    skmm.MultimodalFusion : Encode each modality into the blocks aligned here.
    sklearn.cross_decomposition.CCA : Linear alignment by canonical
        correlation.

    Examples
    --------
    >>> import numpy as np
    >>> from skmm import CrossModalAligner, ModalityBlocks
    >>> rng = np.random.RandomState(0)
    >>> z = rng.normal(size=(60, 3))
    >>> X = ModalityBlocks({"text": z @ rng.normal(size=(3, 5)),
    ...                     "image": np.tanh(z @ rng.normal(size=(3, 4)))})
    >>> aligner = CrossModalAligner(n_components=2, max_epochs=5,
    ...                             random_state=0).fit(X)
    >>> aligner.transform(X).shape
    (60, 4)
    >>> aligner.get_feature_names_out()
    array(['text__aligned0', 'text__aligned1', 'image__aligned0',
           'image__aligned1'], dtype=object)
    >>> aligner.transform_modality(X["image"], "image").shape
    (60, 2)
    """

    _parameter_constraints = {
        "modalities": [tuple, list, None],
        "split": [Interval(Integral, 1, None, closed="left"), None],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_dim": [Interval(Integral, 1, None, closed="left"), None],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        modalities=None,
        split=None,
        n_components=32,
        hidden_dim=None,
        temperature=0.1,
        max_epochs=100,
        batch_size=128,
        lr=1e-2,
        weight_decay=0.0,
        device="auto",
        n_threads=None,
        verbose=0,
        random_state=None,
    ):
        self.modalities = modalities
        self.split = split
        self.n_components = n_components
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the standardisation and train the two projections.

        Parameters
        ----------
        X : ModalityBlocks or {array-like, sparse matrix} of shape \
                (n_samples, n_features)
            Paired rows: blocks keyed by modality name, or a 2-D array whose
            first ``split`` columns are the first modality and the others the
            second.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted aligner.
        """
        with restored_on_failure(self):
            device = resolve_device(self.device)
            X_a, X_b = self._check_X(X, reset=True)
            self.mean_, self.scale_ = zip(_feature_stats(X_a), _feature_stats(X_b))
            init_seed, shuffle_seed = fit_seeds(self.random_state, 2)
            with seeded_init(init_seed):
                projection_a = _make_projection(
                    X_a.shape[1], self.n_components, self.hidden_dim
                )
                projection_b = _make_projection(
                    X_b.shape[1], self.n_components, self.hidden_dim
                )
            with torch_threads(self._n_threads()):
                self.loss_curve_ = self._train(
                    projection_a, projection_b, X_a, X_b, device, shuffle_seed
                )
            self.projection_a_ = projection_a.cpu().eval()
            self.projection_b_ = projection_b.cpu().eval()
        return self

    def transform(self, X):
        """Project both modalities into the shared space.

        Parameters
        ----------
        X : ModalityBlocks or {array-like, sparse matrix} of shape \
                (n_samples, n_features)
            Paired rows, in the form seen during :term:`fit`.

        Returns
        -------
        Xt : ndarray of shape (n_samples, 2 * n_components), dtype float32
            The L2-normalised projection of the first modality, then that of
            the second.
        """
        check_is_fitted(self)
        X_a, X_b = self._check_X(X, reset=False)
        return np.hstack([self._project(0, X_a), self._project(1, X_b)])

    def transform_modality(self, X, modality):
        """Project one modality alone into the shared space.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The block of that modality: the named block of
            :class:`~skmm.ModalityBlocks`, or the columns of its part of a
            plain array.
        modality : {0, 1} or str
            ``0`` or the first name of ``modalities_`` for the first
            modality; ``1`` or the second name for the second.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_components), dtype float32
            L2-normalised projections: the dot product of two rows, of either
            modality, is their cosine similarity in the shared space.
        """
        check_is_fitted(self)
        if isinstance(modality, str) and modality in self.modalities_:
            index = self.modalities_.index(modality)
        elif isinstance(modality, Integral) and modality in (0, 1):
            index = int(modality)
        else:
            raise ValueError(
                f"modality must be 0, 1 or one of {list(self.modalities_)}, got "
                f"{modality!r}."
            )
        X = self._check_block(X, self.modalities_[index], reset=False)
        n_features = len(self.mean_[index])
        if X.shape[1] != n_features:
            raise ValueError(
                f"Modality {self.modalities_[index]!r} has {n_features} features "
                f"in fit, got a block of {X.shape[1]}."
            )
        return self._project(index, X)

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; only checked against those seen in
            :term:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``{first}__aligned{i}`` then ``{second}__aligned{i}``, named after
            ``modalities_``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray(
            [
                f"{name}__aligned{i}"
                for name in self.modalities_
                for i in range(self.n_components)
            ],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = runs_on_gpu(self.device)
        return tags

    def _check_X(self, X, *, reset):
        """Return the two modality blocks of ``X``, checked."""
        if isinstance(X, ModalityBlocks):
            return self._check_blocks(X, reset=reset)
        if not reset and self.split_ is None:
            raise ValueError(
                "CrossModalAligner was fitted on ModalityBlocks "
                f"{list(self.modalities_)}; pass ModalityBlocks, not a plain array."
            )
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse="csr",
            dtype=(np.float64, np.float32),
            ensure_min_samples=2 if reset else 1,
        )
        if reset:
            self.modalities_ = self._check_modalities(None)
            self.split_ = self._check_split(X.shape[1])
        return X[:, : self.split_], X[:, self.split_ :]

    def _check_blocks(self, X, *, reset):
        if reset:
            if self.split is not None:
                raise ValueError(
                    "split applies to a plain array; with ModalityBlocks choose "
                    f"the two blocks by name with modalities, got split={self.split}."
                )
            self.modalities_ = self._check_modalities(X.names)
            self.split_ = None
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif self.split_ is not None:
            raise ValueError(
                "CrossModalAligner was fitted on a plain array; pass an array "
                f"of {self.n_features_in_} columns, not ModalityBlocks."
            )
        blocks = []
        for index, name in enumerate(self.modalities_):
            if name not in X:
                raise ValueError(
                    f"Modality {name!r} is not among the blocks {X.names}."
                )
            block = self._check_block(X[name], name, reset=reset)
            if not reset and block.shape[1] != len(self.mean_[index]):
                raise ValueError(
                    f"Block {name!r} has {block.shape[1]} features, but "
                    f"CrossModalAligner was fitted on {len(self.mean_[index])}."
                )
            blocks.append(block)
        return blocks

    def _check_block(self, X, name, *, reset):
        return check_array(
            X,
            accept_sparse="csr",
            dtype=(np.float64, np.float32),
            ensure_min_samples=2 if reset else 1,
            input_name=f"block {name!r}",
            estimator=self,
        )

    def _check_modalities(self, block_names):
        """The two modality names; ``block_names`` is ``None`` for an array."""
        if self.modalities is None:
            if block_names is None:
                return _ARRAY_MODALITIES
            if len(block_names) < 2:
                raise ValueError(
                    "CrossModalAligner aligns two modalities, but the "
                    f"ModalityBlocks holds {len(block_names)} block: {block_names}."
                )
            return tuple(block_names[:2])
        modalities = tuple(self.modalities)
        if (
            len(modalities) != 2
            or not all(isinstance(name, str) for name in modalities)
            or modalities[0] == modalities[1]
        ):
            raise ValueError(
                "modalities must be two different modality names, got "
                f"{self.modalities!r}."
            )
        return modalities

    def _check_split(self, n_features):
        """Number of leading columns of the first modality in an array."""
        if n_features < 2:
            raise ValueError(
                "CrossModalAligner splits a plain array into two modalities of "
                f"one column at least; got an array with {n_features} feature(s)."
            )
        if self.split is None:
            return n_features // 2
        if self.split >= n_features:
            raise ValueError(
                f"split={self.split} leaves no column for the second modality: X "
                f"has {n_features} columns, so split must be below {n_features}."
            )
        return self.split

    def _train(self, projection_a, projection_b, X_a, X_b, device, seed):
        """Train both projections on the InfoNCE loss of shuffled mini-batches."""
        projection_a.to(device).train()
        projection_b.to(device).train()

        def batch_loss(rows):
            rows = rows.numpy()
            z_a = projection_a(self._batch(0, X_a[rows], device))
            z_b = projection_b(self._batch(1, X_b[rows], device))
            return info_nce(z_a, z_b, self.temperature)

        return train_loop(
            [*projection_a.parameters(), *projection_b.parameters()],
            batch_loss,
            X_a.shape[0],
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            generator=make_generator(seed),
            min_batch=2,
            on_epoch=epoch_reporter("CrossModalAligner", self.max_epochs, self.verbose),
        )

    def _batch(self, index, X, device):
        X = _standardise(X, self.mean_[index], self.scale_[index])
        return torch.from_numpy(X).to(device)

    def _n_threads(self):
        # An aligner pickled before n_threads existed uses the default.
        return getattr(self, "n_threads", None) or 1

    def _project(self, index, X):
        """L2-normalised projections of the rows of one modality's block."""
        projection = (self.projection_a_, self.projection_b_)[index]

        def project(rows):
            z = projection(self._batch(index, X[rows], "cpu"))
            return F.normalize(z, dim=1).numpy()

        with torch_threads(self._n_threads()):
            batches = run_in_batches(project, X.shape[0], _TRANSFORM_BATCH_SIZE)
        if not batches:
            return np.empty((0, self.n_components), dtype=np.float32)
        return np.concatenate(batches)

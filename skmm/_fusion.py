"""MultimodalFusion: one encoder per modality, stacked as modality blocks."""

import contextlib
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags

from skmm import encoders
from skmm._blocks import LazyBlock, ModalityBlocks, block_spec_for
from skmm.utils._sklearn_compat import (
    StrOptions,
    _get_container_adapter,
    _safe_indexing,
    _safe_set_output,
)

__all__ = ["MultimodalFusion"]


def _check_2d_input(X):
    """Rows given as dicts become a DataFrame; reject 1-D input early.

    A dict is one row keyed by column name, a list of dicts several rows, as
    an application that predicts on single records holds them. Sparse input
    is made row/column indexable.
    """
    if sparse.issparse(X):
        # Checked first: a scipy DOK matrix is also a dict.
        return X.tocsr()
    if isinstance(X, Mapping):
        return pd.DataFrame([X])
    if isinstance(X, (list, tuple)) and X and all(isinstance(r, Mapping) for r in X):
        return pd.DataFrame(list(X))
    if hasattr(X, "shape") and len(X.shape) != 2:
        raise ValueError(
            f"Expected a 2-D input (n_samples, n_columns), got shape {X.shape}. "
            "Reshape your data, e.g. with X.reshape(-1, 1) for a single column."
        )
    return X


def _names_a_column(exc, X):
    """Whether the message of ``exc`` names one of the columns of ``X``."""
    message = str(exc)
    columns = X.columns if isinstance(X, pd.DataFrame) else []
    return any(f"{str(column)!r}" in message for column in columns)


def _reads_column_blocks(transformer):
    """Whether a single column name should reach ``transformer`` as a 2-D block.

    skmm's encoders read 2-D column blocks only, so a column name gives them
    a one-column block, as does ``"passthrough"``, which must output 2-D. Any
    other transformer follows ColumnTransformer's rule and receives the 1-D
    column, which is what a text vectorizer expects.
    """
    if isinstance(transformer, Pipeline) and transformer.steps:
        transformer = transformer.steps[0][1]
    if isinstance(transformer, str):
        return transformer == "passthrough"
    encoder_classes = tuple(getattr(encoders, name) for name in encoders.__all__)
    return isinstance(transformer, encoder_classes)


class MultimodalFusion(ColumnTransformer, auto_wrap_output_keys=None):
    """Apply one encoder per modality and stack the outputs as modality blocks.

    A :class:`~sklearn.compose.ColumnTransformer` whose output keeps the
    modalities apart. Each ``(name, encoder, columns)`` entry is a modality;
    any scikit-learn transformer can be its encoder. With
    ``output="blocks"`` (the default), ``transform`` returns
    :class:`~skmm.ModalityBlocks`: one 2-D block per modality, each with a
    :class:`~skmm.BlockSpec` telling a fusion estimator how to build its tower
    (feature width, vocabulary size, image shape). A classic estimator still
    works after it, since the blocks convert to the flat feature matrix; with
    ``output="flat"`` the flat matrix is returned directly, sparse when
    ``ColumnTransformer`` would make it sparse.

    Parameters
    ----------
    transformers : list of (str, transformer, columns) tuples
        The modalities: a name, an encoder (or ``"passthrough"`` /
        ``"drop"``) and the columns it reads, as in ColumnTransformer. A
        single column name (``"photo"``) gives skmm's encoders (or a pipeline
        that starts with one) and ``"passthrough"`` a one-column 2-D block,
        like ``["photo"]``; any other transformer receives the 1-D column, as
        in ColumnTransformer, so that ``CountVectorizer`` reads the texts.
    output : {"blocks", "flat"}, default="blocks"
        What ``transform`` returns.
    remainder : {"drop", "passthrough"} or transformer, default="drop"
        What to do with the columns no modality names; when kept, they form
        a block named ``"remainder"``.
    sparse_threshold : float, default=0.3
        For ``output="flat"``: as in ColumnTransformer.
    n_jobs : int, default=None
        Number of encoders fitted in parallel.
    transformer_weights : dict, default=None
        Multiplicative weight per modality's output.
    verbose : bool, default=False
        Print the time taken by each encoder.
    verbose_feature_names_out : bool, default=True
        Prefix output feature names with the modality name (``text__word``).

    Attributes
    ----------
    transformers_ : list of tuples
        The fitted encoders.
    named_transformers_ : Bunch
        Fitted encoders by modality name.
    output_indices_ : dict of str to slice
        Columns of the flat output produced by each modality.
    block_specs_ : dict of str to BlockSpec
        How each output block should be read by a network tower.
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Input column names, when the input is a DataFrame.

    See Also
    --------
    FusionClassifier, FusionRegressor, FusionMultiTask : the estimators that
        consume the modality blocks.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skmm import MultimodalFusion
    >>> df = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    >>> fusion = MultimodalFusion([("first", StandardScaler(), ["a"]),
    ...                            ("second", "passthrough", ["b"])])
    >>> blocks = fusion.fit_transform(df)
    >>> blocks.names
    ['first', 'second']
    >>> blocks.shape
    (3, 2)
    """

    _parameter_constraints = {
        **ColumnTransformer._parameter_constraints,
        "output": [StrOptions({"blocks", "flat"})],
    }

    def __init__(
        self,
        transformers,
        *,
        output="blocks",
        remainder="drop",
        sparse_threshold=0.3,
        n_jobs=None,
        transformer_weights=None,
        verbose=False,
        verbose_feature_names_out=True,
    ):
        super().__init__(
            transformers,
            remainder=remainder,
            sparse_threshold=sparse_threshold,
            n_jobs=n_jobs,
            transformer_weights=transformer_weights,
            verbose=verbose,
            verbose_feature_names_out=verbose_feature_names_out,
        )
        self.output = output

    def set_output(self, *, transform=None):
        """Set the output container of ``transform`` for ``output="flat"``.

        The encoders are configured too. Modality blocks stay numpy arrays
        whatever the setting, since they feed torch towers. Without a call to
        ``set_output``, ``sklearn.config_context(transform_output=...)``
        decides, as for any scikit-learn transformer.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, default=None
            Output container; ``None`` leaves it unchanged. ``"polars"``
            requires polars to be installed.

        Returns
        -------
        self : MultimodalFusion
        """
        if transform is None:
            return self
        self._sklearn_output_config = {"transform": transform}
        transformers = (
            trans
            for _, trans, _ in [*self.transformers, *getattr(self, "transformers_", [])]
            if trans not in {"passthrough", "drop"}
        )
        for trans in transformers:
            _safe_set_output(trans, transform=transform)
        if self.remainder not in {"passthrough", "drop"}:
            _safe_set_output(self.remainder, transform=transform)
        return self

    def fit(self, X, y=None, **params):
        """Fit every encoder on its columns.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_columns), dict or \
                list of dict
            Input data; a dict is one row keyed by column name.
        y : array-like, default=None
            Targets, passed to each encoder's ``fit`` (an encoder may train on
            them).
        **params : dict
            Routed to the encoders' ``fit`` when metadata routing is on.

        Returns
        -------
        self : MultimodalFusion
        """
        self.fit_transform(X, y, **params)
        return self

    def fit_transform(self, X, y=None, **params):
        """Fit every encoder and return the encoded modalities.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_columns), dict or \
                list of dict
            Input data; a dict is one row keyed by column name.
        y : array-like, default=None
            Targets, passed to each encoder's ``fit``.
        **params : dict
            Routed to the encoders' ``fit`` when metadata routing is on.

        Returns
        -------
        Xt : ModalityBlocks, ndarray or sparse matrix
            Modality blocks, or the flat matrix with ``output="flat"``.
        """
        X = _check_2d_input(X)
        self._fitting = True
        try:
            with self._named_encoder_errors(X, y, fitted=False):
                Xt = super().fit_transform(X, y, **params)
        finally:
            del self._fitting
        return self._wrap_flat_output(Xt, X)

    def transform(self, X, **params):
        """Encode each modality with its fitted encoder.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_columns), dict or \
                list of dict
            Input data, with the columns seen in ``fit``. A dict is one row
            keyed by column name, a list of dicts several rows, so that a
            fitted pipeline predicts on single records.
        **params : dict
            Routed to the encoders' ``transform`` when metadata routing is on.

        Returns
        -------
        Xt : ModalityBlocks, ndarray or sparse matrix
            Modality blocks, or the flat matrix with ``output="flat"``.
        """
        X = _check_2d_input(X)
        with self._named_encoder_errors(X, None, fitted=True):
            Xt = super().transform(X, **params)
        return self._wrap_flat_output(Xt, X)

    @contextlib.contextmanager
    def _named_encoder_errors(self, X, y, *, fitted):
        """Name the modality and columns of an encoder's error that names neither.

        skmm's encoders name the column and row of bad input themselves; a
        scikit-learn transformer says "Input X contains infinity" without
        saying which columns. On such an error the other transformers are run
        again, one at a time, to find the one that raises it (skmm's encoders,
        which may train, are not run again).
        """
        try:
            yield
        except (ValueError, TypeError) as exc:
            if type(exc) not in (ValueError, TypeError) or _names_a_column(exc, X):
                raise
            try:
                found = self._failing_transformer(X, y, exc, fitted=fitted)
            except Exception:
                # The error came before the transformers were set up, e.g. a
                # transformer given as a class: its message stands as it is.
                found = None
            if found is None:
                raise
            name, columns = found
            raise type(exc)(
                f"The encoder of modality {name!r} (columns {columns!r}) failed: {exc}"
            ) from exc

    def _failing_transformer(self, X, y, exc, *, fitted):
        """``(name, columns)`` of the transformer that raises ``exc`` on its own."""
        for name, trans, columns, _ in self._iter(
            fitted=fitted,
            column_as_labels=False,
            skip_drop=True,
            skip_empty_columns=True,
        ):
            if isinstance(trans, str) or _reads_column_blocks(trans):
                continue
            try:
                X_block = _safe_indexing(X, columns, axis=1)
                if fitted:
                    trans.transform(X_block)
                else:
                    clone(trans).fit_transform(X_block, y)
            except type(exc) as again:
                if str(again) == str(exc):
                    return name, columns
            except Exception:
                continue
        return None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        encoders = [
            trans
            for _, trans, _ in self.transformers
            if trans not in {"passthrough", "drop"}
        ]
        tags.input_tags.allow_nan = all(
            get_tags(trans).input_tags.allow_nan for trans in encoders
        )
        tags.input_tags.string = any(
            get_tags(trans).input_tags.string for trans in encoders
        )
        return tags

    def _iter(self, fitted, column_as_labels, skip_drop, skip_empty_columns):
        for name, trans, columns, weight in super()._iter(
            fitted, column_as_labels, skip_drop, skip_empty_columns
        ):
            if np.isscalar(columns) and _reads_column_blocks(trans):
                columns = [columns]
            yield name, trans, columns, weight

    def _block_names(self):
        return [
            name
            for name, _, _, _ in self._iter(
                fitted=True,
                column_as_labels=False,
                skip_drop=True,
                skip_empty_columns=True,
            )
        ]

    def _hstack(self, Xs, *, n_samples):
        if self.output == "flat":
            return super()._hstack(Xs, n_samples=n_samples)
        names = self._block_names()
        fitted = dict(self.named_transformers_)
        blocks = {}
        specs = {}
        for name, X in zip(names, Xs):
            if sparse.issparse(X):
                X = X.tocsr()
            elif not isinstance(X, LazyBlock):
                X = np.asarray(X)
            blocks[name] = X
            specs[name] = block_spec_for(fitted.get(name), X)
        if getattr(self, "_fitting", False):
            self.block_specs_ = specs
        return ModalityBlocks(blocks, specs)

    def _wrap_flat_output(self, Xt, X):
        # Automatic wrapping is switched off for the sake of the blocks output;
        # the flat output is wrapped here as ColumnTransformer's would be, from
        # set_output or else the global transform_output configuration.
        if self.output != "flat" or sparse.issparse(Xt):
            return Xt
        adapter = _get_container_adapter("transform", self)
        if adapter is None:
            return Xt
        return adapter.create_container(Xt, X, columns=self.get_feature_names_out)

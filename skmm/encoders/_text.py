"""Text encoders: TF-IDF features and padded token-id sequences.

Both take a 2-D block of text columns. The cells of a row are joined with a
space into one text; a missing cell (``None``, ``NaN``, ``pd.NA``) is empty
text, a byte string is decoded as UTF-8, and any other cell is converted with
``str``. A lone UTF-16 surrogate becomes U+FFFD, the replacement character.
"""

import re
from collections import Counter
from functools import partial
from itertools import chain, repeat
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from skmm._blocks import BlockSpec
from skmm.utils._sklearn_compat import (
    Interval,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
)
from skmm.utils._validation import check_column_block, is_missing

__all__ = ["TfidfTextEncoder", "SequenceTextEncoder"]

URL_TOKEN = "_url_"
NUMBER_TOKEN = "_num_"
_URL_PATTERN = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.IGNORECASE)
_NUMBER_PATTERN = re.compile(r"\d+(?:[.,]\d+)*")

PADDING_ID = 0
OOV_ID = 1


def _without_surrogates(texts):
    """Return ``texts`` with their UTF-16 surrogates resolved.

    A pair of surrogates (text decoded from UTF-16 or JSON escapes without
    joining them) becomes the character it encodes; a lone surrogate, which
    has no UTF-8 encoding, becomes U+FFFD, the replacement character.
    """
    # UTF-8 can encode every character but a surrogate, and encoding all the
    # texts at once is much faster than searching them; ASCII needs neither.
    joined = "".join(texts)
    if joined.isascii():
        return texts
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return [
            text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
            for text in texts
        ]
    return texts


def _cell_text(value, column, row):
    """Return the text of one cell; ``column`` and ``row`` name it in errors."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"The text in column {column!r}, row {row} is a byte string that "
                f"is not valid UTF-8 ({exc.reason} at byte {exc.start}: "
                f"{exc.object[exc.start : exc.end]!r}). Decode the column to str "
                "with its actual encoding (for instance "
                "values.str.decode('latin-1') on a pandas Series) before "
                "encoding it."
            ) from exc
    return "" if is_missing(value) else str(value)


def _block_texts(X, columns=None):
    """Return one text per row of the object block ``X``.

    ``columns`` names the columns in error messages; ``"column 0"``, ... when
    it is None.
    """
    if columns is None:
        columns = [f"column {j}" for j in range(X.shape[1])]
    texts = [
        _without_surrogates(
            [
                v if type(v) is str else _cell_text(v, column, i)
                for i, v in enumerate(X[:, j].tolist())
            ]
        )
        for j, column in enumerate(columns)
    ]
    if len(texts) == 1:
        return texts[0]
    return [" ".join(cells) for cells in zip(*texts)]


def _clean_text(text, *, lowercase, normalize_urls, normalize_numbers):
    """Preprocessor run by the vectorizer on each text, in its own pass."""
    if lowercase:
        text = text.lower()
    if normalize_urls:
        # Most texts hold no URL: a substring test is much cheaper than
        # running the case-insensitive pattern over every text.
        folded = text if lowercase else text.lower()
        if "://" in folded or "www." in folded:
            text = _URL_PATTERN.sub(URL_TOKEN, text)
    if normalize_numbers:
        text = _NUMBER_PATTERN.sub(NUMBER_TOKEN, text)
    return text


class TfidfTextEncoder(TransformerMixin, BaseEstimator):
    """Encode one or more text columns as TF-IDF features.

    The columns of a row are joined with a space into one text, cleaned, and
    vectorised by scikit-learn's
    :class:`~sklearn.feature_extraction.text.TfidfVectorizer`. The cleaning
    runs inside the vectorizer's own pass over the texts, as its
    ``preprocessor``, so it costs no extra pass over the data. With
    ``n_components`` set, a :class:`~sklearn.decomposition.TruncatedSVD`
    (latent semantic analysis) reduces the sparse TF-IDF matrix to a dense
    one.

    Missing cells (``None``, ``NaN``, ``pd.NA``) are empty text, the same in
    ``fit`` and ``transform``: a row whose cells are all missing encodes as a
    row of zeros. Byte strings are decoded as UTF-8 and other cells that are
    not strings (numbers, for instance) are converted with ``str``.

    Parameters
    ----------
    lowercase : bool, default=True
        Convert the text to lowercase before tokenizing.
    normalize_urls : bool, default=True
        Replace every URL (``http://...``, ``https://...``, ``ftp://...``,
        ``www....``) with the token ``"_url_"``, so that links count as one
        term instead of one rare term each.
    normalize_numbers : bool, default=False
        Replace every run of digits (decimal points and thousands separators
        included) with the token ``"_num_"``.
    token_pattern : str, default=r"(?u)\\b\\w+\\b"
        Regular expression matching one token. Unlike ``TfidfVectorizer``'s
        default, it keeps one-character tokens (sizes such as "S" or "M",
        single digits).
    max_features : int, default=None
        Keep only the ``max_features`` most frequent terms.
    ngram_range : tuple (min_n, max_n), default=(1, 1)
        Range of word n-grams to extract.
    min_df : float in [0.0, 1.0] or int, default=1
        Ignore terms found in fewer texts (an int) or a smaller fraction of
        texts (a float).
    max_df : float in [0.0, 1.0] or int, default=1.0
        Ignore terms found in more texts (an int) or a larger fraction of
        texts (a float).
    stop_words : {"english"}, list or None, default=None
        Stop words to remove, as in ``TfidfVectorizer``.
    sublinear_tf : bool, default=False
        Replace the term frequency ``tf`` with ``1 + log(tf)``.
    dtype : dtype, default=np.float64
        Type of the TF-IDF matrix.
    n_components : int, default=None
        When set, reduce the TF-IDF features to ``n_components`` dense
        features with a truncated SVD. When ``None`` the output is a sparse
        CSR matrix with one column per vocabulary term.
    random_state : int, RandomState instance or None, default=None
        Seeds the truncated SVD. Only used when ``n_components`` is set.

    Attributes
    ----------
    vectorizer_ : TfidfVectorizer
        The fitted vectorizer; ``vectorizer_.vocabulary_`` maps terms to
        column indices.
    svd_ : TruncatedSVD
        The fitted SVD. Only present when ``n_components`` is set.
    n_features_in_ : int
        Number of text columns seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the text columns seen during :term:`fit`. Defined only when
        `X` has column names that are all strings.

    See Also
    --------
    SequenceTextEncoder : Encode text as padded token-id sequences.
    sklearn.feature_extraction.text.TfidfVectorizer : The vectorizer used.

    Notes
    -----
    Byte-string cells (``b"..."``) are decoded as UTF-8, so ``b"good movie"``
    and ``"good movie"`` encode alike; bytes that are not valid UTF-8 raise a
    ``ValueError`` naming the column and row. A lone UTF-16 surrogate (such
    as ``"\\ud800"``, left by a broken decoding) has no UTF-8 encoding, so
    tokenizers and file writers reject it: it is replaced with U+FFFD, the
    replacement character, as Python's ``errors="replace"`` does, and the
    rest of the text is kept. A valid surrogate pair becomes the character
    it encodes.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm.encoders import TfidfTextEncoder
    >>> X = pd.DataFrame({"title": ["Red dress", "Blue shirt", None],
    ...                   "body": ["see https://a.example", "Nice", "nice dress"]})
    >>> encoder = TfidfTextEncoder().fit(X)
    >>> encoder.get_feature_names_out()
    array(['_url_', 'blue', 'dress', 'nice', 'red', 'see', 'shirt'],
          dtype=object)
    >>> encoder.transform(X).shape
    (3, 7)
    """

    _parameter_constraints = {
        "lowercase": ["boolean"],
        "normalize_urls": ["boolean"],
        "normalize_numbers": ["boolean"],
        "token_pattern": [str],
        "max_features": [Interval(Integral, 1, None, closed="left"), None],
        "ngram_range": [tuple],
        "min_df": [
            Interval(Real, 0, 1, closed="both"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "max_df": [
            Interval(Real, 0, 1, closed="both"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "stop_words": [StrOptions({"english"}), list, None],
        "sublinear_tf": ["boolean"],
        "dtype": "no_validation",
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        lowercase=True,
        normalize_urls=True,
        normalize_numbers=False,
        token_pattern=r"(?u)\b\w+\b",
        max_features=None,
        ngram_range=(1, 1),
        min_df=1,
        max_df=1.0,
        stop_words=None,
        sublinear_tf=False,
        dtype=np.float64,
        n_components=None,
        random_state=None,
    ):
        self.lowercase = lowercase
        self.normalize_urls = normalize_urls
        self.normalize_numbers = normalize_numbers
        self.token_pattern = token_pattern
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.stop_words = stop_words
        self.sublinear_tf = sublinear_tf
        self.dtype = dtype
        self.n_components = n_components
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the vocabulary, the IDF weights and, optionally, the SVD.

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
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit the encoder and return the encoded texts.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Text columns.
        y : None
            Ignored.

        Returns
        -------
        Xt : sparse matrix of shape (n_samples, n_terms) or ndarray of \
                shape (n_samples, n_components)
            TF-IDF features, or their SVD projection when ``n_components``
            is set.
        """
        return self._fit(X)

    def transform(self, X):
        """Encode texts with the learned vocabulary.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Text columns, the same as in :term:`fit`.

        Returns
        -------
        Xt : sparse matrix of shape (n_samples, n_terms) or ndarray of \
                shape (n_samples, n_components)
            TF-IDF features, or their SVD projection when ``n_components``
            is set.
        """
        check_is_fitted(self)
        X, columns = check_column_block(self, X, reset=False)
        Xt = self.vectorizer_.transform(_block_texts(X, columns))
        if self.n_components is None:
            return Xt
        return self.svd_.transform(Xt)

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the column names seen in :term:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The vocabulary terms, or ``svd0``, ``svd1``, ... when
            ``n_components`` is set.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        if self.n_components is None:
            return self.vectorizer_.get_feature_names_out()
        return np.asarray([f"svd{i}" for i in range(self.n_components)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _fit(self, X):
        X, columns = check_column_block(self, X, reset=True)
        texts = _block_texts(X, columns)
        self._check_min_df(len(texts), columns)
        self.vectorizer_ = self._make_vectorizer()
        try:
            Xt = self.vectorizer_.fit_transform(texts)
        except ValueError as exc:
            raise ValueError(
                f"TfidfTextEncoder could not build a vocabulary from column(s) "
                f"{columns} ({len(texts)} text(s)): {exc}"
            ) from exc
        if self.n_components is None:
            return Xt
        n_terms = len(self.vectorizer_.vocabulary_)
        if n_terms < max(2, self.n_components):
            raise ValueError(
                f"n_components={self.n_components} needs a vocabulary of at least "
                f"{max(2, self.n_components)} terms, but the one learned from "
                f"column(s) {columns} has {n_terms}. Lower n_components or fit "
                "on more text."
            )
        self.svd_ = TruncatedSVD(
            n_components=self.n_components, random_state=self.random_state
        )
        return self.svd_.fit_transform(Xt)

    def _make_vectorizer(self):
        if self.normalize_urls or self.normalize_numbers:
            # One preprocessor does all the cleaning (lowercasing included),
            # so the vectorizer's single pass over the texts does it.
            preprocessor = partial(
                _clean_text,
                lowercase=self.lowercase,
                normalize_urls=self.normalize_urls,
                normalize_numbers=self.normalize_numbers,
            )
            lowercase = False
        else:
            preprocessor, lowercase = None, self.lowercase
        return TfidfVectorizer(
            preprocessor=preprocessor,
            lowercase=lowercase,
            token_pattern=self.token_pattern,
            max_features=self.max_features,
            ngram_range=self.ngram_range,
            min_df=self.min_df,
            max_df=self.max_df,
            stop_words=self.stop_words,
            sublinear_tf=self.sublinear_tf,
            dtype=self.dtype,
        )

    def _check_min_df(self, n_texts, columns):
        # A fractional min_df never asks for more texts than there are.
        if isinstance(self.min_df, Integral) and self.min_df > n_texts:
            raise ValueError(
                f"min_df={self.min_df!r} keeps only terms found in at least "
                f"{self.min_df} texts, but column(s) {columns} hold {n_texts} "
                "text(s), so the vocabulary would be empty. Lower min_df or fit "
                "on more rows."
            )


class SequenceTextEncoder(TransformerMixin, BaseEstimator):
    """Encode one or more text columns as padded sequences of token ids.

    The columns of a row are joined with a space into one text, split into
    tokens with one regular expression, and mapped to integer ids through a
    vocabulary learned in :term:`fit`: ``0`` is padding, ``1`` stands for
    any out-of-vocabulary token and the vocabulary terms get ids from ``2``
    on, the most frequent first. Each row becomes exactly ``max_length`` ids:
    longer texts keep their first ``max_length`` tokens, shorter ones are
    padded. This is the input of an Embedding + GRU tower (see
    :meth:`get_block_spec`).

    Missing cells (``None``, ``NaN``, ``pd.NA``) are empty text, the same in
    ``fit`` and ``transform``: a row whose cells are all missing encodes as
    all padding. Byte strings are decoded as UTF-8 and other cells that are
    not strings are converted with ``str``.

    Parameters
    ----------
    max_length : int, default=64
        Number of token ids per row.
    max_vocabulary : int or None, default=20000
        Keep at most this many vocabulary terms (the most frequent; ties are
        broken alphabetically). ``None`` keeps all. Padding and
        out-of-vocabulary ids are not counted.
    min_frequency : int, default=1
        Keep only terms that occur at least this many times in the training
        texts.
    lowercase : bool, default=True
        Convert the text to lowercase before tokenizing.
    token_pattern : str, default=r"(?u)\\b\\w+\\b"
        Regular expression matching one token. With one capturing group, the
        group is the token.
    padding : {"post", "pre"}, default="post"
        Put the padding after the tokens (``"post"``) or before them
        (``"pre"``). Truncation always keeps the first tokens.

    Attributes
    ----------
    vocabulary_ : dict of str to int
        Mapping from vocabulary term to id (ids start at 2).
    vocabulary_size_ : int
        Number of distinct ids, padding and out-of-vocabulary included:
        ``len(vocabulary_) + 2``.
    n_features_in_ : int
        Number of text columns seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the text columns seen during :term:`fit`. Defined only when
        `X` has column names that are all strings.

    See Also
    --------
    TfidfTextEncoder : Encode text as TF-IDF features.

    Notes
    -----
    Byte-string cells (``b"..."``) are decoded as UTF-8, so ``b"good movie"``
    and ``"good movie"`` encode alike; bytes that are not valid UTF-8 raise a
    ``ValueError`` naming the column and row. A lone UTF-16 surrogate (such
    as ``"\\ud800"``, left by a broken decoding) has no UTF-8 encoding, so
    tokenizers and file writers reject it: it is replaced with U+FFFD, the
    replacement character, as Python's ``errors="replace"`` does, and the
    rest of the text is kept. A valid surrogate pair becomes the character
    it encodes.

    Examples
    --------
    >>> from skmm.encoders import SequenceTextEncoder
    >>> X = [["the red dress"], ["the blue dress"], [None]]
    >>> encoder = SequenceTextEncoder(max_length=4).fit(X)
    >>> encoder.vocabulary_
    {'dress': 2, 'the': 3, 'blue': 4, 'red': 5}
    >>> encoder.transform([["The green dress"], [None]])
    array([[3, 1, 2, 0],
           [0, 0, 0, 0]])
    """

    _parameter_constraints = {
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "max_vocabulary": [Interval(Integral, 1, None, closed="left"), None],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
        "lowercase": ["boolean"],
        "token_pattern": [str],
        "padding": [StrOptions({"post", "pre"})],
    }

    def __init__(
        self,
        *,
        max_length=64,
        max_vocabulary=20000,
        min_frequency=1,
        lowercase=True,
        token_pattern=r"(?u)\b\w+\b",
        padding="post",
    ):
        self.max_length = max_length
        self.max_vocabulary = max_vocabulary
        self.min_frequency = min_frequency
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.padding = padding

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the vocabulary.

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
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Learn the vocabulary and return the token-id sequences.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Text columns.
        y : None
            Ignored.

        Returns
        -------
        Xt : ndarray of shape (n_samples, max_length), dtype=int64
            Token ids, padded with 0.
        """
        return self._fit(X)

    def transform(self, X):
        """Turn texts into padded token-id sequences.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_columns)
            Text columns, the same as in :term:`fit`.

        Returns
        -------
        Xt : ndarray of shape (n_samples, max_length), dtype=int64
            Token ids, padded with 0; unseen tokens are 1.
        """
        check_is_fitted(self)
        X, columns = check_column_block(self, X, reset=False)
        return self._to_ids(self._tokenize(X, columns))

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the column names seen in :term:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``token_0``, ..., ``token_{max_length - 1}``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray([f"token_{i}" for i in range(self.max_length)], dtype=object)

    def get_block_spec(self):
        """Describe the output block for the fusion networks.

        Returns
        -------
        spec : BlockSpec
            A ``"tokens"`` block of width ``max_length`` with
            ``vocabulary_size_`` ids, padding id 0.
        """
        check_is_fitted(self)
        return BlockSpec(
            kind="tokens",
            n_features=self.max_length,
            vocab_size=self.vocabulary_size_,
            padding_idx=PADDING_ID,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _fit(self, X):
        X, columns = check_column_block(self, X, reset=True)
        tokens = self._tokenize(X, columns)
        counts = Counter(chain.from_iterable(tokens))
        terms = sorted(
            (term for term, count in counts.items() if count >= self.min_frequency),
            key=lambda term: (-counts[term], term),
        )
        if self.max_vocabulary is not None:
            terms = terms[: self.max_vocabulary]
        self.vocabulary_ = {term: i for i, term in enumerate(terms, start=OOV_ID + 1)}
        self.vocabulary_size_ = len(self.vocabulary_) + 2
        return self._to_ids(tokens)

    def _tokenize(self, X, columns):
        pattern = re.compile(self.token_pattern)
        if pattern.groups > 1:
            raise ValueError(
                f"token_pattern={self.token_pattern!r} has {pattern.groups} "
                "capturing groups; use at most one (the token)."
            )
        findall = pattern.findall
        texts = _block_texts(X, columns)
        if self.lowercase:
            return [findall(text.lower()) for text in texts]
        return [findall(text) for text in texts]

    def _to_ids(self, tokens):
        max_length = self.max_length
        lookup = self.vocabulary_.get
        lengths = np.fromiter(
            (min(len(row), max_length) for row in tokens), np.int64, len(tokens)
        )
        ids = np.fromiter(
            chain.from_iterable(
                map(lookup, row[:max_length], repeat(OOV_ID)) for row in tokens
            ),
            np.int64,
            int(lengths.sum()),
        )
        rows = np.repeat(np.arange(len(tokens)), lengths)
        starts = np.cumsum(lengths) - lengths
        positions = np.arange(len(ids)) - np.repeat(starts, lengths)
        if self.padding == "pre":
            positions += np.repeat(max_length - lengths, lengths)
        Xt = np.full((len(tokens), max_length), PADDING_ID, dtype=np.int64)
        Xt[rows, positions] = ids
        return Xt

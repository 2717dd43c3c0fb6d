"""Ready-made fusions and pipelines from the columns of a DataFrame."""

import sys

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from skmm._config import get_config
from skmm._estimators import FusionClassifier, FusionMultiTask, FusionRegressor
from skmm._fusion import MultimodalFusion
from skmm.compose._column_types import infer_column_types
from skmm.encoders import AudioEncoder, CNNImageEncoder, TfidfTextEncoder
from skmm.utils._validation import is_missing

__all__ = ["infer_task", "make_multimodal_fusion", "make_multimodal_pipeline"]

MODALITIES = ("text", "image", "audio", "numeric", "categorical")
# An integer target with at most this many distinct values holds class labels.
MAX_CLASSES = 20


def cells_as_strings(X):
    """Each cell of ``X`` through ``str``, missing cells as ``NaN``.

    The first step of the categorical encoder of a column that holds both
    numbers and strings, which ``OneHotEncoder`` cannot sort.
    """
    X = np.asarray(X, dtype=object)
    out = np.empty(X.shape, dtype=object)
    for index, value in np.ndenumerate(X):
        out[index] = np.nan if is_missing(value) else str(value)
    return out


def _default_encoder(modality, columns, *, base_dir, mixed):
    if modality == "text":
        return TfidfTextEncoder()
    if modality == "image":
        return CNNImageEncoder(base_dir=base_dir)
    if modality == "audio":
        return AudioEncoder(base_dir=base_dir)
    if modality == "numeric":
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    encoder = OneHotEncoder(handle_unknown="ignore")
    if any(column in mixed for column in columns):
        return make_pipeline(
            FunctionTransformer(cells_as_strings, feature_names_out="one-to-one"),
            encoder,
        )
    return encoder


def _as_column_list(value, parameter, frame, excluded=()):
    """The columns named by ``value`` (a name, a list or a selector).

    A selector's columns leave out ``excluded`` (the targets); columns named
    one by one are taken as they are.
    """
    if callable(value):
        value = [column for column in value(frame) if column not in excluded]
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        value = [value]
    columns = list(value)
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        raise ValueError(
            f"{parameter}={absent!r}: no such column. The columns are "
            f"{list(frame.columns)}."
        )
    return columns


def make_multimodal_fusion(
    X,
    *,
    text="auto",
    image="auto",
    audio="auto",
    numeric="auto",
    categorical="auto",
    exclude=(),
    base_dir=None,
    max_categories=30,
    min_text_words=4,
    verbose=None,
):
    """Build a :class:`~skmm.MultimodalFusion` for the columns of ``X``.

    Each column's modality is inferred by :func:`infer_column_types`
    (identifiers, web addresses and unreadable columns are left out) unless
    given, and each modality gets a default encoder:

    - text: :class:`~skmm.TfidfTextEncoder`, over all text columns joined;
    - image: :class:`~skmm.CNNImageEncoder`, one frozen network shared by
      the image columns;
    - audio: :class:`~skmm.AudioEncoder`;
    - numeric: ``SimpleImputer(strategy="median")`` then
      ``StandardScaler()``;
    - categorical: ``OneHotEncoder(handle_unknown="ignore")``: a missing
      value is a category of its own and an unseen one encodes as zeros; a
      column that mixes numbers and strings is read as strings first.

    The result is an ordinary ``MultimodalFusion``, with fixed column lists:
    print it to see the choices, and change them with ``set_params``, as in
    ``fusion.set_params(image=PretrainedImageEncoder())``, or by passing the
    columns of a modality yourself.

    Parameters
    ----------
    X : DataFrame
        Data whose columns are inspected: usually the training data.
    text, image, audio, numeric, categorical : "auto", str, list of str, \
            callable or None, default="auto"
        The columns of each modality. ``"auto"`` takes those inferred; a
        column name, a list of names or a selector (a callable returning
        names, such as :func:`text_columns`, whose choice leaves out
        ``exclude``) fixes them, and a column named for one modality is
        taken out of the others; ``None`` or ``[]`` leaves the modality out.
    exclude : str or list of str, default=()
        Columns left out, such as the targets.
    base_dir : str or path-like, default=None
        Folder that relative image and audio paths are read from, passed to
        the image and audio encoders; typically the folder of the CSV file
        that lists them.
    max_categories : int, default=30
        See :func:`infer_column_types`.
    min_text_words : float, default=4
        See :func:`infer_column_types`.
    verbose : int, default=None
        With a true value, print the modality of each column, with the
        reason, and the columns left out, to standard error. ``None`` follows
        ``skmm.get_config()["verbose"]``.

    Returns
    -------
    fusion : MultimodalFusion
        One ``(modality, encoder, columns)`` entry per modality that has
        columns, in the order text, image, audio, numeric, categorical.

    See Also
    --------
    make_multimodal_pipeline : the fusion followed by a fusion estimator.
    infer_column_types : the modality inferred for each column, and why.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm import make_multimodal_fusion
    >>> df = pd.DataFrame({
    ...     "id": [1, 2, 3, 4],
    ...     "review": ["fits well and looks great", "too small for me sadly",
    ...                "the colour is lovely in daylight", None],
    ...     "size": ["S", "M", "L", "M"],
    ...     "price": [9.5, 12.0, 15.5, None],
    ... })
    >>> fusion = make_multimodal_fusion(df)
    >>> [(name, columns) for name, _, columns in fusion.transformers]
    [('text', ['review']), ('numeric', ['price']), ('categorical', ['size'])]
    >>> fusion.fit_transform(df).names
    ['text', 'numeric', 'categorical']
    """
    types = infer_column_types(
        X, max_categories=max_categories, min_text_words=min_text_words
    )
    excluded = set(_as_column_list(exclude, "exclude", X)) if exclude else set()
    given = {
        modality: value
        for modality, value in zip(
            MODALITIES, (text, image, audio, numeric, categorical)
        )
    }
    fixed = {}
    for modality, value in given.items():
        if isinstance(value, str) and value == "auto":
            continue
        fixed[modality] = (
            [] if value is None else _as_column_list(value, modality, X, excluded)
        )
    claimed = {column for columns in fixed.values() for column in columns}
    chosen = {}
    for modality in MODALITIES:
        if modality in fixed:
            chosen[modality] = fixed[modality]
        else:
            chosen[modality] = [
                column
                for column, kind in types["kind"].items()
                if kind == modality and column not in claimed | excluded
            ]
    mixed = {column for column in chosen["categorical"] if _mixes_types(X[column])}
    transformers = [
        (
            modality,
            _default_encoder(modality, columns, base_dir=base_dir, mixed=mixed),
            columns,
        )
        for modality, columns in chosen.items()
        if columns
    ]
    if not transformers:
        raise ValueError(
            "No column of the DataFrame can be encoded: "
            + "; ".join(
                f"{column!r}: {kind} ({reason})"
                for column, (kind, reason) in types.iterrows()
                if column not in excluded
            )
            + ". Name the columns of each modality yourself (text=..., "
            "numeric=...)."
        )
    verbose = get_config()["verbose"] if verbose is None else verbose
    if verbose:
        _report_choices(types, transformers, claimed, excluded)
    return MultimodalFusion(transformers)


def _mixes_types(column):
    """Whether a column holds strings beside values of other types."""
    values = [value for value in column.tolist() if not is_missing(value)]
    n_strings = sum(isinstance(value, str) for value in values)
    return 0 < n_strings < len(values)


def _report_choices(types, transformers, claimed, excluded):
    """Print, to standard error, what each column became and why."""
    modality_of = {
        column: name for name, _, columns in transformers for column in columns
    }
    for column, (kind, reason) in types.iterrows():
        if column in modality_of:
            why = "given" if column in claimed else reason
            message = f"{modality_of[column]} ({why})"
        elif column in excluded:
            message = "excluded"
        else:
            message = f"left out, {kind} ({reason})"
        print(f"[skmm] {column!r}: {message}", file=sys.stderr, flush=True)


def infer_task(y):
    """Tell whether a target holds class labels or values to regress.

    Strings, booleans and pandas categories are class labels, as are integers
    (or floats with integer values) with at most 20 distinct values, such as
    digits or ratings from 1 to 5; other numbers are regression targets.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        The target.

    Returns
    -------
    task : {"classification", "regression"}

    Examples
    --------
    >>> from skmm.compose import infer_task
    >>> infer_task(["cat", "dog", "cat"]), infer_task([0.5, 1.25, 3.0])
    ('classification', 'regression')
    """
    y = pd.Series(y) if not isinstance(y, pd.Series) else y
    present = y[y.notna()]
    if isinstance(y.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(y.dtype):
        return "classification"
    if not pd.api.types.is_numeric_dtype(present.dtype):
        try:
            present = pd.to_numeric(present)
        except (TypeError, ValueError):
            return "classification"
        if pd.api.types.is_bool_dtype(present.dtype):
            return "classification"
    values = present.to_numpy(dtype=np.float64)
    integers = bool(np.all(np.mod(values, 1) == 0))
    if integers and len(np.unique(values)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def _check_tasks(tasks, targets):
    tasks = {} if tasks is None else dict(tasks)
    unknown = sorted(set(tasks) - set(targets), key=str)
    if unknown:
        raise ValueError(
            f"tasks names {unknown}, which are not targets; the targets are {targets}."
        )
    for name, kind in tasks.items():
        if kind not in ("classification", "regression"):
            raise ValueError(
                f"tasks[{name!r}] must be 'classification' or 'regression', got "
                f"{kind!r}."
            )
    return tasks


def make_multimodal_pipeline(
    X,
    estimator=None,
    *,
    target,
    tasks=None,
    random_state=None,
    **fusion_params,
):
    """Build a pipeline: a :func:`make_multimodal_fusion`, then an estimator.

    With ``estimator=None`` the estimator is chosen from the target
    columns of ``X``: :class:`~skmm.FusionClassifier` for class labels,
    :class:`~skmm.FusionRegressor` for values (see :func:`infer_task`), and
    :class:`~skmm.FusionMultiTask` for several targets. The targets are
    left out of the fusion. Fit the pipeline on ``X`` and its targets::

        model = make_multimodal_pipeline(df, target="label")
        model.fit(df, df["label"])

    Parameters
    ----------
    X : DataFrame
        Data whose columns are inspected, with the target columns.
    estimator : estimator, default=None
        The model after the fusion. ``None`` chooses a fusion estimator.
    target : str or list of str
        The target column(s).
    tasks : dict of str to {"classification", "regression"}, default=None
        The kind of some targets, where the inferred one is not wanted (for
        instance ``{"Rating": "regression"}`` for ratings from 1 to 5, which
        are read as classes).
    random_state : int, RandomState instance or None, default=None
        Passed to the estimator chosen when ``estimator`` is None.
    **fusion_params
        Passed to :func:`make_multimodal_fusion` (``base_dir``, ``text``,
        ``exclude``...).

    Returns
    -------
    pipeline : Pipeline
        ``make_pipeline(fusion, estimator)``: its steps are named
        ``"multimodalfusion"`` and, for example, ``"fusionclassifier"``, so
        that ``fusionclassifier__fusion`` is a grid-search parameter.

    See Also
    --------
    make_multimodal_fusion : the fusion alone.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmm import make_multimodal_pipeline
    >>> df = pd.DataFrame({
    ...     "review": ["fits well and looks great", "too small for me sadly",
    ...                "the colour is lovely in daylight", "would not buy again"],
    ...     "price": [9.5, 12.0, 15.5, 7.0],
    ...     "liked": ["yes", "no", "yes", "no"],
    ... })
    >>> model = make_multimodal_pipeline(df, target="liked")
    >>> [type(step).__name__ for step in model]
    ['MultimodalFusion', 'FusionClassifier']
    """
    targets = [target] if isinstance(target, str) else list(target)
    if not targets:
        raise ValueError("target must name at least one column, got [].")
    absent = [name for name in targets if name not in X.columns]
    if absent:
        raise ValueError(
            f"The target column(s) {absent} are not in the data; the columns "
            f"are {list(X.columns)}."
        )
    tasks = _check_tasks(tasks, targets)
    exclude = fusion_params.pop("exclude", ())
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    fusion = make_multimodal_fusion(X, exclude=[*targets, *exclude], **fusion_params)
    if estimator is None:
        kinds = {name: tasks.get(name) or infer_task(X[name]) for name in targets}
        if len(targets) > 1:
            estimator = FusionMultiTask(tasks=kinds, random_state=random_state)
        elif kinds[targets[0]] == "classification":
            estimator = FusionClassifier(random_state=random_state)
        else:
            estimator = FusionRegressor(random_state=random_state)
    elif tasks or random_state is not None:
        raise ValueError(
            "tasks and random_state configure the estimator chosen when "
            "estimator=None; set them on the estimator you pass instead."
        )
    return make_pipeline(fusion, estimator)

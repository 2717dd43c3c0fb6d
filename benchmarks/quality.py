"""Quality of skmm's defaults beside scikit-learn baselines, dataset by dataset.

For every dataset, on one fixed split (or a fixed cross-validation), it fits

- skmm with its defaults, once per fusion strategy:
  ``make_pipeline(MultimodalFusion([...default encoders...]),
  FusionClassifier(fusion=s, random_state=0))`` (``FusionRegressor`` for a
  regression), for s in concat, late, gated, attention, tensor, lowrank;
- skmm with its defaults on each single modality, of which the best is shown;
- scikit-learn baselines on the same split: TF-IDF + LogisticRegression /
  Ridge on the text (where there is text), HistGradientBoosting on the flat
  ``MultimodalFusion(..., output="flat")`` features, and a stacking of
  per-modality linear models (column selection + encoder + LogisticRegression
  / Ridge);

and prints one table, dataset x model, with the score and the wall-clock
time of ``fit``, then a summary: per dataset the best baseline and the gap
of skmm's best strategy and of ``fusion="concat"`` to it (accuracy points;
relative % for MAE and MAPE).

skmm's parameters are never tuned to a dataset: estimators and encoders keep
their defaults except what is needed to read the data (column lists) and
``random_state=0`` (the estimators and the frozen random CNN, so that a run
is reproducible). The numeric blocks of the two benchmark-made synthetic
datasets (``xor_scales``, ``product_regression``) reach skmm as they are
(``"passthrough"``), in the 1e3 and 1e-3 ranges: the design asks that blocks
reach the towers at a sane scale whatever the encoder in front. The
baselines scale them, as a scikit-learn user would.

Datasets (``--only`` takes these names):

- ``reviews_recommended``: women's clothing reviews, Recommended IND,
  accuracy; ``train_test_split(test_size=0.2, random_state=0, stratify=...)``;
  ``--quick`` trains on 4,000 rows drawn from the training part (seeded),
  the test part is always whole.
- ``reviews_rating``: the same rows and split, Rating, MAE.
- ``houses``: four photos + tabular, price; every model fits log(price) and
  is scored by MAPE on the price; 5-fold ``KFold(shuffle=True,
  random_state=0)``, scored on the out-of-fold predictions; fit time per
  fold. skmm keeps its default squared error here;
  ``loss="absolute_percentage_error"`` on the price itself, and the other
  losses, are measured side by side in the user guide's houses section.
- ``spoken_digits``: audio + speaker metadata, accuracy, official split
  (takes 0-4 are the test set).
- ``mmc_clean``, ``mmc_noisy``: ``make_multimodal_classification(1500,
  noise=0.0 / 0.3, random_state=0)``, accuracy, 70/30 stratified split.
- ``xor_scales``: label = (text bit) XOR (image bit), numeric blocks at 1e3
  and 1e-3 scale; accuracy, 70/30 stratified split.
- ``product_regression``: y = 1000 * rate (1e-3 scale) * (text level) +
  category offset + noise; MAE, 70/30 split.

Datasets read from ``--data-home`` are skipped, with a note, when absent.

    python benchmarks/quality.py [--quick] [--only houses xor_scales ...]
        [--data-home ../shared/data] [--json PATH]
"""

import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _quality_data import load_spoken_digits, make_product_regression, make_xor_scales
from _utils import make_parser, row, threads_note
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    StackingClassifier,
    StackingRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_absolute_percentage_error,
)
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from skmm import (
    AudioEncoder,
    CNNImageEncoder,
    FusionClassifier,
    FusionRegressor,
    MultimodalFusion,
    TfidfTextEncoder,
)
from skmm.datasets import (
    load_houses,
    load_womens_clothing_reviews,
    make_multimodal_classification,
)

STRATEGIES = ["concat", "late", "gated", "attention", "tensor", "lowrank"]
DEFAULT_DATA_HOME = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
QUICK_REVIEWS_TRAIN = 4000
METRICS = {
    "accuracy": (accuracy_score, True),
    "MAE": (mean_absolute_error, False),
    "MAPE": (mean_absolute_percentage_error, False),
}
# Targets of the JSON rows: skmm within 1 accuracy point of the best
# baseline, or at most 3 % above its error.
ACCURACY_SLACK = 0.01
ERROR_SLACK = 1.03


@dataclass
class Modality:
    """One modality: its kind (for the baselines), columns and skmm encoder."""

    name: str
    kind: str  # "text", "image", "numeric", "category" or "audio"
    columns: list
    encoder: object  # skmm's default encoder, or "passthrough"


@dataclass
class Dataset:
    name: str
    title: str
    task: str  # "classification" or "regression"
    metric: str
    X: pd.DataFrame
    y: np.ndarray
    splits: list  # (train indices, test indices), one per fold
    modalities: list
    log_target: bool = False
    # TruncatedSVD width of the TF-IDF features fed to HistGradientBoosting,
    # which wants dense input; None keeps all terms (small vocabularies).
    hgb_text_components: int = None
    # Dataset-specific baselines, e.g. the reference figure of the data README.
    extra_baselines: list = field(default_factory=list)
    notes: list = field(default_factory=list)


# -- datasets -------------------------------------------------------------


def _holdout(y, stratify, test_size=0.3):
    idx = np.arange(len(y))
    train, test = train_test_split(
        idx, test_size=test_size, random_state=0, stratify=y if stratify else None
    )
    return [(train, test)]


def _reviews(data_home, quick, target):
    data = load_womens_clothing_reviews(data_home)
    X = data.data.reset_index(drop=True)
    recommended = data.target["Recommended IND"].to_numpy()
    idx = np.arange(len(X))
    train, test = train_test_split(
        idx, test_size=0.2, random_state=0, stratify=recommended
    )
    notes = [f"train {len(train)} rows, test {len(test)} rows (README split)"]
    if quick:
        train = np.sort(
            np.random.RandomState(0).choice(train, QUICK_REVIEWS_TRAIN, replace=False)
        )
        notes = [
            f"--quick: train on {len(train)} rows drawn from the training part, "
            f"test on all {len(test)} test rows"
        ]
    modalities = [
        Modality("text", "text", ["text"], TfidfTextEncoder()),
        Modality("numeric", "numeric", ["Age", "Positive Feedback Count"],
                 StandardScaler()),
        Modality("category", "category",
                 ["Division Name", "Department Name", "Class Name"],
                 OneHotEncoder(handle_unknown="ignore")),
    ]  # fmt: skip
    if target == "Recommended IND":
        return Dataset(
            "reviews_recommended", "Women's clothing reviews: Recommended IND",
            "classification", "accuracy", X, recommended, [(train, test)],
            modalities, hgb_text_components=100, notes=notes,
        )  # fmt: skip
    return Dataset(
        "reviews_rating", "Women's clothing reviews: Rating",
        "regression", "MAE", X, data.target["Rating"].to_numpy().astype(float),
        [(train, test)], modalities, hgb_text_components=100, notes=notes,
    )  # fmt: skip


def reviews_recommended(data_home, quick):
    return _reviews(data_home, quick, "Recommended IND")


def reviews_rating(data_home, quick):
    return _reviews(data_home, quick, "Rating")


def houses(data_home, quick):
    data = load_houses(data_home)
    X = data.data.reset_index(drop=True)
    y = data.target.to_numpy().astype(float)
    splits = list(KFold(5, shuffle=True, random_state=0).split(X))
    photos = ["frontal_image", "kitchen_image", "bedroom_image", "bathroom_image"]
    modalities = [
        Modality("numeric", "numeric", ["bedrooms", "bathrooms", "area"],
                 StandardScaler()),
        Modality("zipcode", "category", ["zipcode"],
                 OneHotEncoder(handle_unknown="ignore")),
        Modality("photos", "image", photos, CNNImageEncoder(random_state=0)),
    ]  # fmt: skip
    reference = (
        "HistGradientBoosting on the 4 tabular columns (README reference)",
        make_pipeline(
            ColumnTransformer(
                [("tabular", "passthrough", ["bedrooms", "bathrooms", "area",
                                             "zipcode"])]
            ),
            HistGradientBoostingRegressor(random_state=0),
        ),
    )  # fmt: skip
    return Dataset(
        "houses", "Houses: price from four photos + tabular", "regression",
        "MAPE", X, y, splits, modalities, log_target=True,
        extra_baselines=[reference],
        notes=["5-fold KFold(shuffle=True, random_state=0), out-of-fold "
               "predictions; fit log(price), MAPE on price; fit time per fold"],
    )  # fmt: skip


def spoken_digits(data_home, quick):
    X, y, is_test = load_spoken_digits(data_home)
    idx = np.arange(len(X))
    modalities = [
        Modality("audio", "audio", ["audio"], AudioEncoder()),
        Modality("speaker", "category", ["speaker", "gender", "accent"],
                 OneHotEncoder(handle_unknown="ignore")),
    ]  # fmt: skip
    return Dataset(
        "spoken_digits", "Spoken digits: audio + speaker metadata",
        "classification", "accuracy", X, y, [(idx[~is_test], idx[is_test])],
        modalities, notes=["official split: takes 0-4 are the test set"],
    )  # fmt: skip


def _mmc(noise):
    X, y = make_multimodal_classification(1500, noise=noise, random_state=0)
    modalities = [
        Modality("text", "text", ["text"], TfidfTextEncoder()),
        Modality("image", "image", ["image"], CNNImageEncoder(random_state=0)),
        Modality("numeric", "numeric", ["num_0", "num_1"], StandardScaler()),
        Modality("category", "category", ["category"],
                 OneHotEncoder(handle_unknown="ignore")),
    ]  # fmt: skip
    return X, y, modalities


def mmc_clean(data_home, quick):
    X, y, modalities = _mmc(0.0)
    return Dataset(
        "mmc_clean", "make_multimodal_classification(1500, noise=0.0)",
        "classification", "accuracy", X, y, _holdout(y, True), modalities,
        notes=["70/30 stratified split, random_state=0"],
    )  # fmt: skip


def mmc_noisy(data_home, quick):
    X, y, modalities = _mmc(0.3)
    return Dataset(
        "mmc_noisy", "make_multimodal_classification(1500, noise=0.3)",
        "classification", "accuracy", X, y, _holdout(y, True), modalities,
        notes=["70/30 stratified split, random_state=0; 30 % of the labels "
               "redrawn at random (best possible accuracy about 0.85)"],
    )  # fmt: skip


def xor_scales(data_home, quick):
    X, y = make_xor_scales(1500, random_state=0)
    modalities = [
        Modality("text", "text", ["text"], TfidfTextEncoder()),
        Modality("image", "image", ["image"], CNNImageEncoder(random_state=0)),
        Modality("amounts", "numeric", ["amount_0", "amount_1", "amount_2"],
                 "passthrough"),
        Modality("ratios", "numeric", ["ratio_0", "ratio_1"], "passthrough"),
    ]  # fmt: skip
    return Dataset(
        "xor_scales", "XOR of text bit and image bit, numeric at 1e3 and 1e-3",
        "classification", "accuracy", X, y, _holdout(y, True), modalities,
        notes=["70/30 stratified split; numeric blocks passed through to skmm "
               "unscaled; best possible accuracy about 0.9"],
    )  # fmt: skip


def product_regression(data_home, quick):
    X, y = make_product_regression(1500, random_state=0)
    modalities = [
        Modality("text", "text", ["text"], TfidfTextEncoder()),
        Modality("rates", "numeric", ["rate", "rate_other"], "passthrough"),
        Modality("region", "category", ["region"],
                 OneHotEncoder(handle_unknown="ignore")),
    ]  # fmt: skip
    return Dataset(
        "product_regression", "y = 1000 * rate (1e-3) * text level + region",
        "regression", "MAE", X, y, _holdout(y, False), modalities,
        notes=["70/30 split; the rate block passed through to skmm unscaled; "
               "noise MAE (floor) about 0.24"],
    )  # fmt: skip


DATASETS = {
    "reviews_recommended": (reviews_recommended, True),
    "reviews_rating": (reviews_rating, True),
    "houses": (houses, True),
    "spoken_digits": (spoken_digits, True),
    "mmc_clean": (mmc_clean, False),
    "mmc_noisy": (mmc_noisy, False),
    "xor_scales": (xor_scales, False),
    "product_regression": (product_regression, False),
}


# -- models ---------------------------------------------------------------


def _text_column(X):
    """The single text column of a DataFrame as strings, missing as ''."""
    return X.iloc[:, 0].fillna("").astype(str)


def _tfidf_vectorizer():
    return make_pipeline(
        FunctionTransformer(_text_column),
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
    )


def _linear(task, kind):
    if task == "regression":
        return Ridge()
    # C=4 for the text: the reference figure of the reviews' README.
    return LogisticRegression(C=4.0 if kind == "text" else 1.0, max_iter=2000)


def _baseline_encoder(modality):
    """A scikit-learn user's encoder of the modality for a linear model."""
    if modality.kind == "text":
        return _tfidf_vectorizer()
    if modality.kind == "image":
        return make_pipeline(CNNImageEncoder(random_state=0), StandardScaler())
    if modality.kind == "audio":
        return make_pipeline(AudioEncoder(), StandardScaler())
    if modality.kind == "category":
        return OneHotEncoder(handle_unknown="ignore")
    return StandardScaler()


def _hgb_encoder(modality, dataset):
    """Dense features of the modality for HistGradientBoosting."""
    if modality.kind == "text":
        return TfidfTextEncoder(
            n_components=dataset.hgb_text_components, random_state=0
        )
    if modality.kind == "image":
        return CNNImageEncoder(random_state=0)
    if modality.kind == "audio":
        return AudioEncoder()
    if modality.kind == "category":
        return OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    return "passthrough"


def make_models(dataset):
    """``[(name, group, estimator)]``: the models compared on ``dataset``.

    ``group`` is "skmm" (a fusion strategy), "unimodal", "baseline" or
    "dummy".
    """
    classify = dataset.task == "classification"
    Estimator = FusionClassifier if classify else FusionRegressor
    skmm_modalities = [(m.name, m.encoder, m.columns) for m in dataset.modalities]
    models = [
        (
            f"skmm {strategy}",
            "skmm",
            make_pipeline(
                MultimodalFusion(skmm_modalities),
                Estimator(fusion=strategy, random_state=0),
            ),
        )
        for strategy in STRATEGIES
    ]
    models += [
        (
            f"skmm {m.name} only",
            "unimodal",
            make_pipeline(
                MultimodalFusion([(m.name, m.encoder, m.columns)]),
                Estimator(random_state=0),
            ),
        )
        for m in dataset.modalities
    ]
    text = [m for m in dataset.modalities if m.kind == "text"]
    if text:
        models.append(
            (
                "TF-IDF + " + ("LogisticRegression" if classify else "Ridge"),
                "baseline",
                make_pipeline(
                    ColumnTransformer([("text", _tfidf_vectorizer(), text[0].columns)]),
                    _linear(dataset.task, "text"),
                ),
            )
        )
    HGB = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
    models.append(
        (
            "HistGradientBoosting on flat features",
            "baseline",
            make_pipeline(
                MultimodalFusion(
                    [
                        (m.name, _hgb_encoder(m, dataset), m.columns)
                        for m in dataset.modalities
                    ],
                    output="flat",
                    sparse_threshold=0.0,
                ),
                HGB(random_state=0),
            ),
        )
    )
    per_modality = [
        (
            m.name,
            make_pipeline(
                ColumnTransformer([(m.name, _baseline_encoder(m), m.columns)]),
                _linear(dataset.task, m.kind),
            ),
        )
        for m in dataset.modalities
    ]
    stacking = (
        StackingClassifier(per_modality, final_estimator=LogisticRegression())
        if classify
        else StackingRegressor(per_modality)
    )
    models.append(("stacking of per-modality linear models", "baseline", stacking))
    models += [(name, "baseline", model) for name, model in dataset.extra_baselines]
    return models


# -- evaluation -----------------------------------------------------------


def _dummy_predictions(dataset):
    """Predictions of the majority class / the median, fold by fold."""
    y_fit = np.log(dataset.y) if dataset.log_target else dataset.y
    pred = np.empty(len(dataset.y), dtype=y_fit.dtype)
    for train, test in dataset.splits:
        if dataset.task == "classification":
            values, counts = np.unique(y_fit[train], return_counts=True)
            pred[test] = values[np.argmax(counts)]
        else:
            pred[test] = np.median(y_fit[train])
    return pred


def evaluate(estimator, dataset):
    """Fit on each training part, predict its test part.

    Returns ``(score, mean fit seconds)``; the score is computed on the
    predictions of all test parts together.
    """
    y_fit = np.log(dataset.y) if dataset.log_target else dataset.y
    tested = np.concatenate([test for _, test in dataset.splits])
    pred = np.empty(len(dataset.y), dtype=dataset.y.dtype)
    fit_times = []
    for train, test in dataset.splits:
        model = clone(estimator)
        X_train = dataset.X.iloc[train]
        start = time.perf_counter()
        model.fit(X_train, y_fit[train])
        fit_times.append(time.perf_counter() - start)
        pred[test] = model.predict(dataset.X.iloc[test])
    return _score(dataset, pred, tested), float(np.mean(fit_times))


def _score(dataset, pred, tested):
    if dataset.log_target:
        pred = np.exp(pred)
    pred = pred[tested]
    if dataset.task == "regression" and not np.all(np.isfinite(pred)):
        raise ValueError("non-finite predictions")
    metric, _ = METRICS[dataset.metric]
    return float(metric(dataset.y[tested], pred))


def run_dataset(dataset, log):
    """Fit and score every model; return a list of result dicts."""
    results = []
    tested = np.concatenate([test for _, test in dataset.splits])
    dummy = _score(dataset, _dummy_predictions(dataset), tested)
    results.append(
        dict(
            model="majority class" if dataset.task == "classification" else "median",
            group="dummy", score=dummy, fit_time=0.0, error=None,
        )
    )  # fmt: skip
    for name, group, estimator in make_models(dataset):
        log(f"  {dataset.name}: {name} ...")
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                score, fit_time = evaluate(estimator, dataset)
            error = None
        except Exception as exc:  # a failing model is a result, not a crash
            score, fit_time, caught = float("nan"), float("nan"), []
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            log(traceback.format_exc())
        seen = sorted(
            {f"{w.category.__name__}: {str(w.message)[:100]}" for w in caught}
        )
        for message in seen:
            log(f"    warning: {message}")
        log(
            f"    {dataset.metric} {score:.4f}, fit {fit_time:.1f} s "
            f"({time.perf_counter() - start:.0f} s with predict)"
            + (f", ERROR {error}" if error else "")
        )
        results.append(
            dict(model=name, group=group, score=score, fit_time=fit_time, error=error)
        )
    return results


# -- reporting ------------------------------------------------------------


def _better(metric):
    return METRICS[metric][1]


def _best(results, groups, metric):
    candidates = [
        r for r in results if r["group"] in groups and np.isfinite(r["score"])
    ]
    if not candidates:
        return None
    key = (lambda r: r["score"]) if _better(metric) else (lambda r: -r["score"])
    return max(candidates, key=key)


def _gap(score, reference, metric):
    """skmm - baseline: accuracy points, or relative % of an error metric."""
    if reference is None or not np.isfinite(score):
        return float("nan")
    if _better(metric):
        return 100 * (score - reference["score"])
    return 100 * (score / reference["score"] - 1)


def _format_gap(gap, metric):
    if not np.isfinite(gap):
        return ""
    return f"{gap:+.1f} pts" if _better(metric) else f"{gap:+.1f} %"


def _format_score(score, metric):
    if not np.isfinite(score):
        return "failed"
    return f"{100 * score:.1f} %" if metric == "MAPE" else f"{score:.4f}"


def _table(header, lines):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def detail_table(all_results):
    lines = []
    for dataset, results in all_results:
        metric = dataset.metric
        baseline = _best(results, {"baseline"}, metric)
        best_skmm = _best(results, {"skmm"}, metric)
        best_uni = _best(results, {"unimodal"}, metric)
        for r in results:
            if r["group"] == "unimodal" and r is not best_uni:
                continue
            name = r["model"]
            if r["group"] == "unimodal":
                name = f"skmm best unimodal ({name[5:-5]})"
            marks = []
            if r is baseline:
                marks.append("best baseline")
            if r is best_skmm:
                marks.append("best skmm")
            gap = (
                _format_gap(_gap(r["score"], baseline, metric), metric)
                if r["group"] in {"skmm", "unimodal"}
                else ""
            )
            lines.append(
                (
                    dataset.name,
                    name,
                    metric,
                    _format_score(r["score"], metric),
                    "" if r["group"] == "dummy" else f"{r['fit_time']:.1f}",
                    gap,
                    ", ".join(marks) + (r["error"] or ""),
                )
            )
    return _table(
        ("dataset", "model", "metric", "score", "fit s", "gap", "note"), lines
    )


def summary_table(all_results):
    lines = []
    for dataset, results in all_results:
        metric = dataset.metric
        baseline = _best(results, {"baseline"}, metric)
        best_skmm = _best(results, {"skmm"}, metric)
        concat = next(r for r in results if r["model"] == "skmm concat")
        best_uni = _best(results, {"unimodal"}, metric)
        dummy = next(r for r in results if r["group"] == "dummy")
        lines.append(
            (
                dataset.name,
                metric,
                _format_score(dummy["score"], metric),
                f"{baseline['model']} {_format_score(baseline['score'], metric)}"
                if baseline else "-",
                f"{best_skmm['model'][5:]} {_format_score(best_skmm['score'], metric)}"
                if best_skmm else "-",
                _format_gap(_gap(best_skmm["score"], baseline, metric), metric)
                if best_skmm else "",
                _format_score(concat["score"], metric),
                _format_gap(_gap(concat["score"], baseline, metric), metric),
                f"{best_uni['model'][5:-5]} {_format_score(best_uni['score'], metric)}"
                if best_uni else "-",
            )
        )  # fmt: skip
    return _table(
        ("dataset", "metric", "dummy", "best baseline", "best skmm strategy", "gap",
         "skmm concat", "gap", "best unimodal"),
        lines,
    )  # fmt: skip


def json_rows(all_results):
    """run_all.py-style rows, one per skmm model, against the best baseline."""
    rows = []
    for dataset, results in all_results:
        metric = dataset.metric
        baseline = _best(results, {"baseline"}, metric)
        if baseline is None:
            continue
        best_uni = _best(results, {"unimodal"}, metric)
        for r in results:
            if r["group"] not in {"skmm", "unimodal"}:
                continue
            if r["group"] == "unimodal" and r is not best_uni:
                continue
            reference = baseline["score"]
            if _better(metric):
                target = f">= best baseline - {100 * ACCURACY_SLACK:.0f} pt"
                met = r["score"] >= reference - ACCURACY_SLACK
            else:
                target = f"<= {ERROR_SLACK} x best baseline"
                met = r["score"] <= ERROR_SLACK * reference
            item = row(
                f"quality {dataset.name}: {r['model']}",
                r["score"],
                reference,
                r["score"] / reference if reference else float("nan"),
                target,
                bool(met),
                metric,
            )
            item.update(
                dataset=dataset.name,
                model=r["model"],
                fit_time_s=r["fit_time"],
                baseline_model=baseline["model"],
                error=r["error"],
            )
            rows.append(item)
    return rows


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.set_defaults(threads=1)
    parser.add_argument(
        "--data-home",
        type=Path,
        default=DEFAULT_DATA_HOME,
        help="folder of the real datasets (default: ../shared/data from the "
        "repository root)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(DATASETS), default=list(DATASETS)
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"train the reviews on {QUICK_REVIEWS_TRAIN} rows of their training part",
    )
    args = parser.parse_args()  # --repeats and --seed are accepted, unused
    torch.set_num_threads(args.threads)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    start = time.perf_counter()
    all_results, skipped = [], []
    for name in args.only:
        load, needs_data = DATASETS[name]
        try:
            dataset = load(args.data_home, args.quick)
        except FileNotFoundError as exc:
            if not needs_data:
                raise
            skipped.append(f"{name}: skipped, data not found ({exc})")
            log(skipped[-1])
            continue
        log(f"{name}: {len(dataset.X)} rows; {'; '.join(dataset.notes)}")
        all_results.append((dataset, run_dataset(dataset, log)))
    total = time.perf_counter() - start

    print(
        f"skmm quality: defaults (random_state=0) vs scikit-learn baselines"
        f"{', --quick' if args.quick else ''}; {threads_note()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    for dataset, _ in all_results:
        print(f"- {dataset.name}: {dataset.title}; {'; '.join(dataset.notes)}")
    for note in skipped:
        print(f"- {note}")
    print(
        "fit s: wall-clock of fit, encoders included (mean per fold). gap: skmm - "
        "best baseline, in accuracy points (negative: skmm worse), or in % of "
        "the baseline's MAE/MAPE (positive: skmm worse)."
    )
    print()
    if all_results:
        print(detail_table(all_results))
        print()
        print(summary_table(all_results))
    print(f"\ntotal {total / 60:.1f} min", flush=True)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(json_rows(all_results), f, indent=1)


if __name__ == "__main__":
    main()

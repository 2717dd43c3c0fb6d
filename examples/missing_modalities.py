"""Missing modalities: modality dropout, robustness scores and importance.

Rows with an empty text or a missing image train and predict: each modality
has a learned "missing" embedding. ``modality_dropout`` drops whole
modalities at random during training so that the model does not lean on one
of them; ``modality_robustness_scorer`` measures the score when a modality is
removed, and ``modality_importance`` how much each modality matters.

Run with::

    python examples/missing_modalities.py [--plot importance.png]
"""

import argparse

from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.inspection import ModalityImportanceDisplay, modality_importance
from skmm.metrics import modality_robustness_scorer


def make_model(modality_dropout):
    fusion = MultimodalFusion(
        [
            ("text", TfidfTextEncoder(n_components=8, random_state=0), ["text"]),
            ("image", CNNImageEncoder(image_size=16, random_state=0), ["image"]),
            ("tabular", StandardScaler(), ["num_0", "num_1"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
        ]
    )
    return make_pipeline(
        fusion,
        FusionClassifier(
            fusion="gated",
            hidden_dim=64,
            dropout=0.0,
            max_epochs=60,
            lr=3e-3,
            modality_dropout=modality_dropout,
            device="auto",
            random_state=0,
        ),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default=None, help="save the importance plot")
    args = parser.parse_args()

    # Additive signal in every modality, 20 % of texts and images missing.
    X, y = make_multimodal_classification(
        n_samples=600,
        interaction=False,
        missing_text=0.2,
        missing_image=0.2,
        random_state=0,
    )
    print(f"{'modality_dropout':<18}{'all':>8}{'no text':>10}{'no image':>10}")
    for p in (0.0, 0.3):
        model = make_model(p)
        scores = [
            cross_val_score(model, X, y, cv=3, scoring=scoring).mean()
            for scoring in (
                None,
                modality_robustness_scorer("text"),
                modality_robustness_scorer("image"),
            )
        ]
        print(f"{p:<18}" + "".join(f"{s:>10.3f}" for s in scores))

    model = make_model(0.3).fit(X[:450], y[:450])
    result = modality_importance(model, X[450:], y[450:], n_repeats=5, random_state=0)
    print("\nmodality importance (accuracy drop when shuffled):")
    print(result.importances_mean.round(3).to_string())
    print("\nmean GMU gate per modality:")
    print(result.gate_mean.round(3).to_string())
    if args.plot:
        display = ModalityImportanceDisplay.from_result(result)
        display.figure_.savefig(args.plot, bbox_inches="tight")
        print(f"plot saved to {args.plot}")


if __name__ == "__main__":
    main()

"""Train the image CNN end to end inside a fusion network.

``CNNImageEncoder(output="features")`` (the default) is a frozen encoder: it
returns pooled CNN features, and the fusion network never changes the CNN.
With ``output="pixels"`` the encoder returns the standardised pixels instead,
and its ``BlockSpec`` hands a copy of its CNN to the fusion estimator as the
image tower: the convolutions are then trained jointly with the other towers,
the fusion layer and the head, by the same loss.

This example fits both variants on the same data and checks that the tower's
first convolution changed during ``fit`` (it starts as a copy of the
encoder's ``cnn_``, which itself stays as it was).

Run it with::

    python examples/trainable_image_tower.py
"""

import argparse

import torch
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification


def make_model(image_output, max_epochs):
    return make_pipeline(
        MultimodalFusion(
            [
                ("text", TfidfTextEncoder(n_components=8, random_state=0), ["text"]),
                # max_epochs=0: no training on y alone before the fusion
                # network (the label needs the text as well as the image).
                (
                    "image",
                    CNNImageEncoder(
                        image_size=16,
                        output=image_output,
                        max_epochs=0,
                        random_state=0,
                    ),
                    ["image"],
                ),
                ("tabular", StandardScaler(), ["num_0", "num_1"]),
                ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
            ]
        ),
        FusionClassifier(
            hidden_dim=64,
            dropout=0.0,
            max_epochs=max_epochs,
            lr=3e-3,
            device="auto",
            random_state=0,
        ),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--max-epochs", type=int, default=40)
    args = parser.parse_args(argv)

    X, y = make_multimodal_classification(n_samples=args.n_samples, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )

    for image_output in ["features", "pixels"]:
        model = make_model(image_output, args.max_epochs).fit(X_train, y_train)
        blocks = model[0].transform(X_test.iloc[:2])
        print(f"output={image_output!r}: {blocks!r}")
        print(f"  test accuracy {model.score(X_test, y_test):.3f}")

    encoder = model[0].named_transformers_["image"]
    tower = model[-1].net_.module_.towers["image"]
    before = encoder.cnn_.features[0].weight.detach()
    after = tower.tower.features[0].weight.detach().cpu()
    change = (after - before).norm() / before.norm()
    print(
        f"\nImage tower: {type(tower.tower).__name__}, first conv {tuple(after.shape)}"
    )
    print(f"  trainable parameters: {all(p.requires_grad for p in tower.parameters())}")
    print(f"  relative change of the first conv weights during fit: {change:.3f}")
    print(f"  weights changed: {not torch.equal(before, after)}")


if __name__ == "__main__":
    main()

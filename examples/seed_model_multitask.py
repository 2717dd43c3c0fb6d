"""The seed model: GRU text tower + CNN image tower, trained jointly, two heads.

The model skmm grew from, written with skmm's parts:

- text: ``SequenceTextEncoder`` (padded token ids) -> Embedding -> GRU;
- image: ``CNNImageEncoder(output="pixels")`` -> Conv2d(3x3, ReLU) blocks ->
  global average pooling, as a trainable tower;
- ``fusion="concat"``: ``h = ReLU(W [v_t; v_i; ...] + b)``;
- ``FusionMultiTask``: a softmax classification head and a linear regression
  head on ``h``; the loss is cross-entropy + mean squared error.

Everything is trained end to end: the example checks that the GRU and the
first convolution have moved away from their initial weights (copied by a
skorch callback when training begins).

The data is ``make_multimodal_regression``: the regression target is ``y``,
the classification target whether ``y`` is above its median.

Run it with::

    python examples/seed_model_multitask.py
"""

import argparse
import copy

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from skmm import CNNImageEncoder, FusionMultiTask, MultimodalFusion, SequenceTextEncoder
from skmm.datasets import make_multimodal_regression


class InitialWeights(Callback):
    """Keep a copy of the network's weights as training begins."""

    def on_train_begin(self, net, **kwargs):
        self.state_ = copy.deepcopy(net.module_.state_dict())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--max-epochs", type=int, default=40)
    args = parser.parse_args(argv)

    X, y = make_multimodal_regression(n_samples=args.n_samples, random_state=0)
    Y = pd.DataFrame({"above_median": y > np.median(y), "value": y})
    X_train, X_test, Y_train, Y_test = train_test_split(
        X, Y, test_size=0.3, random_state=0
    )

    initial = InitialWeights()
    model = make_pipeline(
        MultimodalFusion(
            [
                ("text", SequenceTextEncoder(max_length=24), ["text"]),
                (
                    "image",
                    CNNImageEncoder(
                        image_size=16, output="pixels", max_epochs=0, random_state=0
                    ),
                    ["image"],
                ),
                ("tabular", StandardScaler(), ["num_0", "num_1"]),
            ]
        ),
        FusionMultiTask(
            tasks={"above_median": "classification", "value": "regression"},
            fusion="concat",
            hidden_dim=32,
            dropout=0.0,
            max_epochs=args.max_epochs,
            lr=3e-3,
            callbacks=[("initial", initial)],
            device="auto",
            random_state=0,
        ),
    )
    model.fit(X_train, Y_train)

    blocks = model[0].transform(X_test.iloc[:2])
    print(f"Modality blocks: {blocks!r}")
    print(f"Predictions:\n{model.predict(X_test.iloc[:3])}")
    proba = model.predict_proba(X_test.iloc[:3])["above_median"]
    print(f"predict_proba()['above_median']:\n{np.round(proba, 3)}")
    Y_pred = model.predict(X_test)
    accuracy = accuracy_score(Y_test["above_median"], Y_pred["above_median"])
    r2 = r2_score(Y_test["value"], Y_pred["value"])
    print(
        f"Test rows: accuracy {accuracy:.3f}, R^2 {r2:.3f}; "
        f"score() (their mean) {model.score(X_test, Y_test):.3f}"
    )

    towers = model[-1].net_.module_.towers
    for label, name, weight in [
        ("GRU input weights", "text", "gru.weight_ih_l0"),
        ("first convolution", "image", "tower.features.0.weight"),
    ]:
        before = initial.state_[f"towers.{name}.{weight}"].cpu()
        after = towers[name].get_parameter(weight).detach().cpu()
        change = ((after - before).norm() / before.norm()).item()
        print(
            f"{label}: relative change during fit {change:.3f} "
            f"(changed: {not torch.equal(before, after)})"
        )


if __name__ == "__main__":
    main()

"""From a CSV file to a model in one call: the houses, read as they are.

``houses.csv`` lists four photos per house by paths relative to its own
folder. ``make_multimodal_pipeline`` infers each column's modality (the
photos, the numbers, the identifier to leave out), gives each modality a
default encoder, reads the photos from ``base_dir`` and chooses a
``FusionRegressor`` for the price. The result is an ordinary scikit-learn
pipeline: it is printed, one parameter is changed, and it is fitted on the
log price and scored on held-out houses beside the tabular columns alone.

The same from a shell::

    skmm fit houses/houses.csv --target price -o houses.joblib

Run with::

    python examples/houses_from_csv.py --data-home ../shared/data

and, for a quick check that it runs::

    python examples/houses_from_csv.py --data-home ../shared/data --max-epochs 5
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_percentage_error
from sklearn.model_selection import train_test_split

from skmm import make_multimodal_pipeline
from skmm.compose import infer_column_types


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", required=True, type=Path)
    parser.add_argument("--max-epochs", type=int, default=150)
    args = parser.parse_args()

    folder = args.data_home / "houses"
    df = pd.read_csv(folder / "houses.csv")
    print(infer_column_types(df).to_string(), end="\n\n")
    train, test = train_test_split(df, test_size=0.2, random_state=0)

    scores = {}
    for label, image in [("tabular only", None), ("tabular + photos", "auto")]:
        model = make_multimodal_pipeline(
            train,
            target="price",
            image=image,
            categorical=["zipcode"],
            base_dir=folder,
            random_state=0,
        )
        model.set_params(fusionregressor__max_epochs=args.max_epochs)
        if image is not None:
            print(model, end="\n\n")
        model.fit(train, np.log(train["price"]))
        price = np.exp(model.predict(test))
        scores[label] = mean_absolute_percentage_error(test["price"], price)

    for label, mape in scores.items():
        print(f"{label:<18} MAPE on {len(test)} held-out houses: {100 * mape:.1f} %")


if __name__ == "__main__":
    main()

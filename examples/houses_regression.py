"""House prices from four photos and four attributes, with FusionRegressor.

Real data: the houses dataset of Ahmed & Moustafa, "House price estimation
from visual and textual features" (2016), read from a local copy under
``--data-home`` (skmm never downloads data). Each house has ``bedrooms``,
``bathrooms``, ``area``, ``zipcode`` and four photos (front, kitchen, bedroom,
bathroom).

The four image columns go through one shared ``CNNImageEncoder``: every column
is encoded by the same network and the features are concatenated per column.
Inside the pipeline the encoder receives ``y`` (the log price) and, with
``max_epochs > 0``, trains its CNN on it before the fusion network is fitted;
each fold does this on its own training rows only. The tabular columns are
standardised and the zipcode is one-hot encoded.

The target is the log price; the MAPE is computed on the price, from
out-of-fold predictions of a ``KFold(shuffle=True, random_state=0)``, for the
tabular columns alone and for tabular + photos.

Run it with::

    python examples/houses_regression.py --data-home ../shared/data

and, for a quick check that it runs::

    python examples/houses_regression.py --data-home ../shared/data \\
        --n-splits 2 --max-epochs 5 --cnn-epochs 1
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import mean_absolute_percentage_error
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionRegressor, MultimodalFusion
from skmm.datasets import load_houses

IMAGE_COLUMNS = ["frontal_image", "kitchen_image", "bedroom_image", "bathroom_image"]


def make_models(args):
    tabular = [
        ("tabular", StandardScaler(), ["bedrooms", "bathrooms", "area"]),
        ("zipcode", OneHotEncoder(handle_unknown="ignore"), ["zipcode"]),
    ]
    photos = (
        "photos",
        CNNImageEncoder(
            image_size=args.image_size,
            max_epochs=args.cnn_epochs,
            n_jobs=args.n_jobs,
            random_state=0,
        ),
        IMAGE_COLUMNS,
    )
    regressor = FusionRegressor(
        fusion=args.fusion,
        hidden_dim=32,
        dropout=0.1,
        max_epochs=args.max_epochs,
        lr=3e-3,
        weight_decay=1e-4,
        device="auto",
        random_state=0,
    )
    return {
        "tabular only": make_pipeline(MultimodalFusion(tabular), clone(regressor)),
        "tabular + photos": make_pipeline(
            MultimodalFusion([*tabular, photos]), clone(regressor)
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-home",
        type=Path,
        required=True,
        help="folder that contains houses/houses.csv and houses/images/",
    )
    parser.add_argument("--n-splits", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument(
        "--cnn-epochs",
        type=int,
        default=15,
        help="epochs of the image encoder on the log price (0: frozen random CNN)",
    )
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--fusion", default="concat")
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="processes decoding the photos"
    )
    args = parser.parse_args(argv)

    if not (args.data_home / "houses" / "houses.csv").is_file():
        print(
            f"No houses/houses.csv under {args.data_home}: pass as --data-home the "
            "folder that holds the houses dataset. Nothing to do."
        )
        return 0

    data = load_houses(args.data_home)
    X, price = data.data, data.target.to_numpy()
    y = np.log(price)
    print(f"{len(X)} houses; {args.n_splits}-fold CV, log price, fusion={args.fusion}")

    cv = KFold(args.n_splits, shuffle=True, random_state=0)
    for name, model in make_models(args).items():
        start = time.perf_counter()
        pred = np.empty_like(price)
        for fold, (train, test) in enumerate(cv.split(X)):
            fitted = clone(model).fit(X.iloc[train], y[train])
            pred[test] = np.exp(fitted.predict(X.iloc[test]))
            fold_mape = mean_absolute_percentage_error(price[test], pred[test])
            print(f"  {name}, fold {fold + 1}: MAPE {100 * fold_mape:.1f} %")
        mape = mean_absolute_percentage_error(price, pred)
        elapsed = time.perf_counter() - start
        print(f"{name}: MAPE {100 * mape:.1f} % (out of fold, {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One process of the data-parallel test: ``torchrun ... _data_parallel_worker.py OUT``.

Fits the model of ``make_model(data_parallel=True)`` on ``make_data()``,
continues it with ``warm_start``, and writes this process's weights, history
and predictions to ``OUT/rank{RANK}.npz``.
"""

import sys

import numpy as np
import torch.distributed as dist

from skmm import FusionClassifier


def make_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1000, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    return X, y


def make_model(data_parallel):
    # An odd batch size deals the processes shares of unequal sizes; early
    # stopping brings a validation split, a best epoch and restored weights.
    return FusionClassifier(
        batch_size=63,
        max_epochs=4,
        dropout=0.0,
        early_stopping=True,
        device="cpu",
        data_parallel=data_parallel,
        random_state=0,
    )


def fit_and_continue(model, X, y):
    model.fit(X, y)
    first = model.predict_proba(X)
    model.set_params(warm_start=True, max_epochs=2).fit(X, y)
    return first, model.predict_proba(X)


def summary(model, first, second):
    out = {
        f"w_{name}": value.numpy()
        for name, value in model.net_.module_.state_dict().items()
    }
    history = model.net_.history
    out["train_loss"] = np.array(history[:, "train_loss"])
    out["valid_loss"] = np.array(history[:, "valid_loss"])
    out["first"], out["second"] = first, second
    return out


def main(out_dir):
    X, y = make_data()
    model = make_model(data_parallel=True)
    first, second = fit_and_continue(model, X, y)
    np.savez(f"{out_dir}/rank{dist.get_rank()}.npz", **summary(model, first, second))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

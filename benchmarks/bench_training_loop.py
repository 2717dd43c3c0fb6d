"""FusionClassifier.fit against a hand-written PyTorch loop on the same network.

Both sides train the network FusionClassifier builds for a plain 2-D float
array (tower ``Linear(n_features, hidden) -> ReLU``, concat fusion
``Linear(hidden, hidden) -> ReLU``, head ``Linear(hidden, n_classes)``) with
Adam, on the same data, for the same epochs and batch size, on the CPU. The
hand loop converts the arrays to tensors once and gathers each batch with one
``index_select``, the fastest plain PyTorch way to feed a small network.

It also starts from the same weights and draws the same batches as the
estimator (same seed), so the two trained networks must match: the script
prints their largest parameter difference as a check that both did the same
work.

Target: skmm's time / hand loop's time <= 1.15 at every batch size.

    python benchmarks/bench_training_loop.py [--batch-sizes 32 256] [--repeats 5]
"""

import numpy as np
import torch
import torch.nn.functional as F
from _utils import alternate, finish, make_parser, median, row, threads_note, timed
from sklearn.utils import check_random_state

from skmm import FusionClassifier, ModalityBlocks
from skmm.nn._fusion_network import FusionNetwork

TARGET = 1.15


def make_data(n_rows, n_features, n_classes, seed):
    """Gaussian features and labels from a noisy linear model."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_rows, n_features)).astype(np.float32)
    scores = X @ rng.standard_normal((n_features, n_classes)) / np.sqrt(n_features)
    y = np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)
    return X, y


def fit_skmm(X, y, args, batch_size, epochs):
    clf = FusionClassifier(
        hidden_dim=args.hidden_dim,
        dropout=0.0,
        max_epochs=epochs,
        batch_size=batch_size,
        lr=args.lr,
        optimizer="adam",
        early_stopping=False,
        scale_inputs=False,
        device="cpu",
        verbose=0,
        random_state=args.seed,
    )
    return clf.fit(X, y).net_.module_


def fit_by_hand(X, y, args, batch_size, epochs):
    # The seed FusionClassifier derives from random_state, so that both sides
    # start from the same weights and see the same batches.
    seed = int(check_random_state(args.seed).randint(2**31 - 1))
    n_classes = len(np.unique(y))
    X_t = torch.from_numpy(X)
    y_t = torch.from_numpy(np.searchsorted(np.unique(y), y).astype(np.int64))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = FusionNetwork(
            ModalityBlocks({"X": X}).specs,
            {"y": n_classes},
            hidden_dim=args.hidden_dim,
            dropout=0.0,
        )
    optimizer = torch.optim.Adam(module.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(seed)
    module.train()
    n = len(X_t)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            logits = module(X=X_t.index_select(0, idx))["y"]
            loss = F.cross_entropy(logits, y_t.index_select(0, idx))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return module


def max_param_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=20_000)
    parser.add_argument("--n-features", type=int, default=256)
    parser.add_argument("--n-classes", type=int, default=5)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    repeats = args.repeats or 5
    torch.set_num_threads(args.threads)

    X, y = make_data(args.n_rows, args.n_features, args.n_classes, args.seed)
    print(
        f"{args.n_rows} rows x {args.n_features} features, {args.n_classes} "
        f"classes, hidden_dim={args.hidden_dim}, {args.epochs} epochs, Adam "
        f"lr={args.lr}, {threads_note()}, {repeats} repeats"
    )
    # One short run of each first: the first optimizer built in a process
    # imports a large part of torch.
    for fit in (fit_skmm, fit_by_hand):
        timed(lambda fit=fit: fit(X[:2048], y[:2048], args, 256, 1))

    rows = []
    for batch_size in args.batch_sizes:
        times, modules = alternate(
            {
                "skmm": lambda bs=batch_size: fit_skmm(X, y, args, bs, args.epochs),
                "hand": lambda bs=batch_size: fit_by_hand(X, y, args, bs, args.epochs),
            },
            repeats,
        )
        t_skmm, t_hand = median(times["skmm"]), median(times["hand"])
        ratio = t_skmm / t_hand
        paired = median([a / b for a, b in zip(times["skmm"], times["hand"])])
        diff = max_param_diff(modules["skmm"], modules["hand"])
        print(
            f"batch_size={batch_size}: skmm {t_skmm:.3f} s, hand loop "
            f"{t_hand:.3f} s (medians), ratio {ratio:.3f} (paired runs: "
            f"{paired:.3f}); largest weight difference {diff:.2e}",
            flush=True,
        )
        rows.append(
            row(
                f"training loop, batch_size={batch_size}",
                t_skmm,
                t_hand,
                ratio,
                f"ratio <= {TARGET}",
                ratio <= TARGET,
                "s",
            )
        )
    finish(rows, args.json)


if __name__ == "__main__":
    main()

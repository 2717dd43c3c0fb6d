"""One-row predict latency of a fitted text + numbers fusion pipeline.

The pipeline is ``make_pipeline(MultimodalFusion([("text", TfidfTextEncoder(),
["text"]), ("num", StandardScaler(), ["num_0", "num_1"])]),
FusionClassifier(...))``, fitted on a synthetic table. Each call predicts a
single row given as a one-row DataFrame, as an online service would. The same
pipeline with scikit-learn's LogisticRegression in place of FusionClassifier
is timed side by side, call for call, as a reference.

Target: median latency of the FusionClassifier pipeline <= 5 ms.

    python benchmarks/bench_latency.py [--n-calls 200]
"""

import time

import numpy as np
import torch
from _utils import finish, make_parser, median, percentile, row, threads_note
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmm import FusionClassifier, MultimodalFusion
from skmm.datasets import make_multimodal_classification
from skmm.encoders._text import TfidfTextEncoder

TARGET_MS = 5.0
COLUMNS = ["text", "num_0", "num_1"]


def make_fusion():
    return MultimodalFusion(
        [
            ("text", TfidfTextEncoder(), ["text"]),
            ("num", StandardScaler(), ["num_0", "num_1"]),
        ]
    )


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=2000, help="training rows")
    parser.add_argument("--n-calls", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    X, y = make_multimodal_classification(n_samples=args.n_rows, random_state=0)
    X = X[COLUMNS]
    pipelines = {
        "skmm": make_pipeline(
            make_fusion(),
            FusionClassifier(max_epochs=args.epochs, device="cpu", random_state=0),
        ),
        "logreg": make_pipeline(make_fusion(), LogisticRegression(max_iter=1000)),
    }
    for pipe in pipelines.values():
        pipe.fit(X, y)

    rng = np.random.RandomState(args.seed)
    rows_to_predict = [X.iloc[[i]] for i in rng.randint(len(X), size=args.n_calls)]
    latencies = {name: [] for name in pipelines}
    for x in rows_to_predict[:10]:
        for pipe in pipelines.values():
            pipe.predict(x)
    for i, x in enumerate(rows_to_predict):
        for name in list(pipelines) if i % 2 == 0 else reversed(list(pipelines)):
            start = time.perf_counter()
            pipelines[name].predict(x)
            latencies[name].append((time.perf_counter() - start) * 1e3)

    stats = {name: (median(ms), percentile(ms, 95)) for name, ms in latencies.items()}
    print(
        f"{args.n_calls} one-row predict calls, {threads_note()}: "
        f"FusionClassifier pipeline median {stats['skmm'][0]:.2f} ms, p95 "
        f"{stats['skmm'][1]:.2f} ms; LogisticRegression pipeline median "
        f"{stats['logreg'][0]:.2f} ms, p95 {stats['logreg'][1]:.2f} ms",
        flush=True,
    )
    rows = [
        row(
            "latency: one-row predict (vs LogisticRegression)",
            stats["skmm"][0],
            stats["logreg"][0],
            stats["skmm"][0] / stats["logreg"][0],
            f"skmm <= {TARGET_MS:g} ms",
            stats["skmm"][0] <= TARGET_MS,
            "ms",
        )
    ]
    finish(rows, args.json)


if __name__ == "__main__":
    main()

"""Fit time and peak memory of a text + tabular FusionClassifier at 1k to 100k rows.

A ``MultimodalFusion`` of ``TfidfTextEncoder`` (text) and ``StandardScaler``
(two numeric columns) feeds a ``FusionClassifier`` with its defaults (early
stopping on from 1,000 rows) but ``max_epochs``, on
``make_multimodal_classification`` data of each size; beside it,
``LogisticRegression`` is fitted on the same TF-IDF and numbers
(``output="flat"``), the encoding timed apart. Each size runs in a fresh
Python process, which reports its peak resident set size (``ru_maxrss``) and
the resident size after a warm-up fit on 100 rows, so the growth is what
the encoders and the fits at that size added.

Time is compared per row and epoch: the fit time divided by rows x epochs
run. ``--max-epochs`` (default 10) caps the epochs of every size alike, and
the output says so: uncapped (``--max-epochs 0``, the estimator's default
of at most 100 epochs, early stopping deciding), the fit on 100,000 rows
took 294 s (33 epochs) on one thread of a loaded 2-core machine. Within 10
epochs early stopping (patience 10) cannot end a fit, so every size trains
the same number of epochs.

Targets, each size against the smallest: time per row and epoch <= 1.2 x
(flat or falling, with room for a shared machine's noise); growth of peak
memory per row <= 1.0 x (at most linear). The table also shows what the
TF-IDF block would take dense; the synthetic texts draw on a few dozen
words, so that is small here. That sparse blocks are densified one batch
at a time is tested in ``tests/test_estimators.py``
(``test_sparse_blocks_are_densified_one_batch_at_a_time``).

    python benchmarks/bench_scaling.py                  # 1,000, 10,000, 100,000
    python benchmarks/bench_scaling.py --sizes 1000 4000 --max-epochs 0
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from _utils import finish, make_parser, median, row

TIME_TARGET = 1.2
MEMORY_TARGET = 1.0


def _rss_mib():
    """Current resident set size, from /proc (Linux); NaN elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mib():
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def fit_in_this_process(n_samples, args):
    """The child's work: encode and fit both models on ``n_samples`` rows."""
    import torch
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from skmm import FusionClassifier, MultimodalFusion, TfidfTextEncoder
    from skmm.datasets import make_multimodal_classification

    torch.set_num_threads(args.threads)

    def fusion(output):
        return MultimodalFusion(
            [
                ("text", TfidfTextEncoder(), ["text"]),
                ("numeric", StandardScaler(), ["num_0", "num_1"]),
            ],
            output=output,
        )

    df, y = make_multimodal_classification(
        n_samples=n_samples, image_size=4, random_state=args.seed
    )
    df = df[["text", "num_0", "num_1"]]
    # The first fit of a process imports and initialises what torch loads
    # lazily, a few seconds that would weigh on the smallest size most.
    FusionClassifier(max_epochs=1, device="cpu", random_state=0).fit(
        fusion("blocks").fit_transform(df[:100], y[:100]), y[:100]
    )
    baseline = _rss_mib()
    start = time.perf_counter()
    blocks = fusion("blocks").fit_transform(df, y)
    encode_s = time.perf_counter() - start
    text = blocks["text"]
    options = {"max_epochs": args.max_epochs} if args.max_epochs else {}
    classifier = FusionClassifier(device="cpu", random_state=0, **options)
    start = time.perf_counter()
    classifier.fit(blocks, y)
    fusion_s = time.perf_counter() - start
    flat = fusion("flat").fit_transform(df, y)
    start = time.perf_counter()
    LogisticRegression(max_iter=1000).fit(flat, y)
    logistic_s = time.perf_counter() - start
    return {
        "n_samples": n_samples,
        "encode_s": encode_s,
        "fusion_s": fusion_s,
        "epochs": len(classifier.net_.history),
        "logistic_s": logistic_s,
        "baseline_mib": baseline,
        "peak_mib": _peak_rss_mib(),
        "text_sparse": bool(sparse.issparse(text)),
        "dense_text_mib": text.shape[0] * text.shape[1] * 4 / 2**20,
        "torch_threads": torch.get_num_threads(),
    }


def measure(n_samples, args):
    """Fit on ``n_samples`` rows in a fresh process and return its report."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        str(n_samples),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    command += ["--max-epochs", str(args.max_epochs)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["us_per_row_epoch"] = (
        1e6 * report["fusion_s"] / (n_samples * report["epochs"])
    )
    report["growth_mib"] = report["peak_mib"] - report["baseline_mib"]
    print(
        f"{n_samples:>7} rows: encode {report['encode_s']:6.1f} s, fusion fit "
        f"{report['fusion_s']:7.1f} s ({report['epochs']} epochs, "
        f"{report['us_per_row_epoch']:.1f} us per row and epoch), logistic fit "
        f"{report['logistic_s']:6.2f} s, peak RSS {report['peak_mib']:.0f} MiB "
        f"(+{report['growth_mib']:.0f} MiB)",
        flush=True,
    )
    return report


def _table(header, lines):
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(out + [fmt.format(*line) for line in lines])


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.set_defaults(threads=1, repeats=1)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000]
    )
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=10,
        help="max_epochs of every size (default 10); 0: FusionClassifier's default",
    )
    # Used by the child processes the script starts.
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(fit_in_this_process(args.child, args)))
        return

    sizes = sorted(args.sizes)
    epochs = (
        f"--max-epochs {args.max_epochs}: max_epochs={args.max_epochs} for every size"
        if args.max_epochs
        else "FusionClassifier's default max_epochs"
    )
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(
        f"{args.threads} torch thread(s) set (the fits of text and tabular "
        f"towers take one), OMP_WAIT_POLICY={policy}; {epochs}, early "
        f"stopping on (>= 1,000 rows); {args.repeats} fresh process(es) per size",
        flush=True,
    )
    reports = {n: [measure(n, args) for _ in range(args.repeats)] for n in sizes}

    def med(n, key):
        return median([r[key] for r in reports[n]])

    lines = [
        (
            f"{n:,}",
            f"{med(n, 'encode_s'):.2f}",
            f"{med(n, 'fusion_s'):.1f}",
            f"{med(n, 'epochs'):.0f}",
            f"{med(n, 'us_per_row_epoch'):.1f}",
            f"{med(n, 'logistic_s'):.2f}",
            f"{med(n, 'fusion_s') / med(n, 'logistic_s'):.1f}",
            f"{med(n, 'peak_mib'):.0f}",
            f"{med(n, 'growth_mib'):.0f}",
            f"{med(n, 'dense_text_mib'):.0f}"
            + ("" if all(r["text_sparse"] for r in reports[n]) else " (dense!)"),
        )
        for n in sizes
    ]
    print(
        "\nScaling: text (TF-IDF) + tabular FusionClassifier "
        f"({epochs}) vs LogisticRegression on the same TF-IDF"
    )
    print(
        _table(
            (
                "rows",
                "encode (s)",
                "fusion fit (s)",
                "epochs",
                "us / row / epoch",
                "logistic fit (s)",
                "fusion / logistic",
                "peak RSS (MiB)",
                "growth (MiB)",
                "TF-IDF dense (MiB)",
            ),
            lines,
        )
    )

    small = sizes[0]
    rows = []
    for n in sizes[1:]:
        ratio = med(n, "us_per_row_epoch") / med(small, "us_per_row_epoch")
        rows.append(
            row(
                f"scaling: fusion fit time per row and epoch, {n} vs {small} rows",
                med(n, "us_per_row_epoch"),
                med(small, "us_per_row_epoch"),
                ratio,
                f"ratio <= {TIME_TARGET}",
                ratio <= TIME_TARGET,
                "us",
            )
        )
        per_row = {m: med(m, "growth_mib") / m for m in (small, n)}
        ratio = per_row[n] / per_row[small]
        rows.append(
            row(
                f"scaling: peak RSS growth per row, {n} vs {small} rows",
                1024 * per_row[n],
                1024 * per_row[small],
                ratio,
                f"ratio <= {MEMORY_TARGET}",
                ratio <= MEMORY_TARGET,
                "KiB",
            )
        )
    for n in sizes:
        rows.append(
            row(
                f"scaling: fusion vs LogisticRegression fit, {n} rows",
                med(n, "fusion_s"),
                med(n, "logistic_s"),
                med(n, "fusion_s") / med(n, "logistic_s"),
                "(for information)",
                True,
                "s",
            )
        )
    finish(rows, args.json)


if __name__ == "__main__":
    main()

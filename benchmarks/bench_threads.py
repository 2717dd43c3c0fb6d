"""Torch threads under load: the README quickstart before and after ``n_threads``.

Before ``n_threads`` every fit ran on torch's default number of threads (one
per logical CPU); now a fusion estimator picks its own (one for networks of
feature-vector and token towers). This script runs the README quickstart
(a 12-fit ``GridSearchCV`` over four fusion strategies, then a 5-fold
``cross_val_score`` of the best pipeline, 600 rows) in a fresh process each
time, with torch's default threads left as they are (``OMP_NUM_THREADS`` is
unset for the runs):

- "before": ``FusionClassifier(n_threads=torch.get_num_threads())``, the old
  behaviour;
- "after": ``FusionClassifier()``, the new default;

each without and with one competing CPU-bound process (a Python busy loop).
A run that exceeds ``--timeout`` seconds is stopped and reported as such.
(The scaling of fit time and memory with the number of rows is measured by
``bench_scaling.py``.)

Run: ``python benchmarks/bench_threads.py`` (``--max-epochs 20`` shortens the
quickstart's fits for a quick look; the table says which was run).
"""

import argparse
import os
import subprocess
import sys
import time

import torch

_BUSY_LOOP = "while True:\n    pass\n"


def quickstart(n_threads, max_epochs):
    """The README quickstart; ``n_threads`` and ``max_epochs`` None leave defaults."""
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from skmm import (
        CNNImageEncoder,
        FusionClassifier,
        MultimodalFusion,
        TfidfTextEncoder,
    )
    from skmm.datasets import make_multimodal_classification

    options = {}
    if n_threads is not None:
        options["n_threads"] = n_threads
    if max_epochs is not None:
        options["max_epochs"] = max_epochs
    df, y = make_multimodal_classification(n_samples=600, random_state=0)
    fusion = MultimodalFusion(
        [
            ("text", TfidfTextEncoder(), ["text"]),
            ("image", CNNImageEncoder(random_state=0), ["image"]),
            ("numeric", StandardScaler(), ["num_0", "num_1"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
        ]
    )
    model = make_pipeline(fusion, FusionClassifier(random_state=0, **options))
    search = GridSearchCV(
        model,
        {"fusionclassifier__fusion": ["concat", "late", "gated", "attention"]},
        cv=3,
    )
    search.fit(df, y)
    return cross_val_score(search.best_estimator_, df, y, cv=5).mean()


def _child(args):
    start = time.perf_counter()
    n_threads = None if args.mode == "after" else torch.get_num_threads()
    score = quickstart(n_threads, args.max_epochs)
    seconds = time.perf_counter() - start
    print(f"RESULT {seconds:.3f} {score:.4f} {torch.get_num_threads()}")


def _run_child(extra, timeout):
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(name, None)
    try:
        out = subprocess.run(
            [sys.executable, __file__, *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except subprocess.TimeoutExpired:
        return None
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    return [float(x) for x in line.split()[1:]]


def _table(header, lines):
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(out + [fmt.format(*line) for line in lines])


def main(args):
    print(
        f"{os.cpu_count()} CPUs, torch default threads {torch.get_num_threads()}, "
        f"load average before the runs {os.getloadavg()[0]:.1f}"
    )
    epochs = "default" if args.max_epochs is None else str(args.max_epochs)
    results = {}
    for competing in (False, True):
        busy = (
            subprocess.Popen([sys.executable, "-c", _BUSY_LOOP]) if competing else None
        )
        try:
            for mode in ("before", "after"):
                extra = ["--child", "quickstart", "--mode", mode]
                if args.max_epochs is not None:
                    extra += ["--max-epochs", str(args.max_epochs)]
                results[competing, mode] = _run_child(extra, args.timeout)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()

    def wall(result):
        return f"> {args.timeout}" if result is None else f"{result[0]:.1f}"

    lines = []
    for competing in (False, True):
        before, after = results[competing, "before"], results[competing, "after"]
        if before is None and after is None:
            ratio = "-"
        elif before is None:
            ratio = f"> {args.timeout / after[0]:.1f}"
        elif after is None:
            ratio = f"< {before[0] / args.timeout:.2f}"
        else:
            ratio = f"{before[0] / after[0]:.2f}"
        lines.append(
            (
                "yes" if competing else "no",
                wall(before),
                wall(after),
                ratio,
                "-" if after is None else f"{after[1]:.3f}",
            )
        )
    print(f"\nREADME quickstart (FusionClassifier max_epochs={epochs}), wall time (s)")
    print(
        _table(
            (
                "competing process",
                "before: torch default threads",
                "after: n_threads=None",
                "before / after",
                "CV accuracy (after)",
            ),
            lines,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--child", choices=["quickstart"], default=None)
    parser.add_argument("--mode", choices=["before", "after"], default="after")
    args = parser.parse_args()
    if args.child:
        _child(args)
    else:
        main(args)

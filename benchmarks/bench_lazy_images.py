"""Peak memory and speed of a CNN tower trained on images streamed from disk.

A pipeline ``MultimodalFusion([("image", CNNImageEncoder(output=...),
"image")])`` + ``FusionClassifier(max_epochs=1)`` is fitted on N small JPEG
files, with the lazy block (``output="lazy"``: paths kept, each batch decoded
in a worker process while the network trains) at several N, and with the
in-memory block (``output="pixels"``: every image decoded into one array) at
the smallest N. Each fit runs in a fresh Python process, which reports its
peak resident set size (VmHWM; the decoding workers' own peaks are reported
beside it) and the time of the encoder's ``fit_transform`` (lazy: one
streamed pass for the channel statistics; in memory: decoding every image)
and of the classifier's fit, and of its training epoch alone (skorch's
``dur``), from which the images/s are computed.

Targets: peak RSS of the lazy fit at the largest N <= 1.3 x that at the
smallest; images/s of the lazy training epoch >= 0.9 x the in-memory one at
the smallest N.

    python benchmarks/bench_lazy_images.py            # 2,000, 20,000, 100,000
    python benchmarks/bench_lazy_images.py --quick    # 2,000 and 10,000

The images are written once to ``--folder`` (by default a folder in the
temporary directory) and reused by later runs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _utils import finish, make_parser, median, row
from bench_images import write_images

RSS_TARGET = 1.3
SPEED_TARGET = 0.9


def _vm_hwm_mb(pid="self"):
    """Peak resident set size of a process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _worker_peaks_mb():
    """Peak RSS of this process's children (the decoding workers), summed."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    children = psutil.Process().children(recursive=True)
    return sum(_vm_hwm_mb(child.pid) for child in children)


def fit_in_this_process(folder, n_images, output, args):
    """The child's work: fit the pipeline on ``n_images`` files, report."""
    import numpy as np
    import pandas as pd
    import torch

    from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion

    torch.set_num_threads(args.threads)
    names = sorted(os.listdir(folder))[:n_images]
    if len(names) < n_images:
        raise SystemExit(f"{folder} holds {len(names)} images, not {n_images}")
    X = pd.DataFrame({"image": [os.path.join(folder, name) for name in names]})
    y = np.arange(n_images) % 2
    encoder = CNNImageEncoder(
        image_size=args.image_size,
        output=output,
        n_jobs=args.n_jobs,
        cache=False,
        random_state=0,
    )
    fusion = MultimodalFusion([("image", encoder, "image")])
    classifier = FusionClassifier(
        max_epochs=1,
        batch_size=args.batch_size,
        early_stopping=False,
        device="cpu",
        random_state=0,
    )
    baseline = _vm_hwm_mb()
    start = time.perf_counter()
    blocks = fusion.fit_transform(X, y)
    encoded = time.perf_counter()
    classifier.fit(blocks, y)
    trained = time.perf_counter()
    return {
        "n_images": n_images,
        "output": output,
        "baseline_mb": baseline,
        "peak_mb": _vm_hwm_mb(),
        "workers_mb": _worker_peaks_mb(),
        "encode_s": encoded - start,
        "fit_s": trained - encoded,
        # The epoch alone, as skorch timed it: without building the network.
        "train_s": float(classifier.net_.history[-1, "dur"]),
    }


def measure(folder, n_images, output, args):
    """Fit on ``n_images`` in a fresh process and return its report."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        folder,
        "--n-images",
        str(n_images),
        "--output",
        output,
        "--image-size",
        str(args.image_size),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
    ]
    if args.n_jobs is not None:
        command += ["--n-jobs", str(args.n_jobs)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"{output:>6} {n_images:>7} images: encode {report['encode_s']:6.1f} s, "
        f"fit {report['fit_s']:6.1f} s, of which the epoch {report['train_s']:6.1f} s "
        f"({n_images / report['train_s']:4.0f} images/s), peak RSS "
        f"{report['peak_mb']:6.0f} MB (workers {report['workers_mb']:.0f} MB)",
        flush=True,
    )
    return report


def ensure_images(folder, n_images, side, seed):
    """Write the images ``folder`` lacks, so that it holds ``n_images``."""
    os.makedirs(folder, exist_ok=True)
    have = len([name for name in os.listdir(folder) if name.endswith(".jpg")])
    if have >= n_images:
        return
    print(f"writing {n_images - have} JPEG files to {folder}...", flush=True)
    start = time.perf_counter()
    # Written in one go with the seed, so a reused folder holds the same files.
    write_images(folder, n_images, side, seed)
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.set_defaults(threads=1, repeats=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20_000, 100_000])
    parser.add_argument(
        "--quick", action="store_true", help="sizes 2,000 and 10,000 only"
    )
    parser.add_argument("--folder", default=None, help="where the images live")
    parser.add_argument("--source-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-jobs", type=int, default=None)
    # Used by the child processes the script starts.
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-images", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default="lazy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        report = fit_in_this_process(args.child, args.n_images, args.output, args)
        print(json.dumps(report))
        return

    sizes = sorted([2000, 10_000] if args.quick else args.sizes)
    small, large = sizes[0], sizes[-1]
    folder = args.folder or os.path.join(
        tempfile.gettempdir(), f"skmm-bench-lazy-images-{args.source_size}px"
    )
    ensure_images(folder, large, args.source_size, args.seed)
    print(
        f"{args.threads} torch thread(s), batch size {args.batch_size}, "
        f"n_jobs={args.n_jobs}, {args.source_size}px JPEGs read at "
        f"{args.image_size}px",
        flush=True,
    )

    # The two sides at the smallest size alternate, so that a slow spell of
    # the machine weighs on both.
    runs = {"lazy": [], "pixels": []}
    for i in range(args.repeats):
        for output in ("lazy", "pixels") if i % 2 == 0 else ("pixels", "lazy"):
            runs[output].append(measure(folder, small, output, args))
    lazy = {small: runs["lazy"]}
    for n in sizes[1:]:
        lazy[n] = [measure(folder, n, "lazy", args)]

    def speed(reports):
        return median([r["n_images"] / r["train_s"] for r in reports])

    def peak(reports):
        return median([r["peak_mb"] for r in reports])

    rows = [
        row(
            f"peak RSS, lazy, {n} vs {small} images",
            peak(lazy[n]),
            peak(lazy[small]),
            peak(lazy[n]) / peak(lazy[small]),
            f"ratio <= {RSS_TARGET}",
            peak(lazy[n]) / peak(lazy[small]) <= RSS_TARGET,
            "MB",
        )
        for n in sizes[1:]
    ]
    ratio = speed(lazy[small]) / speed(runs["pixels"])
    rows.append(
        row(
            f"training epoch, lazy vs in memory, {small} images",
            speed(lazy[small]),
            speed(runs["pixels"]),
            ratio,
            f"ratio >= {SPEED_TARGET}",
            ratio >= SPEED_TARGET,
            "images/s",
        )
    )
    total = {
        side: median([r["n_images"] / (r["encode_s"] + r["fit_s"]) for r in rs])
        for side, rs in runs.items()
    }
    rows.append(
        row(
            f"whole pipeline fit, lazy vs in memory, {small} images",
            total["lazy"],
            total["pixels"],
            total["lazy"] / total["pixels"],
            "(for information)",
            True,
            "images/s",
        )
    )
    rows.append(
        row(
            f"peak RSS, in memory vs lazy, {small} images",
            peak(runs["pixels"]),
            peak(lazy[small]),
            peak(runs["pixels"]) / peak(lazy[small]),
            "(for information)",
            True,
            "MB",
        )
    )
    finish(rows, args.json)


if __name__ == "__main__":
    main()

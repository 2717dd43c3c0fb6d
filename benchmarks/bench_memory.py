"""Peak memory of CNNImageEncoder.transform on 20,000 image files vs 2,000.

``transform`` decodes the files in chunks, so its memory should not grow with
the number of images beyond the output itself. Each size is encoded in a fresh
Python process, which reports its peak resident set size (``ru_maxrss``)
before and after the transform; the baseline holds the interpreter, torch and
the fitted encoder.

Target: peak RSS with 20,000 images <= 1.2 x peak RSS with 2,000.

    python benchmarks/bench_memory.py [--sizes 2000 20000]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import pandas as pd
from _utils import finish, make_parser, row
from bench_images import write_images

TARGET = 1.2


def peak_rss_mb():
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def encode_in_this_process(folder, n_images, image_size, n_jobs):
    """The child's work: fit on 256 files, encode ``n_images``, report memory."""
    import torch

    from skmm.encoders._image import CNNImageEncoder

    torch.set_num_threads(2)
    names = sorted(os.listdir(folder))[:n_images]
    X = pd.DataFrame({"image": [os.path.join(folder, name) for name in names]})
    encoder = CNNImageEncoder(image_size=image_size, n_jobs=n_jobs, random_state=0)
    encoder.fit(X.iloc[:256])
    baseline = peak_rss_mb()
    Xt = encoder.transform(X)
    return {
        "n_images": len(X),
        "baseline_mb": baseline,
        "peak_mb": peak_rss_mb(),
        "output_mb": Xt.nbytes / 2**20,
    }


def measure(folder, n_images, args):
    """Encode ``n_images`` in a fresh process and return its report."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        folder,
        "--n-images",
        str(n_images),
        "--image-size",
        str(args.image_size),
    ]
    if args.n_jobs is not None:
        command += ["--n-jobs", str(args.n_jobs)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[2000, 20_000])
    parser.add_argument("--source-size", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n-jobs", type=int, default=None)
    # Used by the child processes the script starts.
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-images", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        report = encode_in_this_process(
            args.child, args.n_images, args.image_size, args.n_jobs
        )
        print(json.dumps(report))
        return

    small, large = args.sizes
    with tempfile.TemporaryDirectory() as folder:
        print(f"writing {large} JPEG files...", flush=True)
        write_images(folder, large, args.source_size, args.seed)
        reports = {n: measure(folder, n, args) for n in (small, large)}
    for n, r in reports.items():
        print(
            f"{n} images: peak RSS {r['peak_mb']:.0f} MB (baseline before "
            f"transform {r['baseline_mb']:.0f} MB, growth "
            f"{r['peak_mb'] - r['baseline_mb']:.0f} MB, output "
            f"{r['output_mb']:.1f} MB)",
            flush=True,
        )
    ratio = reports[large]["peak_mb"] / reports[small]["peak_mb"]
    rows = [
        row(
            f"memory: peak RSS, {large} vs {small} images",
            reports[large]["peak_mb"],
            reports[small]["peak_mb"],
            ratio,
            f"ratio <= {TARGET}",
            ratio <= TARGET,
            "MB",
        )
    ]
    finish(rows, args.json)


if __name__ == "__main__":
    main()

"""CNNImageEncoder.transform from image files against a hand-written loop.

Both sides read the same JPEG files and run the same network: the hand loop
decodes each file with Pillow exactly as the encoder does (JPEG draft mode,
conversion to RGB, bilinear resize), stacks a batch, standardises it with the
encoder's channel statistics and runs ``encoder.cnn_`` under
``torch.inference_mode``. The features of the two must match; the script
prints their largest difference. The encoder's cache of frozen outputs is
turned off, so that every call decodes the files and runs the network.

Targets: in one process (``n_jobs=None``) the encoder reaches >= 0.95 of the
hand loop's images per second, and with ``n_jobs=2`` >= 1.6 times its own
single-process images per second.

    python benchmarks/bench_images.py [--n-images 2000] [--image-size 32]
"""

import os
import tempfile

import numpy as np
import pandas as pd
import torch
from _utils import alternate, finish, make_parser, median, row, threads_note, timed
from PIL import Image

from skmm.encoders._image import CNNImageEncoder

TARGET_ONE_PROCESS = 0.95
TARGET_TWO_JOBS = 1.6


def write_images(folder, n_images, side, seed):
    """Write ``n_images`` JPEG photos-like images of ``side`` x ``side`` pixels.

    Smooth colour gradients with a few blobs and some noise, so that the files
    compress like photographs rather than like flat colour.
    """
    rng = np.random.RandomState(seed)
    grid = np.linspace(0, 1, side, dtype=np.float32)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    paths = []
    for i in range(n_images):
        image = np.empty((side, side, 3), dtype=np.float32)
        for c in range(3):
            a, b, d = rng.uniform(-1, 1, size=3)
            image[:, :, c] = 0.5 + 0.25 * (a * xx + b * yy) + 0.1 * d
        for _ in range(rng.randint(1, 4)):
            (cy, cx), r = rng.uniform(0.1, 0.9, size=2), rng.uniform(0.05, 0.3)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            image[mask] = rng.uniform(0, 1, size=3)
        image += rng.normal(0, 0.03, size=image.shape)
        pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        path = os.path.join(folder, f"img_{i:06d}.jpg")
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def load_image(path, size):
    """Decode, convert and resize one file as the encoder does."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def encode_by_hand(paths, encoder, size, batch_size):
    """Pillow + torch loop: decode a batch, standardise, run the network."""
    cnn = encoder.cnn_.eval()
    mean = torch.as_tensor(encoder.channel_mean_, dtype=torch.float32).view(3, 1, 1)
    std = torch.as_tensor(encoder.channel_std_, dtype=torch.float32).view(3, 1, 1)
    out = np.empty((len(paths), cnn.out_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = np.stack(
                [load_image(p, size) for p in paths[start : start + batch_size]]
            )
            X = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)
            X = (X - mean) / std
            out[start : start + batch_size] = cnn(X).numpy()
    return out


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    repeats = args.repeats or 5
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(folder, args.n_images, args.source_size, args.seed)
        X = pd.DataFrame({"image": paths})
        print(
            f"{len(paths)} JPEG files of {args.source_size}x{args.source_size} "
            f"pixels, resized to {args.image_size}x{args.image_size}, "
            f"{threads_note()}, {repeats} repeats"
        )
        encoder = CNNImageEncoder(
            image_size=args.image_size,
            batch_size=args.batch_size,
            random_state=0,
            cache=False,
        ).fit(X.iloc[:256])

        def transform(n_jobs):
            return encoder.set_params(n_jobs=n_jobs).transform(X)

        def by_hand():
            return encode_by_hand(paths, encoder, args.image_size, args.batch_size)

        # Warm-up; with n_jobs=2 it also starts the worker processes, which
        # joblib then reuses.
        for run in (lambda: transform(None), lambda: transform(2), by_hand):
            timed(run)
        times, results = alternate(
            {
                "skmm": lambda: transform(None),
                "skmm_2_jobs": lambda: transform(2),
                "hand": by_hand,
            },
            repeats,
        )

    diff = float(np.abs(results["skmm"] - results["hand"]).max())
    diff_jobs = float(np.abs(results["skmm"] - results["skmm_2_jobs"]).max())
    speed = {name: args.n_images / median(t) for name, t in times.items()}
    one_process = speed["skmm"] / speed["hand"]
    two_jobs = speed["skmm_2_jobs"] / speed["skmm"]
    print(
        f"images/s (medians): encoder {speed['skmm']:.0f}, encoder n_jobs=2 "
        f"{speed['skmm_2_jobs']:.0f}, hand loop {speed['hand']:.0f}; largest "
        f"feature difference vs hand loop {diff:.1e}, n_jobs=2 vs 1 {diff_jobs:.1e}",
        flush=True,
    )
    rows = [
        row(
            "images: transform, 1 process",
            speed["skmm"],
            speed["hand"],
            one_process,
            f"ratio >= {TARGET_ONE_PROCESS}",
            one_process >= TARGET_ONE_PROCESS,
            "img/s",
        ),
        row(
            "images: n_jobs=2 vs n_jobs=None",
            speed["skmm_2_jobs"],
            speed["skmm"],
            two_jobs,
            f"ratio >= {TARGET_TWO_JOBS}",
            two_jobs >= TARGET_TWO_JOBS,
            "img/s",
        ),
    ]
    finish(rows, args.json)


if __name__ == "__main__":
    main()

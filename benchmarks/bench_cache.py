"""GridSearchCV over fusion strategies, with and without the frozen-encoder cache.

The pipeline encodes a text column (TF-IDF), an image column of JPEG files
(a frozen ``CNNImageEncoder``, 96x96 files resized to 32x32) and tabular
columns, and feeds the blocks to a ``FusionClassifier``; the search tries four
fusion strategies with 3-fold cross-validation, hence 12 fits plus the refit.
Every candidate clones the pipeline, so without the cache each of them decodes
and encodes the images again; with it, the first candidate of each fold
encodes the fold's training and test images and the others reuse them. Both
sides run in the same process, in alternating order, the cache emptied before
each cached search; the script prints the median times, their ratio, the
number of images decoded by each search and whether the two searches found
the same scores.

Targets: the cached search decodes the images 3 folds x 1 + refit = 4 times
instead of 3 folds x 4 candidates + refit = 13 times, and is faster. How much
faster depends on the share of the search spent on the images, mostly reading
the files; training the 13 fusion classifiers takes the rest, cache or not.

    python benchmarks/bench_cache.py [--n-images 600] [--image-size 32] [--repeats 3]
"""

import os
import tempfile
from unittest import mock

import numpy as np
import torch
from _utils import alternate, finish, make_parser, median, row, threads_note
from PIL import Image
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.encoders import _image_io
from skmm.utils._cache import FROZEN_OUTPUTS, clear_frozen_cache

STRATEGIES = ["concat", "late", "gated", "attention"]
CV = 3


def write_images(folder, images, side):
    """Save each image as a ``side`` x ``side`` JPEG file; return the paths."""
    paths = []
    for i, pixels in enumerate(images):
        image = Image.fromarray(pixels).resize((side, side), Image.Resampling.BILINEAR)
        path = os.path.join(folder, f"img_{i:06d}.jpg")
        image.save(path, quality=90)
        paths.append(path)
    return paths


def make_search(cache, image_size, seed):
    """The grid search over fusion strategies, its image encoder cached or not."""
    fusion = MultimodalFusion(
        [
            ("text", TfidfTextEncoder(), "text"),
            (
                "image",
                CNNImageEncoder(image_size=image_size, random_state=seed, cache=cache),
                "image",
            ),
            ("numbers", StandardScaler(), ["num_0", "num_1"]),
            ("category", OneHotEncoder(sparse_output=False), ["category"]),
        ]
    )
    model = make_pipeline(
        fusion, FusionClassifier(max_epochs=5, device="cpu", random_state=seed)
    )
    return GridSearchCV(model, {"fusionclassifier__fusion": STRATEGIES}, cv=CV)


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=600)
    parser.add_argument("--source-size", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    repeats = args.repeats or 3
    torch.set_num_threads(args.threads)

    X, y = make_multimodal_classification(args.n_images, random_state=args.seed)
    decoded = []
    decode_cells = _image_io.decode_cells

    def counting_decode(cells, *rest):
        decoded.append(cells.size)
        return decode_cells(cells, *rest)

    def search(cache):
        if cache:
            clear_frozen_cache()
        start = len(decoded)
        fitted = make_search(cache, args.image_size, args.seed).fit(X, y)
        return sum(decoded[start:]), fitted.cv_results_["mean_test_score"]

    with tempfile.TemporaryDirectory() as folder:
        X["image"] = write_images(folder, X["image"], args.source_size)
        n_fits = len(STRATEGIES) * CV + 1
        size = f"{args.image_size}x{args.image_size}"
        print(
            f"{args.n_images} JPEG files of {args.source_size}x{args.source_size} "
            f"pixels resized to {size}, text and tabular columns; GridSearchCV "
            f"over {len(STRATEGIES)} fusion strategies, cv={CV} ({n_fits} pipeline "
            f"fits); {threads_note()}, {repeats} repeats",
            flush=True,
        )
        # Torch's first forward and backward passes pay one-off costs that
        # would fall on whichever side runs first.
        make_search(False, args.image_size, args.seed).estimator.fit(
            X.iloc[:60], y[:60]
        )
        # The counter wraps the function that decodes a chunk of image cells.
        with mock.patch.object(_image_io, "decode_cells", counting_decode):
            times, results = alternate(
                {"cache": lambda: search(True), "no cache": lambda: search(False)},
                repeats,
            )
            cache_info = FROZEN_OUTPUTS.info()

    (decoded_cache, scores_cache), (decoded_plain, scores_plain) = (
        results["cache"],
        results["no cache"],
    )
    with_cache, without_cache = median(times["cache"]), median(times["no cache"])
    speed_up = without_cache / with_cache
    passes_cache, passes_plain = CV + 1, CV * len(STRATEGIES) + 1
    print(
        f"images decoded per search: cache {decoded_cache} "
        f"({decoded_cache / args.n_images:.1f} x the {args.n_images} images, "
        f"expected {CV} folds x 1 + refit = {passes_cache}), no cache "
        f"{decoded_plain} ({decoded_plain / args.n_images:.1f} x, expected {CV} "
        f"folds x {len(STRATEGIES)} candidates + refit = {passes_plain})",
        flush=True,
    )
    print(
        f"last cached search: {cache_info.hits} cache hits, {cache_info.misses} "
        f"misses (encoder fits and transforms computed), {cache_info.entries} "
        f"entries, {cache_info.bytes / 2**20:.1f} MiB",
        flush=True,
    )
    print(
        "same mean test scores with and without the cache: "
        f"{np.array_equal(scores_cache, scores_plain)}",
        flush=True,
    )
    print(
        f"times (s): cache {', '.join(f'{t:.2f}' for t in times['cache'])}; "
        f"no cache {', '.join(f'{t:.2f}' for t in times['no cache'])}",
        flush=True,
    )
    print(
        f"cache: {with_cache:.2f}s, no cache: {without_cache:.2f}s, "
        f"speed-up: {speed_up:.2f}x",
        flush=True,
    )
    rows = [
        row(
            "grid search: images decoded, cache vs none",
            decoded_cache,
            decoded_plain,
            decoded_plain / decoded_cache,
            f"{passes_cache} vs {passes_plain} x n_images",
            decoded_cache == passes_cache * args.n_images
            and decoded_plain == passes_plain * args.n_images,
            "img",
        ),
        row(
            "grid search: time, cache vs none",
            with_cache,
            without_cache,
            speed_up,
            "speed-up > 1",
            speed_up > 1,
            "s",
        ),
    ]
    finish(rows, args.json)


if __name__ == "__main__":
    main()

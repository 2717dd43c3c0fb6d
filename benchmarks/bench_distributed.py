"""The grid search of ``make demo`` on a 2-worker Dask cluster against one process.

The 12 fits of ``python -m skmm demo`` (4 fusion strategies x 3 folds, on
600 synthetic rows of text + image + tabular + category) run three ways:

- ``n_jobs=None``: one process, as the demo runs them;
- on a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``
  through ``joblib.parallel_backend("dask")``, each worker with its own
  in-memory cache of frozen encodings;
- the same, with ``skmm.set_config(cache_dir=...)``: the workers share the
  encodings through the disk store.

The pipeline is the demo's, default encoders and estimator (the frozen
``CNNImageEncoder`` is cached by content, per fold). The script prints the
wall time of each search, its ratio to the sequential one, the time the
cluster took to start (not in the search time), and how many images each
search decoded, in all processes.

Run: ``python benchmarks/bench_distributed.py`` (about 3 minutes on 2 cores).
"""

import os
import tempfile
import time

import joblib
import numpy as np
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import skmm
from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm._demo import STRATEGIES
from skmm.datasets import make_multimodal_classification
from skmm.encoders import _image_io
from skmm.utils import clear_frozen_cache


def count_decoded_images():
    """Patch this process's image decoder to count the cells it decodes.

    The count lives on the module, not in a global of this script: Dask
    ships this script's functions by value, each call with its own globals.
    """
    _image_io.bench_decoded = []
    if not hasattr(_image_io, "uncounted_decode_cells"):
        _image_io.uncounted_decode_cells = _image_io.decode_cells

        def counting(cells, *args):
            _image_io.bench_decoded.append(cells.size)
            return _image_io.uncounted_decode_cells(cells, *args)

        _image_io.decode_cells = counting
    clear_frozen_cache()


def decoded_images():
    return sum(_image_io.bench_decoded)


def _search(n_jobs):
    modalities = [
        ("text", TfidfTextEncoder(), ["text"]),
        ("image", CNNImageEncoder(), ["image"]),
        ("tabular", StandardScaler(), ["num_0", "num_1"]),
        ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
    ]
    model = make_pipeline(
        MultimodalFusion(modalities), FusionClassifier(device="auto", random_state=0)
    )
    return GridSearchCV(
        model,
        {"fusionclassifier__fusion": STRATEGIES},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        n_jobs=n_jobs,
    )


def _run_on_cluster(X, y, cache_dir):
    skmm.set_config(cache_dir=cache_dir)
    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        startup = time.perf_counter() - start
        client.run(count_decoded_images)
        count_decoded_images()
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            search = _search(n_jobs=-1).fit(X, y)
        seconds = time.perf_counter() - start
        decoded = sum(client.run(decoded_images).values()) + decoded_images()
    skmm.set_config(cache_dir=None)
    return seconds, startup, decoded, search


def main():
    X, y = make_multimodal_classification(
        n_samples=600, missing_text=0.05, missing_image=0.05, random_state=0
    )
    print(
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; the 12-fit search of "
        "make demo (4 strategies x 3 folds, 600 rows) and its refit",
        flush=True,
    )
    skmm.set_config(cache_dir=None)
    count_decoded_images()
    start = time.perf_counter()
    sequential = _search(n_jobs=None).fit(X, y)
    rows = [("n_jobs=None (one process)", time.perf_counter() - start, None)]
    decoded = [decoded_images()]
    print(f"  {rows[-1][0]}: {rows[-1][1]:.1f} s", flush=True)

    seconds, startup, n_decoded, no_disk = _run_on_cluster(X, y, None)
    rows.append(("Dask, 2 workers, memory cache per worker", seconds, startup))
    decoded.append(n_decoded)
    print(f"  {rows[-1][0]}: {seconds:.1f} s, {n_decoded} images", flush=True)
    with tempfile.TemporaryDirectory() as cache_dir:
        seconds, startup, n_decoded, disk = _run_on_cluster(X, y, cache_dir)
    rows.append(("Dask, 2 workers, shared cache_dir", seconds, startup))
    decoded.append(n_decoded)
    print(f"  {rows[-1][0]}: {seconds:.1f} s, {n_decoded} images", flush=True)

    for search in (no_disk, disk):
        np.testing.assert_allclose(
            search.cv_results_["mean_test_score"],
            sequential.cv_results_["mean_test_score"],
        )
    base = rows[0][1]
    header = ("search", "wall (s)", "ratio", "cluster start (s)", "images decoded")
    lines = [
        (
            name,
            f"{seconds:.1f}",
            f"{seconds / base:.2f}",
            "-" if startup is None else f"{startup:.1f}",
            str(n),
        )
        for (name, seconds, startup), n in zip(rows, decoded)
    ]
    widths = [max(len(c) for c in column) for column in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for line in lines:
        print(fmt.format(*line))
    print(
        "ratio: wall time of the search / that of n_jobs=None (lower is "
        "faster); the CV scores of the three searches are equal."
    )


if __name__ == "__main__":
    main()

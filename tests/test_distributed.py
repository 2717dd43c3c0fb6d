"""Grid search on a Dask cluster of worker processes, sharing a disk cache."""

import os

import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster
from PIL import Image
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skmm
from skmm import CNNImageEncoder, FusionClassifier, MultimodalFusion, TfidfTextEncoder
from skmm.datasets import make_multimodal_classification
from skmm.nn._fusion_layers import FUSION_STRATEGIES
from skmm.utils import clear_frozen_cache, frozen_cache_info
from skmm.utils._cache import DiskStore


def _pipeline():
    fusion = MultimodalFusion(
        [
            ("text", TfidfTextEncoder(), ["text"]),
            (
                "image",
                CNNImageEncoder(image_size=8, channels=(4, 8), random_state=0),
                ["image"],
            ),
            ("numeric", StandardScaler(), ["num_0", "num_1"]),
        ]
    )
    return make_pipeline(
        fusion,
        FusionClassifier(max_epochs=3, hidden_dim=8, device="cpu", random_state=0),
    )


@pytest.fixture
def data_with_image_files(tmp_path):
    """A small multimodal table whose image column holds PNG file paths."""
    X, y = make_multimodal_classification(n_samples=60, image_size=12, random_state=0)
    paths = []
    for i, image in enumerate(X["image"]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
        paths.append(str(path))
    X["image"] = paths
    return X, y


@pytest.fixture
def restore_config():
    before = skmm.get_config()["cache_dir"]
    yield
    skmm.set_config(cache_dir=before)
    clear_frozen_cache()


def _stored_keys(folder):
    return sorted(
        name for _, _, files in os.walk(folder) for name in files if name[0] != "."
    )


def test_set_config_cache_dir_reaches_new_processes_and_round_trips(
    tmp_path, restore_config
):
    skmm.set_config(cache_dir=tmp_path)
    assert os.environ["SKMM_CACHE_DIR"] == str(tmp_path)
    skmm.set_config(cache_dir=None)
    assert "SKMM_CACHE_DIR" not in os.environ
    with pytest.raises(TypeError, match="cache_dir must be a folder path"):
        skmm.set_config(cache_dir=3)


def test_disk_store_writes_atomically_and_ignores_unreadable_files(tmp_path):
    store = DiskStore()
    store.put(tmp_path, "ab12", {"value": np.arange(3)})
    np.testing.assert_array_equal(store.get(tmp_path, "ab12")["value"], np.arange(3))
    # No temporary file is left beside the value.
    assert [p.name for p in store.path(tmp_path, "ab12").parent.iterdir()] == [
        "ab12.pkl"
    ]
    store.path(tmp_path, "cd34").parent.mkdir(parents=True)
    store.path(tmp_path, "cd34").write_bytes(b"truncated")
    assert store.get(tmp_path, "cd34") is None
    assert store.counts() == (1, 1)


def test_a_second_process_reads_the_disk_cache_instead_of_encoding(
    tmp_path, restore_config, data_with_image_files
):
    X, _ = data_with_image_files
    columns = X[["image"]]
    encoder = CNNImageEncoder(image_size=8, channels=(4, 8), random_state=0)
    skmm.set_config(cache_dir=tmp_path)
    clear_frozen_cache()
    Xt = encoder.fit_transform(columns)
    assert frozen_cache_info().disk_writes == 2  # fitted state and output
    # A fresh process: nothing in memory, everything on disk.
    clear_frozen_cache()
    again = CNNImageEncoder(image_size=8, channels=(4, 8), random_state=0)
    np.testing.assert_array_equal(again.fit_transform(columns), Xt)
    info = frozen_cache_info()
    assert (info.disk_hits, info.disk_writes) == (2, 0)


def test_grid_search_on_a_dask_cluster_equals_the_sequential_search(
    tmp_path, restore_config, data_with_image_files
):
    X, y = data_with_image_files
    grid = {"fusionclassifier__fusion": list(FUSION_STRATEGIES)}

    clear_frozen_cache()
    with skmm.config_context(cache_dir=None):
        sequential = GridSearchCV(_pipeline(), grid, cv=3).fit(X, y)
    # Each fold's image block is encoded once, whatever the strategy.
    encodings_sequential = frozen_cache_info().misses

    cache_dir = tmp_path / "cache"
    # Set before the cluster starts: its worker processes inherit it.
    skmm.set_config(cache_dir=cache_dir)
    clear_frozen_cache()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        with joblib.parallel_backend("dask"):
            on_dask = GridSearchCV(_pipeline(), grid, cv=3, n_jobs=-1).fit(X, y)
        infos = [*client.run(frozen_cache_info).values(), frozen_cache_info()]

    for key in ("mean_test_score", "split0_test_score", "rank_test_score"):
        np.testing.assert_array_equal(
            on_dask.cv_results_[key], sequential.cv_results_[key]
        )
    np.testing.assert_array_equal(on_dask.predict_proba(X), sequential.predict_proba(X))
    # The workers stored what the sequential search computed, under the same
    # keys, and found each other's encodings on disk.
    assert len(_stored_keys(cache_dir)) == encodings_sequential
    disk_hits = sum(info.disk_hits for info in infos)
    misses = sum(info.misses for info in infos)
    encodings = sum(info.disk_writes for info in infos)
    assert disk_hits > 0
    assert encodings == misses - disk_hits < misses

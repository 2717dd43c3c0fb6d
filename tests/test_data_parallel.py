"""Data-parallel training over processes started by torchrun (Gloo, on CPUs)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from skmm import FusionClassifier
from skmm.nn import _parallel
from tests import _data_parallel_worker as worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The summaries written by the two processes of one torchrun launch."""
    out = tmp_path_factory.mktemp("data_parallel")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        os.path.join(ROOT, "tests", "_data_parallel_worker.py"),
        str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [dict(np.load(out / f"rank{rank}.npz")) for rank in (0, 1)]


@pytest.fixture(scope="module")
def one_process():
    X, y = worker.make_data()
    model = worker.make_model(data_parallel=False)
    first, second = worker.fit_and_continue(model, X, y)
    return worker.summary(model, first, second)


def test_processes_end_with_the_same_model(two_processes):
    rank0, rank1 = two_processes
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)


def test_training_matches_one_process_on_whole_batches(two_processes, one_process):
    # Each process sees half of every batch; averaging the gradients weighted
    # by rows gives the steps of one process on the whole batches, and the
    # recorded losses are those of the whole batches.
    rank0, _ = two_processes
    assert rank0.keys() == one_process.keys()
    assert len(rank0["train_loss"]) == 6  # 4 epochs, then 2 more warm-started
    for key in rank0:
        np.testing.assert_allclose(
            rank0[key], one_process[key], rtol=1e-4, atol=1e-5, err_msg=key
        )


def test_needs_a_launch(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    X, y = worker.make_data()
    clf = FusionClassifier(data_parallel=True, max_epochs=1, device="cpu")
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        clf.fit(X[:100], y[:100])
    assert not hasattr(clf, "net_")


def test_shard_deals_rows_round_robin(monkeypatch):
    import torch

    monkeypatch.setattr(_parallel, "world", lambda: (1, 3))
    rows = torch.arange(10)
    assert _parallel.shard(rows).tolist() == [1, 4, 7]
    assert _parallel.shard(slice(20, 30)) == slice(21, 30, 3)
    # Fewer rows than processes: the batch is skipped by all of them.
    assert _parallel.shard(rows[:2]) is None
    assert _parallel.shard(slice(0, 2)) is None


def test_too_few_rows_for_the_processes_is_an_error(monkeypatch):
    # In-process, as one of four processes: a validation part of 2 rows would
    # leave two processes without a validation row.
    import skmm._estimators as estimators

    monkeypatch.setattr(estimators, "setup_data_parallel", lambda device: device)
    monkeypatch.setattr(estimators, "broadcast_seed", lambda seed, device: seed)
    monkeypatch.setattr(estimators, "world", lambda: (0, 4))
    X, y = worker.make_data()
    clf = FusionClassifier(
        data_parallel=True,
        early_stopping=True,
        validation_fraction=0.02,
        max_epochs=1,
        device="cpu",
    )
    with pytest.raises(ValueError, match="validation part has only 2 rows"):
        clf.fit(X[:100], y[:100])
    assert not hasattr(clf, "net_")

"""Check skmm on one CUDA GPU, in under 5 minutes, and print one table.

1. Fits every fusion strategy with ``device="cuda"`` on synthetic text +
   image + tabular rows and reports its test accuracy and fit time.
2. Trains a model whose image tower is a CNN trained end to end
   (``CNNImageEncoder(output="pixels")``) for a fixed number of epochs and
   compares training samples/s in ``precision="bf16-mixed"``,
   ``"16-mixed"`` and ``"32"`` on the GPU, and ``"32"`` on the CPU.
3. Saves a model trained on the GPU with joblib, loads it in a fresh process
   with ``CUDA_VISIBLE_DEVICES=""`` (no GPU visible) and checks that its
   predictions there equal those on the GPU.
4. With several GPUs visible, trains one model with ``data_parallel=True``
   in a ``torchrun`` launch of one process per GPU (up to 8) and checks
   that every process ends with the same model, that its predictions match
   those of the same fit on one GPU, and compares the samples/s of both.

Without CUDA it says that it needs a GPU and exits with status 0.

Run: ``python benchmarks/gpu_check.py``. ``--dry-run`` runs the same steps
on the CPU with a few hundred rows (step 4 with two CPU processes), to
check the script itself.
"""

import os
import subprocess
import sys
import tempfile
import time

import joblib
import numpy as np
import torch

_ROWS, _IMAGE_SIZE = 4_000, 32
_SPEED_EPOCHS = 3
# "cuda", or "cpu" for --dry-run.
DEVICE = "cuda"


def _data(n_samples, image_size):
    from skmm.datasets import make_multimodal_classification

    X, y = make_multimodal_classification(
        n_samples=n_samples, image_size=image_size, random_state=0
    )
    split = int(0.8 * n_samples)
    return X.iloc[:split], X.iloc[split:], y[:split], y[split:]


def _fusion(output):
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from skmm import CNNImageEncoder, MultimodalFusion, TfidfTextEncoder

    return MultimodalFusion(
        [
            ("text", TfidfTextEncoder(), ["text"]),
            (
                "image",
                CNNImageEncoder(image_size=_IMAGE_SIZE, output=output, device=DEVICE),
                ["image"],
            ),
            ("numeric", StandardScaler(), ["num_0", "num_1"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["category"]),
        ]
    )


def _check_strategies(X, X_test, y, y_test, rows):
    from skmm import FusionClassifier
    from skmm.nn._fusion_layers import FUSION_STRATEGIES

    fusion = _fusion("features")
    blocks, blocks_test = fusion.fit_transform(X, y), fusion.transform(X_test)
    for strategy in FUSION_STRATEGIES:
        clf = FusionClassifier(
            fusion=strategy, max_epochs=30, device=DEVICE, random_state=0
        )
        start = time.perf_counter()
        clf.fit(blocks, y)
        seconds = time.perf_counter() - start
        assert clf.device_.startswith(DEVICE), clf.device_
        rows.append(
            (
                f"fit fusion={strategy}, {DEVICE}",
                f"accuracy {clf.score(blocks_test, y_test):.3f}",
                f"{seconds:.1f} s",
            )
        )


def _speed(blocks, y, device, precision, n_rows):
    from skmm import FusionClassifier

    clf = FusionClassifier(
        max_epochs=_SPEED_EPOCHS,
        early_stopping=False,
        batch_size=256,
        device=device,
        precision=precision,
        random_state=0,
    )
    # One epoch first, so that CUDA's start-up is not timed.
    clf.set_params(max_epochs=1).fit(blocks[:512], y[:512])
    clf.set_params(max_epochs=_SPEED_EPOCHS)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    clf.fit(blocks[:n_rows], y[:n_rows])
    if device == "cuda":
        torch.cuda.synchronize()
    return n_rows * _SPEED_EPOCHS / (time.perf_counter() - start)


def _check_speed(X, y, rows):
    blocks = _fusion("pixels").fit_transform(X, y)
    n = len(y)
    results = {}
    runs = [
        ("fp32, cuda", "cuda", "32", n),
        ("bf16-mixed, cuda", "cuda", "bf16-mixed", n),
        ("16-mixed, cuda", "cuda", "16-mixed", n),
        ("fp32, cpu", "cpu", "32", min(n, 1_000)),
    ]
    if DEVICE == "cpu":
        runs = [
            ("fp32, cpu", "cpu", "32", n),
            ("bf16-mixed, cpu", "cpu", "bf16-mixed", n),
        ]
    for label, device, precision, n_rows in runs:
        if (
            device == "cuda"
            and precision == "bf16-mixed"
            and not torch.cuda.is_bf16_supported()
        ):
            rows.append((f"CNN tower {label}", "bf16 not supported", "-"))
            continue
        results[label] = _speed(blocks, y, device, precision, n_rows)
        rows.append(
            (
                f"CNN tower train {label}",
                f"{results[label]:,.0f} samples/s",
                f"x{results[label] / next(iter(results.values())):.2f} "
                f"vs {next(iter(results))}",
            )
        )


def _check_cpu_reload(X, X_test, y, rows):
    from sklearn.pipeline import make_pipeline

    from skmm import FusionClassifier

    model = make_pipeline(
        _fusion("pixels"),
        FusionClassifier(max_epochs=5, device=DEVICE, random_state=0),
    ).fit(X, y)
    proba = model.predict_proba(X_test)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "model.joblib")
        data_path = os.path.join(tmp, "data.joblib")
        out_path = os.path.join(tmp, "proba.npy")
        joblib.dump(model, model_path)
        joblib.dump(X_test, data_path)
        code = (
            "import joblib, numpy, torch; "
            "assert not torch.cuda.is_available(), 'a GPU is visible'; "
            f"m = joblib.load({model_path!r}); "
            f"numpy.save({out_path!r}, m.predict_proba(joblib.load({data_path!r})))"
        )
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        cpu_proba = np.load(out_path)
    same_labels = np.array_equal(proba.argmax(axis=1), cpu_proba.argmax(axis=1))
    gap = float(np.max(np.abs(proba - cpu_proba)))
    rows.append(
        (
            "CUDA model loaded with CUDA_VISIBLE_DEVICES=''",
            "predictions equal" if same_labels else "PREDICTIONS DIFFER",
            f"max |proba gap| {gap:.1e}",
        )
    )
    return same_labels and gap < 1e-3


_DATA_PARALLEL_WORKER = """
import sys, time
import numpy as np, torch.distributed as dist
from skmm import FusionClassifier
out, device, n_rows, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = np.random.RandomState(0)
X = rng.normal(size=(n_rows, 64)).astype(np.float32)
y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
clf = FusionClassifier(hidden_dim=256, batch_size=512, max_epochs=3, dropout=0.0,
                       early_stopping=False, device=device,
                       data_parallel=parallel == "1", random_state=0)
start = time.perf_counter()
clf.fit(X, y)
seconds = time.perf_counter() - start
rank = dist.get_rank() if parallel == "1" else 0
np.savez(f"{out}/{parallel}_{rank}.npz", proba=clf.predict_proba(X[:2000]),
         seconds=seconds, rows=3 * n_rows)
"""


def _check_data_parallel(rows):
    n_gpus = torch.cuda.device_count() if DEVICE == "cuda" else 2
    if n_gpus < 2:
        rows.append(("data_parallel=True", "skipped", "one GPU visible"))
        return True
    n_procs = min(n_gpus, 8)
    n_rows = 200_000 if DEVICE == "cuda" else 4_000
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "worker.py")
        with open(script, "w") as f:
            f.write(_DATA_PARALLEL_WORKER)
        args = [tmp, DEVICE, str(n_rows)]
        subprocess.run([sys.executable, script, *args, "0"], check=True)
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launch.append(f"--nproc_per_node={n_procs}")
        subprocess.run([*launch, script, *args, "1"], check=True)
        single = np.load(os.path.join(tmp, "0_0.npz"))
        ranks = [np.load(os.path.join(tmp, f"1_{r}.npz")) for r in range(n_procs)]
    same = all(np.array_equal(r["proba"], ranks[0]["proba"]) for r in ranks)
    gap = float(np.max(np.abs(ranks[0]["proba"] - single["proba"])))
    speed = [float(d["rows"] / d["seconds"]) for d in (single, ranks[0])]
    rows.append(
        (
            f"data_parallel=True, {n_procs} processes vs 1",
            "same model in every process" if same else "PROCESSES DIFFER",
            f"max |proba gap| vs one device {gap:.1e}; samples/s "
            f"{speed[1]:,.0f} vs {speed[0]:,.0f} ({speed[1] / speed[0]:.2f}x)",
        )
    )
    return same and gap < 1e-3


def main(argv):
    global DEVICE
    n_rows = _ROWS
    if "--dry-run" in argv:
        DEVICE, n_rows = "cpu", 400
    elif not torch.cuda.is_available():
        print("gpu_check.py needs a CUDA GPU; none is visible, so nothing was run.")
        return 0
    start = time.perf_counter()
    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU (dry run)"
    print(f"{name}, torch {torch.__version__}")
    X, X_test, y, y_test = _data(n_rows, 16)
    rows = []
    _check_strategies(X, X_test, y, y_test, rows)
    _check_speed(X, y, rows)
    ok = _check_cpu_reload(X.iloc[:1_000], X_test, y[:1_000], rows)
    ok = _check_data_parallel(rows) and ok
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\n(total {time.perf_counter() - start:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The ``skmm`` command line, driven as a subprocess on small CSV files."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skmm._cli import main

ROOT = Path(__file__).resolve().parents[1]


def _skmm(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "skmm", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def _write_data(folder, n, seed):
    """A CSV with image paths relative to ``folder``, text, numbers, targets."""
    rng = np.random.RandomState(seed)
    (folder / "photos").mkdir(parents=True)
    label = rng.randint(2, size=n)
    for i in range(n):
        pixels = (rng.rand(6, 6, 3) * 80 + 150 * label[i]).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "photos" / f"{i}.png")
    reviews = ["poor quality and a bad fit", "great fit and a lovely colour"]
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "photo": [f"photos/{i}.png" for i in range(n)],
            "review": [f"{reviews[y]} item {i}" for i, y in enumerate(label)],
            "size": rng.choice(["S", "M", "L"], n),
            "price": rng.normal(size=n) + label,
            "liked": np.array(["no", "yes"])[label],
            "score": rng.normal(scale=0.1, size=n) + 2 * label,
        }
    )
    frame.to_csv(folder / "data.csv", index=False)
    return frame


def _write_binary_data(folder):
    """Whole-number labels with a missing one: pandas reads them as floats."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=40)
    label = (x > 0).astype(float)
    label[3] = np.nan
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=40), "label": label})
    frame.to_csv(folder / "binary.csv", index=False)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A multi-task model fitted by ``skmm fit``, and a test folder."""
    root = tmp_path_factory.mktemp("cli")
    _write_data(root / "train", 60, seed=0)
    test = _write_data(root / "test", 20, seed=1)
    model = root / "model.joblib"
    # Run from another folder: the image paths are relative to the CSV.
    result = _skmm(
        "fit",
        root / "train" / "data.csv",
        "--target",
        "liked",
        "--target",
        "score",
        "--fusion",
        "gated",
        "--max-epochs",
        "20",
        "-o",
        model,
        cwd=root,
    )
    return root, model, test, result


def test_fit_reports_progress_on_stderr_and_saves_a_multitask_model(fitted):
    _, model, _, result = fitted

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "'photo': image" in result.stderr
    assert "'id': left out, id" in result.stderr
    assert "train_loss" in result.stderr
    saved = joblib.load(model)
    assert saved["targets"] == ["liked", "score"]
    assert saved["tasks"] == {"liked": "classification", "score": "regression"}
    estimator = saved["pipeline"][-1]
    assert type(estimator).__name__ == "FusionMultiTask"
    assert estimator.fusion == "gated"
    assert estimator.n_iter_ <= 20
    assert "rows without a target value" not in result.stderr
    # Progress of the encoders too; the saved model is quiet.
    assert "Processing image" in result.stderr
    assert estimator.verbose == 0 == saved["pipeline"][0].verbose


def test_predict_writes_one_column_per_target_and_probabilities(fitted):
    root, model, test, _ = fitted

    result = _skmm("predict", model, root / "test" / "data.csv", "--proba")

    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(StringIO(result.stdout))
    assert list(predictions.columns) == [
        "liked",
        "score",
        "liked_proba_no",
        "liked_proba_yes",
    ]
    assert len(predictions) == len(test)
    assert set(predictions["liked"]) <= {"no", "yes"}
    np.testing.assert_allclose(
        predictions[["liked_proba_no", "liked_proba_yes"]].sum(axis=1), 1, atol=1e-5
    )
    # The images, texts and sizes carry the label: the model learned it.
    assert (predictions["liked"] == test["liked"]).mean() >= 0.8


def test_evaluate_prints_metrics_per_target(fitted):
    root, model, _, _ = fitted

    result = _skmm("evaluate", model, root / "test" / "data.csv")

    assert result.returncode == 0, result.stderr
    metrics = {
        (line.split()[0], line.split()[1]): float(line.split()[2])
        for line in result.stdout.splitlines()[1:]
    }
    assert set(metrics) == {
        ("liked", "accuracy"),
        ("liked", "f1"),
        ("score", "mae"),
        ("score", "r2"),
    }
    assert metrics["liked", "accuracy"] >= 0.8
    assert metrics["score", "r2"] > 0.5


def test_missing_targets_are_left_out_and_labels_stay_integers(tmp_path):
    _write_binary_data(tmp_path)
    model = tmp_path / "binary.joblib"

    assert (
        main(["fit", str(tmp_path / "binary.csv"), "-t", "label", "-o", str(model)])
        == 0
    )
    saved = joblib.load(model)

    assert saved["tasks"] == {"label": "classification"}
    assert list(saved["pipeline"][-1].classes_) == [0, 1]
    assert saved["pipeline"][-1].n_features_in_ == 2


def test_an_error_is_one_line_with_a_nonzero_status(fitted):
    root, _, _, _ = fitted
    train = root / "train" / "data.csv"

    result = _skmm("fit", train, "--target", "rating", "-o", root / "m.joblib")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # The missing column and the columns available are named.
    assert "['rating'] are not in" in result.stderr
    assert "'liked'" in result.stderr


def test_errors_name_the_file(fitted, tmp_path, capsys):
    """The other errors, through the same entry point, in this process."""
    root, model, _, _ = fitted
    train = root / "train" / "data.csv"
    (tmp_path / "bad.csv").write_bytes(b'a,b\n1,"2\n3,4\n')
    (tmp_path / "empty.csv").write_text("a,b\n")
    (tmp_path / "model.txt").write_text("not a model")
    pd.read_csv(root / "test" / "data.csv").to_csv(tmp_path / "moved.csv", index=False)

    cases = [
        (["predict", model, tmp_path / "absent.csv"], "absent.csv' does not exist"),
        (["predict", model, tmp_path / "bad.csv"], "cannot read the CSV file"),
        (["predict", model, tmp_path / "empty.csv"], "has no data rows"),
        (["predict", tmp_path / "model.txt", train], "cannot load the model file"),
        (["evaluate", tmp_path / "absent.joblib", train], "does not exist"),
        # The photos are read relative to the CSV's folder, where there are
        # none: the error names the file, its column and row.
        (["predict", model, tmp_path / "moved.csv"], "column 'photo', row 0"),
    ]
    for args, message in cases:
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
        assert err.splitlines()[-1].startswith(f"skmm {args[0]}: error: ")
    assert str(tmp_path / "photos" / "0.png") in err


def test_help_lists_the_commands_and_demo_keeps_its_options(capsys):
    for args in (["--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exc_info:
            main(args)
        assert exc_info.value.code == 0
    out = capsys.readouterr().out

    for command in ("fit", "predict", "evaluate", "demo"):
        assert command in out
    assert "--data-home" in out and "--n-samples" in out

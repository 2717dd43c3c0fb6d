"""The recipes of the user guide run as written.

Each recipe is a fenced ``python`` block placed right after a
``<!-- recipe: name -->`` marker in ``docs/user_guide.md``; the tests take
the code from the page, so that the page cannot drift from what is tested.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from skmm.datasets import make_multimodal_classification

USER_GUIDE = Path(__file__).resolve().parents[1] / "docs" / "user_guide.md"


def _recipe(name):
    """The code of the fenced block that follows the marker of ``name``."""
    text = USER_GUIDE.read_text(encoding="utf-8")
    pattern = rf"<!-- recipe: {re.escape(name)} -->\s*```python\n(.*?)\n```"
    found = re.findall(pattern, text, flags=re.DOTALL)
    assert len(found) == 1, f"expected one recipe {name!r} in {USER_GUIDE}"
    return found[0]


@pytest.mark.slow
def test_stacking_with_gradient_boosting_recipe():
    X, y = make_multimodal_classification(n_samples=300, random_state=0)
    namespace = {"X": X, "y": y}
    exec(compile(_recipe("stacking"), str(USER_GUIDE), "exec"), namespace)

    stack, X_test, y_test = namespace["stack"], namespace["X_test"], namespace["y_test"]
    names = [name for name, _ in stack.estimators]
    assert names == ["fusion", "boosting"]
    assert type(stack.named_estimators_["fusion"][-1]).__name__ == "FusionClassifier"
    y_pred = stack.predict(X_test)
    assert y_pred.shape == y_test.shape
    assert set(np.unique(y_pred)) <= set(np.unique(y))
    chance = np.bincount(y_test).max() / len(y_test)
    assert namespace["stack_score"] == pytest.approx(np.mean(y_pred == y_test))
    assert namespace["stack_score"] > chance + 0.1


def test_one_line_recipe(capsys):
    X, y = make_multimodal_classification(n_samples=120, random_state=0)
    code = _recipe("one-line").replace(
        'fusionclassifier__fusion="gated"',
        'fusionclassifier__fusion="gated", fusionclassifier__max_epochs=3',
    )
    namespace = {"X": X, "y": y}
    exec(compile(code, str(USER_GUIDE), "exec"), namespace)

    model = namespace["model"]
    assert [name for name, _, _ in model[0].transformers] == [
        "text",
        "image",
        "numeric",
        "categorical",
    ]
    assert type(model[-1]).__name__ == "FusionClassifier"
    assert set(model.predict(X.head())) <= set(np.unique(y))
    assert "arrays of rank 2" in capsys.readouterr().out


def test_lazy_images_recipe(tmp_path):
    import pandas as pd
    from PIL import Image

    from skmm._blocks import LazyBlock

    rng = np.random.RandomState(0)
    paths = []
    for i in range(40):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(rng.randint(0, 256, (20, 20, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    df = pd.DataFrame(
        {"image": paths, "num_0": rng.normal(size=40), "num_1": rng.normal(size=40)}
    )
    y = np.arange(40) % 2
    namespace = {"df": df, "y": y}
    exec(compile(_recipe("lazy-images"), str(USER_GUIDE), "exec"), namespace)

    model = namespace["lazy_model"]
    assert isinstance(model[0].transform(df)["image"], LazyBlock)
    assert model.predict(df).shape == (40,)

"""Every ``python`` code block of README.md and the pages of docs/ runs.

The blocks of a page run in order, in one namespace per page, as a reader
who pastes them one after the other would run them; a block may use what an
earlier block of its page defined, nothing else. They run at a small size:
the synthetic datasets are capped at ``MAX_ROWS`` rows and the fusion
estimators at ``MAX_EPOCHS`` epochs, so the pages can show the sizes a user
would choose.

Conventions for the pages:

- a block that is not meant to run (a shell command, output, a formula) is
  fenced with another language, or none;
- a block that reads the real datasets of ``../shared/data`` follows a
  ``<!-- docs-test: needs-data -->`` line; it runs from the root of the
  repository, as its paths say, and the page's test skips from there when
  the data is absent;
- a block that needs an optional package the tests do not install (such as
  Ray) follows a ``<!-- docs-test: needs-module NAME -->`` line and is left
  out, with the blocks after it still run, when ``NAME`` cannot be
  imported.
"""

import importlib.util
import re
import textwrap
import time
import warnings
from functools import wraps
from pathlib import Path

import pytest
from sklearn.exceptions import FitFailedWarning

import skmm
import skmm.datasets
from skmm._estimators import _BaseFusionEstimator

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted(
        page
        for page in (ROOT / "docs").rglob("*.md")
        if not any(part.startswith("_") for part in page.relative_to(ROOT).parts)
    ),
]
SHARED_DATA = ROOT.parent / "shared" / "data"
NEEDS_DATA = "<!-- docs-test: needs-data -->"
_NEEDS_MODULE = re.compile(r"^<!-- docs-test: needs-module ([\w.]+) -->$")

MAX_ROWS = 90
MAX_EPOCHS = 2

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    flags=re.DOTALL | re.MULTILINE,
)


def required_module(page, line):
    """The module that the block at ``line`` of ``page`` needs, or None."""
    before = page.read_text(encoding="utf-8").split("\n")[: line - 1]
    match = _NEEDS_MODULE.match(before[-1].strip()) if before else None
    return match.group(1) if match else None


def code_blocks(page):
    """``(line, code, needs_data)`` of each ``python`` block of ``page``."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group("lang").strip() != "python":
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        code = textwrap.dedent(match.group("code"))
        blocks.append((line, code, before.strip() == NEEDS_DATA))
    return blocks


def _capped_rows(make):
    @wraps(make)
    def capped(n_samples=100, *args, **kwargs):
        return make(min(n_samples, MAX_ROWS), *args, **kwargs)

    return capped


def _capped_epochs(train):
    @wraps(train)
    def capped(self, *args, **kwargs):
        max_epochs = self.max_epochs
        self.max_epochs = min(max_epochs, MAX_EPOCHS)
        try:
            return train(self, *args, **kwargs)
        finally:
            self.max_epochs = max_epochs

    return capped


@pytest.fixture
def small_size(monkeypatch, tmp_path):
    """Small data and short training; files written by the pages go to tmp.

    skmm's configuration (and the environment variable ``set_config``
    exports) comes back as it was, so that a page cannot change the tests
    that run after it.
    """
    config = skmm.get_config()
    monkeypatch.delenv("SKMM_CACHE_DIR", raising=False)
    yield from _small_size(monkeypatch, tmp_path)
    skmm.set_config(**config)


def _small_size(monkeypatch, tmp_path):
    for name in ("make_multimodal_classification", "make_multimodal_regression"):
        monkeypatch.setattr(
            skmm.datasets, name, _capped_rows(getattr(skmm.datasets, name))
        )
    for name in ("_train", "_continue_training"):
        monkeypatch.setattr(
            _BaseFusionEstimator,
            name,
            _capped_epochs(getattr(_BaseFusionEstimator, name)),
        )
    monkeypatch.chdir(tmp_path)
    yield monkeypatch


def test_the_pages_have_code_blocks():
    counts = {page.name: len(code_blocks(page)) for page in PAGES}
    assert counts["README.md"] >= 1
    assert counts["user_guide.md"] >= 20


def test_api_reference_lists_every_public_name():
    spec = importlib.util.spec_from_file_location(
        "docs_conf", ROOT / "docs" / "conf.py"
    )
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    page = conf.api_page()
    listed = set(re.findall(r"^   (\w+)$", page, flags=re.MULTILINE))

    modules = {module.__name__ for module in conf.public_modules()}
    assert {"skmm", "skmm.datasets", "skmm.display", "skmm.inspection"} <= modules
    for module in conf.public_modules():
        for name in module.__all__:
            # A name re-exported by skmm is documented once, under skmm.
            assert name in listed, f"{module.__name__}.{name} is not in the API page"
    assert ".. automodule:: skmm.display" in page


def test_code_blocks_are_found_inside_lists(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\na = 1\n```\n\n- item\n\n  ```python\n  b = a\n  ```\n"
        "\n```\nnot python\n```\n\n" + NEEDS_DATA + "\n```python\nc = 2\n```\n",
        encoding="utf-8",
    )
    assert code_blocks(page) == [
        (3, "a = 1\n", False),
        (9, "b = a\n", False),
        (18, "c = 2\n", True),
    ]


@pytest.mark.parametrize(
    "page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES]
)
def test_code_blocks_run(page, small_size, tmp_path):
    pytest.importorskip("matplotlib").use("Agg")
    import matplotlib.pyplot as plt

    blocks = code_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no python code block")
    namespace = {"__name__": f"docs_{page.stem}"}
    start = time.perf_counter()
    try:
        for line, code, needs_data in blocks:
            if needs_data and not SHARED_DATA.is_dir():
                pytest.skip(f"{page.name}:{line} needs the data in {SHARED_DATA}")
            module = required_module(page, line)
            if module and importlib.util.find_spec(module) is None:
                continue
            small_size.chdir(ROOT if needs_data else tmp_path)
            with warnings.catch_warnings():
                # A grid search hides a failed candidate, and a search or
                # cross-validation a failed scorer, behind a warning.
                warnings.simplefilter("error", FitFailedWarning)
                warnings.filterwarnings("error", message="Scoring failed")
                try:
                    exec(compile(code, f"{page}:{line}", "exec"), namespace)
                except Exception as exc:
                    raise AssertionError(
                        f"The code block at {page.name}:{line} failed: "
                        f"{type(exc).__name__}: {exc}\n{code}"
                    ) from exc
    finally:
        plt.close("all")
    print(f"{page.name}: {len(blocks)} blocks in {time.perf_counter() - start:.1f} s")

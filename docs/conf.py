"""Sphinx configuration of skmm's documentation site.

The pages are the Markdown files of docs/ (read by myst-parser). The API
reference, ``api.rst``, is written at each build from ``__all__`` of skmm
and of each of its public submodules, so a name added to an ``__all__``
appears without editing the docs; a name re-exported by several modules is
documented once, under the first of them (``skmm`` first).
"""

import importlib
import pkgutil
from pathlib import Path

import skmm

project = "skmm"
author = "the skmm developers"
copyright = "the skmm developers"
release = skmm.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

autosummary_generate = True
# Classes are documented by _templates/autosummary/class.rst: with the
# methods they inherit from skmm's and scikit-learn's base classes
# (gate_values, get_params), not those of torch's Module and skorch's
# NeuralNet, which those projects document.
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

# skmm's docstrings use scikit-learn's glossary terms (:term:`fit`), and the
# methods inherited from scikit-learn (score, set_fit_request) refer to
# labels of scikit-learn's site; offline, neither resolves, and both render
# as plain text.
suppress_warnings = ["ref.term", "ref.ref"]

html_theme = "alabaster"
html_title = f"skmm {release}"
html_theme_options = {
    "description": "Multimodal deep learning with the scikit-learn API",
    "fixed_sidebar": True,
}
html_static_path = []

HERE = Path(__file__).resolve().parent
MODULE_TITLES = {
    "skmm": "Estimators, encoders and configuration",
    "skmm.compose": "Composition",
    "skmm.datasets": "Datasets",
    "skmm.display": "Displays",
    "skmm.encoders": "Encoders",
    "skmm.inspection": "Inspection",
    "skmm.metrics": "Metrics",
    "skmm.nn": "Torch modules",
    "skmm.utils": "Utilities",
}


def public_modules():
    """skmm and its public submodules that declare ``__all__``, in order."""
    names = ["skmm"] + sorted(
        f"skmm.{info.name}"
        for info in pkgutil.iter_modules(skmm.__path__)
        if not info.name.startswith("_")
    )
    modules = []
    for name in names:
        module = importlib.import_module(name)
        if getattr(module, "__all__", None):
            modules.append(module)
    return modules


def api_page():
    """The reStructuredText of the API reference, from the ``__all__`` lists."""
    lines = [
        "API reference",
        "=============",
        "",
        "Every public name of skmm, by module. This page is generated from the",
        "``__all__`` of each module at each build.",
        "",
    ]
    seen = set()
    for module in public_modules():
        names = []
        for name in module.__all__:
            obj = getattr(module, name)
            key = id(obj) if callable(obj) or isinstance(obj, type) else None
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            names.append(name)
        if not names:
            continue
        title = MODULE_TITLES.get(module.__name__, module.__name__)
        heading = f"``{module.__name__}``: {title}"
        lines += [heading, "-" * len(heading), ""]
        lines += [f".. automodule:: {module.__name__}", "   :no-members:", ""]
        lines += [f".. currentmodule:: {module.__name__}", ""]
        lines += [".. autosummary::", "   :toctree: generated", "", ""]
        lines += [f"   {name}" for name in names]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_api_page():
    page = HERE / "api.rst"
    text = api_page()
    if not page.exists() or page.read_text(encoding="utf-8") != text:
        page.write_text(text, encoding="utf-8")


# Written when Sphinx reads the configuration (it defines ``tags`` there),
# before it lists the pages; importing this file elsewhere writes nothing.
if "tags" in globals():
    write_api_page()

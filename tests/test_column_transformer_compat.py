"""scikit-learn's own ColumnTransformer tests, run on MultimodalFusion.

The test module is imported from the installed scikit-learn, not copied. Each of
its tests runs here with ``ColumnTransformer`` and ``make_column_transformer``
replaced by ``MultimodalFusion(..., output="flat")`` builders, and with any
ColumnTransformer it is parametrized with rebuilt as a MultimodalFusion.

The tests that check a documented difference are expected to fail (strictly:
one that starts passing is reported, so that it leaves the list).
"""

import functools

import pytest
from sklearn.compose import ColumnTransformer, make_column_transformer

from skmm import MultimodalFusion

sklearn_tests = pytest.importorskip("sklearn.compose.tests.test_column_transformer")

# Tests whose failure on MultimodalFusion is expected, with the reason.
EXPECTED_DIFFERENT = {
    "test_column_transformer_invalid_columns": (
        "the n_features_in_ message names the class: 'MultimodalFusion is "
        "expecting 2 features'"
    ),
    "test_column_transformer_get_set_params": (
        "get_params has one more parameter, output"
    ),
    "test_column_transformer_get_set_params_with_remainder": (
        "get_params has one more parameter, output"
    ),
}


def flat_fusion(transformers, **kwargs):
    return MultimodalFusion(transformers, output="flat", **kwargs)


def make_flat_fusion(*transformers, **kwargs):
    reference = make_column_transformer(*transformers, **kwargs)
    return flat_fusion(**reference.get_params(deep=False))


def _as_flat_fusion(value):
    if type(value) is ColumnTransformer:
        return flat_fusion(**value.get_params(deep=False))
    return value


def _on_fusion(test):
    """Run ``test`` with the fusion standing in for ColumnTransformer."""

    @functools.wraps(test)
    def run(**kwargs):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sklearn_tests, "ColumnTransformer", flat_fusion)
            patch.setattr(sklearn_tests, "make_column_transformer", make_flat_fusion)
            test(**{name: _as_flat_fusion(arg) for name, arg in kwargs.items()})

    if test.__name__ in EXPECTED_DIFFERENT:
        reason = EXPECTED_DIFFERENT[test.__name__]
        run = pytest.mark.xfail(raises=AssertionError, strict=True, reason=reason)(run)
    return run


SKLEARN_TESTS = {
    name: _on_fusion(test)
    for name, test in vars(sklearn_tests).items()
    if name.startswith("test_") and callable(test)
}
globals().update(SKLEARN_TESTS)


@pytest.fixture
def global_random_seed():
    # Defined in scikit-learn's conftest, which does not reach this module.
    return 42


def test_expected_differences_name_real_tests():
    assert set(EXPECTED_DIFFERENT) <= set(SKLEARN_TESTS)


def test_sklearn_tests_run_on_the_fusion():
    seen = {}

    def probe(est):
        seen["param"] = est
        seen["built"] = sklearn_tests.ColumnTransformer([("a", "passthrough", [0])])
        seen["made"] = sklearn_tests.make_column_transformer(
            ("passthrough", [0]), remainder="passthrough"
        )

    _on_fusion(probe)(est=ColumnTransformer([("a", "drop", [0])], n_jobs=2))
    assert all(isinstance(est, MultimodalFusion) for est in seen.values())
    assert all(est.output == "flat" for est in seen.values())
    assert seen["param"].n_jobs == 2 and seen["made"].remainder == "passthrough"
    assert sklearn_tests.ColumnTransformer is ColumnTransformer

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import BlockSpec, ModalityBlocks, MultimodalFusion


@pytest.fixture
def df():
    rng = np.random.RandomState(0)
    n = 40
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.choice(["x", "y", "z"], size=n),
            "d": rng.normal(size=n),
        }
    ), (rng.normal(size=n) > 0).astype(int)


def _fusion(**kwargs):
    return MultimodalFusion(
        [
            ("numeric", StandardScaler(), ["a", "b"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["c"]),
        ],
        **kwargs,
    )


def test_blocks_output_keeps_modalities_apart(df):
    X, _ = df
    blocks = _fusion().fit_transform(X)
    assert isinstance(blocks, ModalityBlocks)
    assert blocks.names == ["numeric", "category"]
    assert blocks["numeric"].shape == (40, 2)
    assert blocks["category"].shape == (40, 3)
    assert blocks.specs["numeric"] == BlockSpec(kind="dense", n_features=2)
    assert len(blocks) == 40 and blocks.shape == (40, 5)


def test_flat_output_matches_column_transformer(df):
    X, _ = df
    reference = ColumnTransformer(
        [
            ("numeric", StandardScaler(), ["a", "b"]),
            ("category", OneHotEncoder(handle_unknown="ignore"), ["c"]),
        ]
    ).fit_transform(X)
    flat = _fusion(output="flat").fit_transform(X)
    blocks = _fusion().fit_transform(X)
    np.testing.assert_allclose(flat, reference)
    np.testing.assert_allclose(np.asarray(blocks), reference)


def test_sparse_blocks_stay_sparse(df):
    X, _ = df
    fusion = MultimodalFusion([("category", OneHotEncoder(), ["c"])])
    blocks = fusion.fit_transform(X)
    assert sparse.issparse(blocks["category"])


def test_classic_estimator_after_fusion(df):
    X, y = df
    model = make_pipeline(_fusion(), LogisticRegression()).fit(X, y)
    flat_model = make_pipeline(_fusion(output="flat"), LogisticRegression()).fit(X, y)
    np.testing.assert_allclose(
        model.predict_proba(X), flat_model.predict_proba(X), rtol=1e-6
    )


def test_nested_params_and_clone(df):
    fusion = _fusion()
    params = fusion.get_params()
    assert params["numeric__with_mean"] is True
    fusion.set_params(numeric__with_mean=False)
    assert fusion.transformers[0][1].with_mean is False
    cloned = clone(fusion)
    assert cloned.get_params()["numeric__with_mean"] is False
    assert cloned.transformers[0][1] is not fusion.transformers[0][1]


def test_fitted_attributes_and_feature_names(df):
    X, _ = df
    fusion = _fusion().fit(X)
    assert set(fusion.named_transformers_) == {"numeric", "category", "remainder"}
    assert fusion.output_indices_["numeric"] == slice(0, 2)
    assert fusion.output_indices_["category"] == slice(2, 5)
    assert list(fusion.get_feature_names_out()) == [
        "numeric__a",
        "numeric__b",
        "category__c_x",
        "category__c_y",
        "category__c_z",
    ]
    assert fusion.n_features_in_ == 4
    assert list(fusion.feature_names_in_) == ["a", "b", "c", "d"]
    assert set(fusion.block_specs_) == {"numeric", "category"}


def test_set_output_pandas_for_flat_output(df):
    X, _ = df
    fusion = MultimodalFusion(
        [("numeric", StandardScaler(), ["a", "b"])], output="flat"
    ).set_output(transform="pandas")
    Xt = fusion.fit_transform(X)
    assert isinstance(Xt, pd.DataFrame)
    assert list(Xt.columns) == ["numeric__a", "numeric__b"]
    # Blocks feed torch towers: they stay numpy arrays whatever the setting.
    blocks = MultimodalFusion([("numeric", StandardScaler(), ["a", "b"])])
    blocks = blocks.set_output(transform="pandas").fit_transform(X)
    assert isinstance(blocks["numeric"], np.ndarray)


def test_remainder_passthrough_is_its_own_block(df):
    X, _ = df
    blocks = _fusion(remainder="passthrough").fit_transform(X)
    assert blocks.names == ["numeric", "category", "remainder"]
    np.testing.assert_allclose(blocks["remainder"].astype(float), X[["d"]])


def test_n_jobs_gives_the_same_blocks(df):
    X, _ = df
    serial = _fusion().fit_transform(X)
    parallel = _fusion(n_jobs=2).fit_transform(X)
    np.testing.assert_allclose(np.asarray(serial), np.asarray(parallel))


def test_missing_column_is_named(df):
    X, _ = df
    fusion = _fusion().fit(X)
    with pytest.raises(ValueError, match="b"):
        fusion.transform(X.drop(columns=["b"]))


def test_bad_output_option(df):
    X, _ = df
    with pytest.raises(ValueError, match="output"):
        _fusion(output="tensor").fit(X)


def test_modality_blocks_index_by_row():
    blocks = ModalityBlocks(
        {"a": np.arange(10).reshape(5, 2), "b": sparse.csr_matrix(np.eye(5))}
    )
    sub = blocks[np.array([0, 3])]
    assert len(sub) == 2
    np.testing.assert_array_equal(sub["a"], [[0, 1], [6, 7]])
    np.testing.assert_array_equal(sub["b"].toarray()[1], np.eye(5)[3])
    assert sub.specs == blocks.specs


def test_modality_blocks_reject_mismatched_rows():
    with pytest.raises(ValueError, match="rows"):
        ModalityBlocks({"a": np.zeros((5, 2)), "b": np.zeros((4, 2))})

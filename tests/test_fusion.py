import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn import config_context
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmm import (
    BlockSpec,
    FusionClassifier,
    ModalityBlocks,
    MultimodalFusion,
    TfidfTextEncoder,
)


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


def _dense(X):
    return X.toarray() if sparse.issparse(X) else X


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


@pytest.mark.parametrize("context", ["set_output", "config_context"])
def test_pandas_output_has_the_feature_names(df, context):
    X, _ = df
    X = X.set_axis(np.arange(100, 140))
    fusion = MultimodalFusion(
        [("numeric", StandardScaler(), ["a", "b"]), ("rest", "passthrough", ["d"])],
        output="flat",
    )
    if context == "set_output":
        Xt = fusion.set_output(transform="pandas").fit_transform(X)
        Xt_new = fusion.transform(X)
    else:
        with config_context(transform_output="pandas"):
            Xt = fusion.fit_transform(X)
            Xt_new = fusion.transform(X)
    for out in (Xt, Xt_new):
        assert isinstance(out, pd.DataFrame)
        assert list(out.columns) == ["numeric__a", "numeric__b", "rest__d"]
        assert list(out.index) == list(X.index)
        np.testing.assert_allclose(out["rest__d"], X["d"])


def test_polars_output(df):
    X, _ = df
    fusion = MultimodalFusion(
        [("numeric", StandardScaler(), ["a", "b"])], output="flat"
    )
    fusion.set_output(transform="polars")
    try:
        import polars as pl
    except ImportError:
        # Polars is optional: without it the error names it.
        with pytest.raises(ImportError, match="requires polars to be installed"):
            fusion.fit_transform(X)
    else:
        Xt = fusion.fit_transform(X)
        assert isinstance(Xt, pl.DataFrame)
        assert Xt.columns == ["numeric__a", "numeric__b"]


@pytest.mark.parametrize("vectorizer", [CountVectorizer(), TfidfVectorizer()])
def test_single_column_name_gives_vectorizers_the_texts(vectorizer):
    X = pd.DataFrame(
        {"text": ["a red cat", "a blue dog", "the red dog", "cat and dog"]}
    )
    reference = ColumnTransformer([("t", vectorizer, "text")]).fit_transform(X)
    flat = MultimodalFusion([("t", vectorizer, "text")], output="flat")
    flat = flat.fit_transform(X)
    blocks = MultimodalFusion([("t", vectorizer, "text")]).fit_transform(X)
    assert flat.shape == reference.shape == (4, 6)
    np.testing.assert_allclose(_dense(flat), _dense(reference))
    np.testing.assert_allclose(_dense(blocks["t"]), _dense(reference))


def test_single_column_name_is_1d_for_other_transformers(df):
    # ColumnTransformer's rule: a scalar selects a 1-D column, a list a 2-D one.
    X, _ = df
    for cls in (ColumnTransformer, MultimodalFusion):
        with pytest.raises(ValueError, match="Expected a 2-dimensional container"):
            cls([("numeric", StandardScaler(), "a")]).fit(X)


def test_single_column_name_gives_skmm_encoders_a_2d_block():
    X = pd.DataFrame(
        {"text": ["a red cat", "a blue dog", "the red dog", "cat and dog"] * 5}
    )
    as_list = MultimodalFusion([("t", TfidfTextEncoder(), ["text"])])
    as_list = as_list.fit_transform(X)
    for encoder in (
        TfidfTextEncoder(),
        make_pipeline(TfidfTextEncoder(), TruncatedSVD(2, random_state=0)),
    ):
        blocks = MultimodalFusion([("t", encoder, "text")]).fit_transform(X)
        assert blocks["t"].shape[0] == 20
    blocks = MultimodalFusion([("t", TfidfTextEncoder(), "text")]).fit_transform(X)
    np.testing.assert_allclose(blocks["t"].toarray(), as_list["t"].toarray())


def test_single_column_name_passthrough_is_a_2d_block(df):
    X, _ = df
    blocks = MultimodalFusion([("rest", "passthrough", "d")]).fit_transform(X)
    assert blocks["rest"].shape == (40, 1)
    np.testing.assert_allclose(blocks["rest"][:, 0], X["d"])


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


def test_a_fitted_pipeline_predicts_on_dict_rows():
    rng = np.random.RandomState(0)
    df = pd.DataFrame(
        {
            "text": rng.choice(["good film", "bad film", "fine plot"], size=40),
            "x": rng.normal(size=40),
        }
    )
    y = (df["text"] == "good film").to_numpy()
    model = make_pipeline(
        MultimodalFusion(
            [("text", TfidfTextEncoder(), "text"), ("num", "passthrough", ["x"])]
        ),
        FusionClassifier(max_epochs=5, device="cpu", random_state=0),
    ).fit(df, y)
    records = df.iloc[:3].to_dict(orient="records")
    expected = model.predict_proba(df.iloc[:3])
    np.testing.assert_allclose(model.predict_proba(records), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict_proba(records[0]), expected[:1], rtol=1e-6)
    assert model.predict(records[1]).shape == (1,)

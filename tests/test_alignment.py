import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skmm import CrossModalAligner, ModalityBlocks

N_TRAIN = 200
N_TEST = 100


def _paired_modalities(seed=0, n=N_TRAIN + N_TEST):
    """Two views of one latent: a linear one (20 features), a nonlinear one (30)."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n, 8))
    A = z @ rng.normal(size=(8, 20)) + 0.3 * rng.normal(size=(n, 20))
    B = np.tanh(z @ rng.normal(size=(8, 30))) + 0.1 * rng.normal(size=(n, 30))
    return A, B, z


def _top1_retrieval(aligner, A, B):
    """Fraction of rows of A whose most similar row of B is their own pair."""
    similarity = aligner.transform_modality(A, 0) @ aligner.transform_modality(B, 1).T
    return np.mean(similarity.argmax(axis=1) == np.arange(len(A)))


@pytest.mark.parametrize("hidden_dim", [None, 16])
def test_alignment_makes_cross_modal_retrieval_work(hidden_dim):
    A, B, _ = _paired_modalities()
    X_train = np.hstack([A[:N_TRAIN], B[:N_TRAIN]])
    A_test, B_test = A[N_TRAIN:], B[N_TRAIN:]
    params = dict(split=20, hidden_dim=hidden_dim, random_state=0)

    before = CrossModalAligner(max_epochs=0, **params).fit(X_train)
    after = CrossModalAligner(max_epochs=30, **params).fit(X_train)

    # Chance is 1 / N_TEST = 0.01.
    assert _top1_retrieval(before, A_test, B_test) < 0.05
    assert _top1_retrieval(after, A_test, B_test) > 0.5
    assert before.loss_curve_ == []
    assert len(after.loss_curve_) == 30
    assert after.loss_curve_[-1] < after.loss_curve_[0]


def test_transform_is_both_normalised_projections_side_by_side():
    A, B, _ = _paired_modalities(n=50)
    aligner = CrossModalAligner(n_components=4, split=20, max_epochs=2)
    Xt = aligner.fit(np.hstack([A, B])).transform(np.hstack([A, B]))

    assert Xt.shape == (50, 8)
    assert Xt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Xt[:, :4], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(Xt[:, 4:], axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(Xt[:, :4], aligner.transform_modality(A, "a"))
    np.testing.assert_array_equal(Xt[:, 4:], aligner.transform_modality(B, "b"))


def test_random_state_makes_fit_repeatable_without_touching_global_rng():
    A, B, _ = _paired_modalities(n=60)
    X = np.hstack([A, B])
    torch_state = torch.random.get_rng_state()

    first = CrossModalAligner(max_epochs=3, random_state=0).fit_transform(X)
    again = CrossModalAligner(max_epochs=3, random_state=0).fit_transform(X)
    other = CrossModalAligner(max_epochs=3, random_state=1).fit_transform(X)

    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_modality_blocks_match_the_same_split_array():
    A, B, _ = _paired_modalities(n=60)
    blocks = ModalityBlocks({"text": A, "image": B})
    params = dict(n_components=3, max_epochs=3, random_state=0)

    aligner = CrossModalAligner(**params).fit(blocks)
    from_array = CrossModalAligner(split=20, modalities=("text", "image"), **params)
    from_array.fit(np.hstack([A, B]))

    assert aligner.modalities_ == ("text", "image")
    assert aligner.n_features_in_ == 50
    np.testing.assert_allclose(
        aligner.transform(blocks), from_array.transform(np.hstack([A, B])), atol=1e-6
    )
    expected_names = [f"text__aligned{i}" for i in range(3)] + [
        f"image__aligned{i}" for i in range(3)
    ]
    assert list(aligner.get_feature_names_out()) == expected_names
    assert list(from_array.get_feature_names_out()) == expected_names


def test_modalities_chooses_the_blocks_and_sparse_blocks_are_densified():
    A, B, _ = _paired_modalities(n=60)
    extra = np.ones((60, 2))
    dense = ModalityBlocks({"extra": extra, "text": A, "image": B})
    sparse_blocks = ModalityBlocks(
        {"extra": extra, "text": sparse.csr_matrix(A), "image": B}
    )
    params = dict(modalities=("image", "text"), max_epochs=3, random_state=0)

    aligner = CrossModalAligner(**params).fit(dense)
    from_sparse = CrossModalAligner(**params).fit(sparse_blocks)

    assert aligner.modalities_ == ("image", "text")
    assert aligner.projection_a_.in_features == 30
    assert aligner.get_feature_names_out()[0] == "image__aligned0"
    np.testing.assert_allclose(
        aligner.transform(dense), from_sparse.transform(sparse_blocks), atol=1e-5
    )


def test_plain_array_feature_names_and_pandas_output():
    A, B, _ = _paired_modalities(n=40)
    aligner = CrossModalAligner(n_components=2, max_epochs=1).set_output(
        transform="pandas"
    )
    Xt = aligner.fit_transform(np.hstack([A, B]))

    assert aligner.split_ == 25
    assert list(Xt.columns) == [
        "a__aligned0",
        "a__aligned1",
        "b__aligned0",
        "b__aligned1",
    ]


def test_pipeline_before_logistic_regression():
    A, B, z = _paired_modalities()
    X, y = np.hstack([A, B]), (z[:, 0] > 0).astype(int)
    model = make_pipeline(
        CrossModalAligner(split=20, n_components=8, max_epochs=20, random_state=0),
        LogisticRegression(),
    )

    model.fit(X[:N_TRAIN], y[:N_TRAIN])

    assert model.score(X[N_TRAIN:], y[N_TRAIN:]) > 0.8


def test_errors_on_blocks():
    A, B, _ = _paired_modalities(n=30)
    blocks = ModalityBlocks({"text": A, "image": B})

    with pytest.raises(ValueError, match="'audio' is not among the blocks"):
        CrossModalAligner(modalities=("text", "audio"), max_epochs=0).fit(blocks)
    with pytest.raises(ValueError, match="aligns two modalities.*1 block"):
        CrossModalAligner(max_epochs=0).fit(ModalityBlocks({"text": A}))
    with pytest.raises(ValueError, match="modalities must be two different"):
        CrossModalAligner(modalities=("text",), max_epochs=0).fit(blocks)
    with pytest.raises(ValueError, match="split applies to a plain array"):
        CrossModalAligner(split=3, max_epochs=0).fit(blocks)

    aligner = CrossModalAligner(max_epochs=0).fit(blocks)
    with pytest.raises(ValueError, match="fitted on ModalityBlocks"):
        aligner.transform(np.hstack([A, B]))
    with pytest.raises(ValueError, match="'image' has 5 features"):
        aligner.transform(ModalityBlocks({"text": A, "image": B[:, :5]}))
    with pytest.raises(ValueError, match="modality must be 0, 1 or one of"):
        aligner.transform_modality(A, "audio")
    with pytest.raises(ValueError, match="'text' has 20 features in fit"):
        aligner.transform_modality(B, "text")


def test_errors_on_plain_arrays():
    X = np.random.RandomState(0).normal(size=(30, 4))

    with pytest.raises(ValueError, match=r"1 feature\(s\)"):
        CrossModalAligner(max_epochs=0).fit(X[:, :1])
    with pytest.raises(ValueError, match="split=4 leaves no column"):
        CrossModalAligner(split=4, max_epochs=0).fit(X)

    aligner = CrossModalAligner(max_epochs=0).fit(X)
    with pytest.raises(ValueError, match="fitted on a plain array"):
        aligner.transform(ModalityBlocks({"a": X[:, :2], "b": X[:, 2:]}))

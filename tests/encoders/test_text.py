import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer

from skmm._blocks import BlockSpec
from skmm.encoders._text import SequenceTextEncoder, TfidfTextEncoder

REVIEWS = pd.DataFrame(
    {
        "title": ["Lovely dress", "Too small", None, "Great fit", "Poor quality"],
        "body": [
            "Fits well, see https://shop.example/dress?id=1",
            "Ordered a size 4, runs small",
            "Returned it, photos at www.example.org/pics",
            np.nan,
            "Fabric ripped after 2 washes",
        ],
    }
)


def _column(cells, name="text"):
    return pd.DataFrame({name: pd.Series(cells, dtype=object)})


def _dense(Xt):
    return Xt.toarray() if sparse.issparse(Xt) else Xt


# TfidfTextEncoder


def test_tfidf_output_is_sparse_with_vocabulary_names():
    encoder = TfidfTextEncoder()
    Xt = encoder.fit_transform(REVIEWS)

    assert sparse.issparse(Xt) and Xt.format == "csr"
    names = encoder.get_feature_names_out()
    assert Xt.shape == (5, len(names))
    assert list(names) == sorted(encoder.vectorizer_.vocabulary_)
    assert {"dress", "small", "_url_"} <= set(names)


def test_tfidf_urls_are_one_token():
    X = _column(
        ["see http://a.example/x", "see HTTPS://b.example/y?q=1", "see www.c.org"]
    )
    encoder = TfidfTextEncoder().fit(X)

    assert list(encoder.get_feature_names_out()) == ["_url_", "see"]
    Xt = _dense(encoder.transform(X))
    np.testing.assert_allclose(Xt[0], Xt[1])
    np.testing.assert_allclose(Xt[0], Xt[2])

    raw = TfidfTextEncoder(normalize_urls=False).fit(X)
    assert {"example", "http", "www"} <= set(raw.get_feature_names_out())


def test_tfidf_number_normalisation_merges_numbers():
    X = _column(["size 4", "size 12", "size 3.5"])

    encoder = TfidfTextEncoder(normalize_numbers=True).fit(X)
    assert list(encoder.get_feature_names_out()) == ["_num_", "size"]
    Xt = _dense(encoder.transform(X))
    np.testing.assert_allclose(Xt, np.repeat(Xt[:1], 3, axis=0))

    assert "12" in TfidfTextEncoder().fit(X).get_feature_names_out()


def test_tfidf_lowercase_option():
    X = _column(["Red dress", "red DRESS"])

    assert list(TfidfTextEncoder().fit(X).get_feature_names_out()) == ["dress", "red"]
    cased = TfidfTextEncoder(lowercase=False).fit(X).get_feature_names_out()
    assert set(cased) == {"Red", "red", "dress", "DRESS"}
    # The cleaning preprocessor honours lowercase=False too.
    cased = TfidfTextEncoder(lowercase=False, normalize_numbers=True).fit(X)
    assert "Red" in cased.get_feature_names_out()


def test_tfidf_missing_cell_is_empty_text():
    X = pd.DataFrame(
        {
            "title": pd.Series([None, np.nan, "", pd.NA, None], dtype=object),
            "body": pd.Series(["nice", "nice", "nice", "nice", None], dtype=object),
        }
    )
    Xt = _dense(TfidfTextEncoder().fit_transform(X))

    for row in (1, 2, 3):
        np.testing.assert_array_equal(Xt[row], Xt[0])
    assert not Xt[4].any()


def test_tfidf_joins_columns_with_a_space():
    joined = _column([f"{t} {b}" for t, b in zip(["a b", "c"], ["d", "e f"])])
    two_columns = pd.DataFrame({"title": ["a b", "c"], "body": ["d", "e f"]})

    np.testing.assert_allclose(
        _dense(TfidfTextEncoder().fit_transform(two_columns)),
        _dense(TfidfTextEncoder().fit_transform(joined)),
    )


def test_tfidf_forwards_vectorizer_params():
    params = dict(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True)
    texts = ["red dress", "red dress fits", "blue dress", "red shirt fits"]
    encoder = TfidfTextEncoder(**params, normalize_urls=False, dtype=np.float32)
    expected = TfidfVectorizer(
        **params, token_pattern=r"(?u)\b\w+\b", dtype=np.float32
    ).fit_transform(texts)

    Xt = encoder.fit_transform(_column(texts))
    assert Xt.dtype == np.float32
    np.testing.assert_allclose(Xt.toarray(), expected.toarray())
    assert "red dress" in encoder.get_feature_names_out()


def test_tfidf_numeric_cells_are_text():
    Xt = TfidfTextEncoder().fit(np.array([[1.5], [2.0]]))

    assert set(Xt.get_feature_names_out()) == {"0", "1", "2", "5"}


def test_tfidf_svd_gives_dense_named_output():
    encoder = TfidfTextEncoder(n_components=3, random_state=0)
    encoder.set_output(transform="pandas")
    Xt = encoder.fit_transform(REVIEWS)

    assert isinstance(Xt, pd.DataFrame)
    assert list(Xt.columns) == ["svd0", "svd1", "svd2"]
    np.testing.assert_allclose(encoder.transform(REVIEWS).to_numpy(), Xt.to_numpy())
    again = TfidfTextEncoder(n_components=3, random_state=0).fit_transform(REVIEWS)
    np.testing.assert_array_equal(again, Xt.to_numpy())


def test_tfidf_empty_vocabulary_is_a_clear_error():
    one_row = pd.DataFrame({"title": ["Lovely dress"]})
    with pytest.raises(ValueError, match=r"min_df=2 .*\['title'\].*1 text"):
        TfidfTextEncoder(min_df=2).fit(one_row)

    stop_words_only = pd.DataFrame({"title": ["the", "and a"]})
    with pytest.raises(ValueError, match=r"vocabulary from column\(s\) \['title'\]"):
        TfidfTextEncoder(stop_words="english").fit(stop_words_only)


def test_tfidf_n_components_larger_than_vocabulary():
    with pytest.raises(ValueError, match=r"n_components=5 .* \['text'\] has 2"):
        TfidfTextEncoder(n_components=5).fit(_column(["red dress", "dress"]))


def test_tfidf_pickle_round_trip():
    encoder = TfidfTextEncoder(normalize_numbers=True).fit(REVIEWS)
    restored = pickle.loads(pickle.dumps(encoder))

    np.testing.assert_array_equal(
        restored.transform(REVIEWS).toarray(), encoder.transform(REVIEWS).toarray()
    )


def test_tfidf_checks_columns_in_transform():
    encoder = TfidfTextEncoder().fit(REVIEWS)
    with pytest.raises(ValueError, match="missing:\n- body"):
        encoder.transform(REVIEWS[["title"]])


# SequenceTextEncoder


def test_sequence_vocabulary_orders_by_frequency():
    encoder = SequenceTextEncoder().fit(_column(["b a b", "c a b", None]))

    assert encoder.vocabulary_ == {"b": 2, "a": 3, "c": 4}
    assert encoder.vocabulary_size_ == 5


def test_sequence_unseen_words_get_the_oov_id():
    encoder = SequenceTextEncoder(max_length=5).fit(_column(["red dress", "red"]))
    Xt = encoder.transform(_column(["Red green DRESS!"]))

    red, dress = encoder.vocabulary_["red"], encoder.vocabulary_["dress"]
    np.testing.assert_array_equal(Xt, [[red, 1, dress, 0, 0]])
    assert Xt.dtype == np.int64


def test_sequence_truncation_and_padding_positions():
    X = _column(["a b c d e f", "a b"])
    post = SequenceTextEncoder(max_length=4).fit(X)
    ids = [post.vocabulary_[t] for t in "abcd"]

    np.testing.assert_array_equal(post.transform(X), [ids, ids[:2] + [0, 0]])
    pre = SequenceTextEncoder(max_length=4, padding="pre").fit(X)
    np.testing.assert_array_equal(pre.transform(X), [ids, [0, 0] + ids[:2]])


def test_sequence_missing_text_is_all_padding():
    X = pd.DataFrame(
        {
            "title": pd.Series([None, np.nan, "", "x"], dtype=object),
            "body": pd.Series([np.nan, "", None, None], dtype=object),
        }
    )
    Xt = SequenceTextEncoder(max_length=3).fit_transform(X)

    np.testing.assert_array_equal(Xt[:3], np.zeros((3, 3)))
    np.testing.assert_array_equal(Xt[3], [2, 0, 0])


def test_sequence_joins_columns_in_order():
    X = pd.DataFrame({"title": ["a", "b"], "body": ["b c", None]})
    encoder = SequenceTextEncoder(max_length=4).fit(X)
    v = encoder.vocabulary_

    np.testing.assert_array_equal(
        encoder.transform(X), [[v["a"], v["b"], v["c"], 0], [v["b"], 0, 0, 0]]
    )


def test_sequence_vocabulary_limits():
    X = _column(["a a a b b c", "a b d"])

    capped = SequenceTextEncoder(max_vocabulary=2, max_length=6).fit(X)
    assert capped.vocabulary_ == {"a": 2, "b": 3}
    np.testing.assert_array_equal(capped.transform(X)[1], [2, 3, 1, 0, 0, 0])

    frequent = SequenceTextEncoder(min_frequency=2).fit(X)
    assert frequent.vocabulary_ == {"a": 2, "b": 3}
    assert SequenceTextEncoder(max_vocabulary=None).fit(X).vocabulary_size_ == 6


def test_sequence_lowercase_and_token_pattern():
    X = _column(["Dress dress, size-4"])

    assert set(SequenceTextEncoder().fit(X).vocabulary_) == {"dress", "size", "4"}
    cased = SequenceTextEncoder(lowercase=False, token_pattern=r"[^\s,]+").fit(X)
    assert set(cased.vocabulary_) == {"Dress", "dress", "size-4"}
    grouped = SequenceTextEncoder(token_pattern=r"#(\w+)").fit(_column(["#a b #c"]))
    assert set(grouped.vocabulary_) == {"a", "c"}
    with pytest.raises(ValueError, match="capturing groups"):
        SequenceTextEncoder(token_pattern=r"(\w)(\w)").fit(X)


def test_sequence_block_spec_and_names():
    encoder = SequenceTextEncoder(max_length=3).fit(REVIEWS)

    assert encoder.get_block_spec() == BlockSpec(
        kind="tokens",
        n_features=3,
        vocab_size=encoder.vocabulary_size_,
        padding_idx=0,
    )
    encoder.set_output(transform="pandas")
    Xt = encoder.transform(REVIEWS)
    assert list(Xt.columns) == ["token_0", "token_1", "token_2"]
    assert (Xt.dtypes == np.int64).all()


def test_sequence_pickle_round_trip():
    encoder = SequenceTextEncoder(max_length=8).fit(REVIEWS)
    restored = pickle.loads(pickle.dumps(encoder))

    assert restored.vocabulary_ == encoder.vocabulary_
    np.testing.assert_array_equal(
        restored.transform(REVIEWS), encoder.transform(REVIEWS)
    )


# Cell decoding, common to both encoders

ENCODERS = [
    pytest.param(TfidfTextEncoder(), id="tfidf"),
    pytest.param(SequenceTextEncoder(max_length=4), id="sequence"),
]


@pytest.mark.parametrize("encoder", ENCODERS)
def test_byte_string_cells_are_decoded_as_utf8(encoder):
    texts = ["good movie", "bad film", "café crème"]
    as_bytes = [text.encode("utf-8") for text in texts]
    expected = _dense(clone(encoder).fit_transform(_column(texts)))

    np.testing.assert_array_equal(
        _dense(clone(encoder).fit_transform(_column(as_bytes))), expected
    )
    np.testing.assert_array_equal(
        _dense(clone(encoder).fit_transform(np.array(as_bytes)[:, np.newaxis])),
        expected,
    )
    fitted = clone(encoder).fit(_column(texts))
    np.testing.assert_array_equal(_dense(fitted.transform(_column(as_bytes))), expected)


def test_tfidf_byte_string_vocabulary_is_the_text():
    encoder = TfidfTextEncoder().fit(_column([b"good movie", "good film"]))

    assert list(encoder.get_feature_names_out()) == ["film", "good", "movie"]


@pytest.mark.parametrize("encoder", ENCODERS)
def test_invalid_utf8_bytes_name_column_and_row(encoder):
    valid = pd.DataFrame({"title": ["ok", "fine"], "review": ["good", "caf"]})
    invalid = valid.astype(object)
    invalid.loc[1, "review"] = b"caf\xe9"
    message = r"column 'review', row 1 is a byte string that is not valid UTF-8"

    with pytest.raises(ValueError, match=message):
        clone(encoder).fit(invalid)
    fitted = clone(encoder).fit(valid)
    with pytest.raises(ValueError, match=message):
        fitted.transform(invalid)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_lone_surrogate_becomes_the_replacement_character(encoder):
    # "\ud800" is a lone surrogate; the pair "\ud83d\ude00" encodes U+1F600.
    broken = _column(["café \ud800x", "smile \ud83d\ude00 now"])
    clean = _column(["café \ufffdx", "smile \U0001f600 now"])
    encoder = clone(encoder).set_params(token_pattern=r"\S+")

    Xt = _dense(encoder.fit_transform(broken))
    np.testing.assert_array_equal(Xt, _dense(clone(encoder).fit_transform(clean)))
    np.testing.assert_array_equal(_dense(encoder.transform(clean)), Xt)


def test_tfidf_surrogates_leave_utf8_feature_names():
    encoder = TfidfTextEncoder(token_pattern=r"\S+")
    encoder.fit(_column(["café \ud800x", "smile \ud83d\ude00 now"]))
    names = list(encoder.get_feature_names_out())

    assert "\ufffdx" in names
    assert "\U0001f600" in names
    "\n".join(names).encode("utf-8")


def test_sentence_encoder_replaces_a_lone_surrogate():
    pytest.importorskip("sentence_transformers")
    from skmm.encoders._sentence import SentenceTextEncoder

    encoder = SentenceTextEncoder().fit(_column(["a good movie"]))
    Xt = encoder.transform(_column(["a good\ud800 movie", "a good\ufffd movie"]))

    np.testing.assert_allclose(Xt[0], Xt[1])

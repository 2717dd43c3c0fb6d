"""TfidfTextEncoder.fit_transform against scikit-learn's TfidfVectorizer.

Both vectorise the same synthetic texts, each with its default settings:
skmm's encoder takes the DataFrame with one text column, scikit-learn's
vectorizer the column itself. The texts are short product-review-like
sentences drawn from a seeded Zipf-distributed vocabulary, with
capitalisation, punctuation, numbers (prices, sizes, years) and, in some,
URLs.

Target: skmm's time / TfidfVectorizer's time <= 1.05.

    python benchmarks/bench_text.py [--n-rows 20000] [--repeats 5]
"""

import numpy as np
import pandas as pd
from _utils import alternate, finish, make_parser, median, row, timed
from sklearn.feature_extraction.text import TfidfVectorizer

from skmm.encoders._text import TfidfTextEncoder

TARGET = 1.05

_SYLLABLES = [
    c + v
    for c in ["b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "st"]
    for v in ["a", "e", "i", "o", "u", "ai", "ou"]
]
_FILLERS = ["the", "a", "and", "is", "it", "this", "was", "for", "very", "not"]


def make_texts(n_rows, seed, vocab_size=8000):
    """``n_rows`` synthetic texts from a seeded vocabulary."""
    rng = np.random.RandomState(seed)
    vocab = np.array(
        [
            "".join(rng.choice(_SYLLABLES, size=rng.randint(1, 4)))
            for _ in range(vocab_size)
        ]
    )
    weights = 1.0 / np.arange(1, vocab_size + 1) ** 1.1
    weights /= weights.sum()
    texts = []
    for _ in range(n_rows):
        words = list(vocab[rng.choice(vocab_size, size=rng.randint(4, 60), p=weights)])
        for pos in rng.randint(0, len(words), size=len(words) // 4):
            words.insert(pos, _FILLERS[rng.randint(len(_FILLERS))])
        words[0] = words[0].capitalize()
        if rng.rand() < 0.3:
            words.insert(
                rng.randint(len(words)),
                rng.choice(
                    [
                        f"${rng.randint(5, 300)}.{rng.randint(100):02d}",
                        f"size {rng.randint(2, 16)}",
                        str(rng.randint(1990, 2025)),
                        f"{rng.randint(1, 100)}%",
                    ]
                ),
            )
        if rng.rand() < 0.1:
            words.append(
                f"https://www.shop{rng.randint(50)}.example.com/item/"
                f"{rng.randint(10**6)}?ref=r{rng.randint(1000)}"
            )
        text = " ".join(words)
        texts.append(text + rng.choice([".", "!", "...", " :)", ""]))
    return texts


def main():
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=20_000)
    args = parser.parse_args()
    repeats = args.repeats or 5

    texts = make_texts(args.n_rows, args.seed)
    X = pd.DataFrame({"text": texts})
    print(
        f"{len(texts)} texts, {np.mean([len(t) for t in texts]):.0f} characters "
        f"on average, {repeats} repeats"
    )
    for fit in (
        lambda: TfidfTextEncoder().fit_transform(X),
        lambda: TfidfVectorizer().fit_transform(X["text"]),
    ):
        timed(fit)
    times, results = alternate(
        {
            "skmm": lambda: TfidfTextEncoder().fit_transform(X),
            "sklearn": lambda: TfidfVectorizer().fit_transform(X["text"]),
        },
        repeats,
    )
    t_skmm, t_sklearn = median(times["skmm"]), median(times["sklearn"])
    ratio = t_skmm / t_sklearn
    print(
        f"TfidfTextEncoder {t_skmm:.3f} s ({results['skmm'].shape[1]} terms), "
        f"TfidfVectorizer {t_sklearn:.3f} s ({results['sklearn'].shape[1]} terms) "
        f"(medians), ratio {ratio:.3f}",
        flush=True,
    )
    rows = [
        row(
            "text: TF-IDF fit_transform",
            t_skmm,
            t_sklearn,
            ratio,
            f"ratio <= {TARGET}",
            ratio <= TARGET,
            "s",
        )
    ]
    finish(rows, args.json)


if __name__ == "__main__":
    main()

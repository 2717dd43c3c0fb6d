"""Towers: one torch module per modality, mapping a block to an embedding."""

import torch
from torch import nn


class MLPTower(nn.Module):
    """Feature vector -> embedding: ``Linear -> ReLU -> Dropout``.

    Parameters
    ----------
    in_features : int
        Width of the input block.
    out_features : int
        Width of the embedding.
    dropout : float, default=0.0
        Dropout probability after the activation.
    """

    def __init__(self, in_features, out_features, dropout=0.0):
        super().__init__()
        self.out_features = out_features
        self.layers = nn.Sequential(
            nn.Linear(in_features, out_features), nn.ReLU(), nn.Dropout(dropout)
        )

    def forward(self, X):
        return self.layers(X)


class SequenceTower(nn.Module):
    """Token ids -> embedding: ``Embedding -> GRU``, last hidden state.

    Padding positions are skipped with packed sequences, so the embedding of a
    text does not depend on how much padding surrounds it (before or after).
    An all-padding row (an empty text) gives the GRU's initial state, zeros.

    Parameters
    ----------
    vocab_size : int
        Number of token ids, padding included.
    embedding_dim : int
        Width of the token embeddings.
    out_features : int
        Width of the GRU state, the tower's output.
    padding_idx : int, default=0
        Id of the padding token.
    """

    def __init__(self, vocab_size, embedding_dim, out_features, padding_idx=0):
        super().__init__()
        self.out_features = out_features
        self.padding_idx = padding_idx
        self.embedding = nn.Embedding(
            vocab_size, embedding_dim, padding_idx=padding_idx
        )
        self.gru = nn.GRU(embedding_dim, out_features, batch_first=True)

    def forward(self, X):
        X = X.long()
        padding = X == self.padding_idx
        if bool(padding[:, :-1].gt(padding[:, 1:]).any()):
            # Some padding precedes tokens (pre-padding): move it to the end,
            # keeping the tokens in order, so packing reads every token.
            order = torch.sort(padding.to(torch.int8), dim=1, stable=True).indices
            X = torch.gather(X, 1, order)
            padding = X == self.padding_idx
        lengths = (~padding).sum(dim=1)
        out = X.new_zeros((X.shape[0], self.out_features), dtype=torch.float32)
        nonempty = lengths > 0
        if not bool(nonempty.any()):
            return out.to(self.embedding.weight.dtype)
        # Texts are padded at the end; pack so the GRU stops at the last token.
        emb = self.embedding(X[nonempty])
        packed = nn.utils.rnn.pack_padded_sequence(
            emb, lengths[nonempty].cpu(), batch_first=True, enforce_sorted=False
        )
        _, h_n = self.gru(packed)
        out = out.to(h_n.dtype)
        out[nonempty] = h_n[-1]
        return out


class ConvTower(nn.Module):
    """Image -> embedding: ``[Conv2d(3x3) -> ReLU -> MaxPool]*k -> global avg pool``.

    The pooling between convolution blocks keeps the cost low on CPUs; the last
    block is followed by global average pooling only.

    Parameters
    ----------
    in_channels : int
        Channels of the input images.
    channels : tuple of int, default=(16, 32)
        Output channels of each convolution block.
    """

    def __init__(self, in_channels, channels=(16, 32)):
        super().__init__()
        layers = []
        prev = in_channels
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(prev, ch, kernel_size=3, padding=1), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            prev = ch
        self.features = nn.Sequential(*layers)
        self.out_features = prev

    def forward(self, X):
        return self.features(X).mean(dim=(2, 3))

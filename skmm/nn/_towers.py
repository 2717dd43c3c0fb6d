"""Towers: one torch module per modality, mapping a block to an embedding.

:func:`build_tower` picks the tower of a block from its
:class:`~skmm.BlockSpec`: an MLP for feature vectors, Embedding + GRU for
token ids, a small CNN for images, or the network an encoder hands over
(``BlockSpec.tower``), followed by a projection to the shared width. A
network is frozen in one way only, :class:`FrozenOrTrainable`.
"""

import torch
from torch import nn
from torch.nn import functional as F

from skmm.nn._training import Dropout

__all__ = [
    "ConvTower",
    "FrozenOrTrainable",
    "MLPTower",
    "PooledNetwork",
    "ProjectedTower",
    "SentenceTower",
    "SequenceTower",
    "build_tower",
    "pool_features",
]


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
            nn.Linear(in_features, out_features), nn.ReLU(), Dropout(dropout)
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


def pool_features(output):
    """``(batch, d)`` features from a network output; spatial maps are averaged."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            "The module must return a tensor of shape (batch, d) or "
            f"(batch, C, h, w), got {type(output).__name__}."
        )
    if output.ndim == 2:
        return output
    if output.ndim > 2:
        return output.flatten(2).mean(dim=2)
    raise ValueError(
        "The module must return a tensor of shape (batch, d) or (batch, C, h, w), "
        f"got shape {tuple(output.shape)}."
    )


class FrozenOrTrainable(nn.Module):
    """A network inside a fusion network, fixed or fine-tuned.

    A frozen network takes no gradient and stays in evaluation mode when the
    model around it trains, so that its dropout and batch-normalisation
    statistics stay those of inference too. This is skmm's one way to freeze
    a tower: an encoder's ``freeze=True`` and ``BlockSpec(trainable=False)``
    both end here.

    Parameters
    ----------
    network : torch.nn.Module
        The pretrained network.
    frozen : bool, default=True
        Whether the network's weights are fixed.
    """

    def __init__(self, network, frozen=True):
        super().__init__()
        self.network = network
        self.frozen = frozen
        if frozen:
            network.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        if self.frozen:
            self.network.eval()
        return self

    def forward(self, X):
        return self.network(X)


class PooledNetwork(FrozenOrTrainable):
    """A pretrained image network whose output is pooled to ``(batch, d)``.

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``(batch, C, H, W)`` images to ``(batch, d)`` or
        ``(batch, C', h, w)``.
    frozen : bool, default=True
        Whether the network's weights are fixed; see
        :class:`FrozenOrTrainable`.
    """

    def forward(self, X):
        return pool_features(self.network(X))


class SentenceTower(FrozenOrTrainable):
    """A sentence-transformers model as a tower over padded token ids.

    The batch is cut to its longest row before the model runs, so short
    texts cost what they hold rather than ``max_length``.

    Parameters
    ----------
    network : sentence_transformers.SentenceTransformer
        Maps ``{"input_ids", "attention_mask"}`` to a dict holding
        ``"sentence_embedding"``.
    padding_idx : int
        The padding id of the ids the tower reads.
    normalize : bool, default=True
        Scale each embedding to unit length.
    frozen : bool, default=True
        Whether the model's weights are fixed; see
        :class:`FrozenOrTrainable`.
    """

    def __init__(self, network, padding_idx, normalize=True, frozen=True):
        super().__init__(network, frozen=frozen)
        self.padding_idx = padding_idx
        self.normalize = normalize

    def forward(self, ids):
        mask = ids != self.padding_idx
        filled = mask.any(dim=0).nonzero()
        width = int(filled[-1]) + 1 if len(filled) else 1
        ids, mask = ids[:, :width], mask[:, :width].clone()
        # A row of padding only (empty text, which the fusion estimators
        # replace with the "missing" embedding) attends to its first id, so
        # that attention has something to attend to.
        mask[:, 0] |= ~mask.any(dim=1)
        features = {"input_ids": ids, "attention_mask": mask.long()}
        embedding = self.network(features)["sentence_embedding"]
        if self.normalize:
            embedding = F.normalize(embedding, dim=1)
        return embedding


class ProjectedTower(nn.Module):
    """A tower followed by a ``Linear -> ReLU`` projection to the shared width.

    Parameters
    ----------
    tower : torch.nn.Module
        Maps a batch of the block to ``(batch, in_features)``.
    in_features : int
        Output width of ``tower``.
    out_features : int
        Width of the projection, the modality embedding.
    """

    def __init__(self, tower, in_features, out_features):
        super().__init__()
        self.tower = tower
        self.project = nn.Sequential(nn.Linear(in_features, out_features), nn.ReLU())

    def forward(self, X):
        return self.project(self.tower(X))


def build_tower(spec, hidden_dim, dropout=0.0):
    """Build the tower for one modality block described by ``spec``.

    Parameters
    ----------
    spec : BlockSpec
        The block.
    hidden_dim : int
        Width of the modality embedding the tower returns.
    dropout : float, default=0.0
        Dropout of the MLP tower.

    Returns
    -------
    tower : torch.nn.Module
    """
    if spec.tower is not None:
        tower = spec.tower()
        if not spec.trainable and not (
            isinstance(tower, FrozenOrTrainable) and tower.frozen
        ):
            tower = FrozenOrTrainable(tower, frozen=True)
        return ProjectedTower(tower, spec.tower_dim, hidden_dim)
    if spec.kind == "tokens":
        return SequenceTower(
            spec.vocab_size, hidden_dim, hidden_dim, padding_idx=spec.padding_idx
        )
    if spec.kind == "image":
        conv = ConvTower(spec.image_shape[0])
        return ProjectedTower(conv, conv.out_features, hidden_dim)
    return MLPTower(spec.n_features, hidden_dim, dropout=dropout)

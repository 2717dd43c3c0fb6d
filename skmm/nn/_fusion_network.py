"""FusionNetwork: towers -> fusion strategy -> shared representation -> heads."""

import glob

import torch
from torch import nn

from skmm.nn._fusion_layers import build_fusion_layer
from skmm.nn._losses import info_nce
from skmm.nn._towers import build_tower
from skmm.nn._training import Dropout, rand

__all__ = ["FusionNetwork", "InputScaler", "missing_rows"]


class InputScaler(nn.Module):
    """``(X - shift) / scale`` with statistics learned from the training rows.

    The statistics are buffers: they are saved with the network and follow
    it to its device, so predict applies what fit learned.

    Parameters
    ----------
    shift : array-like of shape (n_features,) or (1,)
        Subtracted from every row.
    scale : array-like of shape (n_features,) or (1,)
        Then divided into every row.
    """

    def __init__(self, shift, scale):
        super().__init__()
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, X):
        return (X - self.shift) / self.scale


def missing_rows(X, spec):
    """Rows of a block that hold no data: all padding (tokens) or all zeros.

    The encoders encode a missing value (empty text, missing image or clip) as
    such a row, so the same rows are found in fit and in predict.
    """
    flat = X.reshape(X.shape[0], -1)
    if spec.kind == "tokens":
        return (flat == spec.padding_idx).all(dim=1)
    return (flat == 0).all(dim=1)


class FusionNetwork(nn.Module):
    """One tower per modality, a fusion strategy and one head per task.

    ``forward(**blocks)`` takes one batch tensor per modality (keyword named
    after the modality) and returns a dict of head outputs: logits for
    classification tasks, values for regression tasks. In training mode with
    ``alignment_weight > 0`` it also returns ``"_alignment"``, the contrastive
    loss between the modality embeddings, which the loss adds.

    Parameters
    ----------
    specs : dict of str to BlockSpec
        The modality blocks, in order.
    head_sizes : dict of str to int
        Output width of each task head.
    fusion : str, default="concat"
        One of ``"concat"``, ``"late"``, ``"gated"``, ``"attention"``,
        ``"tensor"``, ``"lowrank"``.
    hidden_dim : int, default=64
        Width of every modality embedding and of the shared representation.
    dropout : float, default=0.0
        Dropout in the towers and on the shared representation.
    fusion_options : dict, default=None
        Extra arguments of the fusion layer (``rank``, ``tensor_dim``); see
        :func:`~skmm.nn.build_fusion_layer`.
    missing_embeddings : bool, default=True
        Replace the embedding of a row whose block holds no data with a
        learned per-modality "missing" embedding.
    modality_dropout : float, default=0.0
        In training, the probability that a modality of a row is replaced by
        its "missing" embedding (needs ``missing_embeddings``).
    shared_space : {None, "projected", "tied"}, default=None
        Project every modality embedding into one space before fusion: with a
        projection per modality, or with one projection shared by all.
    alignment_weight : float, default=0.0
        Weight of the InfoNCE loss between each pair of modality embeddings.
    temperature : float, default=0.1
        Temperature of the InfoNCE loss.
    input_stats : dict of str to (array, array), default=None
        ``(shift, scale)`` of the blocks to scale before their tower, as
        computed by :func:`~skmm.nn._data.input_statistics` on the training
        rows.
    embedding_norm : bool, default=True
        Apply a layer normalisation to each modality embedding before
        fusion, so that every modality reaches the fusion layer at the same
        scale, whatever its tower.
    """

    def __init__(
        self,
        specs,
        head_sizes,
        fusion="concat",
        hidden_dim=64,
        dropout=0.0,
        fusion_options=None,
        missing_embeddings=True,
        modality_dropout=0.0,
        shared_space=None,
        alignment_weight=0.0,
        temperature=0.1,
        input_stats=None,
        embedding_norm=True,
    ):
        super().__init__()
        self.specs = dict(specs)
        self.modalities = list(specs)
        self.fusion_name = fusion
        self.modality_dropout = modality_dropout
        self.alignment_weight = alignment_weight
        self.temperature = temperature
        self.towers = nn.ModuleDict(
            {
                name: build_tower(spec, hidden_dim, dropout)
                for name, spec in specs.items()
            }
        )
        self.scalers = nn.ModuleDict(
            {
                name: InputScaler(shift, scale)
                for name, (shift, scale) in (input_stats or {}).items()
            }
        )
        self.norms = (
            nn.ModuleDict({name: nn.LayerNorm(hidden_dim) for name in specs})
            if embedding_norm
            else None
        )
        self.missing = (
            nn.Parameter(torch.zeros(len(specs), hidden_dim))
            if missing_embeddings
            else None
        )
        if shared_space == "tied":
            shared = nn.Linear(hidden_dim, hidden_dim)
            self.shared_space = nn.ModuleList([shared] * len(specs))
        elif shared_space == "projected":
            self.shared_space = nn.ModuleList(
                nn.Linear(hidden_dim, hidden_dim) for _ in specs
            )
        else:
            self.shared_space = None
        self.fusion = build_fusion_layer(
            fusion,
            len(specs),
            hidden_dim,
            head_sizes,
            **{"dropout": dropout, **(fusion_options or {})},
        )
        self.dropout = Dropout(dropout)
        if not self.fusion.decision_level:
            self.heads = nn.ModuleDict(
                {task: nn.Linear(hidden_dim, k) for task, k in head_sizes.items()}
            )

    def embed(self, **blocks):
        """Per-modality embeddings, in the order of ``self.modalities``."""
        embeddings = []
        for m, name in enumerate(self.modalities):
            X = blocks[name]
            v = self.towers[name](self.scalers[name](X) if name in self.scalers else X)
            if self.norms is not None:
                v = self.norms[name](v)
            if self.missing is not None:
                drop = missing_rows(X, self.specs[name])
                if self.training and self.modality_dropout > 0:
                    drop = drop | (rand(len(v), v.device) < self.modality_dropout)
                v = torch.where(drop[:, None], self.missing[m].to(v.dtype), v)
            if self.shared_space is not None:
                v = self.shared_space[m](v)
            embeddings.append(v)
        return embeddings

    def represent(self, **blocks):
        """The shared fused representation ``h`` (not defined for late fusion)."""
        if self.fusion.decision_level:
            raise ValueError(
                f"{self.fusion_name!r} fusion has no shared representation."
            )
        return self.fusion(self.embed(**blocks))

    def gates(self, **blocks):
        """Per-sample gate of each modality, averaged over the hidden units.

        Only for a fusion layer with gates (``fusion="gated"``).

        Returns
        -------
        gates : Tensor of shape (batch, n_modalities)
        """
        if not hasattr(self.fusion, "gates"):
            raise ValueError(
                f"gates needs fusion='gated'; this network uses {self.fusion_name!r}."
            )
        return self.fusion.gates(self.embed(**blocks)).mean(dim=2)

    def param_groups(self, lrs):
        """Optimizer parameter groups giving towers their own learning rate.

        Parameters
        ----------
        lrs : dict of str to float
            Learning rate of the network a modality's encoder brought (not
            the projection after it), by modality name.

        Returns
        -------
        groups : list of (str, dict)
            skorch's ``optimizer__param_groups``: a pattern of parameter
            names and the options of its group.
        """
        return [
            (f"towers.{glob.escape(name)}.tower.*", {"lr": lr})
            for name, lr in lrs.items()
        ]

    def forward(self, **blocks):
        embeddings = self.embed(**blocks)
        if self.fusion.decision_level:
            outputs = self.fusion(embeddings)
        else:
            h = self.dropout(self.fusion(embeddings))
            outputs = {task: head(h) for task, head in self.heads.items()}
        if self.training and self.alignment_weight > 0 and len(embeddings) > 1:
            pairs = [
                info_nce(embeddings[i], embeddings[j], self.temperature)
                for i in range(len(embeddings))
                for j in range(i + 1, len(embeddings))
            ]
            outputs["_alignment"] = self.alignment_weight * torch.stack(pairs).mean()
        return outputs

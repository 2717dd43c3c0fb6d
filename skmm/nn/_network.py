"""FusionNetwork: towers -> fusion strategy -> shared representation -> heads."""

import torch
from torch import nn
from torch.nn import functional as F

from skmm.nn._fusion_layers import (
    AttentionFusion,
    ConcatFusion,
    GatedFusion,
    LateFusion,
    LowRankFusion,
    TensorFusion,
)
from skmm.nn._towers import ConvTower, MLPTower, SequenceTower

FUSION_STRATEGIES = ("concat", "late", "gated", "attention", "tensor", "lowrank")


class ProjectedTower(nn.Module):
    """A tower followed by a ``Linear -> ReLU`` projection to the shared width."""

    def __init__(self, tower, in_features, out_features, trainable=True):
        super().__init__()
        self.tower = tower
        self.project = nn.Sequential(nn.Linear(in_features, out_features), nn.ReLU())
        if not trainable:
            for param in self.tower.parameters():
                param.requires_grad_(False)

    def forward(self, X):
        return self.project(self.tower(X))


def build_tower(spec, hidden_dim, dropout=0.0):
    """Build the tower for one modality block described by ``spec``."""
    if spec.tower is not None:
        return ProjectedTower(
            spec.tower(), spec.tower_dim, hidden_dim, trainable=spec.trainable
        )
    if spec.kind == "tokens":
        return SequenceTower(
            spec.vocab_size, hidden_dim, hidden_dim, padding_idx=spec.padding_idx
        )
    if spec.kind == "image":
        conv = ConvTower(spec.image_shape[0])
        return ProjectedTower(conv, conv.out_features, hidden_dim)
    return MLPTower(spec.n_features, hidden_dim, dropout=dropout)


def build_fusion_layer(fusion, n_modalities, hidden_dim, head_sizes, options):
    """Build the fusion layer named ``fusion`` (one of FUSION_STRATEGIES)."""
    args = (n_modalities, hidden_dim, hidden_dim)
    if fusion == "concat":
        return ConcatFusion(*args)
    if fusion == "gated":
        return GatedFusion(*args)
    if fusion == "attention":
        return AttentionFusion(*args, dropout=options.get("dropout", 0.0))
    if fusion == "tensor":
        return TensorFusion(*args, tensor_dim=options.get("tensor_dim", 8))
    if fusion == "lowrank":
        return LowRankFusion(*args, rank=options.get("rank", 4))
    if fusion == "late":
        return LateFusion(
            n_modalities,
            hidden_dim,
            hidden_dim,
            head_sizes,
            dropout=options.get("dropout", 0.0),
        )
    raise ValueError(f"fusion must be one of {FUSION_STRATEGIES}, got {fusion!r}.")


def info_nce(a, b, temperature):
    """Symmetric InfoNCE between paired rows of ``a`` and ``b``.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are a positive pair; every other
    row of the batch is a negative.
    """
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = a @ b.t() / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


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
        Extra arguments of the fusion layer (``rank``, ``tensor_dim``).
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
    ):
        super().__init__()
        self.specs = dict(specs)
        self.modalities = list(specs)
        self.fusion_name = fusion
        self.modality_dropout = modality_dropout
        self.alignment_weight = alignment_weight
        self.temperature = temperature
        options = {"dropout": dropout, **(fusion_options or {})}
        self.towers = nn.ModuleDict(
            {
                name: build_tower(spec, hidden_dim, dropout)
                for name, spec in specs.items()
            }
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
            fusion, len(specs), hidden_dim, head_sizes, options
        )
        self.dropout = nn.Dropout(dropout)
        if fusion != "late":
            self.heads = nn.ModuleDict(
                {task: nn.Linear(hidden_dim, k) for task, k in head_sizes.items()}
            )

    def embed(self, **blocks):
        """Per-modality embeddings, in the order of ``self.modalities``."""
        embeddings = []
        for m, name in enumerate(self.modalities):
            X = blocks[name]
            v = self.towers[name](X)
            if self.missing is not None:
                drop = missing_rows(X, self.specs[name])
                if self.training and self.modality_dropout > 0:
                    drop = drop | (
                        torch.rand(len(v), device=v.device) < self.modality_dropout
                    )
                v = torch.where(drop[:, None], self.missing[m].to(v.dtype), v)
            if self.shared_space is not None:
                v = self.shared_space[m](v)
            embeddings.append(v)
        return embeddings

    def represent(self, **blocks):
        """The shared fused representation ``h`` (not defined for late fusion)."""
        if self.fusion_name == "late":
            raise ValueError("Late fusion has no shared representation.")
        return self.fusion(self.embed(**blocks))

    def forward(self, **blocks):
        embeddings = self.embed(**blocks)
        if self.fusion_name == "late":
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


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses, with optional sample weights.

    Cross-entropy for classification tasks, mean squared error for regression
    tasks. With ``uncertainty=True`` the task weights are learned as in Kendall
    et al. (2018): ``sum_t exp(-s_t) * L_t + s_t`` (with a factor 1/2 on the
    regression terms), ``s_t`` a learned log-variance per task.

    ``y_true`` is a dict with one tensor per task and, optionally,
    ``"sample_weight"``.

    Parameters
    ----------
    tasks : dict of str to {"classification", "regression"}
        The task of each head.
    task_weights : dict of str to float, default=None
        Fixed weight of each task's loss; 1.0 where missing.
    class_weights : dict of str to Tensor, default=None
        Per-class weights of a classification task's cross-entropy.
    uncertainty : bool, default=False
        Learn the task weights from the data.
    """

    def __init__(self, tasks, task_weights=None, class_weights=None, uncertainty=False):
        super().__init__()
        self.tasks = dict(tasks)
        self.task_weights = {t: float((task_weights or {}).get(t, 1.0)) for t in tasks}
        # Buffers, so they follow the module to the training device.
        self._class_weighted = []
        for i, (task, weight) in enumerate((class_weights or {}).items()):
            self.register_buffer(f"class_weight_{i}", weight.float())
            self._class_weighted.append(task)
        self.uncertainty = uncertainty
        if uncertainty:
            self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def per_task(self, y_pred, y_true):
        """Per-sample loss of each task, ``{task: (batch,) tensor}``."""
        losses = {}
        for task, kind in self.tasks.items():
            pred, target = y_pred[task], y_true[task]
            if kind == "classification":
                weight = (
                    getattr(self, f"class_weight_{self._class_weighted.index(task)}")
                    if task in self._class_weighted
                    else None
                )
                losses[task] = F.cross_entropy(
                    pred.float(), target.long(), weight=weight, reduction="none"
                )
            else:
                diff = (pred.float() - target.float().view_as(pred)) ** 2
                losses[task] = diff.mean(dim=1) if diff.ndim > 1 else diff
        return losses

    def forward(self, y_pred, y_true):
        sample_weight = y_true.get("sample_weight")
        total = y_pred.get("_alignment")
        for i, (task, loss) in enumerate(self.per_task(y_pred, y_true).items()):
            if sample_weight is None:
                loss = loss.mean()
            else:
                loss = (loss * sample_weight).sum() / sample_weight.sum().clamp_min(
                    1e-12
                )
            if self.uncertainty:
                scale = 1.0 if self.tasks[task] == "classification" else 0.5
                loss = scale * torch.exp(-self.log_vars[i]) * loss + self.log_vars[i]
            if self.task_weights[task] != 1.0:
                loss = self.task_weights[task] * loss
            total = loss if total is None else total + loss
        return total

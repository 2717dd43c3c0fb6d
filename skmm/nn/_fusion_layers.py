"""Fusion layers: combine per-modality embeddings into one representation.

Every layer takes a list of ``M`` modality embeddings, each of shape
``(batch, in_features)``, and returns the shared representation ``h`` of shape
``(batch, out_features)``, except :class:`LateFusion`, which combines the
predictions of one head per modality (decision-level fusion).

:data:`FUSION_LAYERS` maps each ``fusion=`` name of the estimators to its
class; a class lists in ``options`` the estimator parameters it takes, and
``decision_level`` is true for a layer that returns the task outputs itself
(it then gets the ``head_sizes``) instead of a shared representation.
"""

import torch
from torch import nn

from skmm.nn._training import Dropout

__all__ = [
    "FUSION_LAYERS",
    "FUSION_STRATEGIES",
    "AttentionFusion",
    "ConcatFusion",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "TensorFusion",
    "build_fusion_layer",
]


class ConcatFusion(nn.Module):
    """Early/intermediate fusion: ``h = ReLU(W [v_1; ...; v_M] + b)``.

    Parameters
    ----------
    n_modalities : int
        Number of modality embeddings.
    in_features : int
        Width of each embedding.
    out_features : int
        Width of ``h``.
    """

    options = ()
    decision_level = False

    def __init__(self, n_modalities, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(n_modalities * in_features, out_features)

    def forward(self, embeddings):
        return torch.relu(self.linear(torch.cat(embeddings, dim=1)))


class GatedFusion(nn.Module):
    """Gated multimodal unit (GMU, Arevalo et al. 2017).

    ``h_m = tanh(W_m v_m)``, ``z = sigmoid(W_z [v_1; ...; v_M])`` split into
    one gate vector ``z_m`` per modality, and ``h = sum_m z_m * h_m``. The
    gates are per sample: :meth:`gates` returns them.

    Parameters
    ----------
    n_modalities : int
        Number of modality embeddings.
    in_features : int
        Width of each embedding.
    out_features : int
        Width of ``h`` and of each gate vector.
    """

    options = ()
    decision_level = False

    def __init__(self, n_modalities, in_features, out_features):
        super().__init__()
        self.n_modalities = n_modalities
        self.out_features = out_features
        self.transforms = nn.ModuleList(
            nn.Linear(in_features, out_features) for _ in range(n_modalities)
        )
        self.gate = nn.Linear(n_modalities * in_features, n_modalities * out_features)

    def gates(self, embeddings):
        """Gate values ``z`` of shape ``(batch, n_modalities, out_features)``."""
        z = torch.sigmoid(self.gate(torch.cat(embeddings, dim=1)))
        return z.view(-1, self.n_modalities, self.out_features)

    def forward(self, embeddings):
        h_m = torch.stack(
            [torch.tanh(t(v)) for t, v in zip(self.transforms, embeddings)], dim=1
        )
        return (self.gates(embeddings) * h_m).sum(dim=1)


class AttentionFusion(nn.Module):
    """Sequential fusion: modality embeddings as tokens through self-attention.

    Each embedding is projected to ``out_features``, tagged with a learned
    modality embedding, passed through a transformer encoder layer and the
    tokens are mean-pooled into ``h``.

    Parameters
    ----------
    n_modalities : int
        Number of modality embeddings (tokens).
    in_features : int
        Width of each embedding.
    out_features : int
        Width of the tokens and of ``h``.
    n_heads : int, default=4
        Attention heads; reduced to a divisor of ``out_features`` if needed.
    n_layers : int, default=1
        Transformer encoder layers.
    dropout : float, default=0.0
        Dropout inside the transformer layers.
    """

    options = ("dropout",)
    decision_level = False

    def __init__(
        self,
        n_modalities,
        in_features,
        out_features,
        n_heads=4,
        n_layers=1,
        dropout=0.0,
    ):
        super().__init__()
        while out_features % n_heads:
            n_heads -= 1
        self.project = nn.Linear(in_features, out_features)
        self.modality_embedding = nn.Parameter(torch.zeros(n_modalities, out_features))
        nn.init.normal_(self.modality_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=out_features,
            nhead=n_heads,
            dim_feedforward=2 * out_features,
            dropout=dropout,
            batch_first=True,
        )
        # Dropout draws from the fit's own generator (skmm.nn._training); the
        # attention weights themselves are not dropped, as torch would draw
        # that mask from the process-wide generator.
        layer.self_attn.dropout = 0.0
        layer.dropout = Dropout(dropout)
        layer.dropout1 = Dropout(dropout)
        layer.dropout2 = Dropout(dropout)
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=n_layers, enable_nested_tensor=False
        )

    def forward(self, embeddings):
        tokens = self.project(torch.stack(embeddings, dim=1)) + self.modality_embedding
        return self.encoder(tokens).mean(dim=1)


def _with_one(v):
    return torch.cat([v, v.new_ones((v.shape[0], 1))], dim=1)


class TensorFusion(nn.Module):
    """Tensor fusion (TFN, Zadeh et al. 2017).

    Each embedding is projected to ``tensor_dim``, extended with a constant 1,
    and the outer product of all modalities (which keeps every unimodal,
    bimodal, ... term) is flattened and mapped to ``h`` by a ReLU layer. The
    product has ``(tensor_dim + 1) ** M`` entries, so keep ``tensor_dim``
    small with many modalities.

    Parameters
    ----------
    n_modalities : int
        Number of modality embeddings.
    in_features : int
        Width of each embedding.
    out_features : int
        Width of ``h``.
    tensor_dim : int, default=8
        Width of each projected embedding before the outer product.
    """

    options = ("tensor_dim",)
    decision_level = False

    def __init__(self, n_modalities, in_features, out_features, tensor_dim=8):
        super().__init__()
        self.projections = nn.ModuleList(
            nn.Linear(in_features, tensor_dim) for _ in range(n_modalities)
        )
        self.linear = nn.Linear((tensor_dim + 1) ** n_modalities, out_features)

    def forward(self, embeddings):
        z = None
        for project, v in zip(self.projections, embeddings):
            z_m = _with_one(project(v))
            z = z_m if z is None else torch.einsum("bi,bj->bij", z, z_m).flatten(1)
        return torch.relu(self.linear(z))


class LowRankFusion(nn.Module):
    """Low-rank multimodal fusion (LMF, Liu et al. 2018).

    The weight tensor of :class:`TensorFusion` factorised into ``rank``
    modality-specific factors: ``h = ReLU(sum_r prod_m ([v_m; 1] W_m^(r)) + b)``,
    linear in the number of modalities instead of exponential.

    Parameters
    ----------
    n_modalities : int
        Number of modality embeddings.
    in_features : int
        Width of each embedding.
    out_features : int
        Width of ``h``.
    rank : int, default=4
        Rank of the factorisation.
    """

    options = ("rank",)
    decision_level = False

    def __init__(self, n_modalities, in_features, out_features, rank=4):
        super().__init__()
        self.factors = nn.ParameterList(
            nn.Parameter(torch.empty(rank, in_features + 1, out_features))
            for _ in range(n_modalities)
        )
        # Each factor starts as "1 + a small linear term": the product over
        # modalities then starts near 1 instead of vanishing with M, and its
        # expansion holds the unimodal terms, as the appended 1 intends.
        with torch.no_grad():
            for factor in self.factors:
                factor.normal_(0.0, in_features**-0.5)
                factor[:, in_features, :] = 1.0
        self.rank_weights = nn.Parameter(torch.full((1, rank), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, embeddings):
        product = None
        for factor, v in zip(self.factors, embeddings):
            # (batch, in+1) x (rank, in+1, out) -> (rank, batch, out)
            z_m = torch.matmul(_with_one(v), factor)
            product = z_m if product is None else product * z_m
        h = torch.matmul(self.rank_weights, product.permute(1, 0, 2)).squeeze(1)
        return torch.relu(h + self.bias)


class LateFusion(nn.Module):
    """Parallel (decision-level) fusion: one head per modality, learned weights.

    Each modality has its own hidden layer and its own output heads; the
    outputs of each task are combined as ``sum_m w_m * out_m`` with
    ``w = softmax(alpha)`` learned. For classification the combined quantities
    are logits. :meth:`modality_weights` returns ``w``.

    Parameters
    ----------
    n_modalities : int
        Number of modality embeddings.
    in_features : int
        Width of each embedding.
    hidden_features : int
        Width of each modality's hidden layer.
    head_sizes : dict of str to int
        Output width of each task head.
    dropout : float, default=0.0
        Dropout after each modality's hidden layer.
    """

    options = ("dropout",)
    decision_level = True

    def __init__(
        self, n_modalities, in_features, hidden_features, *, head_sizes, dropout=0.0
    ):
        super().__init__()
        self.hidden = nn.ModuleList(
            nn.Sequential(
                nn.Linear(in_features, hidden_features), nn.ReLU(), Dropout(dropout)
            )
            for _ in range(n_modalities)
        )
        self.heads = nn.ModuleList(
            nn.ModuleDict(
                {task: nn.Linear(hidden_features, k) for task, k in head_sizes.items()}
            )
            for _ in range(n_modalities)
        )
        self.alpha = nn.Parameter(torch.zeros(n_modalities))

    def modality_weights(self):
        """Learned weight of each modality's predictions, summing to one."""
        return torch.softmax(self.alpha, dim=0)

    def forward(self, embeddings):
        w = self.modality_weights()
        outputs = {}
        for m, (hidden, heads, v) in enumerate(
            zip(self.hidden, self.heads, embeddings)
        ):
            h_m = hidden(v)
            for task, head in heads.items():
                contribution = w[m] * head(h_m)
                outputs[task] = (
                    contribution
                    if task not in outputs
                    else outputs[task] + contribution
                )
        return outputs


FUSION_LAYERS = {
    "concat": ConcatFusion,
    "late": LateFusion,
    "gated": GatedFusion,
    "attention": AttentionFusion,
    "tensor": TensorFusion,
    "lowrank": LowRankFusion,
}
FUSION_STRATEGIES = tuple(FUSION_LAYERS)


def build_fusion_layer(fusion, n_modalities, hidden_dim, head_sizes, **options):
    """Build the fusion layer named ``fusion``, one of :data:`FUSION_STRATEGIES`.

    Parameters
    ----------
    fusion : str
        The strategy.
    n_modalities : int
        Number of modality embeddings.
    hidden_dim : int
        Width of the embeddings and of the shared representation.
    head_sizes : dict of str to int
        Output width of each task head (for a decision-level layer).
    **options
        Estimator parameters; the layer takes those in its ``options``.

    Returns
    -------
    layer : torch.nn.Module
    """
    try:
        cls = FUSION_LAYERS[fusion]
    except KeyError:
        raise ValueError(
            f"fusion must be one of {FUSION_STRATEGIES}, got {fusion!r}."
        ) from None
    kwargs = {name: options[name] for name in cls.options if name in options}
    if cls.decision_level:
        kwargs["head_sizes"] = head_sizes
    return cls(n_modalities, hidden_dim, hidden_dim, **kwargs)

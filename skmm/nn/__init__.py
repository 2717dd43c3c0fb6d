"""Torch modules: per-modality towers, fusion layers and the fusion network.

The building blocks of the fusion estimators, for users who build on them:
the towers that map a modality block to an embedding, one fusion layer per
strategy, :class:`FusionNetwork` that joins them with one head per task, and
its loss.
"""

from skmm.nn._backbones import Backbone, available_backbones, load_backbone
from skmm.nn._fusion_layers import (
    FUSION_LAYERS,
    FUSION_STRATEGIES,
    AttentionFusion,
    ConcatFusion,
    GatedFusion,
    LateFusion,
    LowRankFusion,
    TensorFusion,
    build_fusion_layer,
)
from skmm.nn._fusion_network import FusionNetwork
from skmm.nn._losses import MultiTaskLoss, info_nce
from skmm.nn._skorch_net import FusionNeuralNet
from skmm.nn._towers import (
    ConvTower,
    FrozenOrTrainable,
    MLPTower,
    PooledNetwork,
    ProjectedTower,
    SentenceTower,
    SequenceTower,
    build_tower,
)

__all__ = [
    "Backbone",
    "available_backbones",
    "load_backbone",
    "FUSION_LAYERS",
    "FUSION_STRATEGIES",
    "AttentionFusion",
    "ConcatFusion",
    "ConvTower",
    "FrozenOrTrainable",
    "FusionNetwork",
    "FusionNeuralNet",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "MLPTower",
    "MultiTaskLoss",
    "PooledNetwork",
    "ProjectedTower",
    "SentenceTower",
    "SequenceTower",
    "TensorFusion",
    "build_fusion_layer",
    "build_tower",
    "info_nce",
]

"""skmm: multimodal deep learning with the scikit-learn API."""

from skmm._alignment import CrossModalAligner
from skmm._blocks import BlockSpec, ModalityBlocks
from skmm._config import config_context, get_config, set_config
from skmm._estimators import FusionClassifier, FusionMultiTask, FusionRegressor
from skmm._fusion import MultimodalFusion
from skmm._persistence import TRUSTED_TYPES, load, save
from skmm.compose import make_multimodal_fusion, make_multimodal_pipeline
from skmm.encoders import (
    AudioEncoder,
    CNNImageEncoder,
    PretrainedImageEncoder,
    SentenceTextEncoder,
    SequenceTextEncoder,
    TfidfTextEncoder,
)

__all__ = [
    "AudioEncoder",
    "BlockSpec",
    "CNNImageEncoder",
    "CrossModalAligner",
    "FusionClassifier",
    "FusionMultiTask",
    "FusionRegressor",
    "ModalityBlocks",
    "MultimodalFusion",
    "PretrainedImageEncoder",
    "SentenceTextEncoder",
    "SequenceTextEncoder",
    "TRUSTED_TYPES",
    "TfidfTextEncoder",
    "config_context",
    "get_config",
    "load",
    "save",
    "make_multimodal_fusion",
    "make_multimodal_pipeline",
    "set_config",
]
__version__ = "0.1.0.dev0"

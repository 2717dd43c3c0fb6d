"""From a DataFrame to a model: column-type selectors and ready-made fusions."""

from skmm.compose._column_types import (
    audio_columns,
    categorical_columns,
    image_columns,
    infer_column_types,
    numeric_columns,
    text_columns,
)
from skmm.compose._make import (
    infer_task,
    make_multimodal_fusion,
    make_multimodal_pipeline,
)

__all__ = [
    "audio_columns",
    "categorical_columns",
    "image_columns",
    "infer_column_types",
    "infer_task",
    "make_multimodal_fusion",
    "make_multimodal_pipeline",
    "numeric_columns",
    "text_columns",
]

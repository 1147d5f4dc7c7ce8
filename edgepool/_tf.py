"""The one place that imports TensorFlow and tf_keras (Keras 2), lazily.

TFMOT's QAT and coremltools reject Keras 3 models, so every model is a tf_keras model and
TF_USE_LEGACY_KERAS=1 is set before TensorFlow is imported.
"""

from __future__ import annotations

import os
from types import ModuleType


def _quiet_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def tf() -> ModuleType:
    """Import and return tensorflow."""
    _quiet_env()
    import tensorflow  # noqa: TID251

    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


def keras() -> ModuleType:
    """Import and return tf_keras (Keras 2)."""
    tf()
    import tf_keras  # noqa: TID251

    return tf_keras


def tfmot() -> ModuleType:
    """Import and return tensorflow_model_optimization."""
    tf()
    import tensorflow_model_optimization

    return tensorflow_model_optimization

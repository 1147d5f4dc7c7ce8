"""The one place that imports TensorFlow and tf_keras (Keras 2), lazily.

TFMOT's QAT and coremltools reject Keras 3 models, so every model is a tf_keras model and
TF_USE_LEGACY_KERAS=1 is set before TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence C++ log lines TensorFlow/LiteRT write straight to fd 2 (CUDA probing, MLIR, loaders).

    Set EDGEPOOL_TF_LOGS=1 to see them.
    """
    if os.environ.get("EDGEPOOL_TF_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def tf() -> ModuleType:
    """Import and return tensorflow."""
    _quiet_env()
    if _ready:
        return sys.modules["tensorflow"]
    # also when another package (coremltools) imported TensorFlow already: the probe below still has to run
    with quiet_stderr():
        import tensorflow  # noqa: TID251

        tensorflow.config.list_physical_devices("GPU")  # CUDA probing logs its failure here, silenced

    tensorflow.get_logger().setLevel("ERROR")
    _ready.append(True)
    return tensorflow


_ready: list[bool] = []  # set once tf() has imported and quietly probed TensorFlow


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


def coremltools() -> ModuleType:
    """Import and return coremltools, without its import-time chatter on Linux (version warnings,
    "Failed to load _MLModelProxy": Core ML itself exists only on macOS). Later imports are cached."""
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    _quiet_env()  # in case coremltools pulls TensorFlow in: Keras 2, quiet logs
    import logging
    import warnings

    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            import coremltools as ct
        finally:
            logging.disable(level)
    return ct

"""From a model file to class ids: backends behind one contract, chosen by one factory.

Import the backends through ``factory.create_backend``; each backend module imports its runtime
(onnxruntime, torch, tensorrt) itself, so choosing one never loads the others.
"""

from seg_perception.inference.backend import BACKENDS, PRECISIONS, Backend
from seg_perception.inference.factory import create_backend
from seg_perception.inference.modelinfo import ModelInfo, read_model_info
from seg_perception.inference.segmenter import Segmenter

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "ModelInfo", "Segmenter", "create_backend",
           "read_model_info"]

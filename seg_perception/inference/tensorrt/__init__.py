"""TensorRT: the backend, the engine build from ONNX and the engine cache that keeps it fresh.

``tensorrt`` and ``pycuda`` are imported inside functions, so this package loads without them.
"""

"""Offline work on a trained model: ONNX export, INT8 calibration, engine builds, conformance."""

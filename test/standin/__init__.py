"""Test-only stand-ins for ``tensorrt`` and ``pycuda.driver`` (no GPU, no TensorRT here).

Nothing in this package is importable as ``tensorrt`` or ``pycuda``: the modules under
``standin/tensorrt`` and ``standin/pycuda`` refuse to load unless ``install`` (used by the
``trt_standin`` fixture in ``test/standin_fixtures.py``) executes a fresh copy of them under the
real names, bound to one emulated GPU, and puts them on ``sys.modules`` for a single test.

* ``_gpu``: the emulated device: primary contexts, per-thread context stacks, device memory (host
  byte buffers keyed by address), streams with a queue that runs at ``synchronize``.
* ``pycuda/driver.py``: the pycuda driver API the project uses, on that device.
* ``tensorrt/__init__.py``: TensorRT's Python API for one version flavour (8.6, 10.3, 10.13, 11.1),
  whose "engines" are serialised build settings plus the parsed ONNX, run by ONNX Runtime on the
  CPU.
"""

from __future__ import annotations

from .install import FLAVOURS, Flavour, install, load_fresh

__all__ = ["FLAVOURS", "Flavour", "install", "load_fresh"]

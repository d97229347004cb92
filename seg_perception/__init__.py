"""seg_perception: semantic segmentation for a ROS 2 camera, with planner-ready outputs.

The package is layered; each subpackage imports only from those listed before it
(``test/test_architecture.py`` enforces it):

- ``core``: classes, image codec, resizing, masks, metrics, ground geometry, file and error
  helpers; NumPy only, no ROS, no model runtime.
- ``model``: the network, its checkpoints and the deployed I/O contract.
- ``datasets``: CamVid-layout folders and rosbag2 input/output.
- ``inference``: the backend contract, model info, derived-model variants, the segmenter, the
  backends (ONNX Runtime, torch, TensorRT with its engine build and cache) and their factory.
- ``node`` and ``training``: the ROS 2 shell (parameters, outputs, diagnostics); training.
- ``evaluation``: bag replay (offline and live), metrics reports, fleets of bags.
- ``optimize``: ONNX export, INT8 calibration, TensorRT engine builds, the conformance check.
- ``cli``, ``demo``, ``doctor``: the command line on top.
"""

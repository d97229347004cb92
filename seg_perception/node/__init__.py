"""The ROS 2 node: parameters, topics, threads and diagnostics around the inference core.

``main`` imports rclpy only when called, so the node's pure parts (``config``, ``outputs``,
``stats``, ``slot``, ``dds``) load without ROS.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``segmentation_node``: ``ros2 run`` and ``python -m seg_perception.node``."""
    from seg_perception.node.node import main as run_node  # rclpy: only when the node runs

    return run_node(argv)

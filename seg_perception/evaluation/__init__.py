"""Accuracy and latency from bags: offline or live through the node, one bag or a fleet."""

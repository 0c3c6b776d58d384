"""Analyses of a project: cost per node (MACs, FLOPs, parameters, memory; latency measured by a
profile run), element types along the wires, and what a trained model attends to."""

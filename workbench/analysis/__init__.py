"""Analyses of a project that need no training: cost per node (parameters, memory)."""

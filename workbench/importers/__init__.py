"""Importers: ONNX into an editable project."""

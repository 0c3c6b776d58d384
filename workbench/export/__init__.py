"""Export: verified ONNX, standalone PyTorch source, weights."""

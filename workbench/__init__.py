"""Neural Workbench: the headless core (no Qt).

Design a network as a graph of catalogue layers, infer its shapes, compile it
into an ordinary ``torch.nn.Module``, train it and export it.
"""

__version__ = "0.1.0"

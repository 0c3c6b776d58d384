"""A small fluent API to build graphs in Python (scripts, tests, templates).

Example::

    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("Conv2d", x, out_channels=8, padding=1)
    x = b.layer("ReLU", x)
    x = b.layer("Flatten", x)
    b.output(b.layer("Linear", x, out_features=10), name="logits")
    b.auto_layout()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .graph import Graph


@dataclass(frozen=True)
class Port:
    """An output port of a node: what a layer call takes and returns."""

    node: str
    port: str = "y"


class GraphBuilder:
    """Builds a :class:`Graph` by chaining layers."""

    def __init__(self, graph: Graph | None = None) -> None:
        self.graph = graph if graph is not None else Graph()

    def input(self, shape: tuple[Any, ...] | list[Any], name: str | None = None, dtype: str = "float32") -> Port:
        n = self.graph.add_node("Input", {"shape": list(shape), "dtype": dtype}, name)
        return Port(n.id)

    def layer(self, type_id: str, *inputs: Port, name: str | None = None, **params: Any) -> Port:
        """Add a layer fed by ``inputs`` (in port order); returns its first output."""
        n = self.graph.add_node(type_id, params, name)
        for port_name, src in zip(n.input_ports, inputs, strict=True):
            self.graph.connect(src.node, src.port, n.id, port_name)
        return Port(n.id, n.output_ports[0]) if n.output_ports else Port(n.id, "")

    def port(self, src: Port, name: str) -> Port:
        """Another output port of the same node (e.g. an LSTM's ``h``)."""
        return Port(src.node, name)

    def output(self, src: Port, name: str | None = None) -> None:
        self.layer("Output", src, name=name)

    def auto_layout(self, **kwargs: Any) -> Graph:
        from .layout import auto_layout

        for nid, pos in auto_layout(self.graph, **kwargs).items():
            self.graph.move(nid, pos)
        return self.graph

"""The compiler against hand-written modules: identical outputs and gradients;
the result exports to ONNX and compiles with torch.compile."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.errors import CompileError
from workbench.graph import Graph


def assert_same(compiled_module: nn.Module, hand: nn.Module, *xs: torch.Tensor) -> None:
    hand.load_state_dict(compiled_module.state_dict(), strict=True)  # keys follow node names
    compiled_module.train(False)
    hand.train(False)
    a, b = compiled_module(*xs), hand(*xs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    compiled_module.train(True)
    hand.train(True)
    compiled_module.zero_grad()
    hand.zero_grad()
    compiled_module(*xs).square().sum().backward()
    hand(*xs).square().sum().backward()
    for (name, p), (_, q) in zip(compiled_module.named_parameters(), hand.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, msg=name)


def test_mlp_matches_hand_written() -> None:
    b = GraphBuilder()
    x = b.input((12,), name="x")
    x = b.layer("Linear", x, out_features=20, name="fc1")
    x = b.layer("ReLU", x, name="act")
    b.output(b.layer("Linear", x, out_features=3, name="fc2"))

    class Hand(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(x)))

    assert_same(compile_graph(b.graph).module, Hand(), torch.randn(5, 12))


def test_cnn_with_skip_and_concat_matches_hand_written() -> None:
    b = GraphBuilder()
    img = b.input((3, 8, 8), name="img")
    a = b.layer("Conv2d", img, out_channels=6, padding=[1, 1], name="conv_a")
    a = b.layer("BatchNorm2d", a, name="bn")
    a = b.layer("ReLU", a, name="relu")
    c = b.layer("Conv2d", a, out_channels=6, padding=[1, 1], name="conv_b")
    s = b.layer("Add", c, a, name="skip")
    cat = b.layer("Concat", s, img, dim=1, name="cat")
    p = b.layer("MaxPool2d", cat, name="pool")
    f = b.layer("Flatten", p, name="flat")
    b.output(b.layer("Linear", f, out_features=4, name="head"))

    class Hand(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_a = nn.Conv2d(3, 6, 3, padding=1)
            self.bn = nn.BatchNorm2d(6)
            self.relu = nn.ReLU()
            self.conv_b = nn.Conv2d(6, 6, 3, padding=1)
            self.pool = nn.MaxPool2d(2, 2)
            self.head = nn.Linear(9 * 16, 4)

        def forward(self, img: torch.Tensor) -> torch.Tensor:
            a = self.relu(self.bn(self.conv_a(img)))
            s = self.conv_b(a) + a
            return self.head(self.pool(torch.cat([s, img], 1)).flatten(1))

    assert_same(compile_graph(b.graph).module, Hand(), torch.randn(4, 3, 8, 8))


def test_lstm_classifier_matches_hand_written() -> None:
    b = GraphBuilder()
    x = b.input(("T", 5), name="seq")
    r = b.layer("LSTM", x, hidden_size=7, num_layers=2, bidirectional=True, name="lstm")
    b.output(b.layer("Linear", b.port(r, "h"), out_features=3, name="head"))

    class Hand(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(5, 7, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(14, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            _, (h, _) = self.lstm(x)
            return self.head(torch.cat([h[-2], h[-1]], 1))

    assert_same(compile_graph(b.graph).module, Hand(), torch.randn(3, 6, 5))


def test_transformer_classifier_matches_hand_written() -> None:
    b = GraphBuilder()
    x = b.input((6, 4), name="seq")
    e = b.layer("Linear", x, out_features=16, name="embed")
    e = b.layer("TransformerEncoderLayer", e, nhead=4, dim_feedforward=32, dropout=0.0, name="encoder")
    f = b.layer("Flatten", e, name="flat")
    b.output(b.layer("Linear", f, out_features=3, name="head"))

    class Hand(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(4, 16)
            self.encoder = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
            self.head = nn.Linear(6 * 16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(self.embed(x)).flatten(1))

    assert_same(compile_graph(b.graph).module, Hand(), torch.randn(2, 6, 4))


def test_awkward_node_names_compile() -> None:
    b = GraphBuilder()
    x = b.input((4,), name="class")
    x = b.layer("Linear", x, out_features=4, name="my conv")
    x = b.layer("Linear", x, out_features=4, name="my_conv")
    x = b.layer("Linear", x, out_features=2, name="forward")
    b.output(x, name="return")
    compiled = compile_graph(b.graph)
    keys = list(compiled.module.state_dict())
    assert keys == [
        "my_conv.weight", "my_conv.bias", "my_conv_2.weight", "my_conv_2.bias", "forward_.weight", "forward_.bias",
    ]
    assert compiled.module(torch.randn(3, 4)).shape == (3, 2)
    assert "def forward(self, class_)" in compiled.module.code


def test_forward_is_straight_line_code() -> None:
    b = GraphBuilder()
    x = b.input((4,))
    for i in range(3):
        x = b.layer("Linear", x, out_features=4, name=f"fc{i}")
    b.output(x)
    code = compile_graph(b.graph).module.code
    assert "for " not in code and "self.fc0(" in code and "self.fc2(" in code


def test_multiple_inputs_and_outputs_keep_graph_order() -> None:
    b = GraphBuilder()
    a = b.input((3,), name="a")
    c = b.input((5,), name="c")
    cat = b.layer("Concat", a, c, dim=1)
    b.output(b.layer("Linear", cat, out_features=2), name="main")
    b.output(b.layer("Linear", a, out_features=1), name="aux")
    compiled = compile_graph(b.graph)
    assert [i.arg for i in compiled.inputs] == ["a", "c"]
    assert compiled.outputs == ["main", "aux"]
    main, aux = compiled.module(torch.randn(2, 3), torch.randn(2, 5))
    assert main.shape == (2, 2) and aux.shape == (2, 1)


def test_invalid_graph_is_refused_with_located_errors() -> None:
    b = GraphBuilder()
    x = b.input((10,))
    b.output(b.layer("Conv2d", x, name="conv"))
    with pytest.raises(CompileError) as exc:
        compile_graph(b.graph)
    assert [e.node for e in exc.value.errors] == ["conv"]
    assert 'Conv2d "conv": expects [N, C, H, W]' in str(exc.value)


def test_graph_without_input_or_output_is_refused() -> None:
    with pytest.raises(CompileError, match="no Input node"):
        compile_graph(Graph())


def _cnn() -> GraphBuilder:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("Conv2d", x, out_channels=4, padding=[1, 1])
    x = b.layer("ReLU", x)
    x = b.layer("Flatten", x)
    b.output(b.layer("Linear", x, out_features=10), name="logits")
    return b


def test_compiled_module_exports_to_onnx() -> None:
    import onnx

    compiled = compile_graph(_cnn().graph)
    buf = io.BytesIO()
    program = torch.onnx.export(
        compiled.module.eval(), compiled.example_inputs(), dynamo=True, verbose=False,
        input_names=["image"], output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("N")},),
    )
    program.model_proto  # noqa: B018 - materialise
    buf.write(program.model_proto.SerializeToString())
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    assert {n.op_type for n in model.graph.node} >= {"Conv", "Relu", "Gemm"}


def test_compiled_module_works_with_torch_compile() -> None:
    compiled = compile_graph(_cnn().graph)
    module = compiled.module.eval()
    fast = torch.compile(module, backend="eager", fullgraph=True)  # inductor takes ~20 s on 2 cores
    (x,) = compiled.example_inputs(batch=3)
    torch.testing.assert_close(fast(x), module(x))

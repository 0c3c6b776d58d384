"""Sequence layers against torch with the same weights: the Elman RNN, cross-attention and the
Transformer decoder layer; causal masks that really hide the future; located shape errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.builder import GraphBuilder
from workbench.compiler import compile_graph
from workbench.errors import CompileError
from workbench.shapes import infer


def _compiled(type_id: str, shapes: list[tuple], **params):
    """One layer named "layer" fed by Inputs of the given shapes (without batch); returns the module."""
    b = GraphBuilder()
    inputs = [b.input(s, name=f"in{i}") for i, s in enumerate(shapes)]
    b.output(b.layer(type_id, *inputs, name="layer", **params))
    return compile_graph(b.graph).module


# --------------------------------------------------------------------------- decoder layer


@pytest.mark.parametrize(("norm_first", "activation"), [(False, "relu"), (True, "gelu")])
def test_decoder_layer_equals_torch_with_the_same_weights(norm_first: bool, activation: str) -> None:
    torch.manual_seed(0)
    module = _compiled("TransformerDecoderLayer", [("T", 8), ("S", 8)], nhead=2, dim_feedforward=16, dropout=0.0,
                       norm_first=norm_first, activation=activation)
    ref = nn.TransformerDecoderLayer(8, 2, 16, 0.0, activation, batch_first=True, norm_first=norm_first)
    ref.load_state_dict(module.layer.state_dict())
    x, memory = torch.randn(3, 6, 8), torch.randn(3, 4, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(6)  # torch's own causal mask (-inf above the diagonal)
    for mode in (module.train, module.eval):  # the fast path in eval, the plain one in train (dropout 0)
        mode()
        ref.train(module.training)
        torch.testing.assert_close(module(x, memory), ref(x, memory, tgt_mask=mask))


def test_decoder_without_the_causal_mask_equals_an_unmasked_torch_layer() -> None:
    torch.manual_seed(1)
    module = _compiled("TransformerDecoderLayer", [("T", 4), ("S", 4)], nhead=1, dim_feedforward=8, dropout=0.0,
                       causal=False).eval()
    ref = nn.TransformerDecoderLayer(4, 1, 8, 0.0, batch_first=True).eval()
    ref.load_state_dict(module.layer.state_dict())
    x, memory = torch.randn(2, 5, 4), torch.randn(2, 3, 4)
    torch.testing.assert_close(module(x, memory), ref(x, memory))


def _future_changed(module: nn.Module, *extra: torch.Tensor, steps: int = 6, at: int = 4) -> tuple:
    x = torch.randn(1, steps, 8)
    changed = x.clone()
    changed[0, at:] += 5.0  # only steps at and after `at`
    with torch.no_grad():
        return module(x, *extra), module(changed, *extra)


@pytest.mark.parametrize("causal", [True, False])
def test_decoder_causal_mask_hides_the_future_and_only_when_asked(causal: bool) -> None:
    torch.manual_seed(2)
    module = _compiled("TransformerDecoderLayer", [("T", 8), ("S", 8)], nhead=2, dim_feedforward=16, dropout=0.0,
                       causal=causal).eval()
    memory = torch.randn(1, 3, 8)
    a, b = _future_changed(module, memory)
    assert not torch.allclose(a[0, 4:], b[0, 4:])
    if causal:
        torch.testing.assert_close(a[0, :4], b[0, :4])
    else:
        assert not torch.allclose(a[0, :4], b[0, :4])


def test_decoder_reads_the_whole_memory_at_every_step() -> None:
    torch.manual_seed(3)
    module = _compiled("TransformerDecoderLayer", [("T", 8), ("S", 8)], nhead=2, dim_feedforward=16,
                       dropout=0.0).eval()
    x, memory = torch.randn(1, 5, 8), torch.randn(1, 4, 8)
    changed = memory.clone()
    changed[0, -1] += 3.0  # the memory's last step: even the decoder's first step sees it
    with torch.no_grad():
        a, b = module(x, memory), module(x, changed)
    assert all(not torch.allclose(a[0, t], b[0, t]) for t in range(5))


@pytest.mark.parametrize("causal", [True, False])
def test_self_attention_causal_option(causal: bool) -> None:
    torch.manual_seed(4)
    module = _compiled("MultiheadAttention", [("T", 8)], num_heads=2, causal=causal).eval()
    a, b = _future_changed(module)
    assert torch.allclose(a[0, :4], b[0, :4]) == causal


# --------------------------------------------------------------------------- cross-attention


@pytest.mark.parametrize("kv_features", [8, 6])  # kdim = vdim = E (torch packs the projections) and kdim != E
def test_cross_attention_equals_torch_attention_of_query_to_memory(kv_features: int) -> None:
    torch.manual_seed(5)
    module = _compiled("CrossAttention", [("T", 8), ("S", kv_features)], num_heads=2).eval()
    ref = nn.MultiheadAttention(8, 2, kdim=kv_features, vdim=kv_features, batch_first=True).eval()
    ref.load_state_dict(module.layer.state_dict())
    q, kv = torch.randn(3, 5, 8), torch.randn(3, 7, kv_features)
    with torch.no_grad():
        torch.testing.assert_close(module(q, kv), ref(q, kv, kv)[0])
    assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in ref.parameters())


def test_cross_attention_with_separate_keys_and_values() -> None:
    torch.manual_seed(6)
    module = _compiled("CrossAttention", [("T", 4), ("S", 5), ("S", 7)], num_heads=1, separate_value=True,
                       bias=False).eval()
    ref = nn.MultiheadAttention(4, 1, bias=False, kdim=5, vdim=7, batch_first=True).eval()
    ref.load_state_dict(module.layer.state_dict())
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 6, 5), torch.randn(2, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(module(q, k, v), ref(q, k, v)[0])


# --------------------------------------------------------------------------- Elman RNN


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_elman_rnn_equals_torch_and_its_nonlinearity_matters(nonlinearity: str) -> None:
    torch.manual_seed(7)
    b = GraphBuilder()
    y = b.layer("RNN", b.input(("T", 3)), hidden_size=4, num_layers=2, bidirectional=True,
                nonlinearity=nonlinearity, name="rnn")
    b.output(y, name="seq")
    b.output(b.port(y, "h"), name="last")
    module = compile_graph(b.graph).module.eval()
    ref = nn.RNN(3, 4, num_layers=2, nonlinearity=nonlinearity, batch_first=True, bidirectional=True).eval()
    ref.load_state_dict(module.rnn.state_dict())
    other = nn.RNN(3, 4, num_layers=2, nonlinearity="relu" if nonlinearity == "tanh" else "tanh",
                   batch_first=True, bidirectional=True).eval()
    other.load_state_dict(module.rnn.state_dict())
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        seq, last = module(x)
        want, h_n = ref(x)
        torch.testing.assert_close(seq, want)
        torch.testing.assert_close(last, torch.cat([h_n[-2], h_n[-1]], 1))  # the last layer, both directions
        assert not torch.allclose(seq, other(x)[0])


# --------------------------------------------------------------------------- located shape errors


def _error(type_id: str, shapes: list[tuple], **params):
    b = GraphBuilder()
    inputs = [b.input(s, name=f"in{i}") for i, s in enumerate(shapes)]
    b.output(b.layer(type_id, *inputs, name="layer", **params))
    [err] = infer(b.graph).errors()
    with pytest.raises(CompileError):
        compile_graph(b.graph)
    return err


def test_decoder_memory_of_another_width_names_the_memory_port() -> None:
    err = _error("TransformerDecoderLayer", [("T", 8), ("S", 6)], nhead=2)
    assert err.node == "layer"
    assert "memory has 6 features but x has 8" in str(err) and "on input 'memory'" in str(err)
    assert 'from "in1"' in str(err)


def test_decoder_heads_that_do_not_divide_name_the_parameter() -> None:
    err = _error("TransformerDecoderLayer", [("T", 6), ("S", 6)], nhead=4)
    assert err.param == "nhead" and "nhead=4 must divide the embedding size 6" in str(err)


def test_cross_attention_errors_name_port_and_parameter() -> None:
    err = _error("CrossAttention", [("T", 8), ("S", 8), (5, 8)], separate_value=True)
    assert "on input 'value'" in str(err) and "value has 5 steps but memory (the keys) has S" in str(err)
    err = _error("CrossAttention", [("T", 8), (8,)])
    assert "expects [N, S, features] on input 'memory', got [N, 8]" in str(err)
    err = _error("CrossAttention", [("T", 6), ("S", 8)], num_heads=4)
    assert err.param == "num_heads"


def test_separate_values_add_a_port_and_keep_the_memory_wire() -> None:
    b = GraphBuilder()
    att = b.layer("CrossAttention", b.input(("T", 4)), b.input(("S", 4)), num_heads=1, name="att")
    b.output(att)
    b.graph.set_param(att.node, "separate_value", True)  # no need to unwire the memory first
    assert b.graph.nodes[att.node].input_ports == ("x", "memory", "value")
    [err] = infer(b.graph).errors()
    assert err.node == "att" and "input 'value' is not connected" in str(err)

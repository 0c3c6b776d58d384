"""Interface, dense and reshaping layers."""

from __future__ import annotations

from typing import Any

from .costs import dense, numel, zero
from .dims import expect_rank, fixed, fmt_shape, product
from .spec import (
    MAX_SIZE,
    BoolParam,
    ChoiceParam,
    Emitter,
    Example,
    FloatParam,
    IntParam,
    IntTupleParam,
    LayerShapeError,
    LayerSpec,
    ModuleCall,
    Shape,
    ShapeParam,
    register,
)

# --------------------------------------------------------------------------- interface


def _input_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    if not p["batched"]:
        if not p["shape"]:
            raise LayerShapeError("a shared (not batched) Input is given whole: it needs a shape of at least one "
                                  "dimension", param="shape")
        return [tuple(p["shape"])]
    return [("N", *p["shape"])]


register(
    LayerSpec(
        id="Input",
        name="Input",
        category="Input/Output",
        doc="A model input. Output: [N, *shape]; N is the symbolic batch, a name like T a symbolic length. "
            "An empty shape is one value per sample ([N]). Not batched: one tensor of exactly this shape, shared by "
            "every sample.",
        params=(
            ShapeParam("shape", (1, 8, 8), "shape without the batch dimension; use T for a variable length"),
            ChoiceParam("dtype", "float32", "element type: int64 for token ids; float64 makes the whole model "
                        "compute in float64 (its parameters too)", choices=("float32", "float64", "int64")),
            BoolParam("batched", True, "the tensor has the batch dimension first; off: one tensor shared by every "
                      "sample, given whole (its shape has no N, like a Parameter's)"),
        ),
        inputs=(),
        infer=_input_shape,
        key_params=("shape",),
        role="input",
    )
)

register(
    LayerSpec(
        id="Output",
        name="Output",
        category="Input/Output",
        doc="A model output. Input: any tensor; the module returns it under this node's name.",
        inputs=("x",),
        outputs=(),
        infer=lambda p, ins: [],
        role="output",
    )
)

# --------------------------------------------------------------------------- dense


def _linear_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    expect_rank(x, tuple(range(2, 9)), "[N, *, features]")
    fixed(x[-1], "number of input features (last dimension)")
    return [(*x[:-1], p["out_features"])]


register(
    LayerSpec(
        id="Linear",
        name="Linear",
        category="Dense",
        doc="Fully connected layer. Input: [N, *, in_features]. Output: [N, *, out_features].",
        params=(
            IntParam("out_features", 64, "number of output features", minimum=1, maximum=MAX_SIZE),
            BoolParam("bias", True, "learn an additive bias"),
        ),
        infer=_linear_shape,
        count=lambda p, ins: ins[0][-1] * p["out_features"] + (p["out_features"] if p["bias"] else 0),
        build=lambda p, ins: ModuleCall("Linear", (ins[0][-1], p["out_features"]), {"bias": p["bias"]}),
        ops=lambda p, ins, outs: dense(numel(outs[0]) // p["out_features"], ins[0][-1], p["out_features"], p["bias"]),
        key_params=("out_features",),
        examples=(
            Example({"out_features": 5, "bias": True}, ((3, 7),)),
            Example({"out_features": 4, "bias": False}, ((3, 6, 7),)),
        ),
    )
)

register(
    LayerSpec(
        id="Dropout",
        name="Dropout",
        category="Regularization",
        doc="Zeroes elements with probability p while training. Output shape = input shape.",
        params=(FloatParam("p", 0.5, "drop probability", minimum=0.0, maximum=0.99),),
        infer=lambda p, ins: [ins[0]],
        build=lambda p, ins: ModuleCall("Dropout", (), {"p": p["p"]}),
        ops=zero,  # the identity at inference
        key_params=("p",),
        examples=(Example({"p": 0.3}, ((2, 5),)),),
    )
)

register(
    LayerSpec(
        id="Identity",
        name="Identity",
        category="Reshape",
        dtype="same",
        doc="Passes its input through unchanged (a named junction). Output shape = input shape.",
        infer=lambda p, ins: [ins[0]],
        emit=lambda e, p, ins, xs: [xs[0]],
        examples=(Example({}, ((2, 3),)),),
    )
)

# --------------------------------------------------------------------------- reshaping


def _flatten_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    start = p["start_dim"]
    if start >= len(x):
        raise LayerShapeError(
            f"start_dim={start} is out of range for an input of rank {len(x)} {fmt_shape(x)}", param="start_dim"
        )
    return [(*x[:start], product(x[start:]))]


register(
    LayerSpec(
        id="Flatten",
        name="Flatten",
        category="Reshape",
        dtype="same",
        doc="Flattens dims from start_dim on. Input: [N, d1, ..., dk]. Output: [N, d1*...*dk] (start_dim=1).",
        params=(IntParam("start_dim", 1, "first dimension to flatten (0 is the batch)", minimum=1),),
        infer=_flatten_shape,
        emit=lambda e, p, ins, xs: [e.call_method("flatten", xs[0], p["start_dim"])],
        examples=(Example({"start_dim": 1}, ((2, 3, 4, 5),)), Example({"start_dim": 2}, ((2, 3, 4, 5),))),
    )
)


def _reshape_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    target = list(p["shape"])
    n_in = product(x[1:])
    if not isinstance(n_in, int):
        raise LayerShapeError(f"needs fixed sizes after the batch dimension, got {fmt_shape(x)}", port=0)
    known = product([d for d in target if d != -1])
    assert isinstance(known, int)
    if -1 in target:
        if n_in % known:
            raise LayerShapeError(
                f"cannot reshape {fmt_shape(x)} ({n_in} values per sample) into {list(p['shape'])}", param="shape"
            )
        target[target.index(-1)] = n_in // known
    elif known != n_in:
        raise LayerShapeError(
            f"cannot reshape {fmt_shape(x)} ({n_in} values per sample) into {list(p['shape'])} ({known} values)",
            param="shape",
        )
    return [("N", *target)]


def _emit_reshape(e: Emitter, p: dict[str, Any], ins: list[Shape], xs: list[Any]) -> list[Any]:
    batch = e.call_method("size", xs[0], 0)
    return [e.call_method("reshape", xs[0], batch, *p["shape"])]


register(
    LayerSpec(
        id="Reshape",
        name="Reshape",
        category="Reshape",
        dtype="same",
        doc="Reshapes each sample; one size may be -1. Input: [N, ...]. Output: [N, *shape].",
        params=(
            IntTupleParam("shape", (-1,), "new shape without the batch dimension", minimum=1, allow_minus_one=True),
        ),
        infer=_reshape_shape,
        emit=_emit_reshape,
        key_params=("shape",),
        examples=(
            Example({"shape": (4, 6)}, ((2, 24),)),
            Example({"shape": (2, -1)}, ((2, 3, 4),)),
        ),
    )
)


def _permute_shape(p: dict[str, Any], ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    dims = p["dims"]
    if sorted(dims) != list(range(1, len(x))):
        raise LayerShapeError(
            f"dims={list(dims)} must be a permutation of 1..{len(x) - 1} for an input {fmt_shape(x)}", param="dims"
        )
    return [(x[0], *(x[d] for d in dims))]


register(
    LayerSpec(
        id="Permute",
        name="Permute",
        category="Reshape",
        dtype="same",
        doc="Reorders the non-batch dims (numbered from 1). [N, C, L] with dims (2, 1) -> [N, L, C].",
        params=(IntTupleParam("dims", (2, 1), "new order of dims 1..rank-1", minimum=1),),
        infer=_permute_shape,
        emit=lambda e, p, ins, xs: [e.call_method("permute", xs[0], 0, *p["dims"])],
        key_params=("dims",),
        examples=(Example({"dims": (2, 1)}, ((2, 3, 5),)), Example({"dims": (3, 1, 2)}, ((2, 3, 4, 5),))),
    )
)

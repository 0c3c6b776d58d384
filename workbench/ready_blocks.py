"""Ready-made blocks offered in the palette: conv-BN-ReLU, ResNet basic and
bottleneck blocks (with identity or projection shortcut), and a pre-norm
Transformer encoder block built from primitive layers.

Placing one copies its definition into the project (:func:`add_ready`), so a
project never depends on this module's version of a block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

from .block_io import add_block_from_dict, plan_merge
from .blocks import BlockLibrary, define_block
from .builder import GraphBuilder, Port


def _conv(b: GraphBuilder, x: Port, name: str, ch: int, k: int, stride: int = 1) -> Port:
    return b.layer("Conv2d", x, out_channels=ch, kernel_size=[k, k], stride=[stride, stride],
                   padding=[k // 2, k // 2], bias=False, name=name)


def conv_bn_relu(lib: BlockLibrary) -> None:
    def build(b: GraphBuilder) -> None:
        x = b.input((16, 8, 8), name="x")
        x = _conv(b, x, "conv", 16, 3)
        x = b.layer("ReLU", b.layer("BatchNorm2d", x, name="bn"), name="relu")
        b.output(x, name="y")

    define_block(lib, "ConvBNReLU", "Conv-BN-ReLU", build,
                 {"channels": [("conv", "out_channels")], "kernel_size": [("conv", "kernel_size")],
                  "stride": [("conv", "stride")], "padding": [("conv", "padding")]},
                 doc="Convolution (no bias), batch norm and ReLU: the unit most CNNs are made of.",
                 param_docs={"channels": "output channels"})


def _basic(lib: BlockLibrary, projection: bool) -> None:
    def build(b: GraphBuilder) -> None:
        x = b.input((64, 8, 8), name="x")
        h = _conv(b, x, "conv1", 64, 3, 2 if projection else 1)
        h = b.layer("ReLU", b.layer("BatchNorm2d", h, name="bn1"), name="relu1")
        h = b.layer("BatchNorm2d", _conv(b, h, "conv2", 64, 3), name="bn2")
        skip = b.layer("BatchNorm2d", _conv(b, x, "down", 64, 1, 2), name="down_bn") if projection else x
        b.output(b.layer("ReLU", b.layer("Add", h, skip, name="add"), name="relu2"), name="y")

    exposed = {"channels": [("conv1", "out_channels"), ("conv2", "out_channels")]}
    if projection:
        exposed["channels"].append(("down", "out_channels"))
        exposed["stride"] = [("conv1", "stride"), ("down", "stride")]
        define_block(lib, "ResBlockDown", "ResNet basic block (projection)", build, exposed,
                     doc="Two 3x3 convolutions; the shortcut is a strided 1x1 convolution, so the block can change "
                     "the channels and the resolution (He et al. 2015).")
    else:
        define_block(lib, "ResBlock", "ResNet basic block", build, exposed,
                     doc="Two 3x3 convolutions plus an identity shortcut; channels must equal the input's "
                     "(He et al. 2015).")


def _bottleneck(lib: BlockLibrary, projection: bool) -> None:
    def build(b: GraphBuilder) -> None:
        x = b.input((256, 8, 8), name="x")
        h = b.layer("ReLU", b.layer("BatchNorm2d", _conv(b, x, "conv1", 64, 1), name="bn1"), name="relu1")
        h = b.layer("ReLU", b.layer("BatchNorm2d", _conv(b, h, "conv2", 64, 3, 2 if projection else 1), name="bn2"),
                    name="relu2")
        h = b.layer("BatchNorm2d", _conv(b, h, "conv3", 256, 1), name="bn3")
        skip = b.layer("BatchNorm2d", _conv(b, x, "down", 256, 1, 2), name="down_bn") if projection else x
        b.output(b.layer("ReLU", b.layer("Add", h, skip, name="add"), name="relu3"), name="y")

    exposed = {"width": [("conv1", "out_channels"), ("conv2", "out_channels")],
               "out_channels": [("conv3", "out_channels")]}
    docs = {"width": "channels of the inner 1x1-3x3 layers", "out_channels": "channels of the result"}
    if projection:
        exposed["out_channels"].append(("down", "out_channels"))
        exposed["stride"] = [("conv2", "stride"), ("down", "stride")]
        define_block(lib, "BottleneckDown", "ResNet bottleneck (projection)", build, exposed,
                     doc="1x1-3x3-1x1 convolutions, stride on the 3x3 (ResNet v1.5); the shortcut is a 1x1 "
                     "convolution, for the first block of a stage.", param_docs=docs)
    else:
        define_block(lib, "Bottleneck", "ResNet bottleneck", build, exposed,
                     doc="1x1-3x3-1x1 convolutions plus an identity shortcut; out_channels must equal the input's.",
                     param_docs=docs)


def encoder_block(lib: BlockLibrary) -> None:
    def build(b: GraphBuilder) -> None:
        x = b.input(("T", 64), name="x")
        h = b.layer("MultiheadAttention", b.layer("LayerNorm", x, name="norm1"), num_heads=4, name="attention")
        x = b.layer("Add", b.layer("Dropout", h, p=0.1, name="drop1"), x, name="add1")
        h = b.layer("GELU", b.layer("Linear", b.layer("LayerNorm", x, name="norm2"), out_features=256, name="ff1"),
                    name="act")
        h = b.layer("Linear", b.layer("Dropout", h, p=0.1, name="drop2"), out_features=64, name="ff2")
        b.output(b.layer("Add", b.layer("Dropout", h, p=0.1, name="drop3"), x, name="add2"), name="y")

    define_block(lib, "EncoderBlock", "Transformer encoder block (pre-norm)", build,
                 {"d_model": [("ff2", "out_features")], "dim_feedforward": [("ff1", "out_features")],
                  "heads": [("attention", "num_heads")], "dropout": [("drop1", "p"), ("drop2", "p"), ("drop3", "p")],
                  "causal": [("attention", "causal")]},
                 doc="LayerNorm, self-attention and a GELU feed-forward, each with a residual (as in GPT-2 and "
                 "ViT); d_model must equal the input's last dimension.",
                 param_docs={"d_model": "embedding size E (equal to the input's)"})


READY: tuple[Callable[[BlockLibrary], None], ...] = (
    conv_bn_relu,
    lambda lib: _basic(lib, False),
    lambda lib: _basic(lib, True),
    lambda lib: _bottleneck(lib, False),
    lambda lib: _bottleneck(lib, True),
    encoder_block,
)


def ready_library() -> BlockLibrary:
    """A fresh library holding every ready block."""
    lib = BlockLibrary()
    for make in READY:
        make(lib)
    return lib


@cache
def ready_catalogue() -> BlockLibrary:
    """One shared library of the ready blocks, to read from (never change it)."""
    return ready_library()


def add_ready(library: BlockLibrary, ids: Iterable[str], source: BlockLibrary | None = None) -> dict[str, str]:
    """Copy ready blocks into a project's library (reusing identical ones); returns
    ready id -> id in the project."""
    mapping, new = plan_merge(source or ready_catalogue(), ids, library)
    for bid, doc in new.items():
        add_block_from_dict(library, bid, doc, f"block {bid}")
    return mapping

"""Known architectures built from the catalogue, for designing and exporting.

Each template's parameter count equals the published figure (the tests assert
the exact numbers): LeNet-5 61,706; AlexNet 61,100,840; VGG-16 138,357,544;
ResNet-18 11,689,512; ResNet-50 25,557,032; BERT-base 109,482,240 (with pooler).
"""

from __future__ import annotations

from collections.abc import Callable

from .builder import GraphBuilder
from .config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from .graph import Graph
from .project import Project
from .ready_blocks import add_ready

#: the vision architectures' data: RGB images resized to 224 from a folder the user chooses
IMAGES_224 = {"dataset": "image_folder", "image_size": 224, "grayscale": False}


def _project(b: GraphBuilder, name: str, description: str, data: dict | None = None) -> Project:
    """An architecture with a data set-up that fits its Input: an image folder (the user points
    ``data.path`` at their images; until then ``check`` warns that the data is not there), or text."""
    b.auto_layout()
    data = data if data is not None else IMAGES_224
    return Project(b.graph, name, description, validate_section(DATA_FIELDS, data), validate_section(TRAINING_FIELDS, {}))


def lenet5() -> Project:
    b = GraphBuilder()
    x = b.input((1, 32, 32), name="image")
    x = b.layer("Conv2d", x, out_channels=6, kernel_size=[5, 5], name="c1")
    x = b.layer("AvgPool2d", b.layer("Tanh", x, name="t1"), name="s2")
    x = b.layer("Conv2d", x, out_channels=16, kernel_size=[5, 5], name="c3")
    x = b.layer("AvgPool2d", b.layer("Tanh", x, name="t3"), name="s4")
    x = b.layer("Flatten", x, name="flatten")
    x = b.layer("Tanh", b.layer("Linear", x, out_features=120, name="c5"), name="t5")
    x = b.layer("Tanh", b.layer("Linear", x, out_features=84, name="f6"), name="t6")
    b.output(b.layer("Linear", x, out_features=10, name="f7"), name="logits")
    return _project(b, "LeNet-5", "LeCun et al. 1998 on 32x32 images: 61,706 parameters.",
                    {"dataset": "image_folder", "image_size": 32, "grayscale": True})


def alexnet() -> Project:
    b = GraphBuilder()
    x = b.input((3, 224, 224), name="image")
    for i, (ch, k, s, p, pool) in enumerate(((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
                                             (256, 3, 1, 1, False), (256, 3, 1, 1, True)), start=1):
        x = b.layer("Conv2d", x, out_channels=ch, kernel_size=[k, k], stride=[s, s], padding=[p, p], name=f"conv{i}")
        x = b.layer("ReLU", x, name=f"relu{i}")
        if pool:
            x = b.layer("MaxPool2d", x, kernel_size=[3, 3], stride=[2, 2], name=f"pool{i}")
    x = b.layer("Flatten", b.layer("AdaptiveAvgPool2d", x, output_size=[6, 6], name="avgpool"), name="flatten")
    for i, width in enumerate((4096, 4096), start=6):
        x = b.layer("Dropout", x, p=0.5, name=f"drop{i}")
        x = b.layer("ReLU", b.layer("Linear", x, out_features=width, name=f"fc{i}"), name=f"relu{i}")
    b.output(b.layer("Linear", x, out_features=1000, name="fc8"), name="logits")
    return _project(b, "AlexNet", "Krizhevsky et al. 2012 (torchvision layout): 61,100,840 parameters.")


def vgg16() -> Project:
    b = GraphBuilder()
    x = b.input((3, 224, 224), name="image")
    block = 1
    conv = 1
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if item == "M":
            x = b.layer("MaxPool2d", x, name=f"pool{block}")
            block, conv = block + 1, 1
        else:
            x = b.layer("Conv2d", x, out_channels=item, kernel_size=[3, 3], padding=[1, 1], name=f"conv{block}_{conv}")
            x = b.layer("ReLU", x, name=f"relu{block}_{conv}")
            conv += 1
    x = b.layer("Flatten", b.layer("AdaptiveAvgPool2d", x, output_size=[7, 7], name="avgpool"), name="flatten")
    for i in (1, 2):
        x = b.layer("ReLU", b.layer("Linear", x, out_features=4096, name=f"fc{i}"), name=f"fc{i}_relu")
        x = b.layer("Dropout", x, p=0.5, name=f"fc{i}_drop")
    b.output(b.layer("Linear", x, out_features=1000, name="fc3"), name="logits")
    return _project(b, "VGG-16", "Simonyan & Zisserman 2014 (configuration D): 138,357,544 parameters.")


def _resnet(blocks: tuple[int, ...], bottleneck: bool, name: str, description: str) -> Project:
    """ResNet from the ready blocks: each residual block is one node (``layer2_0``), as in
    torchvision's ``layer2[0]``; open one to see its convolutions."""
    project = Project(Graph(), name, description, validate_section(DATA_FIELDS, IMAGES_224),
                      validate_section(TRAINING_FIELDS, {}))
    add_ready(project.blocks, ["ConvBNReLU", "Bottleneck", "BottleneckDown"] if bottleneck
              else ["ConvBNReLU", "ResBlock", "ResBlockDown"])
    b = GraphBuilder(project.graph)
    x = b.input((3, 224, 224), name="image")
    x = b.layer("ConvBNReLU", x, channels=64, kernel_size=[7, 7], stride=[2, 2], padding=[3, 3], name="conv1")
    x = b.layer("MaxPool2d", x, kernel_size=[3, 3], stride=[2, 2], padding=[1, 1], name="maxpool")
    in_ch = 64
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for i in range(count):
            stride = 2 if (i == 0 and stage > 1) else 1
            out_ch = width * 4 if bottleneck else width
            tag = f"layer{stage}_{i}"
            project_needed = stride != 1 or in_ch != out_ch
            if bottleneck:
                x = (b.layer("BottleneckDown", x, width=width, out_channels=out_ch, stride=[stride, stride], name=tag)
                     if project_needed else b.layer("Bottleneck", x, width=width, out_channels=out_ch, name=tag))
            else:
                x = (b.layer("ResBlockDown", x, channels=width, stride=[stride, stride], name=tag)
                     if project_needed else b.layer("ResBlock", x, channels=width, name=tag))
            in_ch = out_ch
    x = b.layer("Flatten", b.layer("AdaptiveAvgPool2d", x, name="avgpool"), name="flatten")
    b.output(b.layer("Linear", x, out_features=1000, name="fc"), name="logits")
    b.auto_layout()
    return project


def resnet18() -> Project:
    return _resnet((2, 2, 2, 2), False, "ResNet-18", "He et al. 2015, basic blocks: 11,689,512 parameters.")


def resnet50() -> Project:
    return _resnet((3, 4, 6, 3), True, "ResNet-50", "He et al. 2015, bottleneck blocks: 25,557,032 parameters.")


def bert_base() -> Project:
    b = GraphBuilder()
    x = b.input(("T",), name="token_ids", dtype="int64")
    x = b.layer("TokenPositionEmbedding", x, vocab_size=30522, max_len=512, embedding_dim=768, type_vocab_size=2,
                name="embeddings")
    x = b.layer("Dropout", b.layer("LayerNorm", x, eps=1e-12, name="embeddings_norm"), p=0.1, name="embeddings_drop")
    for i in range(12):
        x = b.layer("TransformerEncoderLayer", x, nhead=12, dim_feedforward=3072, dropout=0.1, activation="gelu",
                    name=f"encoder{i}")
    cls = b.layer("SequencePool", x, mode="first", name="cls")
    b.output(b.layer("Tanh", b.layer("Linear", cls, out_features=768, name="pooler"), name="pooler_act"),
             name="pooled")
    # token ids come from the user's own tokenised data (a CSV of ids): none is bundled
    return _project(b, "BERT-base encoder", "Devlin et al. 2018, 12 layers x 768 wide, with pooler: "
                    "109,482,240 parameters (LayerNorm eps in the encoder layers is PyTorch's 1e-5).",
                    {"dataset": "csv"})


TEMPLATES: dict[str, Callable[[], Project]] = {
    "LeNet-5": lenet5,
    "AlexNet": alexnet,
    "VGG-16": vgg16,
    "ResNet-18": resnet18,
    "ResNet-50": resnet50,
    "BERT-base": bert_base,
}


#: command-line ids of the architectures
ARCHITECTURE_IDS = {"LeNet-5": "lenet5", "AlexNet": "alexnet", "VGG-16": "vgg16", "ResNet-18": "resnet18",
                    "ResNet-50": "resnet50", "BERT-base": "bert_base"}


#: every starting point by a command-line id: the sample projects (with data and training set-up)
#: and the known architectures above (``workbench new --template ID``, File > New from Template)
def starting_points() -> dict[str, tuple[str, Callable[[], Project]]]:
    """id -> (title, factory); samples first (``digits_cnn``), then architectures (``resnet50``)."""
    from .samples import SAMPLE_TITLES, SAMPLES

    out: dict[str, tuple[str, Callable[[], Project]]] = {}
    for file, make in SAMPLES.items():
        stem = file.removesuffix(".json")
        out[stem] = (SAMPLE_TITLES[stem], make)
    for title, make in TEMPLATES.items():
        out[ARCHITECTURE_IDS[title]] = (f"{title} (architecture)", make)
    return out

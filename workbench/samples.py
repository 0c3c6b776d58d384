"""The sample projects, built from the catalogue in code (so every install has them, editable or
not).  ``samples/*.json`` are these projects written out (``python samples/make_samples.py``); a
test keeps the files equal to the code.  They are also starting points in *File > New from
Template* and ``workbench new --template``.
"""

from __future__ import annotations

from collections.abc import Callable

from .builder import GraphBuilder
from .config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from .graph import Graph
from .project import Project
from .ready_blocks import add_ready
from .samples_ssl import digits_contrastive, digits_finetune, digits_masked_autoencoder


def digits_mlp() -> Project:
    b = GraphBuilder()
    x = b.input((64,), name="pixels")
    x = b.layer("Linear", x, out_features=128, name="fc1")
    x = b.layer("ReLU", x, name="relu1")
    x = b.layer("Dropout", x, p=0.2, name="drop1")
    x = b.layer("Linear", x, out_features=64, name="fc2")
    x = b.layer("ReLU", x, name="relu2")
    x = b.layer("Linear", x, out_features=10, name="classifier")
    b.output(x, name="logits")
    return Project(
        b.auto_layout(),
        "Digits MLP",
        "A two-hidden-layer perceptron on the built-in 8x8 digits (about 97% validation accuracy).",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 64}),
        validate_section(TRAINING_FIELDS, {"epochs": 30, "lr": 0.002}),
    )


def digits_cnn() -> Project:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    for i, ch in enumerate((16, 32), start=1):
        x = b.layer("Conv2d", x, out_channels=ch, kernel_size=[3, 3], padding=[1, 1], name=f"conv{i}")
        x = b.layer("BatchNorm2d", x, name=f"bn{i}")
        x = b.layer("ReLU", x, name=f"relu{i}")
        x = b.layer("MaxPool2d", x, name=f"pool{i}")
    x = b.layer("Flatten", x, name="flatten")
    x = b.layer("Linear", x, out_features=64, name="fc")
    x = b.layer("ReLU", x, name="relu3")
    x = b.layer("Dropout", x, p=0.3, name="dropout")
    x = b.layer("Linear", x, out_features=10, name="classifier")
    b.output(x, name="logits")
    return Project(
        b.auto_layout(),
        "Digits CNN",
        "A LeNet-style CNN (conv-BN-ReLU-pool twice) on the built-in 8x8 digits (about 98% validation accuracy).",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 64}),
        validate_section(TRAINING_FIELDS, {"epochs": 20, "lr": 0.003, "schedule": "cosine"}),
    )


def digits_resnet() -> Project:
    """Two ResNet basic blocks: each is one node (a block); open it to see its layers."""
    project = Project(
        Graph(),
        "Digits ResNet",
        "A small residual network: two ResNet basic blocks (skip connections inside reusable blocks) "
        "on the 8x8 digits.",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 64}),
        validate_section(TRAINING_FIELDS, {"epochs": 15, "lr": 0.003, "schedule": "cosine"}),
    )
    add_ready(project.blocks, ["ResBlock"])
    b = GraphBuilder(project.graph)
    x = b.input((1, 8, 8), name="image")
    x = b.layer("Conv2d", x, out_channels=32, kernel_size=[3, 3], padding=[1, 1], name="stem")
    x = b.layer("BatchNorm2d", x, name="stem_bn")
    x = b.layer("ReLU", x, name="stem_relu")
    for i in (1, 2):
        x = b.layer("ResBlock", x, channels=32, name=f"block{i}")
    x = b.layer("AdaptiveAvgPool2d", x, name="gap")
    x = b.layer("Flatten", x, name="flatten")
    x = b.layer("Linear", x, out_features=10, name="classifier")
    b.output(x, name="logits")
    b.auto_layout()
    return project


def _digits_rnn(cell: str, accuracy: str) -> Project:
    """An LSTM or GRU that reads each 8x8 digit row by row and classifies its final state."""
    b = GraphBuilder()
    x = b.input((8, 8), name="rows")
    x = b.layer(cell, x, hidden_size=64, name=cell.lower())
    x = b.layer("Linear", b.port(x, "h"), out_features=10, name="classifier")
    b.output(x, name="logits")
    return Project(
        b.auto_layout(),
        f"Digits {cell}",
        f"A{'n' if cell == 'LSTM' else ''} {cell} reads each 8x8 digit row by row (8 steps of 8 pixels) and "
        f"classifies its final state (about {accuracy} validation accuracy).",
        validate_section(DATA_FIELDS, {"dataset": "digits", "layout": "rows", "batch_size": 64}),
        validate_section(TRAINING_FIELDS, {"epochs": 30, "lr": 0.005}),
    )


def digits_lstm() -> Project:
    return _digits_rnn("LSTM", "98%")


def digits_gru() -> Project:
    return _digits_rnn("GRU", "98%")


def digits_transformer() -> Project:
    b = GraphBuilder()
    x = b.input((8, 8), name="rows")
    x = b.layer("Linear", x, out_features=32, name="embed")
    x = b.layer("PositionalEncoding", x, name="positions")
    x = b.layer("TransformerEncoderLayer", x, nhead=4, dim_feedforward=64, dropout=0.1, norm_first=True,
                name="encoder1")
    x = b.layer("TransformerEncoderLayer", x, nhead=4, dim_feedforward=64, dropout=0.1, norm_first=True,
                name="encoder2")
    x = b.layer("SequencePool", x, mode="mean", name="pool")
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    return Project(
        b.auto_layout(),
        "Digits Transformer",
        "A Transformer encoder classifies each digit as a sequence of 8 row tokens (about 97% validation accuracy).",
        validate_section(DATA_FIELDS, {"dataset": "digits", "layout": "rows", "batch_size": 64}),
        validate_section(TRAINING_FIELDS, {"epochs": 40, "lr": 0.002, "schedule": "cosine", "warmup_epochs": 2}),
    )


def digits_autoencoder() -> Project:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    x = b.layer("ReLU", b.layer("Conv2d", x, out_channels=16, padding=[1, 1], name="enc_conv1"), name="enc_relu1")
    x = b.layer("MaxPool2d", x, name="enc_pool1")
    x = b.layer("ReLU", b.layer("Conv2d", x, out_channels=16, padding=[1, 1], name="enc_conv2"), name="enc_relu2")
    x = b.layer("MaxPool2d", x, name="enc_pool2")
    latent = b.layer("Linear", b.layer("Flatten", x, name="flatten"), out_features=2, name="latent")
    x = b.layer("ReLU", b.layer("Linear", latent, out_features=64, name="dec_fc"), name="dec_relu")
    x = b.layer("Unflatten", x, sizes=[16, 2, 2], name="unflatten")
    x = b.layer("ReLU", b.layer("ConvTranspose2d", x, out_channels=16, name="dec_up1"), name="dec_relu1")
    x = b.layer("Sigmoid", b.layer("ConvTranspose2d", x, out_channels=1, name="dec_up2"), name="dec_out")
    b.output(x, name="reconstruction")
    b.output(latent, name="code")
    return Project(
        b.auto_layout(),
        "Digits convolutional autoencoder",
        "Compresses each digit to a 2-D code and reconstructs it (reconstruction MSE about 0.05); "
        "the code is plotted as a scatter coloured by digit.",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 32}),
        validate_section(TRAINING_FIELDS, {"task": "reconstruction", "epochs": 40, "lr": 0.003}),
    )


def char_language_model() -> Project:
    from workbench.data import load_samples

    data = validate_section(DATA_FIELDS, {"dataset": "text", "seq_len": 48, "batch_size": 32, "val_fraction": 0.1})
    vocab = len(load_samples(data).class_names)
    b = GraphBuilder()
    x = b.input(("T",), name="chars", dtype="int64")
    x = b.layer("TokenPositionEmbedding", x, vocab_size=vocab, max_len=128, embedding_dim=64, name="embed")
    for i in (1, 2):
        x = b.layer("TransformerEncoderLayer", x, nhead=4, dim_feedforward=128, dropout=0.1, norm_first=True,
                    causal=True, name=f"block{i}")
    x = b.layer("LayerNorm", x, name="final_norm")
    b.output(b.layer("Linear", x, out_features=vocab, name="next_char"), name="logits")
    return Project(
        b.auto_layout(),
        "Character Transformer language model",
        "A causal Transformer predicts the next character of Alice in Wonderland (chapter 1, bundled); "
        "validation perplexity falls well below the unigram baseline, and it writes samples as it learns.",
        data,
        validate_section(TRAINING_FIELDS, {"task": "language_model", "epochs": 30, "lr": 0.003,
                                           "schedule": "cosine", "grad_clip": 1.0}),
    )


def digits_gan() -> Project:
    g = GraphBuilder()
    z = g.input((16,), name="noise")
    x = g.layer("ReLU", g.layer("BatchNorm1d", g.layer("Linear", z, out_features=64 * 2 * 2, name="project"),
                                name="project_bn"), name="project_relu")
    x = g.layer("Unflatten", x, sizes=[64, 2, 2], name="unflatten")
    x = g.layer("ConvTranspose2d", x, out_channels=32, name="up1")
    x = g.layer("ReLU", g.layer("BatchNorm2d", x, name="up1_bn"), name="up1_relu")
    x = g.layer("Sigmoid", g.layer("ConvTranspose2d", x, out_channels=1, name="up2"), name="image")
    g.output(x, name="fake")
    d = GraphBuilder()
    y = d.input((1, 8, 8), name="image")
    y = d.layer("LeakyReLU", d.layer("Conv2d", y, out_channels=32, stride=[2, 2], padding=[1, 1], name="down1"),
                negative_slope=0.2, name="down1_act")
    y = d.layer("LeakyReLU", d.layer("Conv2d", y, out_channels=64, stride=[2, 2], padding=[1, 1], name="down2"),
                negative_slope=0.2, name="down2_act")
    y = d.layer("Linear", d.layer("Flatten", y, name="flatten"), out_features=1, name="real_or_fake")
    d.output(y, name="logit")
    project = Project(
        g.auto_layout(),
        "Digits DCGAN",
        "A DCGAN-style generator (noise -> transposed convolutions) against a convolutional discriminator "
        "on the 8x8 digits; the discriminator is in graphs.discriminator.",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 64, "val_fraction": 0.1}),
        validate_section(TRAINING_FIELDS, {"task": "adversarial", "epochs": 60, "lr": 0.0005}),
    )
    project.graphs["discriminator"] = d.auto_layout()
    return project


def numbers_to_words() -> Project:
    """An encoder-decoder Transformer: the encoder reads the digits, the decoder writes the words."""
    from workbench.data import load_samples

    data = validate_section(DATA_FIELDS, {"dataset": "numbers_to_words", "batch_size": 64, "val_fraction": 0.2})
    vocab = len(load_samples(data).class_names)
    b = GraphBuilder()
    source = b.input(("S",), name="source", dtype="int64")
    target = b.input(("T",), name="target", dtype="int64")
    m = b.layer("TokenPositionEmbedding", source, vocab_size=vocab, max_len=16, embedding_dim=64, name="source_embed")
    for i in (1, 2):
        m = b.layer("TransformerEncoderLayer", m, nhead=4, dim_feedforward=128, dropout=0.1, norm_first=True,
                    name=f"encoder{i}")
    m = b.layer("LayerNorm", m, name="memory_norm")
    x = b.layer("TokenPositionEmbedding", target, vocab_size=vocab, max_len=64, embedding_dim=64, name="target_embed")
    for i in (1, 2):
        x = b.layer("TransformerDecoderLayer", x, m, nhead=4, dim_feedforward=128, dropout=0.1, norm_first=True,
                    name=f"decoder{i}")
    x = b.layer("LayerNorm", x, name="final_norm")
    b.output(b.layer("Linear", x, out_features=vocab, name="next_char"), name="logits")
    return Project(
        b.auto_layout(),
        "Numbers to words translation",
        "An encoder-decoder Transformer translates numerals into English words, character by character "
        "(427 -> four hundred twenty-seven): trained with teacher forcing, validated by writing each "
        "translation itself (greedy decoding) on numbers it never saw.",
        data,
        validate_section(TRAINING_FIELDS, {"task": "seq2seq", "epochs": 16, "lr": 0.003, "schedule": "cosine",
                                           "grad_clip": 1.0}),
    )


def dp_digits() -> Project:
    """The digits MLP trained with differential privacy (Opacus): (3, 1e-5)-DP."""
    project = digits_mlp()
    project.name = "DP digits"
    project.description = ("The digits MLP trained with differential privacy (DP-SGD with Opacus): per-sample "
                           "gradients clipped to norm 1, Gaussian noise chosen by Opacus so that the 40 epochs spend "
                           "epsilon = 3 at delta = 1e-5 (about 92% validation accuracy; 97% without privacy). Large "
                           "batches keep the noise small against the summed gradients.")
    project.data["batch_size"] = 256
    project.training.update(validate_section(TRAINING_FIELDS, {
        "epochs": 40, "lr": 0.01, "privacy": True, "target_epsilon": 3.0, "target_delta": 1e-5,
        "max_grad_norm": 1.0}))
    return project


def federated_digits() -> Project:
    """The digits MLP for federated training (``workbench federate``): small batches, so that a client's
    share of the data still makes several steps per round."""
    project = digits_mlp()
    project.name = "Federated digits"
    project.description = ("The digits MLP for federated training with Flower: workbench federate "
                           "samples/federated_digits.json --clients 10 --rounds 20 --partition dirichlet:0.5 simulates "
                           "10 clients holding label-skewed shares of the training split, trained with FedAvg (about "
                           "95% validation accuracy after 20 rounds; 98% trained centrally).")
    project.data["batch_size"] = 32
    project.training["lr"] = 0.005
    return project


SAMPLES: dict[str, Callable[[], Project]] = {
    "digits_mlp.json": digits_mlp,
    "digits_cnn.json": digits_cnn,
    "digits_resnet.json": digits_resnet,
    "digits_lstm.json": digits_lstm,
    "digits_gru.json": digits_gru,
    "digits_transformer.json": digits_transformer,
    "digits_autoencoder.json": digits_autoencoder,
    "char_language_model.json": char_language_model,
    "digits_gan.json": digits_gan,
    "numbers_to_words.json": numbers_to_words,
    "dp_digits.json": dp_digits,
    "federated_digits.json": federated_digits,
    "digits_contrastive.json": digits_contrastive,
    "digits_masked_autoencoder.json": digits_masked_autoencoder,
    "digits_finetune.json": digits_finetune,
}

#: titles of the samples (each equals its project's name; a test checks), for menus that list them
#: without building them
SAMPLE_TITLES: dict[str, str] = {
    "digits_mlp": "Digits MLP",
    "digits_cnn": "Digits CNN",
    "digits_resnet": "Digits ResNet",
    "digits_lstm": "Digits LSTM",
    "digits_gru": "Digits GRU",
    "digits_transformer": "Digits Transformer",
    "digits_autoencoder": "Digits convolutional autoencoder",
    "char_language_model": "Character Transformer language model",
    "digits_gan": "Digits DCGAN",
    "numbers_to_words": "Numbers to words translation",
    "dp_digits": "DP digits",
    "federated_digits": "Federated digits",
    "digits_contrastive": "Digits contrastive (SimCLR)",
    "digits_masked_autoencoder": "Digits masked autoencoder",
    "digits_finetune": "Digits fine-tuning with 10% of the labels",
}

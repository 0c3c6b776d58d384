"""Sample projects for learning with fewer labels: contrastive pre-training, masked image modelling, masked
tokens, and fine-tuning the pre-trained encoder with 10% of the labels (registered in ``samples.SAMPLES``)."""

from __future__ import annotations

from .builder import GraphBuilder, Port
from .config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from .project import Project


def _digits_encoder(b: GraphBuilder) -> Port:
    """The encoder the contrastive and fine-tuning samples share (the same node names, so weights transfer)."""
    x = b.input((1, 8, 8), name="image")
    for i, ch in enumerate((32, 64), start=1):
        x = b.layer("Conv2d", x, out_channels=ch, kernel_size=[3, 3], padding=[1, 1], name=f"conv{i}")
        x = b.layer("BatchNorm2d", x, name=f"bn{i}")
        x = b.layer("ReLU", x, name=f"relu{i}")
        x = b.layer("MaxPool2d", x, name=f"pool{i}")
    x = b.layer("Flatten", x, name="flatten")
    x = b.layer("Linear", x, out_features=128, name="embed")
    return b.layer("ReLU", x, name="embed_relu")


def digits_contrastive() -> Project:
    b = GraphBuilder()
    x = _digits_encoder(b)
    head = []
    x = b.layer("Linear", x, out_features=128, name="proj1")
    head.append(x.node)
    x = b.layer("ReLU", x, name="proj_relu")
    head.append(x.node)
    x = b.layer("Linear", x, out_features=64, name="proj2")
    head.append(x.node)
    b.output(x, name="projection")
    graph = b.auto_layout()
    for nid in head:
        graph.set_train(nid, {"role": "projection_head"})
    return Project(
        graph,
        "Digits contrastive (SimCLR)",
        "Learns digit features without labels: two random views of each image (crop, intensity jitter, noise) "
        "must find each other among the batch (NT-Xent). The projection head (proj1-proj2) is dropped afterwards; "
        "a linear probe on the encoder reaches about 0.99 validation accuracy and a 20-NN vote 0.975, against "
        "0.967 and 0.964 for the same encoder untrained (8x8 digits are easy even for random features).",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 256}),
        validate_section(TRAINING_FIELDS, {"task": "contrastive", "epochs": 40, "lr": 0.003, "schedule": "cosine",
                                           "ssl_temperature": 0.2, "view_crop": 0.3, "view_jitter": 0.4,
                                           "view_noise": 0.1}),
    )


def digits_finetune() -> Project:
    b = GraphBuilder()
    x = _digits_encoder(b)
    x = b.layer("Dropout", x, p=0.3, name="dropout")
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    return Project(
        b.auto_layout(),
        "Digits fine-tuning with 10% of the labels",
        "The contrastive digits encoder (train digits_contrastive.json first) fine-tuned as a classifier on 10% "
        "of the training labels (about 0.975 validation accuracy); compare with the same model from scratch "
        "(workbench train --init-from ''), which on these easy 8x8 digits reaches about the same.",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 32, "label_fraction": 0.1}),
        validate_section(TRAINING_FIELDS, {"epochs": 40, "lr": 0.003, "init_from": "digits_contrastive.json"}),
    )


def digits_masked_autoencoder() -> Project:
    b = GraphBuilder()
    x = b.input((1, 8, 8), name="image")
    for i, ch in enumerate((32, 64), start=1):
        x = b.layer("Conv2d", x, out_channels=ch, kernel_size=[3, 3], padding=[1, 1], name=f"enc_conv{i}")
        x = b.layer("ReLU", x, name=f"enc_relu{i}")
    x = b.layer("MaxPool2d", x, name="enc_pool")
    x = b.layer("ReLU", b.layer("Conv2d", x, out_channels=64, kernel_size=[3, 3], padding=[1, 1], name="mid"),
                name="mid_relu")
    x = b.layer("ReLU", b.layer("ConvTranspose2d", x, out_channels=32, name="dec_up"), name="dec_relu")
    x = b.layer("Conv2d", x, out_channels=1, kernel_size=[3, 3], padding=[1, 1], name="dec_out")
    b.output(x, name="reconstruction")
    return Project(
        b.auto_layout(),
        "Digits masked autoencoder",
        "Half of each digit's 2x2 patches are blanked and the network paints them back; the loss counts the "
        "masked patches only (validation masked-patch MSE about 0.04, against 0.14 for filling with the mean).",
        validate_section(DATA_FIELDS, {"dataset": "digits", "batch_size": 64}),
        validate_section(TRAINING_FIELDS, {"task": "masked_image", "epochs": 30, "lr": 0.003, "schedule": "cosine",
                                           "mask_ratio": 0.5, "patch_size": 2}),
    )

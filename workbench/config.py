"""Data and training configuration, declared with the same typed parameters as layers.

One declaration serves validation (project files report ``data.batch_size:
expected a positive int, got 0``), defaults, the CLI and the GUI's editors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .layers.spec import BoolParam, ChoiceParam, FloatParam, IntParam, Param, ParamValueError, StrParam

DATASETS = (
    "digits",
    "synthetic_blobs",
    "synthetic_regression",
    "synthetic_sequence",
    "csv",
    "image_folder",
    "idx",
    "torchvision",
    "text",
    "numbers_to_words",
    "none",
)

#: the tasks private training supports (one model, one optimizer, a per-sample mean loss)
PRIVATE_TASKS = ("classification", "regression", "reconstruction")
#: the sources whose samples are images (``Samples.image``; a test keeps the two in step)
IMAGE_DATASETS = ("digits", "image_folder", "idx", "torchvision")
AUGMENTATIONS = ("none", "shift", "shift_flip")
#: old project files stored ``augment`` as a boolean (that did nothing); true becomes the label-safe "shift"
_LEGACY_VALUES: dict[tuple[str, Any], Any] = {("augment", False): "none", ("augment", True): "shift"}

DATA_FIELDS: tuple[Param, ...] = (
    ChoiceParam("dataset", "digits", "where samples come from", choices=DATASETS),
    StrParam("path", "", "file or folder (csv, image_folder, idx, torchvision download folder)"),
    StrParam("name", "", "torchvision dataset name (MNIST, FashionMNIST, CIFAR10)"),
    StrParam("target_column", "", "CSV column to predict (default: the last one)"),
    ChoiceParam(
        "layout",
        "auto",
        "how samples are shaped for the Input: auto follows the Input's shape; image and flat also insist on an "
        "Input of [C, H, W] or [features]; rows reads images row by row (a sequence of rows)",
        choices=("auto", "image", "flat", "rows"),
    ),
    IntParam("image_size", 0, "resize images to this square size (0 keeps the size)", minimum=0, maximum=4096),
    BoolParam("grayscale", True, "load images as one channel"),
    ChoiceParam("augment", "none", "random changes to training images (never to validation or test): shift moves "
                "each image up to 1/8 of its size (zero fill); shift_flip also mirrors half of them left-right (not "
                "for digits or text)", choices=AUGMENTATIONS),
    IntParam("num_samples", 1000, "size of synthetic sets", minimum=10, maximum=10_000_000),
    IntParam("seq_len", 32, "characters per sample (text)", minimum=2, maximum=4096),
    FloatParam("val_fraction", 0.2, "share held out for validation", minimum=0.0, maximum=0.9),
    FloatParam("test_fraction", 0.0, "share held out for a final test", minimum=0.0, maximum=0.9),
    FloatParam("label_fraction", 1.0, "share of the training split kept, with its labels (stratified by class): "
               "learning from few labels; validation and test stay whole", minimum=0.001, maximum=1.0),
    IntParam("batch_size", 64, "samples per step", minimum=1, maximum=1_000_000),
    BoolParam("shuffle", True, "shuffle training samples every epoch"),
    IntParam("seed", 0, "seed for splits, shuffling, augmentation and synthetic data", minimum=0, maximum=2**32 - 1),
)

TRAINING_FIELDS: tuple[Param, ...] = (
    ChoiceParam(
        "task",
        "classification",
        "decides the loss and metrics (seq2seq: two Inputs, the source and the shifted target token ids; "
        "distillation: classification taught by a trained teacher, see teacher; contrastive, masked_image, "
        "masked_tokens: self-supervised pre-training, see docs/self_supervised.md)",
        choices=("classification", "regression", "reconstruction", "language_model", "adversarial", "seq2seq",
                 "distillation", "contrastive", "masked_image", "masked_tokens"),
    ),
    ChoiceParam("optimizer", "adam", "update rule", choices=("sgd", "adam", "adamw", "rmsprop")),
    FloatParam("lr", 1e-3, "learning rate", minimum=0.0, maximum=10.0),
    FloatParam("momentum", 0.9, "momentum (SGD, RMSprop) or beta1 (Adam, AdamW)", minimum=0.0, maximum=1.0),
    BoolParam("nesterov", False, "Nesterov momentum (SGD with momentum > 0)"),
    FloatParam("weight_decay", 0.0, "L2 penalty (decoupled for AdamW)", minimum=0.0, maximum=1.0),
    ChoiceParam(
        "schedule", "none", "learning-rate schedule", choices=("none", "step", "cosine", "onecycle", "plateau")
    ),
    IntParam("step_size", 10, "epochs between decays (step schedule)", minimum=1),
    FloatParam("gamma", 0.1, "decay factor (step and plateau schedules)", minimum=0.0, maximum=1.0),
    IntParam("warmup_epochs", 0, "linear warm-up before the schedule (onecycle: the length of its rising phase)",
             minimum=0),
    FloatParam("grad_clip", 0.0, "clip the gradient norm to this (0: off)", minimum=0.0),
    IntParam("epochs", 10, "passes over the training set", minimum=1, maximum=100_000),
    IntParam("early_stopping", 0, "stop after this many epochs without validation improvement (0: off)",
             minimum=0),
    IntParam("seed", 0, "seed for initialisation and dropout", minimum=0, maximum=2**32 - 1),
    StrParam("device", "auto", "auto, cpu, cuda, cuda:N or mps", allow_empty=False),
    ChoiceParam("precision", "fp32", "mixed precision (autocast): bf16 on CPU, CUDA (Ampere+) and MPS; fp16 on "
                "CUDA, MPS and CPU (with loss scaling)", choices=("fp32", "bf16", "fp16")),
    IntParam("top_k", 5, "also report top-k accuracy (classification, when k < the number of classes)", minimum=1,
             maximum=100),
    FloatParam("d_lr_scale", 1.0, "adversarial: the discriminator's learning rate = lr x this (e.g. 4 for "
               "two time-scale updates)", minimum=0.0, maximum=100.0),
    IntParam("d_steps", 1, "adversarial: discriminator steps per generator step", minimum=1, maximum=20),
    StrParam("teacher", "", "distillation: the trained teacher project (.json; beside this project, or absolute)"),
    StrParam("teacher_checkpoint", "", "distillation: the teacher's weights or checkpoint (.safetensors; empty: "
             "the teacher project's weights file)"),
    FloatParam("temperature", 4.0, "distillation: softens both models' predictions (logits / T) before comparing "
               "them", minimum=0.05, maximum=100.0),
    FloatParam("ssl_temperature", 0.5, "contrastive: NT-Xent temperature (lower: sharper, harder negatives)",
               minimum=0.01, maximum=10.0),
    FloatParam("view_crop", 0.5, "contrastive views: smallest share of the image area a random crop keeps (1: no "
               "crop)", minimum=0.05, maximum=1.0),
    BoolParam("view_flip", False, "contrastive views: mirror half of them left-right (not for digits or text)"),
    FloatParam("view_jitter", 0.4, "contrastive views: random contrast x [1-j, 1+j] and brightness +-j standard "
               "deviations", minimum=0.0, maximum=1.0),
    FloatParam("view_noise", 0.1, "contrastive views: Gaussian noise, in standard deviations of the data",
               minimum=0.0, maximum=2.0),
    IntParam("knn_k", 20, "contrastive: neighbours voting in the k-NN evaluation", minimum=1, maximum=1000),
    FloatParam("mask_ratio", 0.5, "masked_image, masked_tokens: share of patches or tokens hidden from the model",
               minimum=0.01, maximum=0.99),
    IntParam("patch_size", 2, "masked_image: side of the square patches that are masked (must divide the image)",
             minimum=1, maximum=1024),
    StrParam("init_from", "", "start from another model's weights (transfer learning): a project (.json, its newest "
             "run), a run folder, a .safetensors or an .onnx file; loaded into the nodes whose name and shapes match "
             "(empty: random initialisation)"),
    StrParam("init_skip", "", "init_from: nodes not to load even when they match, comma-separated (a head to "
             "train afresh)"),
    FloatParam("alpha", 0.5, "distillation: the weight of the teacher's soft targets (KL x T²); 1 - alpha goes to "
               "the labels' cross-entropy", minimum=0.0, maximum=1.0),
    BoolParam("tensorboard", True, "also write TensorBoard event files into the run folder (scalars, weight and "
              "gradient histograms, confusion matrix, hyperparameters; needs the tensorboard extra)"),
    # differential privacy (Opacus, optional extra ``privacy``; see workbench/training/privacy.py)
    BoolParam("privacy", False, "differentially private training (DP-SGD with Opacus): each sample's gradient is "
              "clipped, noise is added, batches are Poisson-sampled, and the spent epsilon is plotted"),
    FloatParam("noise_multiplier", 1.0, "privacy: noise std / max_grad_norm (more noise: less epsilon spent, lower "
               "accuracy); unused when target_epsilon is set", minimum=0.0, maximum=100.0),
    FloatParam("max_grad_norm", 1.0, "privacy: each sample's gradient is clipped to this norm", minimum=1e-6,
               maximum=1e6),
    FloatParam("target_epsilon", 0.0, "privacy: the epsilon to spend over all epochs; Opacus picks the noise "
               "multiplier that reaches it (0: use noise_multiplier)", minimum=0.0, maximum=1e4),
    FloatParam("target_delta", 1e-5, "privacy: the delta of (epsilon, delta)-DP; keep it below 1 / training samples",
               minimum=1e-12, maximum=0.1),
    ChoiceParam("accountant", "rdp", "privacy: Opacus' accountant for the spent epsilon (rdp: Renyi DP; prv: privacy "
                "random variables, tighter)", choices=("rdp", "prv")),
)


class ConfigError(ValueError):
    """A configuration value was refused; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.detail = message


def validate_section(fields: tuple[Param, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, every value validated, unknown keys refused.

    Raises:
        ConfigError: naming the key.
    """
    if not isinstance(values, dict):
        raise ConfigError("", f"expected an object, got {type(values).__name__}")
    known = {f.name: f for f in fields}
    for key in values:
        if key not in known:
            raise ConfigError(key, f"unknown setting (known: {', '.join(known)})")
    out: dict[str, Any] = {}
    for f in fields:
        value = values.get(f.name, f.default)
        if isinstance(value, bool):
            value = _LEGACY_VALUES.get((f.name, value), value)
        try:
            out[f.name] = f.validate(value)
        except ParamValueError as exc:
            raise ConfigError(f.name, str(exc)) from None
    return out


def cross_check(data: dict[str, Any], training: dict[str, Any]) -> None:
    """Refuse combinations of valid settings that cannot do what they say (validated sections).

    Checks that need the device or the dataset itself are made when training starts.

    Raises:
        ConfigError: naming the setting (``training.nesterov``) and the reason.
    """
    if data["augment"] != "none" and data["dataset"] not in IMAGE_DATASETS:
        raise ConfigError("data.augment", f"augment '{data['augment']}' changes images, but the {data['dataset']} "
                          "dataset has none: set augment to none")
    if training["task"] in ("contrastive", "masked_image") and data["dataset"] not in IMAGE_DATASETS:
        raise ConfigError("training.task", f"the {training['task']} task works on images, but the {data['dataset']} "
                          f"dataset has none: choose an image dataset ({', '.join(IMAGE_DATASETS)})")
    if training["task"] == "masked_tokens" and data["dataset"] != "text":
        raise ConfigError("training.task", f"the masked_tokens task works on text, but the dataset is "
                          f"{data['dataset']}: choose the text dataset")
    if data["label_fraction"] < 1 and data["dataset"] not in LABELLED_DATASETS:
        raise ConfigError("data.label_fraction", f"the {data['dataset']} dataset has no class labels to keep a share "
                          "of: set label_fraction to 1")
    if training["nesterov"] and (training["optimizer"] != "sgd" or training["momentum"] == 0):
        raise ConfigError("training.nesterov", f"Nesterov momentum needs the sgd optimizer with momentum > 0 "
                          f"(optimizer {training['optimizer']}, momentum {training['momentum']})")
    no_val = float(data["val_fraction"]) == 0
    if training["schedule"] == "plateau" and no_val:
        raise ConfigError("training.schedule", "the plateau schedule watches the validation loss: set "
                          "data.val_fraction above 0")
    if training["early_stopping"] and no_val:
        raise ConfigError("training.early_stopping", "early stopping watches the validation metrics: set "
                          "data.val_fraction above 0")
    if training["schedule"] == "onecycle" and training["warmup_epochs"] >= training["epochs"]:
        raise ConfigError("training.warmup_epochs", f"onecycle rises for warmup_epochs "
                          f"({training['warmup_epochs']}) and must then fall before the last epoch "
                          f"({training['epochs']}): make warmup_epochs smaller than epochs")
    if training["privacy"]:
        _check_privacy(training)
    if training["task"] == "adversarial" and training["precision"] != "fp32":
        raise ConfigError("training.precision", f"the adversarial task trains in fp32; precision "
                          f"{training['precision']} is not supported for it")


def _check_privacy(training: dict[str, Any]) -> None:
    """What private training (Opacus) cannot do."""
    if training["task"] not in PRIVATE_TASKS:
        raise ConfigError("training.privacy", f"private training supports the {', '.join(PRIVATE_TASKS)} tasks, "
                          f"not {training['task']}")
    if training["precision"] != "fp32":
        raise ConfigError("training.precision", "private training computes per-sample gradients in fp32; set "
                          "precision to fp32")
    if training["grad_clip"] > 0:
        raise ConfigError("training.grad_clip", "private training clips each sample's gradient to max_grad_norm; "
                          "clipping the noisy average again would change nothing private: set grad_clip to 0")
    if training["target_epsilon"] == 0 and training["noise_multiplier"] == 0:
        raise ConfigError("training.noise_multiplier", "a noise multiplier of 0 adds no noise, so no privacy: set "
                          "it above 0 or set target_epsilon")


def default_data() -> dict[str, Any]:
    return validate_section(DATA_FIELDS, {})


def default_training() -> dict[str, Any]:
    return validate_section(TRAINING_FIELDS, {})


# --------------------------------------------------------------------------- which settings apply

#: the sources that read ``data.path`` (text falls back to a built-in text without one)
PATH_DATASETS = ("csv", "image_folder", "idx", "torchvision", "text")
#: the sources whose samples carry class labels (``data.label_fraction`` keeps a share of them per class)
LABELLED_DATASETS = ("digits", "synthetic_blobs", "csv", "image_folder", "idx", "torchvision")
#: the sources whose size ``data.num_samples`` sets
SIZED_DATASETS = ("synthetic_blobs", "synthetic_regression", "synthetic_sequence", "numbers_to_words")
#: optimizers whose ``momentum`` setting is Adam's beta1 (see ``training.engine._optimizer``)
BETA1_OPTIMIZERS = ("adam", "adamw")

Rule = Callable[[dict[str, Any], dict[str, Any]], bool]
"""(data, training) -> whether a setting applies."""

#: When a setting does something: ``"section.name" -> rule(data, training)``.  A setting not
#: listed always applies.  A setting whose value the configuration refuses (see
#: :func:`cross_check`) applies too, so the form shows it where the user can fix it.
APPLIES: dict[str, Rule] = {
    "data.path": lambda d, t: d["dataset"] in PATH_DATASETS,
    "data.name": lambda d, t: d["dataset"] == "torchvision",
    "data.target_column": lambda d, t: d["dataset"] == "csv",
    "data.image_size": lambda d, t: d["dataset"] == "image_folder",
    "data.grayscale": lambda d, t: d["dataset"] == "image_folder",
    "data.augment": lambda d, t: d["dataset"] in IMAGE_DATASETS or d["augment"] != "none",
    "data.num_samples": lambda d, t: d["dataset"] in SIZED_DATASETS,
    "data.seq_len": lambda d, t: d["dataset"] == "text",
    "data.shuffle": lambda d, t: not t["privacy"],  # private training samples its batches (Poisson)
    "training.nesterov": lambda d, t: t["optimizer"] == "sgd" or bool(t["nesterov"]),
    "training.step_size": lambda d, t: t["schedule"] == "step",
    "training.gamma": lambda d, t: t["schedule"] in ("step", "plateau"),
    "training.top_k": lambda d, t: t["task"] in ("classification", "distillation"),
    "training.precision": lambda d, t: t["task"] != "adversarial" or t["precision"] != "fp32",
    "training.d_lr_scale": lambda d, t: t["task"] == "adversarial",
    "training.d_steps": lambda d, t: t["task"] == "adversarial",
    "training.teacher": lambda d, t: t["task"] == "distillation",
    "training.teacher_checkpoint": lambda d, t: t["task"] == "distillation",
    "training.temperature": lambda d, t: t["task"] == "distillation",
    "training.alpha": lambda d, t: t["task"] == "distillation",
    "training.noise_multiplier": lambda d, t: bool(t["privacy"]) and t["target_epsilon"] == 0,
    "training.max_grad_norm": lambda d, t: bool(t["privacy"]),
    "training.target_epsilon": lambda d, t: bool(t["privacy"]),
    "training.target_delta": lambda d, t: bool(t["privacy"]),
    "training.accountant": lambda d, t: bool(t["privacy"]),
    "training.ssl_temperature": lambda d, t: t["task"] == "contrastive",
    "training.view_crop": lambda d, t: t["task"] == "contrastive",
    "training.view_flip": lambda d, t: t["task"] == "contrastive" or bool(t["view_flip"]),
    "training.view_jitter": lambda d, t: t["task"] == "contrastive",
    "training.view_noise": lambda d, t: t["task"] == "contrastive",
    "training.knn_k": lambda d, t: t["task"] == "contrastive",
    "training.mask_ratio": lambda d, t: t["task"] in ("masked_image", "masked_tokens"),
    "training.patch_size": lambda d, t: t["task"] == "masked_image",
    "data.label_fraction": lambda d, t: d["dataset"] in LABELLED_DATASETS or d["label_fraction"] != 1,
}


def applies(field: str, data: dict[str, Any], training: dict[str, Any]) -> bool:
    """Whether the setting ``field`` (``"data.path"``, ``"training.momentum"``) does anything in this
    configuration (validated sections).  A form hides the others and keeps their values."""
    rule = APPLIES.get(field)
    return True if rule is None else bool(rule(data, training))


def field_label(field: str, data: dict[str, Any], training: dict[str, Any]) -> str:
    """The name a form shows for ``field`` in this configuration (momentum is Adam's beta1)."""
    if field == "training.momentum" and training["optimizer"] in BETA1_OPTIMIZERS:
        return "beta1"
    return field.split(".", 1)[1].replace("_", " ")

"""Every setting does what it says: one probe per declared data and training field.

The test iterates ``DATA_FIELDS`` and ``TRAINING_FIELDS``: a field added without a probe fails
here.  A probe changes its field from the default and shows a measured difference (the batches
the model sees, the optimizer's state, the learning rates, the metrics, the splits) or that the
change is refused with a reason that names it.  Tiny data (a few dozen samples), one or a few epochs.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from workbench.builder import GraphBuilder
from workbench.config import DATA_FIELDS, TRAINING_FIELDS, validate_section
from workbench.data import load_data, load_samples
from workbench.errors import WorkbenchError
from workbench.graph import Graph
from workbench.project import Project
from workbench.training import Trainer
from workbench.training.devices import DeviceError, DeviceInfo, resolve_device

BLOBS = {"dataset": "synthetic_blobs", "num_samples": 40, "batch_size": 8, "val_fraction": 0.25}


def mlp(inputs: int = 8, outputs: int = 4) -> Graph:
    b = GraphBuilder()
    x = b.input((inputs,), name="x")
    h = b.layer("ReLU", b.layer("Linear", x, out_features=8, name="fc1"))
    b.output(b.layer("Linear", h, out_features=outputs, name="fc2"))
    return b.graph


def project(data: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
            graph: Graph | None = None) -> Project:
    return Project(graph or mlp(), "probe", data=validate_section(DATA_FIELDS, {**BLOBS, **(data or {})}),
                   training=validate_section(TRAINING_FIELDS, {"epochs": 1, "lr": 0.01, **(training or {})}))


@dataclass
class Run:
    trainer: Trainer
    events: list[dict] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)  # every training batch as the model received it

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def lrs(self) -> list[float]:
        return [e["lr"] for e in self.of("batch")]

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}

    def metrics(self) -> dict[str, float]:
        return self.of("validation")[-1]["metrics"]


def run(tmp: Path, p: Project, train: bool = True, **overrides: Any) -> Run:
    """Prepare (and train) ``p``, recording events and the model's training inputs."""
    r = Run(Trainer(p, overrides, run_dir=tmp / f"run{len(list(tmp.glob('run*')))}"))
    r.trainer.listeners.append(r.events.append)
    r.trainer.prepare()
    r.trainer.model.register_forward_pre_hook(
        lambda m, args: r.inputs.append(args[0].detach().clone()) if m.training else None)
    if train:
        r.trainer.prepare = lambda: None  # type: ignore[method-assign]  # keep the hooked model
        r.trainer.run()
    return r


def refused(fn: Callable[[], Any], *words: str) -> str:
    """``fn`` raises a workbench error whose message contains every one of ``words``."""
    with pytest.raises(WorkbenchError) as info:
        fn()
    message = str(info.value)
    assert all(w in message for w in words), (words, message)
    return message


def differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


def cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(tensors)


# --------------------------------------------------------------------------- the probes

PROBES: dict[tuple[str, str], Callable[[Path, pytest.MonkeyPatch], None]] = {}


def probe(section: str, name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        assert (section, name) not in PROBES, f"two probes for {section}.{name}"
        PROBES[(section, name)] = fn
        return fn

    return deco


def data_cfg(**kw: Any) -> dict[str, Any]:
    return validate_section(DATA_FIELDS, kw)


def write_csv(path: Path, rows: int = 30, offset: float = 0.0) -> Path:
    lines = ["a,b,c"] + [f"{i + offset},{(i * 7) % 5},{i % 2}" for i in range(rows)]
    path.write_text("\n".join(lines))
    return path


def write_images(folder: Path, size: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / c / f"{k}.png")
    return folder


@probe("data", "dataset")
def _dataset(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    digits, blobs = load_samples(data_cfg()), load_samples(data_cfg(dataset="synthetic_blobs"))
    assert digits.x.shape[1:] == (1, 8, 8) and blobs.x.shape[1:] == (8,)
    pairs = load_samples(data_cfg(dataset="numbers_to_words"))
    assert pairs.kind == "seq2seq" and pairs.x.dtype == pairs.y.dtype == torch.int64
    refused(lambda: load_samples(data_cfg(dataset="none")), "data.dataset: no dataset is set", "choose one to train")


@probe("data", "path")
def _path(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a = load_samples(data_cfg(dataset="csv", path=str(write_csv(tmp / "a.csv"))))
    b = load_samples(data_cfg(dataset="csv", path=str(write_csv(tmp / "b.csv", offset=100.0))))
    assert not torch.equal(a.x, b.x)
    refused(lambda: load_samples(data_cfg(dataset="csv")), "CSV file not found", "(no path set)")


class _FakeSet:
    """Stands in for a torchvision dataset class (torchvision is not installed here)."""

    shape: tuple[int, ...] = ()
    roots: list[str] = []

    def __init__(self, root: str, train: bool = True, download: bool = True) -> None:
        self.roots.append(root)
        self.data = np.zeros((5, *self.shape), np.uint8)
        self.targets = list(range(5))
        self.classes = [str(i) for i in range(5)]


@probe("data", "name")
def _name(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setitem(sys.modules, "torchvision", None)  # as here: not installed
    refused(lambda: load_samples(data_cfg(dataset="torchvision")), "torchvision is not installed",
            "install the 'vision' extra")
    refused(lambda: load_samples(data_cfg(dataset="torchvision", name="SVHN")), "'SVHN' is not supported")
    mnist = type("MNIST", (_FakeSet,), {"shape": (28, 28)})
    cifar = type("CIFAR10", (_FakeSet,), {"shape": (32, 32, 3)})
    mp.setitem(sys.modules, "torchvision", types.SimpleNamespace(datasets=types.SimpleNamespace(
        MNIST=mnist, CIFAR10=cifar, FashionMNIST=mnist)))
    default = load_samples(data_cfg(dataset="torchvision", path=str(tmp)))
    named = load_samples(data_cfg(dataset="torchvision", name="CIFAR10", path=str(tmp)))
    assert default.name == "MNIST" and default.x.shape[1:] == (1, 28, 28)
    assert named.name == "CIFAR10" and named.x.shape[1:] == (3, 32, 32)
    assert _FakeSet.roots[-1] == str(tmp)


@probe("data", "target_column")
def _target_column(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    path = str(write_csv(tmp / "d.csv"))
    last = load_samples(data_cfg(dataset="csv", path=path))
    first = load_samples(data_cfg(dataset="csv", path=path, target_column="b"))
    assert last.class_names == ["0", "1"] and first.class_names == ["0", "1", "2", "3", "4"]
    assert not torch.equal(first.x[:, 1], last.x[:, 1])  # c is a feature now, b was one before
    refused(lambda: load_samples(data_cfg(dataset="csv", path=path, target_column="zz")), "no column 'zz'")


@probe("data", "layout")
def _layout(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    folder = str(write_images(tmp / "img", 4))
    auto = load_data(data_cfg(dataset="image_folder", path=folder, grayscale=False), (4, 12))
    rows = load_data(data_cfg(dataset="image_folder", path=folder, grayscale=False, layout="rows"), (4, 12))
    assert not torch.equal(auto.train.tensors[0], rows.train.tensors[0])  # rows keep a pixel's channels together
    raw = load_samples(data_cfg(dataset="image_folder", path=folder, grayscale=False)).x
    as_rows = raw.permute(0, 2, 3, 1).reshape(len(raw), 4, 12)
    assert all(any(torch.equal(s, r) for r in as_rows) for s in rows.train.tensors[0])
    assert all(any(torch.equal(s, r) for r in raw.reshape(len(raw), 4, 12)) for s in auto.train.tensors[0])
    refused(lambda: load_data(data_cfg(layout="image"), (64,)), "layout 'image' needs an image Input")
    refused(lambda: load_data(data_cfg(layout="flat"), (1, 8, 8)), "layout 'flat' needs a flat Input")


@probe("data", "image_size")
def _image_size(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    folder = str(write_images(tmp / "img"))
    assert load_samples(data_cfg(dataset="image_folder", path=folder)).x.shape[1:] == (1, 6, 6)
    assert load_samples(data_cfg(dataset="image_folder", path=folder, image_size=3)).x.shape[1:] == (1, 3, 3)


@probe("data", "grayscale")
def _grayscale(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    folder = str(write_images(tmp / "img"))
    assert load_samples(data_cfg(dataset="image_folder", path=folder, grayscale=False)).x.shape[1] == 3


@probe("data", "augment")
def _augment(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    digits = {"dataset": "digits", "val_fraction": 0.9, "batch_size": 64, "shuffle": False}
    plain = run(tmp, project(digits, graph=mlp(64, 10)))
    shifted = run(tmp, project({**digits, "augment": "shift"}, graph=mlp(64, 10)))
    assert torch.equal(cat(plain.inputs), plain.trainer.data.train.tensors[0])
    assert not torch.equal(cat(shifted.inputs), cat(plain.inputs))
    refused(lambda: run(tmp, project({"augment": "shift_flip"})), "data.augment",
            "augment 'shift_flip' changes images", "synthetic_blobs dataset has none")


@probe("data", "num_samples")
def _num_samples(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert len(load_samples(data_cfg(dataset="synthetic_blobs", num_samples=17))) == 17
    assert len(load_samples(data_cfg(dataset="synthetic_regression", num_samples=17))) == 17


@probe("data", "seq_len")
def _seq_len(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    text = tmp / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 20)
    assert load_samples(data_cfg(dataset="text", path=str(text))).x.shape[1] == 32
    assert load_samples(data_cfg(dataset="text", path=str(text), seq_len=8)).x.shape[1] == 8


@probe("data", "val_fraction")
def _val_fraction(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a, b = load_data(data_cfg(**BLOBS), (8,)), load_data(data_cfg(**{**BLOBS, "val_fraction": 0.5}), (8,))
    assert (len(a.train), len(a.val)) == (30, 10) and (len(b.train), len(b.val)) == (20, 20)
    assert load_data(data_cfg(**{**BLOBS, "val_fraction": 0.0}), (8,)).val is None


@probe("data", "test_fraction")
def _test_fraction(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    r = run(tmp, project({"test_fraction": 0.25}))
    assert (len(r.trainer.data.train), len(r.trainer.data.test)) == (20, 10) and r.of("test")
    assert not run(tmp, project()).of("test")


@probe("data", "batch_size")
def _batch_size(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert [len(x) for x in run(tmp, project()).inputs] == [8, 8, 8, 6]
    assert [len(x) for x in run(tmp, project({"batch_size": 16})).inputs] == [16, 14]


@probe("data", "shuffle")
def _shuffle(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    shuffled, ordered = run(tmp, project()), run(tmp, project({"shuffle": False}))
    assert torch.equal(cat(ordered.inputs), ordered.trainer.data.train.tensors[0])
    assert not torch.equal(cat(shuffled.inputs), cat(ordered.inputs))
    assert torch.equal(cat(shuffled.inputs).sort(0).values, cat(ordered.inputs).sort(0).values)


@probe("data", "seed")
def _data_seed(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a, b = run(tmp, project()), run(tmp, project({"seed": 1}))
    assert not torch.equal(a.trainer.data.val.tensors[0], b.trainer.data.val.tensors[0])  # another split
    same_split = {**BLOBS, "dataset": "digits", "val_fraction": 0.9}
    c, d = (run(tmp, project({**same_split, "seed": s}, graph=mlp(64, 10)), train=False) for s in (0, 1))
    assert not torch.equal(c.trainer.data.train.tensors[0], d.trainer.data.train.tensors[0])


@probe("training", "task")
def _task(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    autoencoder = mlp(8, 8)
    refused(lambda: run(tmp, project(graph=autoencoder)), "set the last Linear layer's out_features to 4")
    recon = run(tmp, project(training={"task": "reconstruction"}, graph=autoencoder))
    assert set(recon.metrics()) == {"loss", "mae", "mse"}
    refused(lambda: run(tmp, project(training={"task": "language_model"})), "a language model needs text data")
    # seq2seq: two Inputs (source, shifted target), a loss over target tokens, greedy decoding's exact sequences
    b = GraphBuilder()
    memory = b.layer("Embedding", b.input(("S",), dtype="int64"), num_embeddings=34, embedding_dim=8)
    x = b.layer("Embedding", b.input(("T",), dtype="int64"), num_embeddings=34, embedding_dim=8)
    b.output(b.layer("Linear", b.layer("TransformerDecoderLayer", x, memory, nhead=2, dim_feedforward=16),
                     out_features=34))
    pairs = run(tmp, project({"dataset": "numbers_to_words"}, {"task": "seq2seq"}, graph=b.graph))
    assert set(pairs.metrics()) == {"loss", "accuracy", "perplexity", "sequence_accuracy"}
    refused(lambda: run(tmp, project(training={"task": "seq2seq"})), "the seq2seq task needs (source, target) pairs")


@probe("training", "optimizer")
def _optimizer(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    adam, sgd = run(tmp, project()), run(tmp, project(training={"optimizer": "sgd"}))
    assert type(adam.trainer.optimizer) is torch.optim.Adam and type(sgd.trainer.optimizer) is torch.optim.SGD
    assert differ(adam.weights, sgd.weights)
    for kind, cls in (("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)):
        assert type(run(tmp, project(training={"optimizer": kind}), train=False).trainer.optimizer) is cls


@probe("training", "lr")
def _lr(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a, b = run(tmp, project()), run(tmp, project(training={"lr": 0.1}))
    assert set(a.lrs) == {0.01} and set(b.lrs) == {0.1} and differ(a.weights, b.weights)


@probe("training", "momentum")
def _momentum(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    for kind in ("sgd", "adam"):
        a = run(tmp, project(training={"optimizer": kind}))
        b = run(tmp, project(training={"optimizer": kind, "momentum": 0.5}))
        group = b.trainer.optimizer.param_groups[0]
        assert (group["momentum"] if kind == "sgd" else group["betas"][0]) == 0.5
        assert differ(a.weights, b.weights)


@probe("training", "nesterov")
def _nesterov(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a = run(tmp, project(training={"optimizer": "sgd"}))
    b = run(tmp, project(training={"optimizer": "sgd", "nesterov": True}))
    assert b.trainer.optimizer.param_groups[0]["nesterov"] and differ(a.weights, b.weights)
    refused(lambda: run(tmp, project(training={"nesterov": True})), "nesterov", "needs the sgd optimizer")
    refused(lambda: run(tmp, project(training={"optimizer": "sgd", "momentum": 0.0, "nesterov": True})),
            "momentum > 0")


@probe("training", "weight_decay")
def _weight_decay(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a, b = run(tmp, project()), run(tmp, project(training={"weight_decay": 0.1}))
    assert b.trainer.optimizer.param_groups[0]["weight_decay"] == 0.1 and differ(a.weights, b.weights)


@probe("training", "schedule")
def _schedule(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    constant = run(tmp, project(training={"epochs": 2})).lrs
    for kind in ("step", "cosine", "onecycle", "plateau"):
        lrs = run(tmp, project(training={"epochs": 2, "schedule": kind, "step_size": 1})).lrs
        assert len(lrs) == len(constant) and (lrs != constant or kind == "plateau"), kind
    refused(lambda: run(tmp, project({"val_fraction": 0.0}, {"schedule": "plateau"})), "plateau",
            "val_fraction")


@probe("training", "step_size")
def _step_size(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    step = {"epochs": 3, "schedule": "step"}
    assert len(set(run(tmp, project(training=step)).lrs)) == 1  # 10 epochs between decays
    assert len(set(run(tmp, project(training={**step, "step_size": 1})).lrs)) == 3


@probe("training", "gamma")
def _gamma(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    step = {"epochs": 2, "schedule": "step", "step_size": 1}
    assert run(tmp, project(training=step)).lrs[-1] == pytest.approx(0.001)
    assert run(tmp, project(training={**step, "gamma": 0.5})).lrs[-1] == pytest.approx(0.005)


@probe("training", "warmup_epochs")
def _warmup_epochs(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    lrs = run(tmp, project(training={"epochs": 2, "warmup_epochs": 1})).lrs
    assert lrs[:4] == pytest.approx([0.002, 0.004, 0.006, 0.008]) and lrs[4:] == [0.01] * 4
    refused(lambda: run(tmp, project(training={"schedule": "onecycle", "warmup_epochs": 1})), "warmup_epochs",
            "smaller than epochs")


@probe("training", "grad_clip")
def _grad_clip(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    sgd = {"optimizer": "sgd", "momentum": 0.0, "lr": 1.0}
    before = run(tmp, project(training=sgd), train=False).weights
    free = run(tmp, project(training=sgd)).weights
    clipped = run(tmp, project(training={**sgd, "grad_clip": 0.001})).weights
    moved = lambda w: float(sum((w[k] - before[k]).norm() ** 2 for k in w) ** 0.5)  # noqa: E731
    assert moved(clipped) <= 4 * 0.001 * 1.0 + 1e-6 < moved(free)  # 4 steps of at most lr x clip


@probe("training", "epochs")
def _epochs(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert [e["epoch"] for e in run(tmp, project(training={"epochs": 3})).of("epoch")] == [1, 2, 3]


@probe("training", "early_stopping")
def _early_stopping(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    still = {"epochs": 4, "lr": 0.0}  # nothing improves after the first epoch
    assert len(run(tmp, project(training=still)).of("epoch")) == 4
    assert len(run(tmp, project(training={**still, "early_stopping": 1})).of("epoch")) == 2
    refused(lambda: run(tmp, project({"val_fraction": 0.0}, {"early_stopping": 1})), "early stopping",
            "val_fraction")
    refused(lambda: run(tmp, project({"num_samples": 10, "val_fraction": 0.04}, {"early_stopping": 1})),
            "early stopping watches the validation split, but it is empty", "rounds to 0")


@probe("training", "seed")
def _training_seed(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a, b = (run(tmp, project(training={"seed": s}), train=False) for s in (0, 1))
    assert differ(a.weights, b.weights)
    assert torch.equal(a.trainer.data.val.tensors[0], b.trainer.data.val.tensors[0])  # the split is the data seed's


@probe("training", "device")
def _device(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    cpu = DeviceInfo("cpu", "CPU", "cpu", True)
    gpu = DeviceInfo("cuda:0", "GPU", "cuda", True)
    assert resolve_device("auto", [cpu, gpu]).type == "cuda" and resolve_device("cpu", [cpu, gpu]).type == "cpu"
    assert run(tmp, project(training={"device": "cpu"}), train=False).trainer.device.type == "cpu"
    for spec in ("cuda:7", "mps"):
        try:
            device = run(tmp, project(training={"device": spec}), train=False).trainer.device
        except DeviceError as exc:
            assert f"device {spec} is not" in str(exc)
        else:  # a machine that has it
            assert device.type == spec.split(":")[0]
    refused(lambda: run(tmp, project(training={"device": "tpu"})), "unknown device 'tpu'")


@probe("training", "precision")
def _precision(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    dtypes: dict[str, torch.dtype] = {}
    for precision in ("fp32", "bf16", "fp16"):
        r = run(tmp, project(training={"precision": precision}), train=False)

        def record(module: torch.nn.Module, args: Any, out: torch.Tensor, p: str = precision) -> None:
            dtypes.setdefault(p, out.dtype)

        r.trainer.model.fc1.register_forward_hook(record)
        r.trainer.prepare = lambda: None  # type: ignore[method-assign]
        r.trainer.run()
    assert dtypes == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    refused(lambda: run(tmp, project(training={"precision": "bf16", "task": "adversarial"})), "precision bf16",
            "adversarial")


@probe("training", "top_k")
def _top_k(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert "top5_accuracy" not in run(tmp, project()).metrics()  # 4 classes: top-5 says nothing
    assert "top2_accuracy" in run(tmp, project(training={"top_k": 2})).metrics()


def gan(training: dict[str, Any] | None = None) -> Project:
    g = GraphBuilder()
    g.output(g.layer("Linear", g.input((4,), name="noise"), out_features=8, name="make"))
    d = GraphBuilder()
    d.output(d.layer("Linear", d.input((8,), name="sample"), out_features=1, name="judge"))
    p = project(training={"task": "adversarial", **(training or {})}, graph=g.graph)
    return Project(p.graph, p.name, data=p.data, training=p.training, graphs={"discriminator": d.graph})


@probe("training", "d_lr_scale")
def _d_lr_scale(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    for scale in (1.0, 4.0):
        r = run(tmp, gan({"d_lr_scale": scale}))
        assert r.trainer.gan.opt_d.param_groups[0]["lr"] == pytest.approx(0.01 * scale)
        assert r.trainer.gan.opt_g.param_groups[0]["lr"] == pytest.approx(0.01)


@probe("training", "d_steps")
def _d_steps(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    calls = []
    for steps in (1, 3):
        r = run(tmp, gan({"d_steps": steps}), train=False)
        count = [0]
        r.trainer.gan.discriminator.register_forward_hook(lambda m, a, o, c=count: c.__setitem__(0, c[0] + 1))
        r.trainer.prepare = lambda: None  # type: ignore[method-assign]
        r.trainer.run()
        calls.append(count[0] - sum(1 for e in r.events if e["type"] == "validation") * 2)
    # per step: d_steps x (real + generated) + one for the generator's loss; 4 steps per epoch
    assert calls == [4 * (2 * 1 + 1), 4 * (2 * 3 + 1)]


def _teacher(tmp: Path, name: str, seed: int, hidden: int = 16) -> str:
    """A trained teacher project (weights beside it) in ``tmp``; returns its file name."""
    from workbench.project import save_project
    from workbench.weights import save_weights

    torch.manual_seed(seed)
    b = GraphBuilder()
    h = b.layer("ReLU", b.layer("Linear", b.input((8,), name="x"), out_features=hidden, name="t1"))
    b.output(b.layer("Linear", h, out_features=4, name="t2"))
    t = project(graph=b.graph, training={"epochs": 2, "seed": seed})
    trainer = Trainer(t, run_dir=tmp / f"teacher_run_{name}")
    trainer.run()
    t.weights = f"{name}.safetensors"
    save_weights(trainer.model, tmp / t.weights)
    save_project(t, tmp / f"{name}.json")
    return f"{name}.json"


def student(tmp: Path, **training: Any) -> Project:
    from workbench.project import save_project

    p = project(training={"task": "distillation", **training})
    save_project(p, tmp / "student.json")  # teacher paths are relative to the student's folder
    return p


@probe("training", "teacher")
def _teacher_setting(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    refused(lambda: run(tmp, student(tmp, teacher="")), "teacher")
    a, b = _teacher(tmp, "a", seed=1), _teacher(tmp, "b", seed=2, hidden=12)
    wa = run(tmp, student(tmp, teacher=a, alpha=1.0)).weights
    wb = run(tmp, student(tmp, teacher=b, alpha=1.0)).weights
    assert differ(wa, wb)


@probe("training", "teacher_checkpoint")
def _teacher_checkpoint(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    from workbench.weights import save_weights

    a = _teacher(tmp, "a", seed=1)
    torch.manual_seed(5)
    other = Trainer(project(graph=_teacher_graph()), run_dir=tmp / "other")
    other.prepare()
    save_weights(other.model, tmp / "untrained.safetensors")  # same graph, other weights
    w_own = run(tmp, student(tmp, teacher=a, alpha=1.0)).weights
    w_other = run(tmp, student(tmp, teacher=a, teacher_checkpoint="untrained.safetensors", alpha=1.0)).weights
    assert differ(w_own, w_other)
    refused(lambda: run(tmp, student(tmp, teacher=a, teacher_checkpoint="missing.safetensors")), "missing")


def _teacher_graph() -> Graph:
    b = GraphBuilder()
    h = b.layer("ReLU", b.layer("Linear", b.input((8,), name="x"), out_features=16, name="t1"))
    b.output(b.layer("Linear", h, out_features=4, name="t2"))
    return b.graph


@probe("training", "temperature")
def _temperature(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a = _teacher(tmp, "a", seed=1)
    w = [run(tmp, student(tmp, teacher=a, alpha=1.0, temperature=t)).weights for t in (1.0, 8.0)]
    assert differ(*w)


@probe("training", "alpha")
def _alpha(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    a = _teacher(tmp, "a", seed=1)
    w = [run(tmp, student(tmp, teacher=a, alpha=x)).weights for x in (0.0, 1.0)]
    assert differ(*w)
    # alpha 0 is plain cross-entropy: the same weights as the classification task
    plain = run(tmp, project(training={"task": "classification"})).weights
    assert not differ(w[0], plain)


@probe("training", "tensorboard")
def _tensorboard(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    on, off = run(tmp, project()), run(tmp, project(training={"tensorboard": False}))
    assert list(on.trainer.run_dir.glob("events.out.tfevents*"))  # type: ignore[union-attr]
    assert not list(off.trainer.run_dir.glob("events.out.tfevents*"))  # type: ignore[union-attr]


# --------------------------------------------------------------------------- privacy (Opacus; tests/core/test_privacy.py
# compares the spent epsilon with Opacus' accountant and the clipping with per-sample gradients)


def _private_epsilon(tmp: Path, **training: Any) -> float:
    pytest.importorskip("opacus", reason="the privacy extra (opacus) is not installed")
    r = run(tmp, project(training={"privacy": True, **training}))
    return r.of("epoch")[-1]["epsilon"]


@probe("training", "privacy")
def _privacy(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    plain = run(tmp, project())
    assert "epsilon" not in plain.of("epoch")[-1]
    assert _private_epsilon(tmp) > 0


@probe("training", "noise_multiplier")
def _noise_multiplier(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert _private_epsilon(tmp, noise_multiplier=0.8) > _private_epsilon(tmp, noise_multiplier=2.0)


@probe("training", "max_grad_norm")
def _max_grad_norm(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opacus", reason="the privacy extra (opacus) is not installed")
    moved = []
    for clip in (1e-4, 10.0):  # same noise relative to the bound: a tiny bound barely moves the weights
        r = run(tmp, project(training={"privacy": True, "max_grad_norm": clip, "optimizer": "sgd", "momentum": 0.0,
                                       "noise_multiplier": 1e-6}), train=False)
        before = r.weights
        r.trainer.prepare = lambda: None  # type: ignore[method-assign]
        r.trainer.run()
        moved.append(max(float((r.weights[k] - before[k]).abs().max()) for k in before))
    assert moved[0] < 1e-3 < moved[1]


@probe("training", "target_epsilon")
def _target_epsilon(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert _private_epsilon(tmp, target_epsilon=1.0) == pytest.approx(1.0, abs=0.05)
    assert _private_epsilon(tmp, target_epsilon=5.0) == pytest.approx(5.0, abs=0.2)


@probe("training", "target_delta")
def _target_delta(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert _private_epsilon(tmp, target_delta=1e-8) > _private_epsilon(tmp, target_delta=1e-3)


@probe("training", "accountant")
def _accountant(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    assert _private_epsilon(tmp, accountant="prv") < _private_epsilon(tmp, accountant="rdp")


from .settings_probes_fewer_labels import PROBES as _FEWER_LABELS  # noqa: E402  (transfer, self-supervised)

PROBES.update(_FEWER_LABELS)


# --------------------------------------------------------------------------- the test

FIELDS = [("data", f.name) for f in DATA_FIELDS] + [("training", f.name) for f in TRAINING_FIELDS]


@pytest.mark.parametrize(("section", "name"), FIELDS, ids=[f"{s}.{n}" for s, n in FIELDS])
def test_every_setting_changes_behaviour_or_is_refused(section: str, name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fn = PROBES.get((section, name))
    assert fn is not None, (f"{section}.{name} has no probe: add one to tests/core/test_settings.py showing that "
                            "changing it changes behaviour or is refused with a reason")
    fn(tmp_path, monkeypatch)


def test_every_probe_belongs_to_a_declared_setting() -> None:
    assert set(PROBES) <= set(FIELDS), set(PROBES) - set(FIELDS)


def test_a_refusal_names_the_setting(tmp_path: Path) -> None:
    message = refused(lambda: Trainer(project(training={"nesterov": True}), {}, run_dir=tmp_path / "r").run(),
                      "training.nesterov")
    assert "optimizer adam" in message and not (tmp_path / "r").exists()

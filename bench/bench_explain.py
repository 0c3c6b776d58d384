"""Issue 13 benchmarks for explanations (Captum as the engine), on the digits ResNet sample.

- Grad-CAM at the last residual block (``block2``, the default node), one validation sample per
  call, upsampled to the input: target <= 0.2 s per sample (median); the same for 16 samples in
  one call, per sample, for scale;
- Integrated Gradients, 50 steps, one sample per call: target <= 2 s (median);
- the whole command ``workbench explain ... --method gradcam --samples 16 -o maps.png`` (a new
  process: Python, torch, Captum, the data and the model load first), for scale.

Each call is the full :func:`workbench.analysis.explain.explain`: predictions, target choice,
Captum, upsampling.  The weights are seeded random ones saved as a checkpoint: the time does not
depend on their values (no data-dependent branches in the model).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import Row, median_time
from workbench.analysis.activations import SampleChoice, load_model, select_samples
from workbench.analysis.explain import ExplainOptions, explain
from workbench.compiler import compile_graph
from workbench.project import load_project, save_project
from workbench.weights import save_checkpoint

ISSUE = "13"
ROOT = Path(__file__).resolve().parent.parent


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = load_project(ROOT / "samples" / "digits_resnet.json")
        path = save_project(project, Path(tmp) / "digits_resnet.json")
        torch.manual_seed(0)
        ckpt = save_checkpoint(Path(tmp) / "resnet.safetensors", compile_graph(project.graph).module, None, {})
        model = load_model(load_project(path), ckpt)
        _, x, _ = select_samples(model, SampleChoice(count=16))
        one = x[:1]
        gradcam = ExplainOptions("gradcam")
        t = median_time(lambda: explain(model, one, gradcam), repeat=21, warmup=3)
        rows.append(Row(ISSUE, "Grad-CAM on the digits ResNet (block2), one sample", t, "s", 0.2,
                        note=f"torch threads {torch.get_num_threads()}"))
        t16 = median_time(lambda: explain(model, x, gradcam), repeat=9, warmup=2) / len(x)
        rows.append(Row(ISSUE, "Grad-CAM on the digits ResNet, 16 samples in one call, per sample", t16, "s"))
        ig = ExplainOptions("integrated_gradients", steps=50)
        t = median_time(lambda: explain(model, one, ig), repeat=11, warmup=2)
        rows.append(Row(ISSUE, "Integrated Gradients (50 steps) on the digits ResNet, one sample", t, "s", 2.0))
        out = Path(tmp) / "maps.png"
        cmd = [sys.executable, "-m", "workbench", "explain", str(path), "--checkpoint", str(ckpt), "--method",
               "gradcam", "--samples", "16", "-o", str(out)]
        times = []
        for _ in range(3):
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise RuntimeError(f"workbench explain failed: {done.stderr.strip()}")
        rows.append(Row(ISSUE, "`workbench explain --method gradcam --samples 16 -o maps.png`, end to end",
                        sorted(times)[1], "s", note="a new process each time (imports, data, model)"))
    return rows

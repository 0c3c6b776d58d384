"""Issue 12 benchmarks: data-parallel training under torchrun on this machine.

* throughput of ``workbench train --nproc-per-node 2`` against one process (digits CNN, same global
  batch), each process with one torch thread, and one process with every core;
* the per-step communication overhead of DDP on a model large enough to matter (an MLP of ~6.3 M
  parameters, 25 MB of gradients): a step with DDP's gradient all-reduce against the same step under
  ``no_sync()`` (no communication), and a bare ``all_reduce`` of the same number of floats.

Run alone: ``python bench/bench_distributed.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row  # noqa: E402

CNN = ROOT / "samples" / "digits_cnn.json"
EPOCHS = 3


def _train(out: Path, *extra: str) -> tuple[dict, float]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "workbench", "train", str(CNN), "--epochs", str(EPOCHS), "--out",
                        str(out), "--json", "--quiet", "--device", "cpu", *extra], capture_output=True, text=True,
                       timeout=900, cwd=ROOT)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout[r.stdout.index("{"):]), wall


def throughput(tmp: Path) -> list[Row]:
    one, one_wall = _train(tmp / "one", "--threads", "1")
    two, two_wall = _train(tmp / "two", "--threads", "1", "--nproc-per-node", "2")
    full, _ = _train(tmp / "full")
    rate1, rate2, rate_full = (s["train_samples_per_s"] for s in (one, two, full))
    cores = os.cpu_count()
    return [
        Row("12", "DDP throughput, 2 processes / 1 process (digits CNN, 1 thread each, same global batch)",
            rate2 / rate1, "x",
            note=f"{rate2:,.0f} vs {rate1:,.0f} samples/s on {cores} cores; 1 process with all cores: "
            f"{rate_full:,.0f}; wall time with start-up {two_wall:.1f} s vs {one_wall:.1f} s"),
    ]


# --------------------------------------------------------------------------- communication (a torchrun worker)


def _worker() -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048),
                                torch.nn.ReLU(), torch.nn.Linear(2048, 10))
    params = sum(p.numel() for p in model.parameters())
    ddp = DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    x, y = torch.randn(32, 1024), torch.randint(0, 10, (32,))

    def step(sync: bool) -> float:
        dist.barrier()
        t = time.perf_counter()
        opt.zero_grad()
        if sync:
            torch.nn.functional.cross_entropy(ddp(x), y).backward()
        else:
            with ddp.no_sync():
                torch.nn.functional.cross_entropy(ddp(x), y).backward()
        opt.step()
        return time.perf_counter() - t

    flat = torch.zeros(params)

    def allreduce() -> float:
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(flat)
        return time.perf_counter() - t

    for _ in range(3):
        step(True), step(False), allreduce()
    synced, local, bare = [], [], []
    for _ in range(15):  # interleaved, so machine noise hits both alike
        synced.append(step(True))
        local.append(step(False))
        bare.append(allreduce())
    if dist.get_rank() == 0:
        print(json.dumps({"params": params, "synced_ms": 1e3 * statistics.median(synced),
                          "local_ms": 1e3 * statistics.median(local), "allreduce_ms": 1e3 * statistics.median(bare)}))
    dist.destroy_process_group()


def communication() -> list[Row]:
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                        str(Path(__file__).resolve()), "--worker"], capture_output=True, text=True, timeout=600,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode:
        raise RuntimeError(r.stderr)
    m = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("{")))
    overhead = m["synced_ms"] - m["local_ms"]
    return [
        Row("12", f"DDP communication per step, {m['params'] / 1e6:.1f} M-parameter MLP, 2 gloo processes", overhead,
            "ms", note=f"step {m['synced_ms']:.1f} ms with the gradient all-reduce vs {m['local_ms']:.1f} ms under "
            f"no_sync() ({100 * overhead / m['synced_ms']:.0f} % of the step); a bare all_reduce of "
            f"{4 * m['params'] / 2**20:.0f} MB: {m['allreduce_ms']:.1f} ms"),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        return throughput(Path(tmp)) + communication()


if __name__ == "__main__":
    if "--worker" in sys.argv:
        _worker()
    else:
        from bench.run_all import table

        print(table(run()))

"""Issue 4 benchmarks: digits CNN accuracy and time; GUI-attached vs headless throughput;
Qt event-loop latency while training at full speed."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "samples" / "digits_cnn.json"


def headless(project: Path, epochs: int, out: Path, threads: int | None = None) -> dict:
    extra = ["--threads", str(threads)] if threads else []
    r = subprocess.run([sys.executable, "-m", "workbench", "train", str(project), "--epochs", str(epochs),
                        "--out", str(out), "--json", "--quiet", *extra], capture_output=True, text=True, timeout=900)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout)


def time_to_accuracy(tmp: Path) -> list[Row]:
    from workbench.project import load_project
    from workbench.training import Trainer

    reached: dict = {}
    t0 = time.perf_counter()

    def watch(e: dict) -> None:
        if e["type"] == "epoch" and "epoch" not in reached and e.get("val_accuracy", 0) >= 0.97:
            reached.update(epoch=e["epoch"], seconds=time.perf_counter() - t0)

    summary = Trainer(load_project(CNN), {}, run_dir=tmp / "acc", listeners=[watch]).run()
    best = summary["best_accuracy"]
    return [
        Row("4", "digits CNN sample: best validation accuracy (20 epochs, CPU)", best, "", 0.97, lower_is_better=False),
        Row("4", "digits CNN sample: time to reach 0.97 validation accuracy", reached.get("seconds", float("nan")),
            "s", note=f"epoch {reached.get('epoch', '-')}; whole run {summary['time_s']:.1f} s"),
    ]


def gui_attached(project: Path, epochs: int) -> tuple[float, list[float]]:
    """Train from the real main window; return (samples/s, timer lateness samples in ms)."""
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from ui.app import create_app
    from ui.mainwindow import MainWindow

    app = create_app()
    window = MainWindow(ask=lambda *a: 0)
    window.resize(1400, 900)
    window.show()
    window.open_path(project, ask_save=False)
    window.show_training()
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    phase = {"training": False}

    def tick() -> None:
        now = clock.elapsed()
        if phase["training"]:  # while training runs at full speed (process start-up excluded)
            lateness.append(max(0.0, now - last[0] - 10))
        last[0] = now

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(10)
    probe.timeout.connect(tick)
    summary: dict = {}
    original = window.training.handle

    def handle(e: dict) -> None:
        if e["type"] == "done":
            summary.update(e["summary"])
            phase["training"] = False
        original(e)
        if e["type"] == "start":
            phase["training"] = True

    window.training.handle = handle  # type: ignore[method-assign]
    window.training.start()
    probe.start()
    # the real event loop (not a processEvents() polling loop), until the run ends
    watcher = QTimer()
    watcher.timeout.connect(lambda: None if window.training.running else app.quit())
    watcher.start(100)
    QTimer.singleShot(900_000, app.quit)
    app.exec()
    watcher.stop()
    probe.stop()
    window.doc.undo_stack.setClean()
    window.close()
    QApplication.processEvents()
    return summary.get("train_samples_per_s", float("nan")), lateness


def run() -> list[Row]:
    tmp = Path(tempfile.mkdtemp())
    rows = time_to_accuracy(tmp)
    project = tmp / "cnn.json"
    project.write_text(CNN.read_text().replace('"epochs": 20', '"epochs": 40'))
    from workbench.training.worker import TrainingProcess

    worker_threads = TrainingProcess.default_threads()
    gui_rates, cli_rates, same_rates, late = [], [], [], []
    for i in range(2):  # interleaved: CLI, CLI with the worker's threads, GUI, ...
        cli_rates.append(headless(project, 40, tmp / f"cli{i}")["train_samples_per_s"])
        same_rates.append(headless(project, 40, tmp / f"same{i}", worker_threads)["train_samples_per_s"])
        rate, lateness = gui_attached(project, 40)
        gui_rates.append(rate)
        late += lateness
    gui, cli, same = (statistics.median(r) for r in (gui_rates, cli_rates, same_rates))
    rows.append(Row("4", "training throughput, GUI-attached worker / headless CLI (digits CNN)", gui / cli, "x", 0.95,
                    lower_is_better=False,
                    note=f"{gui:,.0f} vs {cli:,.0f} samples/s; the CLI uses all {os.cpu_count()} cores, the worker "
                    f"{worker_threads} (one is left to the GUI)"))
    rows.append(Row("4", f"training throughput, GUI-attached worker / headless CLI, both {worker_threads} thread(s): "
                    "what attaching the GUI costs", gui / same, "x", 0.95, lower_is_better=False,
                    note=f"{gui:,.0f} vs {same:,.0f} samples/s"))
    late.sort()
    p99 = late[int(len(late) * 0.99)] if late else float("nan")
    rows.append(Row("4", "Qt event-loop lateness while training (10 ms timer), p99", p99, "ms", 50.0,
                    note=f"max {late[-1]:.0f} ms over {len(late)} ticks" if late else ""))
    return rows

"""Device choice: one function, tested on the CPU and with fake device lists for GPUs."""

from __future__ import annotations

import pytest
import torch

from workbench.training.devices import (
    DeviceError,
    DeviceInfo,
    autocast_dtype,
    best_device,
    list_devices,
    resolve_device,
)

CPU = DeviceInfo("cpu", "CPU", "cpu", True, threads=2)
GPU0 = DeviceInfo("cuda:0", "Fake A100", "cuda", True, memory_bytes=40 * 2**30)
GPU1 = DeviceInfo("cuda:1", "Fake A100", "cuda", True, memory_bytes=40 * 2**30)
MPS_OFF = DeviceInfo("mps", "Apple Metal (MPS)", "mps", False, note="MPS is built but not available")


def test_this_machine_lists_the_cpu_first() -> None:
    devices = list_devices()
    assert devices[0].id == "cpu" and devices[0].threads == torch.get_num_threads()
    assert resolve_device("auto") == torch.device(best_device(devices))
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps_then_cpu() -> None:
    assert best_device([CPU, GPU0, GPU1]) == "cuda:0"
    assert best_device([CPU, MPS_OFF]) == "cpu"
    assert best_device([CPU, DeviceInfo("mps", "MPS", "mps", True)]) == "mps"


def test_explicit_choices_and_their_errors() -> None:
    devices = [CPU, GPU0, GPU1]
    assert resolve_device("cuda", devices) == torch.device("cuda:0")
    assert resolve_device("CUDA:1", devices) == torch.device("cuda:1")
    with pytest.raises(DeviceError, match=r"cuda:2 is not available: only 2 CUDA GPU\(s\) exist"):
        resolve_device("cuda:2", devices)
    with pytest.raises(DeviceError, match="no CUDA GPU is available"):
        resolve_device("cuda", [CPU])
    with pytest.raises(DeviceError, match="mps is not usable: MPS is built but not available"):
        resolve_device("mps", [CPU, MPS_OFF])
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu", devices)


def test_mixed_precision_where_torch_supports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.training import devices

    assert autocast_dtype(torch.device("cpu"), "bf16") is torch.bfloat16
    assert autocast_dtype(torch.device("cpu"), "fp16") is torch.float16
    assert autocast_dtype(torch.device("cpu"), "fp32") is None
    assert autocast_dtype(torch.device("cuda:0"), "fp16") is torch.float16
    assert autocast_dtype(torch.device("cuda:0"), "fp32") is None
    monkeypatch.setattr(devices, "_cuda_bf16", lambda device: True)
    assert autocast_dtype(torch.device("cuda:0"), "bf16") is torch.bfloat16
    monkeypatch.setattr(devices, "_cuda_bf16", lambda device: False)
    with pytest.raises(DeviceError, match="precision bf16 cannot be used on cuda:1: the GPU has no bfloat16"):
        autocast_dtype(torch.device("cuda:1"), "bf16")
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: False)
    with pytest.raises(DeviceError, match="precision bf16 cannot be used on mps: bfloat16 on MPS needs macOS 14"):
        autocast_dtype(torch.device("mps"), "bf16")
    assert autocast_dtype(torch.device("mps"), "fp16") is torch.float16
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda kind: kind != "xpu")
    with pytest.raises(DeviceError, match="precision fp16 cannot be used on xpu:0: this PyTorch has no mixed"):
        autocast_dtype(torch.device("xpu:0"), "fp16")

"""One way to open an onnxruntime session on the CPU: quiet (onnxruntime's own warnings about
constant folding and old opsets reach the user's terminal otherwise, with nothing for them to do)."""

from __future__ import annotations

from typing import Any


def cpu_session(model: bytes | str, threads: int = 0, quiet: int = 3) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU provider for a serialized model or a path.

    Args:
        threads: intra-op threads (0: onnxruntime's choice).
        quiet: the lowest severity logged (3: errors only; 4: fatal only).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = quiet
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

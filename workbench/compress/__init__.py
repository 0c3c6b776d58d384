"""Making a trained model smaller and faster, measured: quantization of the verified ONNX export
(:mod:`.quantize`), structured and unstructured pruning (:mod:`.prune`, :mod:`.channels`).
Knowledge distillation is a training task (``workbench.training.distill``).

Every job writes a new artefact atomically (never over an input) and returns a
:class:`~.report.CompressReport`: validation metrics, size and measured latency before and after.
"""

from .report import Cancelled, CompressError, CompressReport, Measure, Progress, ResultRefused

__all__ = ["Cancelled", "CompressError", "CompressReport", "Measure", "Progress", "ResultRefused"]

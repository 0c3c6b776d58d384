"""The PySide6 GUI of Neural Workbench.  Depends on ``workbench``, never the other way."""

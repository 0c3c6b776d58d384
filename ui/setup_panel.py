"""Data and training set-up: forms generated from the declarations, and a data preview."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QScrollArea, QSplitter, QVBoxLayout, QWidget

from workbench.config import DATA_FIELDS, TRAINING_FIELDS
from workbench.data import DataError, load_samples, preview
from workbench.training.self_supervised import preview_views

from .config_form import ConfigForm
from .document import Document
from .plots import make_plot
from .training_panel import image_grid


class DataPreview(QWidget):
    """Shapes, class balance and sample images of the configured dataset."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.info = QLabel("Press Preview to load the dataset.")
        self.info.setWordWrap(True)
        self.images = make_plot("Samples", "", "")
        self.images.hideAxis("left")
        self.images.hideAxis("bottom")
        self.image_item = pg.ImageItem()
        self.images.addItem(self.image_item)
        self.balance = make_plot("Class balance", "samples", "class")
        self.bars: pg.BarGraphItem | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.info)
        lay.addWidget(self.images, 1)
        lay.addWidget(self.balance, 1)

    def show_dataset(self, data_cfg: dict, training: dict | None = None) -> bool:
        try:
            samples = load_samples(data_cfg)
        except DataError as exc:
            self.info.setText(f"<span style='color:#d32f2f'>{exc}</span>")
            return False
        p = preview(samples)
        text = f"<b>{p['name']}</b>: {p['samples']:,} samples of shape {p['shape']} ({p['kind']})"
        self.info.setText(text)
        views = preview_views(samples.x, training) if training is not None and samples.image else None
        if views is not None:  # what the self-supervised task feeds the model: real transforms of these samples
            self.images.set_title("Samples, then two views of each" if training["task"] == "contrastive"
                                  else "Samples, then with their patches masked")
            self.image_item.setImage(np.flipud(image_grid(np.asarray(views), cols=8)).T)
        elif samples.image or samples.x.ndim <= 3:
            self.images.set_title("Samples")
            grid = image_grid(np.asarray(p["examples"][:16]))
            self.image_item.setImage(np.flipud(grid).T)
        if "class_counts" in p:
            counts = p["class_counts"]
            if self.bars is not None:
                self.balance.removeItem(self.bars)
            self.bars = pg.BarGraphItem(x=np.arange(len(counts)), height=counts, width=0.7, brush="#1e88e5")
            self.balance.addItem(self.bars)
            self.balance.getAxis("bottom").setTicks([list(enumerate(p["classes"]))])
        return True


class SetupPanel(QScrollArea):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.doc: Document | None = None
        self.data_form = ConfigForm("data", DATA_FIELDS)
        self.training_form = ConfigForm("training", TRAINING_FIELDS)
        self.preview = DataPreview()
        button = QPushButton("Preview data")
        button.clicked.connect(self.show_preview)
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addWidget(QLabel("<b>Data</b>"))
        lay.addWidget(self.data_form)
        lay.addWidget(button)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.preview)
        split.setMinimumHeight(360)
        lay.addWidget(split)
        lay.addWidget(QLabel("<b>Training</b>"))
        lay.addWidget(self.training_form)
        lay.addStretch(1)
        self.setWidget(page)

    def set_document(self, doc: Document) -> None:
        self.doc = doc
        self.data_form.set_document(doc)
        self.training_form.set_document(doc)

    def show_preview(self) -> bool:
        return self.preview.show_dataset(self.doc.project.data, self.doc.project.training) if self.doc else False

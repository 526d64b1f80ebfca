"""Live training curves: one line per loss term plus the total, and validation mask AP points."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

LOSS_TERMS = ("loss", "loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
TERM_COLORS = {
    "loss": (255, 255, 255),
    "loss_classifier": (239, 83, 80),
    "loss_box_reg": (255, 167, 38),
    "loss_mask": (102, 187, 106),
    "loss_objectness": (66, 165, 245),
    "loss_rpn_box_reg": (171, 71, 188),
}
AP_METRICS = (("mask_AP", (255, 235, 59)), ("mask_AP50", (0, 229, 255)))


class LossPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setObjectName("lossPlot")
        self.loss_plot.setMinimumHeight(150)
        self.loss_plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.ap_plot = pg.PlotWidget()
        self.ap_plot.setObjectName("apPlot")
        self.ap_plot.setMaximumHeight(110)
        self.ap_plot.setLabel("left", "val AP")
        self.ap_plot.setLabel("bottom", "iteration")
        self.ap_plot.setYRange(0, 1)
        self.ap_plot.addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.ap_plot.setXLink(self.loss_plot)
        self.ap_plot.showGrid(x=True, y=True, alpha=0.2)
        self.curves = {}
        for term in LOSS_TERMS:
            width = 2.0 if term == "loss" else 1.2
            name = "total" if term == "loss" else term.removeprefix("loss_")
            self.curves[term] = self.loss_plot.plot(pen=pg.mkPen(TERM_COLORS[term], width=width), name=name)
        self.ap_curves = {
            name: self.ap_plot.plot(
                pen=pg.mkPen(color, width=1), symbol="o", symbolSize=6, symbolBrush=color, name=name.replace("_", " ")
            )
            for name, color in AP_METRICS
        }
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.loss_plot, 1)
        layout.addWidget(self.ap_plot)
        self.reset()

    def reset(self) -> None:
        self.steps: dict[str, list[tuple[float, float]]] = {term: [] for term in LOSS_TERMS}
        self.validations: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in AP_METRICS}
        for curve in [*self.curves.values(), *self.ap_curves.values()]:
            curve.setData([], [])

    def add_step(self, iteration: int, losses: dict[str, float]) -> None:
        for term, value in losses.items():
            if term in self.steps and np.isfinite(value):
                self.steps[term].append((float(iteration), float(value)))
                x, y = zip(*self.steps[term])
                self.curves[term].setData(np.array(x), np.array(y))

    def add_validation(self, iteration: int, metrics: dict[str, float]) -> None:
        for name, _ in AP_METRICS:
            value = metrics.get(name)
            if value is not None and np.isfinite(value) and value >= 0:
                self.validations[name].append((float(iteration), float(value)))
                x, y = zip(*self.validations[name])
                self.ap_curves[name].setData(np.array(x), np.array(y))

    def points(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(iterations, values) drawn for a loss term or AP metric (what the curve item holds)."""
        curve = self.curves.get(term) or self.ap_curves[term]
        x, y = curve.getData()
        return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))

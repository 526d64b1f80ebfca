"""Live training curves: one line per loss term plus the total, and validation AP points with their numbers.

Each validation adds a point per AP metric and writes the numbers (box and mask AP and AP50) as a label on
the AP plot, next to the newest point, and as a line under the plots (``validation_text``): with one
validation per run the point alone was an unlabeled dot.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

LOSS_TERMS = ("loss", "loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
TERM_COLORS = {
    "loss": (255, 255, 255),
    "loss_classifier": (239, 83, 80),
    "loss_box_reg": (255, 167, 38),
    "loss_mask": (102, 187, 106),
    "loss_objectness": (66, 165, 245),
    "loss_rpn_box_reg": (171, 71, 188),
}
AP_METRICS = (("mask_AP", (255, 235, 59)), ("mask_AP50", (0, 229, 255)), ("box_AP", (255, 138, 128)))


def ap_summary(metrics: dict[str, float]) -> str:
    """'box AP 0.312 (AP50 0.551) · mask AP 0.280 (AP50 0.498)' from a validation's metrics (what is there)."""
    parts = []
    for kind in ("box", "mask"):
        ap, ap50 = metrics.get(f"{kind}_AP"), metrics.get(f"{kind}_AP50")
        if ap is not None and np.isfinite(ap) and ap >= 0:
            fifty = f" (AP50 {ap50:.3f})" if ap50 is not None and np.isfinite(ap50) and ap50 >= 0 else ""
            parts.append(f"{kind} AP {ap:.3f}{fifty}")
    return " · ".join(parts)


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
        self.ap_plot.addLegend(offset=(4, 2), labelTextSize="8pt", colCount=len(AP_METRICS))  # one row, top left
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
        self.ap_label = pg.TextItem("", color=(230, 230, 230), anchor=(1, 0))  # the numbers, on the plot
        self.ap_plot.addItem(self.ap_label, ignoreBounds=True)
        self.ap_line = QLabel("")  # the same, under the plots
        self.ap_line.setObjectName("validationLine")
        self.ap_line.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.loss_plot, 1)
        layout.addWidget(self.ap_plot)
        layout.addWidget(self.ap_line)
        self.reset()

    def reset(self) -> None:
        self.steps: dict[str, list[tuple[float, float]]] = {term: [] for term in LOSS_TERMS}
        self.validations: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in AP_METRICS}
        for curve in self.curves.values():
            curve.setData([], [], symbol=None)
        for curve in self.ap_curves.values():
            curve.setData([], [])
        self.ap_label.setText("")
        self.ap_line.setText("")
        self.ap_line.setVisible(False)

    def add_step(self, iteration: int, losses: dict[str, float]) -> None:
        for term, value in losses.items():
            if term in self.steps and np.isfinite(value):
                self.steps[term].append((float(iteration), float(value)))
                x, y = zip(*self.steps[term])
                curve = self.curves[term]
                # a line needs two points: after the first step (minutes, on a CPU) the plot was empty; one sample is
                # drawn as a dot in the curve's colour, and the dot goes once the line can be drawn
                if len(x) < 2:
                    dot = dict(symbol="o", symbolSize=7, symbolBrush=TERM_COLORS[term], symbolPen=TERM_COLORS[term])
                    curve.setData(np.array(x), np.array(y), **dot)
                elif curve.opts.get("symbol") is not None:
                    curve.setData(np.array(x), np.array(y), symbol=None)
                else:
                    curve.setData(np.array(x), np.array(y))

    def add_validation(self, iteration: int, metrics: dict[str, float]) -> None:
        for name, _ in AP_METRICS:
            value = metrics.get(name)
            if value is not None and np.isfinite(value) and value >= 0:
                self.validations[name].append((float(iteration), float(value)))
                x, y = zip(*self.validations[name])
                self.ap_curves[name].setData(np.array(x), np.array(y))
        summary = ap_summary(metrics)
        if summary:
            self.ap_label.setText(summary.replace(" · ", "\n"))
            top = max(metrics.get("mask_AP", 0.0), metrics.get("box_AP", 0.0), 0.0)
            self.ap_label.setAnchor((1, 1) if top < 0.5 else (1, 0))  # beside the newest point, inside the plot
            self.ap_label.setPos(float(iteration), top)
            self.ap_line.setText(f"Validation at iteration {iteration}: {summary}")
            self.ap_line.setVisible(True)

    def validation_text(self) -> tuple[str, str]:
        """(the label on the AP plot, the line under the plots) as shown."""
        return self.ap_label.toPlainText(), "" if self.ap_line.isHidden() else self.ap_line.text()

    def points(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(iterations, values) drawn for a loss term or AP metric (what the curve item holds)."""
        curve = self.curves.get(term) or self.ap_curves[term]
        x, y = curve.getData()
        return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))

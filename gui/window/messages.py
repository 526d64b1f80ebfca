"""MessageBar (the error banner and the status bar), and texts shown to the user in more than one place."""

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QStatusBar, QWidget

NO_FOLDER = "Open a folder of images: File > Open Folder… (Ctrl+O), or drop a folder or an image here."

NO_MODEL = (
    "No model loaded: images and annotations show, but nothing is predicted.\n\n"
    "To get a model, open weights with Model > Open Weights… (Ctrl+M) or drop the file here:\n"
    "• a Mask R-CNN Studio checkpoint (.safetensors), e.g. from python -m engine train;\n"
    "• torchvision's COCO Mask R-CNN (maskrcnn_resnet50_fpn_coco-*.pth);\n"
    "• an ImageNet ResNet (.pth) to start training from (its heads are untrained)."
)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")

TIMING_WIDTH = 320  # the most the timing line takes of the status bar: the messages get the rest

UNREADABLE = "This image could not be read; see the message above. A / D: other images."


class ElidedLabel(QLabel):
    """A one-line label for the status bar that never asks for more room than it gets: a text too long for its width
    ends in "…" and the whole of it is the tooltip (at 1280x800 the status line's messages were cut off mid-word by
    the fields beside it, and the timing line took half the bar). ``text()`` is the whole text."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setMinimumWidth(40)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(40, super().minimumSizeHint().height())

    def shown_text(self) -> str:
        """What is drawn: the text, elided to the label's width."""
        width = max(0, self.contentsRect().width())
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, width)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self._update_tip()

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802
        super().resizeEvent(event)
        self._update_tip()

    def _update_tip(self) -> None:
        self.setToolTip(self.text() if self.shown_text() != self.text() else "")

    def paintEvent(self, _event) -> None:  # noqa: ANN001, N802
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(self.contentsRect(), int(align), self.shown_text())


class MessageBar:
    """The window's ``Messages`` (gui/session/protocols.py): the red error banner (the window places it over
    the canvas) and the status bar: the status line, the editing state, the newest result's timings, a busy
    indicator."""

    def __init__(self) -> None:
        self.banner, self.edit_status = QLabel(), QLabel()
        self.status, self.timing = ElidedLabel(), ElidedLabel()  # cut with "…" and a tooltip, never wider than given
        self.timing.setMaximumWidth(TIMING_WIDTH)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.setVisible(False)
        self.banner.setObjectName("errorBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel#errorBanner { background: #b3261e; color: white; padding: 6px; }")
        self.banner.hide()
        self.scope = ""  # what the banner is about: which events take it away
        self.about = ""  # what the status line describes, when something can make it stale (``forget``)
        self.offer_button = QPushButton()  # beside the banner: what the banner offers to do (``offer``)
        self.offer_button.hide()
        self._offer: Callable[[], object] | None = None
        self.offer_button.clicked.connect(self._take_offer)
        self.banner_row = QWidget()  # the banner and its button, for the window to place over the canvas
        row = QHBoxLayout(self.banner_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.banner, 1)
        row.addWidget(self.offer_button)

    def place_in(self, bar: QStatusBar) -> None:
        bar.addWidget(self.status, 1)
        for widget in (self.edit_status, self.timing, self.busy):
            bar.addPermanentWidget(widget)

    def show_status(self, text: str, about: str = "") -> None:
        """The status line. A line that ends with "…" says that something is under way ("Box: asking the model
        for its mask…"): it stays until that work ends, and the end takes it away (``settle``). ``about``: what
        the line describes (e.g. "hover": the detection under the mouse), for ``forget`` when that changes."""
        self.status.setText(text)
        self.about = about

    def forget(self, about: str) -> None:
        """What the status line described (``about``) is gone or changed: a line still about it goes."""
        if self.about == about:
            self.status.setText("")
            self.about = ""

    def settle(self, about: str = "") -> None:
        """Work the status line said was under way has ended: a line still saying so goes (with ``about``,
        only one that starts with it); a line put there since (a result, an error) stays."""
        text = self.status.text()
        if text.endswith("…") and text.startswith(about):
            self.show_status("")

    def show_progress(self, done: int, total: int) -> None:
        """The busy bar counts ``done`` of ``total`` (a large image's tiles); total 0: an indeterminate bar again."""
        self.busy.setRange(0, max(total, 0))
        self.busy.setValue(done if total > 0 else 0)
        self.busy.setFormat(f"{done} / {total}")
        self.busy.setTextVisible(total > 0)

    def show_error(self, message: str, scope: str = "action") -> None:
        """A red banner over the canvas until what it is about is resolved (``scope``): "result" (an
        inference error: the next good result), "image" (the next image that loads), "model" (a model
        that loads), "save" (the next successful save), "action" (anything else: the next image)."""
        self.scope = scope
        self._offer = None
        self.offer_button.hide()
        self.banner.setText(message)
        self.banner.show()
        self.show_status(message.splitlines()[0] if message else "")

    def hide_error(self, *scopes: str) -> None:
        """Hide the banner; with ``scopes``, only when it is about one of them."""
        if not scopes or self.scope in scopes:
            if self.banner.isVisible() and self.status.text() == self.banner.text().split("\n", 1)[0]:
                self.show_status("")  # the status line was repeating the error: it is stale now too
            self.banner.hide()
            self.offer_button.hide()
            self._offer = None

    def offer(self, message: str, label: str, action: Callable[[], object]) -> None:
        """The banner with a button beside it that runs ``action`` (scope "offer": the next image hides it)."""
        self.show_error(message, scope="offer")
        self._offer = action
        self.offer_button.setText(label)
        self.offer_button.show()

    def _take_offer(self) -> None:
        action, self._offer = self._offer, None
        self.hide_error()
        if action is not None:
            action()

    def error_text(self) -> str:
        return self.banner.text() if self.banner.isVisible() else ""


def ask_discard(parent: QWidget, error: str) -> bool:
    """The edits could not be saved: True when the user lets them go."""
    buttons = QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
    answer = QMessageBox.question(parent, "Unsaved edits", f"{error}\n\nDiscard the unsaved edits?", buttons)
    return answer == QMessageBox.StandardButton.Discard

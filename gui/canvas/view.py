"""The image view: a pyqtgraph ViewBox of z-ordered layers, the tools' mouse hook, a message over it.

Layers: image, annotations, prediction masks as ONE RGBA image, outlines, proposals, highlight, boxes.

Bound to a Session (``bind``), it draws the current image's pixels, the predictions shown and the
selected one when the Session says they changed; a click on a prediction is only reported (``clicked``):
the Session holds the selection.

Layers are z-ordered items in one ViewBox; ``annotation`` layers (the user's ground truth) are kept
apart from ``prediction`` layers so that the editing tools of part 2 work on their own layer. A tool
(``CanvasTool``) gets the mouse first; without one, drag pans, Ctrl+wheel zooms, the wheel scrolls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel

from gui.canvas import overlay
from gui.canvas.image_detail import ImageDetail
from gui.canvas.items import BoxesItem, RectsItem
from gui.canvas.mask_layers import MaskLayers
from gui.canvas.tool_items import CircleItem, ShapeItem
from gui.session.session import Session

LAYERS = ("image", "annotations", "masks", "outlines", "proposals", "highlight", "boxes")
TOOL_LAYERS = ("selection", "preview", "shapes", "rubber", "cursor")  # editing feedback, above the rest
PROPOSAL_COLOR = QColor(255, 235, 59, 150)


class CanvasTool:
    """Base of the editing tools: return True from a handler to consume the event.

    ``press`` / ``move`` / ``release`` get left-button drags (``press`` at the point where the button
    went down), ``click`` gets clicks (any button), ``hover`` the mouse moving, ``key`` key presses on
    the canvas. Points are image coordinates (x right, y down; pixel (r, c) covers [c, c+1) x [r, r+1))."""

    name = ""
    cursor = Qt.CursorShape.ArrowCursor

    def activate(self, canvas: Canvas) -> None:
        pass

    def deactivate(self, canvas: Canvas) -> None:
        pass

    def press(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        return False

    def move(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        return False

    def release(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        return False

    def click(self, canvas: Canvas, point: QPointF, event) -> bool:  # noqa: ANN001
        return False

    def hover(self, canvas: Canvas, point: QPointF) -> bool:
        return False

    def key(self, canvas: Canvas, event) -> bool:  # noqa: ANN001
        return False


class ViewBox(pg.ViewBox):
    """Ctrl+wheel zooms about the cursor (labelme's habit); the plain wheel scrolls, Shift+wheel sideways."""

    def __init__(self, canvas: Canvas) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.canvas = canvas

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: ANN001, N802 - Qt API
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        rect = self.viewRect()
        steps = ev.delta() / 120.0
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.translateBy(x=-steps * 0.1 * rect.width())
        else:
            self.translateBy(y=-steps * 0.1 * rect.height())
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: ANN001, N802
        tool = self.canvas.tool
        if tool is not None and ev.button() == Qt.MouseButton.LeftButton:
            point = self.mapSceneToView(ev.scenePos())
            if ev.isStart():  # the drag starts a few pixels after the press: begin where the button went down
                consumed = tool.press(self.canvas, self.mapSceneToView(ev.buttonDownScenePos()), ev)
                consumed = tool.move(self.canvas, point, ev) or consumed
            elif ev.isFinish():
                consumed = tool.release(self.canvas, point, ev)
            else:
                consumed = tool.move(self.canvas, point, ev)
            if consumed:
                ev.accept()
                return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev) -> None:  # noqa: ANN001, N802
        tool = self.canvas.tool
        if tool is not None and tool.click(self.canvas, self.mapSceneToView(ev.scenePos()), ev):
            ev.accept()
            return
        super().mouseClickEvent(ev)


class BoxLabels(Sequence):
    """The 'class score' texts of the shown predictions, made when a box's label is drawn: with 5,000
    detections only the few hundred labels drawn at most (gui/canvas/items.py) are formatted."""

    def __init__(self, session: Session, shown: Sequence[int]) -> None:
        self.session, self.prediction, self.shown = session, session.prediction, list(shown)

    def __len__(self) -> int:
        return len(self.shown)

    def __getitem__(self, row):  # noqa: ANN001, ANN204 - an int (a slice gives a list)
        if isinstance(row, slice):
            return [self[k] for k in range(*row.indices(len(self)))]
        i, pred = self.shown[row], self.prediction
        return f"{self.session.class_name(int(pred.labels[i]))} {pred.scores[i]:.2f}"


class Canvas(pg.GraphicsView):
    hovered = Signal(int)  # instance index under the mouse, -1 for none
    clicked = Signal(int)

    def __init__(self, parent=None) -> None:  # noqa: ANN001
        super().__init__(parent)
        self.view = ViewBox(self)
        self.setCentralItem(self.view)
        self.tool: CanvasTool | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.layers: dict[str, pg.GraphicsObject] = {}
        for z, name in enumerate(LAYERS + TOOL_LAYERS):
            item = self._make_layer(name)
            item.setZValue(z)
            self.view.addItem(item)
            self.layers[name] = item
        self.image_detail = ImageDetail(self.layers["image"])  # a huge image: the part in view, at screen resolution
        self.predictions = MaskLayers(self.layers["masks"], self.layers["outlines"])
        self.annotations = MaskLayers(self.layers["annotations"], None, fill_alpha=70)
        self.image_shape: tuple[int, int] | None = None
        self.pixels: np.ndarray | None = None  # the image as loaded: what the model sees, never changed here
        # display contrast (gui/panels/display_panel.py): loaded pixels -> pixels shown; None shows them as they are
        self.display: Callable[[np.ndarray], np.ndarray] | None = None
        # the same contrast as a 256-entry table (None: none), for a huge image drawn part by part (set with
        # ``display``: gui/panels/display_panel.py's table_for)
        self.display_table: Callable[[np.ndarray], np.ndarray | None] | None = None
        self.hover_index = -1
        self._selected = -1  # the selected prediction's row, as drawn (the Session holds the selection)
        self.message = QLabel(self)
        self.message.setObjectName("canvasMessage")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.message.setStyleSheet(
            "QLabel#canvasMessage { background: rgba(20, 20, 20, 200); color: white; padding: 12px;"
            " border-radius: 6px; font-size: 13px; }"
        )
        self.message.hide()
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(60)
        self._detail_timer.timeout.connect(self._refresh_detail)
        self.view.sigRangeChanged.connect(lambda *_: self._detail_timer.start())

    @staticmethod
    def _make_layer(name: str) -> pg.GraphicsObject:
        if name == "proposals":
            return RectsItem(width=1.0)
        if name == "boxes":
            return BoxesItem()
        if name in ("shapes", "rubber"):
            return ShapeItem()
        if name == "cursor":
            return CircleItem()
        return pg.ImageItem(axisOrder="row-major")

    def bind(self, session: Session) -> None:
        """Draw what the Session says: its image's pixels, the predictions shown, the selected one; a click on
        a prediction (or on none) selects it."""
        self.clicked.connect(lambda row: session.select((), row))
        session.events.pixels.connect(self.set_image)
        session.events.shown.connect(lambda _shown: self.draw_prediction(session))
        session.events.selection.connect(lambda selection: self.set_selected(selection.prediction))

    def draw_prediction(self, session: Session) -> None:
        """The Session's shown predictions: masks in their instance colours, boxes labelled class and score."""
        pred, shown = session.prediction, session.shown
        if pred is None:
            self.clear_overlays()
            return
        colors = overlay.instance_colors(pred.keys[shown])
        labels = BoxLabels(session, shown)  # texts made only for the boxes that get a label
        self.set_instances([pred.masks[i] for i in shown], pred.boxes[shown], colors, labels)

    # ----- image -----
    def set_image(self, image: np.ndarray | None) -> None:
        """(H,W,3) uint8 or None; clears every overlay."""
        self.clear_overlays()
        self.set_annotations([], [])
        self.clear_tool_layers()
        self.pixels = image
        if image is None:
            self.image_detail.clear()
            self.image_shape = None
            return
        fresh = self.image_shape != image.shape[:2]
        self.image_shape = image.shape[:2]
        if fresh:
            self.fit()  # first: a huge image is drawn for the view it will be seen in (gui/canvas/image_detail.py)
        self.redisplay()

    def redisplay(self) -> None:
        """Show the same image through ``display`` again (its contrast changed); the overlays stay as they are."""
        if self.pixels is None:
            return
        table_for = self.display_table
        if not self.image_detail.fits_whole(self.pixels) and table_for is not None:
            # a huge image: its contrast as a lookup table, applied to the part drawn only (image_detail.py)
            self.image_detail.show(self.pixels, self.visible_rect(), self.pixel_size(), table_for(self.pixels))
            return
        shown = self.display(self.pixels) if self.display is not None else self.pixels
        self.image_detail.show(shown, self.visible_rect(), self.pixel_size())

    def fit(self) -> None:
        """Fit the whole image in the window."""
        if self.image_shape is not None:
            h, w = self.image_shape
            self.view.setRange(QRectF(0, 0, w, h), padding=0.01)

    def image_rect(self) -> QRectF:
        h, w = self.image_shape or (0, 0)
        return QRectF(0, 0, w, h)

    # ----- overlays -----
    def clear_overlays(self) -> None:
        self.set_instances([], np.zeros((0, 4)), [], [])
        self.set_proposals(np.zeros((0, 4)))

    @property
    def crops(self) -> list:
        return self.predictions.crops

    @property
    def labels(self) -> overlay.LabelMap:
        return self.predictions.labels

    def visible_rect(self) -> QRectF:
        return self.view.viewRect()

    def set_instances(
        self,
        crops: Sequence,
        boxes: np.ndarray,
        colors: Sequence[tuple[int, int, int]] | np.ndarray,
        labels: Sequence[str],
    ) -> None:
        """Instances 0..N-1 (best first): mask crops, xyxy boxes, RGB colours (tuples or an (N,3) uint8 array),
        label texts (any sequence: read only for the boxes that get a label)."""
        h, w = self.image_shape or (0, 0)
        rgb = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        self.predictions.set(crops, rgb, h, w, self.visible_rect())
        self.layers["boxes"].set_boxes(boxes, rgb, labels, self.image_rect())
        self.hover_index = self._selected = -1
        self._update_highlight()

    def set_annotations(self, crops: Sequence, colors: Sequence[tuple[int, int, int]]) -> None:
        """The user's annotations (ground truth): outlines and a light fill in their category colours."""
        h, w = self.image_shape or (0, 0)
        self.annotations.set(crops, colors, h, w, self.visible_rect())

    def _refresh_detail(self) -> None:
        """After a zoom or pan: re-render huge overlays (and a huge image) for what is now on screen."""
        if not self.isVisible():  # closed: pyqtgraph has already deleted the scene's items
            return
        for layers in (self.predictions, self.annotations):
            if layers.needs_render(self.visible_rect()):
                layers.render(self.visible_rect())
        if self.image_detail.needs_render(self.visible_rect(), self.pixel_size()):
            self.image_detail.render(self.visible_rect(), self.pixel_size())

    def set_proposals(self, boxes: np.ndarray) -> None:
        self.layers["proposals"].set_rects(boxes, PROPOSAL_COLOR, self.image_rect())

    def set_layer_visible(self, name: str, visible: bool) -> None:
        self.layers[name].setVisible(visible)

    def set_mask_opacity(self, opacity: float) -> None:
        self.layers["masks"].setOpacity(opacity)

    def mask_rgba(self) -> np.ndarray:
        """The masks layer as full-image (H,W,4) uint8 (what is drawn; for tests)."""
        return self.predictions.full_rgba()

    # ----- highlight -----
    def set_selected(self, index: int) -> None:
        """Highlight instance ``index`` (-1: none) while the mouse is over none."""
        self._selected = index
        self._update_highlight()

    def _update_highlight(self) -> None:
        index = self.hover_index if self.hover_index >= 0 else self._selected
        item = self.layers["highlight"]
        self.layers["boxes"].set_highlighted(index)
        if not 0 <= index < len(self.crops) or not self.crops[index].mask.size:
            item.clear()
            return
        crop = self.crops[index]
        item.setImage(overlay.crop_rgba(crop.mask, (255, 255, 255), 90), autoLevels=False, levels=None)
        item.setRect(QRectF(crop.x0, crop.y0, crop.mask.shape[1], crop.mask.shape[0]))

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        point = self.view.mapSceneToView(scene_pos)
        if self.tool is not None and self.tool.hover(self, point):
            return
        index = self.labels.at(point.x(), point.y()) if self.layers["masks"].isVisible() else -1
        if index != self.hover_index:
            self.hover_index = index
            self._update_highlight()
            self.hovered.emit(index)

    def _on_mouse_clicked(self, event) -> None:  # noqa: ANN001
        if event.isAccepted() or event.button() != Qt.MouseButton.LeftButton:
            return  # a tool took it
        point = self.view.mapSceneToView(event.scenePos())
        self.clicked.emit(self.labels.at(point.x(), point.y()))  # -> Session.select -> set_selected

    # ----- tools -----
    def set_tool(self, tool: CanvasTool | None) -> None:
        if self.tool is not None:
            self.tool.deactivate(self)
        self.clear_tool_layers(keep_selection=True)
        self.tool = tool
        self.viewport().setCursor(tool.cursor if tool is not None else Qt.CursorShape.ArrowCursor)
        if tool is not None:
            tool.activate(self)

    def clear_tool_layers(self, keep_selection: bool = False) -> None:
        for name in TOOL_LAYERS:
            if keep_selection and name in ("selection", "shapes"):
                continue
            item = self.layers[name]
            item.clear()

    def keyPressEvent(self, event) -> None:  # noqa: ANN001, N802
        if self.tool is not None and self.tool.key(self, event):
            event.accept()
            return
        super().keyPressEvent(event)

    def image_to_widget(self, x: float, y: float) -> QPoint:
        """Image coordinates -> viewport pixel (what a mouse event on ``viewport()`` carries)."""
        return self.mapFromScene(self.view.mapViewToScene(QPointF(x, y)))

    def pixel_size(self) -> float:
        """Image pixels per screen pixel at the current zoom (for hit tolerances given in screen pixels)."""
        size = self.view.viewPixelSize()
        return float(max(size[0], size[1])) if size[0] > 0 else 1.0

    # ----- message over the view -----
    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self._place_message()

    def message_text(self) -> str:
        return self.message.text() if self.message.isVisible() else ""

    def _place_message(self) -> None:
        width = min(560, max(200, self.width() - 40))
        self.message.setFixedWidth(width)
        self.message.adjustSize()
        self.message.move((self.width() - width) // 2, max(10, (self.height() - self.message.height()) // 2))

    def hideEvent(self, event) -> None:  # noqa: ANN001, N802
        self._detail_timer.stop()
        super().hideEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802
        super().resizeEvent(event)
        message = getattr(self, "message", None)  # pyqtgraph resizes before __init__ is done
        if message is not None and message.isVisible():
            self._place_message()

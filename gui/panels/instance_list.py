"""The image's instances: the predictions shown and the annotations, marked (a "source" column), with
class, score and area; filtered by class; the selected one highlighted.

Bound to a Session (``bind``), it lists the shown predictions first (the work still to do), then the
annotations, and selects the row of the Session's selection; a row picked by the user selects that
prediction or annotation in the Session (``selected``: its prediction row, or -1 for an annotation).

A model/view table (issue 15, item 11): the rows are plain tuples in ``InstanceModel`` and an edit resets
the model, so the view draws only the rows on screen; with 5,000 annotations a rebuild of table items
took most of an edit's time on the GUI thread."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from engine.data import Instance
from engine.structures import InstanceMask
from gui.canvas.overlay import instance_colors
from gui.editing.masks import annotation_crops
from gui.panels.wheel_guard import guard_wheel
from gui.session.session import Session

ALL_CLASSES = "All classes"
PREDICTION, ANNOTATION = "prediction", "annotation"  # what the "source" column says


COLUMNS = ("class", "score", "area", "source")
ANNOTATION_COLOR = QColor(20, 110, 40)  # the source column of an annotation's row
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter

# class, score, area (in pixels, or the mask crop whose area it is: counted only for the rows drawn), RGB colour,
# source
Row = tuple[str, "float | None", "int | InstanceMask", tuple[int, int, int], str]


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


class AnnotationRows(Sequence):
    """The rows of an image's annotations (``Row``s), each made when asked for: the table asks only for the
    rows it draws, and an edit on an image of 5,000 annotations made all of them (``annotations`` and
    ``crops`` are read, never changed)."""

    def __init__(self, project, annotations: Sequence[Instance], crops: Sequence[InstanceMask]) -> None:  # noqa: ANN001
        self.project, self.annotations, self.crops = project, annotations, crops
        self.styles: dict[int | None, tuple] = {}  # per class

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, k):  # noqa: ANN001, ANN204 - an int (a slice gives a list)
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        instance = self.annotations[k]
        style = self.styles.get(instance.category_id)
        if style is None:
            style = self.styles[instance.category_id] = self.project.category_style(instance.category_id)
        color, name = style
        return (name, instance.score, self.crops[k], color, ANNOTATION)


class PredictionRows(Sequence):
    """The rows of the shown predictions, each made when asked for (as ``AnnotationRows``): per row its
    class name, score, mask crop, colour (an (N,3) uint8 array) and source."""

    def __init__(self, names: dict, labels: list, scores: list, masks: Sequence, shown: list, colors) -> None:  # noqa: ANN001
        self.names, self.labels, self.scores, self.masks, self.shown = names, labels, scores, masks, shown
        self.colors = colors

    def __len__(self) -> int:
        return len(self.shown)

    def __getitem__(self, k):  # noqa: ANN001, ANN204 - an int (a slice gives a list)
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        color = tuple(self.colors[k].tolist())
        return (self.names[self.labels[k]], self.scores[k], self.masks[self.shown[k]], color, PREDICTION)


class JoinedRows(Sequence):
    """The prediction rows, then the annotation rows, as one sequence (neither copied)."""

    def __init__(self, first: Sequence[Row], second: Sequence[Row]) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, k):  # noqa: ANN001, ANN204
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        n = len(self.first)
        return self.first[k] if k < n else self.second[k - n]


class InstanceModel(QAbstractTableModel):
    """The listed instances as rows of plain values; the texts and the colour swatch are made only for the
    rows the view draws."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: Sequence[Row] = []

    def set_rows(self, rows: Sequence[Row]) -> None:
        self.beginResetModel()
        self.rows = rows if isinstance(rows, JoinedRows) else list(rows)  # (a JoinedRows is never changed)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def text(self, row: int, column: int) -> str:
        name, score, area, _color, source = self.rows[row]
        if column == 0:
            return name
        if column == 1:
            return "" if score is None else f"{score:.3f}"
        if column == 2:
            return str(area if isinstance(area, int) else area.area)
        return source

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, column)
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return QColor(*self.rows[row][3])  # drawn as a swatch
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return int(RIGHT.value)
        if role == Qt.ItemDataRole.ForegroundRole and column == 3 and self.rows[row][4] == ANNOTATION:
            return ANNOTATION_COLOR
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None


class InstanceList(QWidget):
    selected = Signal(int)  # the picked prediction's row among those shown, -1 for none (or an annotation)
    filter_changed = Signal(str)  # class name, or "" for all

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.class_filter = QComboBox()
        self.class_filter.addItem(ALL_CLASSES)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)  # unwrapped, a long summary widened the dock and shrank the image view
        self.model = InstanceModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.annotations: list[Instance] = []  # the annotation rows' instances (after the predictions)
        self.predictions = 0  # how many rows are predictions (the first ones)
        self._session: Session | None = None
        self._built: tuple | None = None  # the inputs of the rows listed (``_inputs``), and their objects
        self._held: tuple = ()
        self._parts: tuple = ()  # the prediction and annotation rows listed, each with what it was made from
        self._quiet = False  # the selection is being set from the Session (or dropped by a reset), not picked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        header.setResizeContentsPrecision(0)  # column widths from the rows on screen, not from thousands of rows
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.class_filter)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._on_selection())
        self.class_filter.currentTextChanged.connect(self._on_filter)
        guard_wheel(self)

    def bind(self, session: Session) -> None:
        """List the Session's shown predictions and the image's annotations, select the Session's selection;
        a row the user picks selects its prediction or annotation in the Session."""
        self._session = session
        session.events.shown.connect(lambda _shown: self.show_prediction(session))
        session.events.image.connect(lambda _index: self.show_prediction(session))
        session.events.pixels.connect(lambda _image: self.show_prediction(session))
        session.events.record.connect(lambda row: row == session.index and self.show_prediction(session))
        session.events.selection.connect(self._show_selection)

        def classes(*_args: object) -> None:  # the model's, then the project's (the annotations') others
            project_names = session.project.category_names() if session.project else []
            self.set_classes([*session.class_names, *project_names])

        session.events.project.connect(classes)
        session.events.model.connect(classes)

    def show_prediction(self, session: Session) -> None:
        """The Session's shown predictions, then the image's annotations of the filtered class, one row each
        (class, score, area, source, colour swatch). An edit asks twice (the image's record changed, then the
        shown predictions were chosen again): each part of the rows is kept with what it was made from, so an
        ask makes again only the part whose inputs changed (the annotations', then the predictions' when a
        delete uncovers one), and one with the same inputs as the last only shows the selection again."""
        wanted = self.current_filter()
        key, held = self._inputs(session, wanted)
        if key == self._built:
            self._show_selection(session.selection)
            return
        prediction_part = self._prediction_rows(session, wanted)
        annotation_part = self._annotation_rows(session, wanted)
        rows, other_predictions, covered = prediction_part[1]
        annotation_rows, self.annotations, other_annotations = annotation_part[1]
        self.predictions = len(rows)
        self.set_instances(JoinedRows(rows, annotation_rows), (other_annotations, other_predictions), covered,
                           annotations=len(annotation_rows))  # fmt: skip
        self._built, self._held = key, held
        self._parts = (prediction_part, annotation_part)  # set_instances forgot them: the rows are these
        self._show_selection(session.selection)

    def _prediction_rows(self, session: Session, wanted: str) -> tuple:
        """(inputs, (rows, predictions of other classes, predictions matched)) of the shown predictions."""
        pred = session.prediction
        inputs = (id(pred), list(session.shown), tuple(session.class_names), wanted, pred)
        known = self._parts[0] if self._parts else None
        if known is not None and known[0][:4] == inputs[:4]:
            return known
        rows: Sequence[Row] = []
        other_predictions = covered = 0
        if pred is not None:
            # between a new prediction and its shown set (the image's state is marked "predicted" in between),
            # ``shown`` may still number the previous prediction's rows: those beyond this one wait for theirs
            shown = np.asarray(session.shown, dtype=np.int64).reshape(-1)
            shown = shown[shown < len(pred)]
            all_labels = np.asarray(pred.labels).reshape(-1)
            unique, counts = np.unique(all_labels, return_counts=True)
            names = {int(label): session.class_name(int(label)) for label in unique.tolist()}
            rows = PredictionRows(
                names, all_labels[shown].tolist(), pred.scores[shown].tolist(), pred.masks, shown.tolist(),
                instance_colors(pred.keys[shown]),
            )  # fmt: skip
            if wanted:
                other_predictions = sum(
                    n for label, n in zip(unique.tolist(), counts.tolist()) if names[label] != wanted
                )
            covered = len(pred) - len(rows) - other_predictions  # matched by an annotation (or rejected)
        return inputs, (rows, other_predictions, covered)

    def _annotation_rows(self, session: Session, wanted: str) -> tuple:
        """(inputs, (rows, their instances, annotations of other classes)) of the image's annotations."""
        project, index, record = session.project, session.index, session.record
        instances = record.instances if record is not None else None
        categories = tuple((c.id, c.name, tuple(c.color)) for c in project.dataset.categories) if project else ()
        inputs = (id(project), index, id(instances), categories, wanted, project, instances)
        known = self._parts[1] if self._parts else None
        if known is not None and known[0][:5] == inputs[:5]:
            return known
        rows: list[Row] | AnnotationRows = []
        listed: list[Instance] = []
        other_annotations = 0
        if project is not None and 0 <= index < len(project):
            styles: dict[int, tuple] = {}  # per class, not per instance
            annotations, crops = annotation_crops(project, index)  # those the canvas drew for this edit
            if not wanted:  # all of them: their rows are made when drawn (no loop over thousands per edit)
                return inputs, (AnnotationRows(project, annotations, crops), annotations, 0)
            for instance, crop in zip(annotations, crops, strict=True):
                style = styles.get(instance.category_id)
                if style is None:
                    style = styles[instance.category_id] = project.category_style(instance.category_id)
                color, name = style
                if wanted and name != wanted:
                    other_annotations += 1
                    continue
                listed.append(instance)
                rows.append((name, instance.score, crop, color, ANNOTATION))
        return inputs, (rows, listed, other_annotations)

    @staticmethod
    def _inputs(session: Session, wanted: str) -> tuple[tuple, tuple]:
        """What the rows are made from: the prediction and the shown rows, the image's instances (an edit
        gives the record a new list, never changes one in place), the classes' names and colours, the filter;
        objects by identity, and those objects (held so that their ids are not reused meanwhile)."""
        project, record = session.project, session.record
        instances = record.instances if record is not None else None
        categories = tuple((c.id, c.name, tuple(c.color)) for c in project.dataset.categories) if project else ()
        key = (
            id(session.prediction), list(session.shown), id(project), session.index, id(instances), categories,
            tuple(session.class_names), wanted,
        )  # fmt: skip
        return key, (session.prediction, project, instances)

    def set_classes(self, names: Sequence[str]) -> None:
        """The class names a filter can pick (the model's), keeping the current choice when possible."""
        current = self.class_filter.currentText()
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem(ALL_CLASSES)
        self.class_filter.addItems([n for n in dict.fromkeys(names) if n != "N/A"])
        index = self.class_filter.findText(current)
        self.class_filter.setCurrentIndex(max(index, 0))
        self.class_filter.blockSignals(False)
        if index < 0 and current != ALL_CLASSES:
            self.filter_changed.emit("")

    def current_filter(self) -> str:
        text = self.class_filter.currentText()
        return "" if text == ALL_CLASSES else text

    def set_instances(
        self,
        rows: Sequence[Row],
        hidden: tuple[int, int] = (0, 0),
        covered: int = 0,
        annotations: int | None = None,
    ) -> None:
        """rows: (class name, score or None, area in pixels or its mask, RGB colour, source) per instance; ``hidden``:
        the (annotations, predictions) of other classes than the filter's; ``covered``: predictions of the
        listed classes not listed because an annotation or a rejection matches them, or their class is one the
        folder lacks (hidden until the user chooses)."""
        self._built = None  # rows from elsewhere: the next show_prediction builds again
        self._parts = ()
        self._quiet = True  # a reset drops the selection; the Session's is shown again after
        self.model.set_rows(rows)
        self.table.clearSelection()
        self._quiet = False
        if annotations is None:  # (``annotations``: how many of the rows are, when the caller knows)
            annotations = sum(1 for row in rows if row[4] == ANNOTATION)
        text = f"{count(len(rows), 'instance')}: {count(annotations, 'annotation')}, "
        text += count(len(rows) - annotations, "prediction")
        if any(hidden):
            others = f"{count(hidden[0], 'annotation')}, {count(hidden[1], 'prediction')}"
            text += f" (hidden by the filter: {others} of other classes)"
        if covered:  # the panel cannot tell these apart: say all the reasons (a rejection is no match)
            text += f"; {count(covered, 'prediction')} hidden (matched by an annotation, rejected, or of a class"
            text += " the folder lacks)"
        self.summary.setText(text)

    def source(self, r: int) -> str:
        """What row ``r`` is: "prediction" or "annotation"."""
        return self.model.rows[r][4]

    def _show_selection(self, selection) -> None:  # noqa: ANN001 - gui.session.session.Selection
        """Select the row of the Session's selected prediction, else of its one selected annotation."""
        if selection.prediction >= 0 or len(selection.annotations) != 1:
            self.select(selection.prediction)
            return
        target = selection.annotations[0]
        row = next((k for k, instance in enumerate(self.annotations) if instance is target), None)
        self.select(-1 if row is None else self.predictions + row)

    def select(self, index: int) -> None:
        self._quiet = True  # the Session's selection shown: not picked by the user
        if 0 <= index < self.model.rowCount():
            self.table.selectRow(index)
            self.table.scrollTo(self.model.index(index, 0))
        else:
            self.table.clearSelection()
        self._quiet = False

    def row_count(self) -> int:
        return self.model.rowCount()

    def row(self, r: int) -> tuple[str, str, str]:
        """(class, score, area) of row ``r`` as shown (``source`` says whether it is an annotation)."""
        return tuple(self.model.text(r, c) for c in range(3))

    def _on_selection(self) -> None:
        if self._quiet:
            return
        rows = self.table.selectionModel().selectedRows()
        row = rows[0].row() if rows else -1
        if row >= self.predictions:  # an annotation: the Session selects it (as a click on its mask does)
            self.selected.emit(-1)
            if self._session is not None:
                self._session.select((self.annotations[row - self.predictions],))
            return
        self.selected.emit(row)
        if self._session is not None:
            self._session.select((), row)  # a prediction, or none

    def _on_filter(self, text: str) -> None:
        self.filter_changed.emit("" if text == ALL_CLASSES else text)
        if self._session is not None:  # the annotations follow the filter too (the shown predictions may not change)
            self.show_prediction(self._session)

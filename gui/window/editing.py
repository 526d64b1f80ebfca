"""The window's side of editing: wiring the Editor, the class list and the AutoSaver; image states,
the title's unsaved-edits star, saving (Ctrl+S), and what happens to unsaved edits on close."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox


class WindowEditing:
    """Mixed into MainWindow (uses its editor, saver, classes, images, trainer, project)."""

    def _connect_editing(self) -> None:
        editor, saver, classes = self.editor, self.saver, self.classes
        editor.changed.connect(self._redraw)
        editor.record_changed.connect(self._on_record_changed)
        editor.categories_changed.connect(self._on_categories_changed)
        editor.edited.connect(saver.edited)
        editor.message.connect(self.status_text.setText)
        editor.tool_changed.connect(lambda _name: self._update_edit_status())
        editor.selection_changed.connect(self._update_edit_status)
        editor.brush_changed.connect(lambda _radius: self._update_edit_status())
        self.instances.selected.connect(lambda i: editor.select([]) if i >= 0 and editor.selection else None)
        self.inference.box_mask_ready.connect(editor.on_box_mask)
        saver.failed.connect(self._on_save_failed)
        saver.saved.connect(self._on_saved)
        saver.dirty_changed.connect(lambda _dirty: self._update_title())
        self.overlays.hide_matched_check.toggled.connect(lambda _on: self._redraw())
        classes.chosen.connect(editor.set_category)  # relabels the selection, as digit keys do
        classes.add_requested.connect(editor.add_category)
        classes.rename_requested.connect(lambda cid, name: editor.edit_category(cid, name=name))
        classes.recolor_requested.connect(lambda cid, color: editor.edit_category(cid, color=color))

    def _mark_predicted(self, row: int) -> None:
        """The model has run on this image: its state says so (saved with the next edit, not by itself)."""
        record = self.project.records[row]
        if record.state == "not_run":
            record.state = "predicted"
        self.images.set_state(row, self.project.display_state(row))

    def _on_record_changed(self, row: int) -> None:
        self.images.set_state(row, self.project.display_state(row))
        self.trainer.refresh()

    def _on_categories_changed(self) -> None:
        self.classes.set_categories(self.editor.categories(), self.editor.category_id)
        self._update_edit_status()

    def _update_edit_status(self) -> None:
        editor = self.editor
        name = editor.category_name(editor.category_id) or "—"
        selected = f" · {len(editor.selection)} selected" if editor.selection else ""
        self.edit_status.setText(f"{editor.tool_name} · class {name} · brush {editor.brush_radius} px{selected}")

    def _update_title(self) -> None:
        name = self.project.root.name if self.project else ""
        star = "*" if self.saver.dirty else ""
        self.setWindowTitle(f"{star}{name} — Mask R-CNN Studio" if name else "Mask R-CNN Studio")

    def save(self) -> bool:
        """Ctrl+S: write the edits now."""
        if self.saver.flush():
            self.status_text.setText(f"Saved {self.saver.path}" if self.saver.path else "Nothing to save")
            return True
        return False

    def _on_save_failed(self, message: str) -> None:
        self.show_error(
            f"{message}\nYour edits are kept in memory; they are saved with the next edit or Ctrl+S.", scope="save"
        )

    def _on_saved(self, _path: str) -> None:
        self.hide_error("save")

    def save_or_discard(self) -> bool:
        """Before closing or opening another folder: True when the edits are on disk or the user lets them go."""
        if self.saver.flush():
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved edits",
            f"{self.saver.last_error}\n\nDiscard the unsaved edits?",
            QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Discard

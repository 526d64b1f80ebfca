"""TrainController: the Train panel, a training process and the Session, wired together.

Save first, start, plot the events, cancel; when a run ends, load the new model (through
``ModelLoader``: the app's own model-loading path, which re-predicts the image on screen) or show why it
failed.

Issue 13: a run from a model of other classes says, before it starts and when it ends, that the class layers are
renewed (bug 2); the Model panel lists the folder's runs, marked when cancelled or stopped, and deletes one after a
confirmation, never the model in use nor the run training (bug 8)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDockWidget, QMessageBox, QWidget

from engine.training.events import TrainEvent
from engine.training.subsets import subset_counts
from gui.session.protocols import EditStore, Messages, ModelLoader
from gui.session.session import Session
from gui.training.process import (
    COMMAND_FILE,
    TrainingRun,
    delete_run,
    new_run_folder,
    project_models,
    project_runs,
    resume_arguments,
    run_info,
    train_arguments,
    write_command,
)


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainController(QObject):
    def __init__(
        self,
        session: Session,
        panel: QWidget,  # gui.panels.train_panel.TrainPanel (not imported: the panels import gui.training)
        store: EditStore,
        messages: Messages,
        models: ModelLoader,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session, self.panel, self.store, self.messages, self.models = session, panel, store, messages, models
        self.run: TrainingRun | None = None
        self.kill_after_ms = 60_000
        self.last_outcome = ""
        self.note = ""  # what the run started said about the class layers ("" when they are kept)
        self._starting = (0, 0)  # the run's (total, done) iterations as it was launched
        self.model_panel: QWidget | None = None  # gui.panels.model_panel.ModelPanel, once bound
        panel.train_requested.connect(self.start)
        panel.cancel_requested.connect(self.cancel)
        panel.model_chosen.connect(models.load_weights)
        panel.resume_requested.connect(self.resume)
        for event in (session.events.project, session.events.record, session.events.model):
            event.connect(lambda *_: self.refresh())  # counts and the project's models follow

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    def refresh(self) -> None:
        """Image counts and the project's models (after opening a folder, an edit, a run)."""
        project = self.session.project
        counts = subset_counts(project.records if project else [])  # the trainer's rule: these images train
        self.panel.set_counts(counts["reviewed"], counts["annotated"])
        self.panel.set_models(project_models(project.root) if project else [], self.session.weights_path)
        if self.model_panel is not None:
            self.model_panel.set_runs(project_runs(project.root) if project else [], self.session.weights_path)

    # ----- the Model panel: runs, a new head (issue 13) -----
    def bind_model_panel(self, panel: QWidget) -> None:
        """The Model panel's list of runs (Use, Delete…) and its "Train a new head" button."""
        self.model_panel = panel
        panel.run_chosen.connect(self.models.load_weights)
        panel.run_delete_requested.connect(self.delete_run)
        panel.train_head_requested.connect(self.offer_new_head)
        self.refresh()

    def delete_run(self, model: str) -> bool:
        """Delete the run of ``model`` after the user confirms; not the model in use (choose another first) nor the
        run training now. True when deleted."""
        project = self.session.project
        if project is None:
            return False
        name = Path(model).parent.name
        if str(model) == self.session.weights_path:
            self.messages.show_error(
                f"Run {name} is the model in use: choose another model (Use), then delete this run", scope="action"
            )
            return False
        if self.running and Path(model).parent == self.run.out_dir:
            self.messages.show_error(f"Run {name} is training now: cancel it first", scope="action")
            return False
        answer = QMessageBox.question(
            self.panel,
            "Delete run",
            f"Delete run {name} and its files from the disk?\n{Path(model).parent}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        try:
            freed = delete_run(project.root, model)
        except (OSError, ValueError) as error:
            self.messages.show_error(f"Could not delete run {name}: {error}", scope="action")
            return False
        project.memory.forget_model(model)
        self.messages.show_status(f"Deleted run {name} ({freed / 1e6:.0f} MB freed)")
        self.refresh()
        return True

    def offer_new_head(self) -> None:
        """The Classes box's "Train a new head": the Train panel, starting from the current model, says that its
        class layers will be renewed for this folder's classes."""
        widget = self.panel.parentWidget()
        while widget is not None and not isinstance(widget, QDockWidget):
            widget = widget.parentWidget()
        if widget is not None:
            widget.show()
            widget.raise_()
        index = self.panel.start_from.findData(True)
        if index >= 0:
            self.panel.start_from.setCurrentIndex(index)
        self.refresh()
        note = self.class_layers_note()
        self.panel.status.setText(
            (note[0].upper() + note[1:] + ". " if note else "") + "Annotate (or accept) some instances of this "
            "folder's classes, then press Train."
        )

    def class_layers_note(self) -> str:
        """What a run from the current model will say about its class layers ("" when the classes agree): the model's
        own class names, read from its file, against the folder's."""
        project, weights = self.session.project, self.session.weights_path
        if project is None or not weights or not Path(weights).is_file():
            return ""
        from engine.checkpoint import read_info
        from engine.cli.train import class_layers_note

        try:
            model_classes = list(read_info(weights).class_names)
        except (OSError, ValueError):
            return ""
        data_classes = [c.name for c in sorted(project.dataset.categories, key=lambda c: c.id)]
        if sorted(model_classes) == sorted(data_classes) or not data_classes:
            return ""  # the same classes (in another order: the trainer reorders its layers)
        return class_layers_note(model_classes, data_classes)

    def start(self) -> bool:
        session, options = self.session, self.panel.options()
        project = session.project
        if project is None or self.running:
            return False
        if not self.store.ensure_file():
            self.messages.show_error(f"Training needs the edits on disk first. {self.store.last_error}")
            return False
        self.refresh()
        if options.subset == "reviewed" and not any(r.state == "reviewed" for r in project.records):
            self.messages.show_error(
                "No reviewed images yet: mark each image you checked reviewed (Ctrl+Return), "
                "or train on all annotated images."
            )
            return False
        if options.from_current and not session.weights_path:
            options.from_current = False
        self.note = self.class_layers_note() if options.from_current else ""
        out = new_run_folder(project.root)
        args = train_arguments(project.annotation_path(), out, session.weights_path, options)
        write_command(out, args)  # for a Resume of this run, should it stop before its end
        self._launch(out, args, options.config.iterations if options.epochs is None else 0)
        note = f" {self.note[0].upper()}{self.note[1:]}." if self.note else ""
        self.panel.status.setText(f"Starting… (models/{out.name}).{note}")
        self.messages.show_status(f"Training started.{note}")
        return True

    def _launch(self, out: Path, args: list[str], total: int, done: int = 0) -> None:
        self.run = TrainingRun(out, self, self.kill_after_ms)
        self.run.event.connect(self._on_event)
        self.run.ended.connect(self._on_ended)
        self.panel.plot.reset()
        self.panel.set_running(True)
        self.panel.set_starting(total, done)
        self._starting = (total, done)  # the bar's state again once a download before the start is over
        self.run.start(args)

    def resume(self, model: str) -> bool:
        """The Train panel's Resume: the stopped run of ``model`` continues in its own folder, with its own arguments
        (``python -m engine train ... --resume``); when it finishes, its model is loaded as any finished run's."""
        if self.running or self.session.project is None:
            return False
        args = resume_arguments(Path(model))
        if args is None:
            self.messages.show_error(
                f"Cannot resume {Path(model).parent.name}: it finished, or its training state or its options are "
                "not kept. Start a new run with Train."
            )
            return False
        if not self.store.ensure_file():
            self.messages.show_error(f"Training needs the edits on disk first. {self.store.last_error}")
            return False
        info = run_info(Path(model))
        self.note = ""
        self._launch(Path(model).parent, args, info.total, info.iteration)
        self.panel.status.setText(f"Resuming {info.name} at iteration {info.iteration} / {info.total or '?'}…")
        self.messages.show_status(f"Training resumed: {info.name}")
        return True

    def cancel(self) -> None:
        if self.running:
            self.run.cancel()
            self.panel.status.setText("Cancelling: the trainer stops before its next step…")

    def _on_event(self, event: TrainEvent) -> None:
        kind, panel = event.kind, self.panel
        if kind == "download":
            panel.set_download(event.bytes_done, event.bytes_total)
            total = f" / {event.bytes_total / 1e6:.0f}" if event.bytes_total else ""
            panel.status.setText(
                f"Downloading {event.message}: {event.bytes_done / 1e6:.0f}{total} MB (once: it is kept in the torch "
                f"hub cache, {Path(event.path).parent})"
            )
        elif kind == "start":
            panel.set_starting(*self._starting)
            images = f"{event.train_images} image{'s' if event.train_images != 1 else ''}"
            val = f", validating on {event.val_images}" if event.val_images else " (none for validation)"
            panel.status.setText(f"Training on {images}{val}; the first iteration comes after the start-up…")
        elif kind == "step":
            panel.plot.add_step(event.iteration, event.losses)
            panel.set_progress(event.iteration, event.total)
            panel.status.setText(
                f"iteration {event.iteration} / {event.total} · epoch {event.epoch:.1f} · "
                f"loss {event.losses.get('loss', float('nan')):.3f} · "
                f"{event.images_per_s:.2f} images/s · ETA {duration(event.eta_s)}"
            )
        elif kind == "validation":
            panel.plot.add_validation(event.iteration, event.metrics)
        elif kind in ("warning", "checkpoint") and event.message:
            panel.status.setText(event.message)
            if kind == "warning" and "class layers" in event.message:
                self.note = event.message  # the trainer's own word on it (the same rule)

    def _on_ended(self, outcome: str, message: str, path: str) -> None:
        self.last_outcome = outcome
        if outcome == "done" and self.run is not None:  # nothing left to resume: a finished run keeps its model only
            (self.run.out_dir / COMMAND_FILE).unlink(missing_ok=True)
        self.panel.set_running(False)
        self.panel.end_progress(outcome)
        if self.note:
            message += f" (the class layers were renewed: {self.note})"
        self.panel.status.setText(message)
        self.messages.show_status(message)
        if outcome == "done" and path:
            self.models.load_weights(path)  # -> model loaded -> the image on screen is predicted again
        elif outcome == "failed":
            self.messages.show_error(message)
        self.refresh()

    def shutdown(self) -> None:
        """Closing the window: a running trainer is killed (its last checkpoint stays on disk)."""
        if self.running:
            self.run.kill()
            self.run.wait()

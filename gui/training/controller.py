"""TrainController: the Train panel, a training process and the Session, wired together.

Save first, start, plot the events, cancel; when a run ends, load the new model (through
``ModelLoader``: the app's own model-loading path, which re-predicts the image on screen) or show why it
failed."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from engine.training.events import TrainEvent
from engine.training.subsets import subset_counts
from gui.session.protocols import EditStore, Messages, ModelLoader
from gui.session.session import Session
from gui.training.process import TrainingRun, new_run_folder, project_models, train_arguments


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
        panel.train_requested.connect(self.start)
        panel.cancel_requested.connect(self.cancel)
        panel.model_chosen.connect(models.load_weights)
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
        out = new_run_folder(project.root)
        args = train_arguments(project.annotation_path(), out, session.weights_path, options)
        self.run = TrainingRun(out, self, self.kill_after_ms)
        self.run.event.connect(self._on_event)
        self.run.ended.connect(self._on_ended)
        self.panel.plot.reset()
        self.panel.set_running(True)
        self.panel.set_progress(0, 1)
        self.panel.status.setText(f"Starting… (models/{out.name})")
        self.messages.show_status("Training started")
        self.run.start(args)
        return True

    def cancel(self) -> None:
        if self.running:
            self.run.cancel()
            self.panel.status.setText("Cancelling: the trainer stops before its next step…")

    def _on_event(self, event: TrainEvent) -> None:
        kind, panel = event.kind, self.panel
        if kind == "start":
            panel.status.setText(f"Training on {event.train_images} images, validating on {event.val_images}…")
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

    def _on_ended(self, outcome: str, message: str, path: str) -> None:
        self.last_outcome = outcome
        self.panel.set_running(False)
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

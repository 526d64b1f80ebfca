"""Retraining in a separate process: ``python -m engine train ... --events-jsonl`` under a QProcess.

The GUI thread only reads the process's output: one JSON object per line on stdout, read back into
engine.training.events.TrainEvent (a "start" event, then the loop's), an ``error: ...`` line on stderr
when it fails. The request is a TrainConfig (the trainer's one set of defaults, engine.config) written
as the flags that differ from them, plus what only the app decides (which images, start model, device).
Cancel creates the ``--cancel-file`` (the trainer stops before its next step, saves, says "cancelled"
and exits 0); if it has not stopped after ``kill_after_ms`` the process is killed. Each run writes into
its own ``<project>/models/<timestamp>/`` folder, which is what the Models list shows later.

What a run leaves there (engine.training.loop): one model file, float16 once the run has finished; a run stopped
before its end (cancelled, failed, killed) keeps its float32 model and training state, so that it can be resumed.
``project_runs`` describes each run for the model lists (finished, cancelled, stopped; resumable; size on disk) and
``delete_run`` removes one.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from engine import hub
from engine.cli.flags import config_arguments
from engine.config import AUGMENT_PRESETS, DEFAULT_EPOCHS, TrainConfig, augment_preset_name
from engine.devices import worker_threads
from engine.training.events import TrainEvent

MODELS_FOLDER = "models"
MODEL_FILE = "model.safetensors"
CANCEL_FILE = "cancel"
STDERR_KEEP = 20_000


@dataclass
class TrainRequest:
    """What the Train panel asks the trainer for: ``config`` (lr, batch size, augmentation, iterations when
    ``epochs`` is None) and what only the app decides."""

    config: TrainConfig = field(default_factory=TrainConfig)
    epochs: float | None = DEFAULT_EPOCHS  # passes over the images; None: config.iterations
    subset: str = "reviewed"  # engine.training.subsets.TRAIN_SUBSETS
    device: str = "auto"
    from_current: bool = True
    val_split: float = 0.2
    input_size: int = 0  # 0: the model's own
    max_size: int = 0
    threads: int = 0  # 0: engine.devices.worker_threads()
    extra: list[str] = field(default_factory=list)


def train_arguments(data: Path, out: Path, weights: str | None, request: TrainRequest) -> list[str]:
    """The command line after ``python``."""
    data, out = Path(data).resolve(), Path(out).resolve()  # the trainer runs in ``out``: no relative paths
    args = ["-m", "engine", "train", "--data", str(data), "--out", str(out), "--events-jsonl"]
    args += ["--cancel-file", str(out / CANCEL_FILE), "--subset", request.subset, "--device", request.device]
    config, defaults = request.config, TrainConfig()
    if request.epochs:
        args += ["--epochs", f"{request.epochs:g}"]
        config = config.replace(iterations=defaults.iterations)  # --epochs and --iters exclude each other
    args += config_arguments(config, defaults)
    preset = augment_preset_name(config.augment) or "flips"
    args += ["--augment", preset, *config_arguments(config.augment, AUGMENT_PRESETS[preset])]
    if request.from_current and weights:
        args += ["--weights", hub.absolute_unless_alias(weights)]
    if request.val_split > 0:
        args += ["--val-split", f"{request.val_split:g}"]
    if request.input_size:
        args += ["--input-size", str(request.input_size)]
    if request.max_size:
        args += ["--max-size", str(request.max_size)]
    args += ["--threads", str(request.threads or worker_threads())]
    return args + list(request.extra)


def new_run_folder(project_root: Path) -> Path:
    """<project>/models/<YYYYmmdd-HHMMSS> (a suffix keeps it new)."""
    base = Path(project_root) / MODELS_FOLDER / time.strftime("%Y%m%d-%H%M%S")
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    return folder


def project_models(project_root: Path) -> list[Path]:
    """The models trained in this project, newest first."""
    folder = Path(project_root) / MODELS_FOLDER
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*/{MODEL_FILE}"), key=lambda p: p.parent.name, reverse=True)


STATE_FILE = "train_state.safetensors"  # engine.training.loop.STATE (not imported: it brings torch)
COMMAND_FILE = "command.json"  # the trainer's arguments, kept so that a stopped run can be resumed with them


def write_command(out: Path, args: list[str]) -> None:
    """Keep the run's arguments in its folder: ``--resume`` continues a run only with the same options (the model is
    built from them before its saved state is loaded). Atomic; a failure only means no Resume later."""
    import json

    from engine.data.io.atomic import atomic_write_text

    try:
        atomic_write_text(Path(out) / COMMAND_FILE, json.dumps({"args": list(args)}, indent=1))
    except OSError:
        pass


def resume_arguments(model: Path) -> list[str] | None:
    """The arguments that continue the stopped run of ``model`` (its own, with ``--resume``), None when it cannot be
    resumed: finished, no training state, or started before its arguments were kept."""
    import json

    info = run_info(Path(model))
    if not info.can_resume:
        return None
    try:
        args = json.loads((Path(model).parent / COMMAND_FILE).read_text(encoding="utf-8"))["args"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return None
    return [a for a in args if a != "--resume"] + ["--resume"]


@dataclass(frozen=True)
class RunInfo:
    """One run of the project as the model lists show it."""

    model: Path  # its model file
    iteration: int = 0
    total: int = 0  # the iterations it was asked for (0: unknown)
    outcome: str = "done"  # "done", "cancelled", "stopped" (failed or killed before its end), "unreadable"
    resumable: bool = False  # its training state is kept
    size: int = 0  # bytes on disk, every file of its folder

    @property
    def can_resume(self) -> bool:
        """Stopped before its end with its training state kept, and its arguments known (the Train panel's Resume)."""
        stopped = self.outcome in ("cancelled", "stopped")
        return stopped and self.resumable and (self.model.parent / COMMAND_FILE).is_file()

    @property
    def name(self) -> str:
        return self.model.parent.name

    def label(self, in_use: bool = False, size: bool = True) -> str:
        """'20261202-131500  cancelled at 12 / 40  62 MB  (in use)', '20261202-140000  40 iterations  62 MB': every
        run's file is model.safetensors, so a run is told by its folder (its date and time) and how far it got."""
        parts = [self.name]
        if self.outcome == "cancelled":
            parts.append(f"cancelled at {self.iteration} / {self.total or '?'}")
        elif self.outcome == "stopped":
            parts.append(f"stopped at {self.iteration} / {self.total or '?'}")
        elif self.outcome == "unreadable":
            parts.append("unreadable")
        elif self.iteration:
            parts.append(f"{self.iteration} iteration{'s' if self.iteration != 1 else ''}")
        if size:
            parts.append(f"{self.size / 1e6:.0f} MB")
        return "  ".join(parts) + ("  (in use)" if in_use else "")


def run_info(model: Path) -> RunInfo:
    """A run's model file read (its header only): how far it got, how it ended, what it takes on disk."""
    from engine.checkpoint import read_info  # (torch: loaded by the app anyway, not by importing this module)

    folder = model.parent
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    resumable = (folder / STATE_FILE).is_file()
    try:
        extra = read_info(model).extra
    except (OSError, ValueError):  # WeightsError is a ValueError
        return RunInfo(model, outcome="unreadable", resumable=resumable, size=size)
    iteration = int(extra.get("iteration", 0) or 0)
    total = int((extra.get("train_config") or {}).get("iterations", 0) or 0)
    stopped = extra.get("stopped", "")
    if stopped == "cancelled":
        outcome = "cancelled"
    elif stopped or (total and iteration < total):
        outcome = "stopped"
    else:
        outcome = "done"
    return RunInfo(model, iteration, total, outcome, resumable, size)


def project_runs(project_root: Path) -> list[RunInfo]:
    """The project's runs, newest first, each described (``run_info``)."""
    return [run_info(path) for path in project_models(project_root)]


def delete_run(project_root: Path, model: str | Path) -> int:
    """Delete the run folder of ``model`` (a run of this project: ``<project>/models/<run>/``); returns the bytes
    freed. A path outside the project's models folder is a ValueError: nothing else is ever deleted."""
    folder = Path(model).resolve().parent
    runs = (Path(project_root) / MODELS_FOLDER).resolve()
    if folder.parent != runs:
        raise ValueError(f"{model} is not a run of this project ({runs})")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder)
    return size


def error_line(stderr: str) -> str:
    """The trainer's ``error: ...`` line, else the last non-empty line (a traceback's exception)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else ""


class TrainingRun(QObject):
    """One training process. ``event`` carries each TrainEvent; ``ended`` (outcome, message, model path)
    with outcome "done", "cancelled" or "failed" comes once, after the process has exited."""

    event = Signal(object)  # TrainEvent
    ended = Signal(str, str, str)

    def __init__(self, out_dir: Path, parent: QObject | None = None, kill_after_ms: int = 60_000) -> None:
        super().__init__(parent)
        self.out_dir = Path(out_dir)
        self.kill_after_ms = kill_after_ms
        self.events: list[TrainEvent] = []
        self.stderr = ""
        self.cancel_requested = False
        self._stdout = b""
        self._finished = False
        self.process = QProcess(self)
        self.process.setWorkingDirectory(str(self.out_dir))
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.kill)

    def start(self, args: list[str], program: str = sys.executable) -> None:
        self.process.start(program, args)

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """Ask the trainer to stop before its next step (it keeps a checkpoint); kill if it does not."""
        if not self.running or self.cancel_requested:
            return
        self.cancel_requested = True
        (self.out_dir / CANCEL_FILE).touch()
        self._kill_timer.start(self.kill_after_ms)

    def kill(self) -> None:
        if self.running:
            self.process.kill()

    def wait(self, timeout_ms: int = 5000) -> None:
        if self.running:
            self.process.waitForFinished(timeout_ms)

    # ----- output -----
    def _read_stdout(self) -> None:
        self._stdout += bytes(self.process.readAllStandardOutput())
        *lines, self._stdout = self._stdout.split(b"\n")
        for line in lines:
            self._parse(line)

    def _parse(self, line: bytes) -> None:
        event = TrainEvent.from_json(line)
        if event is not None:  # else not an event (a library printed something)
            self.events.append(event)
            self.event.emit(event)

    def _read_stderr(self) -> None:
        self.stderr = (self.stderr + bytes(self.process.readAllStandardError()).decode(errors="replace"))[-STDERR_KEEP:]

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._end("failed", f"Training could not start: {self.process.errorString()}", "")

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        if self._stdout.strip():
            self._parse(self._stdout)
            self._stdout = b""
        kinds = [e.kind for e in self.events]
        model = self.out_dir / MODEL_FILE
        path = str(model) if model.is_file() else ""
        if exit_status == QProcess.ExitStatus.NormalExit and exit_code == 0 and "done" in kinds:
            self._end("done", "Training finished", path)
        elif exit_status == QProcess.ExitStatus.NormalExit and exit_code == 0 and "cancelled" in kinds:
            self._end("cancelled", "Training cancelled; its model so far is kept (and its state, to resume)", path)
        elif self.cancel_requested:
            self._end("cancelled", "Training stopped (killed after Cancel)", path)
        else:
            line = error_line(self.stderr) or f"the trainer exited with status {exit_code}"
            self._end("failed", f"Training failed: {line}", path)

    def _end(self, outcome: str, message: str, path: str) -> None:
        if self._finished:
            return
        self._finished = True
        cancel = self.out_dir / CANCEL_FILE
        if cancel.exists():
            cancel.unlink()
        self.ended.emit(outcome, message, path)

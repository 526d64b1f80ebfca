"""What is open: a folder (or one image) read through ``engine.data.read_dataset``, with image states.

Qt-free. States shown in the image list: "not_run", "predicted" (by the model, in this session or
saved so), "annotated" (it holds instances that train: accepted, drawn, edited or read from a file),
"reviewed" (a person said so: Ctrl+Return; no edit sets it), "error" (could not be read). Edits are
saved to ``annotation_path`` (COCO): the COCO file the project was read from, else ``annotations.json``
in the folder.

A project remembers its model (issue 13, bug 2: the model did not follow the project): the last one trained or
chosen for the folder, and what the user chose to do with a model whose classes are not the folder's, in
``<folder>/models/project.json`` beside the runs (a path under the folder is stored relative to it, so the folder
can move). The file is the project's, not the app's settings: another machine opening the folder finds it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data import Dataset, DatasetError, ImageRecord, Instance, read_dataset
from engine.data.io.images import is_image_file
from engine.structures import InstanceMask
from engine.training.subsets import is_annotated

ANNOTATION_FILE = "annotations.json"
MEMORY_FILE = Path("models") / "project.json"  # the project's model and class choices (``ProjectMemory``)
CLASS_MODES = ("undecided", "matching", "map", "add")  # what to do with a model's classes the folder lacks
CROP_CACHE_LIMIT = 50_000  # decoded crops kept (all images); more and those of other images are dropped


@dataclass
class Project:
    root: Path
    dataset: Dataset
    paths: list[str]
    states: list[str]
    warnings: list[str] = field(default_factory=list)
    start_index: int = 0
    rejected: dict[int, list[InstanceMask]] = field(default_factory=dict)  # per image (kept: gui/session/rejections.py)
    _crops: dict[int, tuple[Instance, InstanceMask]] = field(default_factory=dict)
    mask_errors: list[str] = field(default_factory=list)  # masks that could not be decoded, not yet reported
    _crop_limit: int = CROP_CACHE_LIMIT
    # annotations_and_crops' last answer: (the instances list it was made for, annotations, crops)
    _last_crops: tuple[list, list, list] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> Project:
        """A folder, an annotation .json or an image file (its folder opens, with the image selected)."""
        try:
            path = Path(path).expanduser().resolve()
        except RuntimeError as exc:  # Python 3.11's Path.resolve: "Symlink loop from ..."
            raise DatasetError(path, "is a symbolic link that leads round in a loop; check the link") from exc
        except OSError as exc:
            raise DatasetError(path, f"cannot be resolved ({exc})") from exc
        if path.is_file() and is_image_file(path):
            project = cls._open_image(path)
        else:
            project = cls.from_dataset(read_dataset(path))
        project.load_rejections()
        return project

    def load_rejections(self) -> None:
        """The rejected predictions kept with the project (gui/session/rejections.py; read on the opener thread)."""
        from gui.session.rejections import load_rejections

        sizes = [(record.height, record.width) for record in self.records]
        self.rejected = load_rejections(self.root, self.paths, sizes)

    @classmethod
    def from_dataset(cls, dataset: Dataset, start_index: int | None = None) -> Project:
        """``start_index`` None: the first image still to annotate (where the work stopped), else the first."""
        paths = [str(dataset.image_path(record)) for record in dataset.images]
        states = [initial_state(record) for record in dataset.images]
        if start_index is None:
            todo = [i for i, state in enumerate(states) if state not in ("annotated", "reviewed")]
            start_index = todo[0] if todo and len(todo) < len(states) else 0
        return cls(dataset.root, dataset, paths, states, list(dataset.warnings), start_index)

    @classmethod
    def _open_image(cls, image: Path) -> Project:
        try:
            dataset = read_dataset(image.parent)
        except DatasetError:
            dataset = None
        if dataset is not None:
            project = cls.from_dataset(dataset)
            if str(image) in project.paths:
                project.start_index = project.paths.index(str(image))
                return project
        from engine.data import image_size

        width, height = image_size(image)  # raises ImageLoadError with a clear message
        record = ImageRecord(str(image), width, height)
        return cls.from_dataset(Dataset(image.parent, [record], []))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def records(self) -> list[ImageRecord]:
        return self.dataset.images

    def category_names(self) -> list[str]:
        return [c.name for c in self.dataset.categories]

    def annotation_path(self) -> Path:
        """Where edits are saved: the COCO file this project came from, else <folder>/annotations.json."""
        source = self.dataset.source_path
        if self.dataset.source_format == "coco" and source is not None:
            return Path(source)
        return self.root / ANNOTATION_FILE

    def display_state(self, index: int) -> str:
        return display_state(self.records[index])

    def annotations(self, index: int) -> list[Instance]:
        """The user's instances of image ``index`` (what the annotation layer shows and the tools edit)."""
        return [instance for instance in self.records[index].instances if instance.origin != "predicted"]

    def crop(self, index: int, instance: Instance) -> InstanceMask:
        """An instance's mask as a crop, decoded once per instance object (edits make new objects)."""
        cached = self._crops.get(id(instance))
        if cached is not None and cached[0] is instance:
            return cached[1]
        record = self.records[index]
        try:
            crop = crop_of(instance.decode_mask(record.height, record.width))
        except Exception as exc:  # noqa: BLE001 - a mask the reader let through must not stop the image showing
            crop = InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))  # empty: not drawn, matched or selectable
            name = Path(record.path).name
            which = f"id {instance.id}" if instance.id is not None else "an annotation"
            self.mask_errors.append(
                f"The mask of {which} on {name} could not be decoded ({type(exc).__name__}: {exc}); it is not shown"
            )
        self._store_crop(record, instance, crop)
        return crop

    def annotations_and_crops(self, index: int) -> tuple[list[Instance], list[InstanceMask]]:
        """Image ``index``'s annotations and their crops, in order (read-only lists).

        After an edit the canvas, the matching of predictions and the instance list each need them: 5,000
        crop look-ups each. An edit gives the record a new instances list (never changes one in place), so the
        lists made for that instances list object are handed out again until the next edit."""
        instances = self.records[index].instances
        if self._last_crops is not None and self._last_crops[0] is instances:
            return self._last_crops[1], self._last_crops[2]
        annotations, crops = [], []
        cache = self._crops  # (self.crop may prune it into a new dict: this one's entries stay right)
        for instance in instances:  # one pass, the cached crop taken inline: 5,000 method calls cost ~5 ms
            if instance.origin == "predicted":
                continue
            annotations.append(instance)
            cached = cache.get(id(instance))
            crops.append(cached[1] if cached is not None and cached[0] is instance else self.crop(index, instance))
        self._last_crops = (instances, annotations, crops)
        return annotations, crops

    def remember_crop(self, index: int, instance: Instance, crop: InstanceMask) -> None:
        """The crop an edit made ``instance`` from, so that it is not decoded back from its full-image RLE
        (~25 ms at 3000x3000, ~0.3 s at 10,000 x 10,000 each). ``crop`` must lie inside the image."""
        self._store_crop(self.records[index], instance, crop)

    def _store_crop(self, record: ImageRecord, instance: Instance, crop: InstanceMask) -> None:
        if len(self._crops) >= self._crop_limit:
            self._prune_crops(record)
        self._crops[id(instance)] = (instance, crop)

    def _prune_crops(self, record: ImageRecord) -> None:
        """Keep the crops of ``record``'s instances only (the image being edited). Were it simply cleared,
        an image with more instances than the limit would decode all of them again on every redraw; when
        that image alone fills the cache, the limit grows instead (pruning stays rare: amortised O(1))."""
        keep = {id(instance) for instance in record.instances}
        self._crops = {key: value for key, value in self._crops.items() if key in keep}
        self._crop_limit = max(CROP_CACHE_LIMIT, 2 * len(self._crops))

    def annotation_crops(self, index: int, height: int, width: int) -> tuple[list[InstanceMask], list, list[str]]:
        """The user's (non-empty) instances of image ``index`` as crops, their category colours and names."""
        crops, colors, names = [], [], []
        for instance in self.annotations(index):
            crop = self.crop(index, instance)
            if not crop.mask.size:
                continue
            crops.append(crop)
            color, name = self.category_style(instance.category_id)
            colors.append(color)
            names.append(name)
        return crops, colors, names

    @property
    def memory(self) -> ProjectMemory:
        return ProjectMemory(self.root)

    def category_style(self, category_id: int) -> tuple[tuple[int, int, int], str]:
        try:
            category = self.dataset.category_by_id(category_id)
        except KeyError:
            return (255, 255, 255), str(category_id)
        return category.color, category.name


class ProjectMemory:
    """``<folder>/models/project.json``: {"model": path (relative to the folder when under it) or a hub alias,
    "classes": {model key: {"mode": one of CLASS_MODES, "map": {model class: folder class or ""}}}}. Reading a
    missing or damaged file gives nothing remembered; a folder that cannot be written (read-only) remembers nothing
    (``remember_*`` return False) and the app goes on."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / MEMORY_FILE

    def _read(self) -> dict:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return document if isinstance(document, dict) else {}

    def _write(self, document: dict) -> bool:
        from engine.data.io.atomic import atomic_write_text

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(document, indent=1, sort_keys=True))
        except OSError:
            return False
        return True

    def _key(self, model: str) -> str:
        """How a model path is stored: relative to the folder when inside it, else as given (absolute or alias)."""
        try:
            return Path(model).resolve().relative_to(self.root.resolve()).as_posix()
        except (ValueError, OSError, RuntimeError):
            return str(model)

    def _path(self, key: str) -> str:
        path = Path(key)
        if path.is_absolute():
            return key
        if (self.root / path).exists() or len(path.parts) > 1:
            return str((self.root / path).resolve())
        return key  # an alias such as "coco"

    def model(self) -> str:
        """The model remembered for this folder (absolute path or alias), "" for none."""
        key = self._read().get("model")
        return self._path(key) if isinstance(key, str) and key else ""

    def remember_model(self, model: str) -> bool:
        document = self._read()
        key = self._key(model)
        if document.get("model") == key:
            return True
        document["model"] = key
        return self._write(document)

    def forget_model(self, model: str) -> bool:
        """A run deleted: the folder no longer has that model (nor its class choice)."""
        document = self._read()
        key = self._key(model)
        changed = document.pop("model", None) if document.get("model") == key else None
        classes = document.get("classes")
        if isinstance(classes, dict) and key in classes:
            classes.pop(key)
            changed = True
        return self._write(document) if changed else True

    def class_choice(self, model: str) -> tuple[str, dict[str, str]]:
        """(mode, map) the user chose for ``model``'s classes in this folder; ("undecided", {}) when none."""
        entry = (self._read().get("classes") or {}).get(self._key(model))
        if not isinstance(entry, dict) or entry.get("mode") not in CLASS_MODES:
            return "undecided", {}
        mapping = entry.get("map") if isinstance(entry.get("map"), dict) else {}
        return entry["mode"], {str(k): str(v) for k, v in mapping.items()}

    def remember_class_choice(self, model: str, mode: str, mapping: dict[str, str]) -> bool:
        document = self._read()
        classes = document.get("classes") if isinstance(document.get("classes"), dict) else {}
        classes[self._key(model)] = {"mode": mode, "map": dict(mapping)}
        document["classes"] = classes
        return self._write(document)


@dataclass(frozen=True)
class ClassStatus:
    """The model's classes against the folder's, and what the user chose (the Model panel's Classes box)."""

    model_names: tuple[str, ...] = ()
    project_names: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()  # the model's classes the folder lacks (foreign_classes)
    mode: str = "undecided"  # CLASS_MODES
    mapping: tuple[tuple[str, str], ...] = ()  # (model class, folder class or "") for map mode
    hidden: int = 0  # predictions of the image on screen hidden for their class

    @property
    def mismatch(self) -> bool:
        return bool(self.foreign)

    def shown_name(self, name: str) -> str:
        """The class a prediction of model class ``name`` counts as in this folder ("" for none: hidden)."""
        if name not in self.foreign or self.mode == "add":
            return name
        if self.mode == "map":
            return dict(self.mapping).get(name, "")
        return ""

    def describe(self) -> str:
        """One or two sentences for the panel and the status line ("" when the classes agree)."""
        if not self.foreign:
            return ""
        theirs, ours = ", ".join(self.foreign), ", ".join(self.project_names)
        text = f"The model's classes {theirs} are not this folder's ({ours})."
        if self.mode == "undecided":
            text += " Their predictions are hidden until you choose: map them, show only this folder's classes, add"
            text += " them, or train a new head."
        elif self.mode == "matching":
            text += " Only this folder's classes are shown."
        elif self.mode == "map":
            pairs = [f"{a} \u2192 {b}" for a, b in self.mapping if b]
            text += f" Mapped: {', '.join(pairs) or 'none'}; the others are hidden."
        else:
            text += " They are shown, and accepting one adds its class to this folder."
        if self.hidden:
            text += f" {self.hidden} prediction{'s' if self.hidden != 1 else ''} hidden on this image."
        return text


def foreign_classes(model_names: list[str], project_names: list[str]) -> list[str]:
    """The model's classes the folder does not have ([] when the folder has no classes yet: the model's become its
    own, the usual start)."""
    if not project_names:
        return []
    return [name for name in model_names if name not in project_names]


def model_name(path: str) -> str:
    """A model as the user is told of it: a run's file (every run's is ``models/<run>/model.safetensors``, so the file
    name told nothing apart) as "run <run folder> of <folder>", any other file by its name, an alias as it is."""
    if not path:
        return ""
    file = Path(path)
    if file.name == "model.safetensors" and file.parent.parent.name == MEMORY_FILE.parent.name:
        return f"run {file.parent.name} of {file.parent.parent.parent.name or file.parent.parent.parent}"
    return file.name


def model_note(project: Project | None, weights_path: str) -> str:
    """What the Model panel says about the folder's model: whether the model in use is the folder's own."""
    if project is None:
        return ""
    remembered = project.memory.model()
    using = model_name(weights_path) if weights_path else "none"
    if not remembered:
        return f"This folder has no model of its own yet; in use: {using} (train one, or choose one)"
    if remembered == weights_path:
        return "This folder's model"
    if Path(remembered).is_absolute() and not Path(remembered).exists():
        return f"This folder's model {model_name(remembered)} is missing; in use: {using}"
    return f"This folder's model is {model_name(remembered)}; in use: {using}"


def display_state(record: ImageRecord) -> str:
    if record.state == "reviewed":
        return "reviewed"
    if is_annotated(record):  # the trainer's rule (engine.training.subsets): "annotated" images are what trains
        return "annotated"
    return record.state


def initial_state(record: ImageRecord) -> str:
    return display_state(record)


def crop_of(mask: np.ndarray) -> InstanceMask:
    """Full (H,W) bool -> the crop around its pixels (an empty crop when there are none)."""
    rows, cols = np.any(mask, 1), np.any(mask, 0)
    if not rows.any():
        return InstanceMask(0, 0, np.zeros((0, 0), dtype=bool))
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return InstanceMask(int(x0), int(y0), mask[y0 : y1 + 1, x0 : x1 + 1].copy())

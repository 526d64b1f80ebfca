"""``python -m engine convert``: any dataset we read -> a COCO instances JSON or a folder of labelme JSONs."""

from __future__ import annotations

from pathlib import Path

from engine.cli.common import UserError, existing_path, make_parser, run, warn
from engine.data import read_dataset, write_coco, write_labelme


def build_parser():  # noqa: ANN201
    parser = make_parser(
        "convert",
        "Convert annotations: COCO or labelme JSON, Data Science Bowl, label-image or mask folders "
        "-> COCO JSON or labelme folder.",
    )
    parser.add_argument("--from", dest="source", required=True, help="dataset to read (a JSON file or a folder)")
    parser.add_argument("--to", dest="target", required=True, help="a .json file (COCO) or a folder (labelme)")
    parser.add_argument(
        "--format",
        choices=("coco", "labelme"),
        help="output format (default: coco when --to ends in .json, else labelme)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="labelme only: polygon simplification in pixels when masks are traced (default: 0, exact outlines)",
    )
    return parser


def output_format(target: Path, requested: str | None) -> str:
    """'coco' | 'labelme' for ``--to target`` (see --format's help)."""
    if requested:
        return requested
    return "coco" if target.suffix.lower() == ".json" else "labelme"


def convert_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    source = existing_path(args.source, "--from")
    target = Path(args.target).expanduser()
    fmt = output_format(target, args.format)
    if fmt == "coco":
        if target.is_dir():
            target = target / "annotations.json"
        elif target.suffix.lower() != ".json":
            raise UserError(f"--to {target}: a COCO file needs a .json name (or give an existing folder)")
    elif target.suffix.lower() == ".json" or target.is_file():
        raise UserError(f"--to {target}: labelme output is a folder of JSON files; give a folder path")
    dataset = read_dataset(source)
    planned = [target] if fmt == "coco" else _labelme_names(dataset, target)
    overwritten = _sources_among(source, planned)
    if overwritten:
        raise UserError(
            f"--to {args.target} would write over {len(overwritten)} file(s) of the --from dataset "
            f"({overwritten[0].name}{', ...' if len(overwritten) > 1 else ''}): converting in place rewrites them and "
            "drops what the output cannot hold (such as labelme's __ignore__ shapes); give another --to"
        )
    for line in dataset.warnings:
        warn(line)
    instances = dataset.num_instances
    if fmt == "coco":
        write_coco(dataset, target)
        written = f"{target}"
    else:
        crowd = sum(inst.iscrowd for image in dataset.images for inst in image.instances)
        if crowd:
            warn(f"{crowd} crowd region(s) are not written: labelme has no crowd regions")
            instances -= crowd
        files = write_labelme(dataset, target, args.tolerance)
        written = f"{len(files)} labelme file(s) in {target}"
    print(
        f"{len(dataset.images)} image(s), {instances} instance(s), {len(dataset.categories)} "
        f"categor{'y' if len(dataset.categories) == 1 else 'ies'} ({dataset.source_format}) -> {written}"
    )
    return 0


def _labelme_names(dataset, folder: Path) -> list[Path]:  # noqa: ANN001 - engine.data.Dataset
    """Every file write_labelme may write into ``folder`` for ``dataset`` (both of its names for each image)."""
    names = []
    for image in dataset.images:
        stem = Path(image.path).stem
        names += [folder / f"{stem}.json", folder / f"{stem}_{image.id}.json"]
    return names


def _sources_among(source: Path, planned: list[Path]) -> list[Path]:
    """The files of ``planned`` that exist and are the --from file or lie in the --from folder."""
    source = source.resolve()
    hits = []
    for path in planned:
        if path.is_file():
            resolved = path.resolve()
            if resolved == source or (source.is_dir() and source in resolved.parents):
                hits.append(path)
    return hits


def main(argv: list[str] | None = None) -> int:
    """``python -m engine convert ...`` -> exit status."""
    return run(convert_command, argv)

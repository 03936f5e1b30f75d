"""``npppo export``: a trained policy out of npppo, as a C99 header and source or as an ONNX graph.

    npppo export runs/quick --format c --out policy_c [--name pendulum]   # policy_c/pendulum.h, .c
    npppo export runs/quick/model.npz --format onnx --out pendulum.onnx   # pip install 'npppo[onnx]'

    from npppo.export import export
    export("runs/quick", "c", "policy_c")                                 # -> [Path(...h), Path(...c)]

SOURCE is a run folder (its model.npz, else its checkpoint.npz), a model.npz or a checkpoint.npz.
Either export computes the action that :mod:`npppo.inference` computes, observation normalisation,
clip and squash included (docs/embedding.md; the tests compare them on 1,000 observations). Every
file is generated in memory first, then written atomically, so a failure writes nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from npppo.errors import NpppoError
from npppo.export.model import ExportModel, check_c_name, default_name, load_model

FORMATS = ("c", "onnx")

__all__ = ["FORMATS", "ExportModel", "export", "load_model"]


def export(source: str | Path, format: str, out: str | Path | None = None, name: str | None = None,
           force: bool = False) -> list[Path]:
    """Write the policy in ``source`` in ``format`` ("c" or "onnx"); returns the files written.

    ``out``: for "c" a folder (default: the current one) that receives ``NAME.h`` and ``NAME.c``; for
    "onnx" the file (default ``NAME.onnx``). ``name``: a C identifier, by default the preset's name
    (``policy`` when no preset matches). Existing files are replaced only with ``force``.
    """
    if format not in FORMATS:
        raise NpppoError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    if name is not None:
        check_c_name(name)
    if format == "onnx":
        from npppo.export import onnx as onnx_export

        onnx_export.require_onnx()  # before reading anything: the missing extra is the first thing to say
    model = load_model(source)
    name = name or default_name(model.preset)
    if format == "c":
        from npppo.export import c as c_export

        folder = Path(out) if out is not None else Path(".")
        if folder.exists() and not folder.is_dir():
            raise NpppoError(f"--out {folder} is a file: --format c writes NAME.h and NAME.c into a folder")
        contents = {folder / file: text for file, text in c_export.files(model, name).items()}
    else:
        contents = {Path(out) if out is not None else Path(f"{name}.onnx"): onnx_export.files(model)}
    existing = [str(path) for path in contents if path.exists()]
    if existing and not force:
        raise NpppoError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: "
                         "pass --force to replace, or choose another --out")
    return _write_all(contents)


def _write_all(contents: dict[Path, bytes]) -> list[Path]:
    """Write every file to a temporary name beside it, then rename them all: all or nothing."""
    temporary: list[tuple[str, Path]] = []
    try:
        for path, data in contents.items():
            if path.is_dir():
                raise NpppoError(f"{path} is a folder: give a file name for --out")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temporary.append((tmp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in temporary:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temporary:
            Path(tmp).unlink(missing_ok=True)
    return list(contents)


# ---------------------------------------------------------------------------------------- command line
def add_command(commands, formatter) -> None:
    """The ``export`` subcommand of the ``npppo`` parser (``commands`` = its subparsers)."""
    parser = commands.add_parser(
        "export", formatter_class=formatter, help="a trained policy as C99 source or ONNX",
        description="Write a trained policy (observation normalisation, clip and squash included) as a\n"
                    "dependency-free C99 header and source, or as an ONNX graph. See docs/embedding.md.",
        epilog="examples:\n"
               "  npppo export runs/quick --format c --out policy_c          # policy_c/<preset>.h and .c\n"
               "  npppo export runs/quick --format c --out policy_c --name pendulum\n"
               "  npppo export runs/quick/model.npz --format onnx --out pendulum.onnx   "
               "# pip install 'npppo[onnx]'",
    )
    parser.add_argument("source", type=Path, metavar="SOURCE",
                        help="a run folder (its model.npz, else checkpoint.npz), a model.npz or a checkpoint.npz")
    parser.add_argument("--format", required=True, metavar="|".join(FORMATS),
                        help="c: NAME.h and NAME.c into the --out folder; onnx: one .onnx file")
    parser.add_argument("--out", type=Path, metavar="PATH",
                        help="c: a folder (default: the current one); onnx: a file (default: NAME.onnx)")
    parser.add_argument("--name", metavar="NAME",
                        help="a C identifier naming the files and prefixing the functions (default: the preset's "
                             "name, or policy)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")


def command(args: argparse.Namespace) -> int:
    """``npppo export``: prints what it wrote."""
    written = export(args.source, args.format, args.out, args.name, args.force)
    print(f"npppo: wrote {', '.join(str(path) for path in written)}")
    return 0

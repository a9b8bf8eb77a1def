"""Where a command writes (`--out`): checked before anything is read or written.

A file output given as a folder is written inside it under the command's file name; a folder
output must not be a file; either must be writable. A command that writes a whole dataset (demo
data, a COCO import) wants a new or empty folder, and a split a folder that holds nothing but an
earlier split: nothing of the user's is ever overwritten.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from automl.errors import ConfigError

SPLIT_MARKER = ".automl-split"  # in a folder `automl split` wrote: it may write there again


def _writable_folder(folder: Path, flag: str, value: str | Path) -> None:
    """Prove that the folder could be made and written, without making it: a file can be written
    in its nearest existing ancestor, and that ancestor is a folder."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".automl-write-test-"):
            pass
    except OSError as e:
        raise ConfigError(f"{flag} {value}: cannot write there ({e.strerror or e}); choose a "
                          "folder you can write to") from None


def output_file(path: str | Path, name: str, flag: str = "--out") -> Path:
    """The file a command will write (overwriting an earlier one): `path`, or `path/name` when
    `path` is a folder or, having no suffix, names one.

    Raises:
        ConfigError: the file's folder cannot be made or written.
    """
    given = path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / name
    if path.is_dir():
        raise ConfigError(f"{flag} {given}: {path} is a folder; give a file name")
    _writable_folder(path.parent if str(path.parent) else Path("."), flag, given)
    return path


def output_folder(path: str | Path, flag: str = "--out", *, new_or_empty: bool = False,
                  marker: str | None = None) -> Path:
    """A folder the command will write into (made by the command as it writes).

    Args:
        new_or_empty: the command writes a whole dataset: the folder must not hold anything yet.
        marker: a file the command leaves in the folder (`mark`, once it wrote there): a folder
            holding it may be written again (an earlier run's), any other non-empty one not.

    Raises:
        ConfigError: the path is a file, cannot be made or written, or holds files that are not
            this command's.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file; give a folder")
    if (new_or_empty or marker) and path.is_dir() and any(path.iterdir()):
        if not (marker and (path / marker).is_file()):
            raise ConfigError(f"{flag} {path}: the folder already holds files and nothing in it "
                              "may be overwritten; give a new or empty folder")
    _writable_folder(path, flag, path)
    return path


def mark(folder: str | Path, marker: str) -> None:
    """Leave the marker that lets a later run of the same command write into `folder` again."""
    Path(folder, marker).write_text("written by automl; it may write here again\n")

"""What every hand-off file shares: a JSON file typed by its fields, a CSV table checked for its columns, and one
StudyError naming the file, what is wrong and the stage to re-run; nothing falls back to a default."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Self

import pandas as pd
from pydantic import BaseModel, ConfigDict

from src.atomic import write_json
from src.config import Model, validated
from src.errors import StudyError


class JsonFile(BaseModel):
    """A JSON file one stage writes and another reads: its keys are the fields, in the order they are written."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    NAME: ClassVar[str]
    STAGE: ClassVar[str]  # the stage that writes it, named in the error a bad file gives

    def write(self, directory: Path) -> None:
        write_json(directory / self.NAME, self.model_dump())

    @classmethod
    def read(cls, directory: Path) -> Self:
        return read_json_as(cls, directory / cls.NAME, f"{cls.STAGE}@{directory.name}")


def read_json_as(model: type[Model], path: Path, stage: str) -> Model:
    """The JSON file at `path` as a `model`; anything wrong with it is one StudyError naming the file, what is wrong
    and the `dvc repro` target (`stage`) that rewrites it."""
    rerun = f"re-run `dvc repro {stage}` to rewrite it"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run `dvc repro {stage}` first)") from None
    except OSError as error:
        raise StudyError(f"{path}: cannot be read ({error.strerror}); {rerun}") from None
    except ValueError as error:
        raise StudyError(f"{path}: not valid JSON ({error}); {rerun}") from None
    return validated(model, raw, source=str(path), hint=rerun)


@contextmanager
def parsing(path: Path) -> Iterator[None]:
    """A malformed value in an input file is one StudyError naming the file, not a bare ValueError."""
    try:
        yield
    except StudyError:
        raise
    except ValueError as error:
        raise StudyError(f"{path}: malformed value ({error})") from None


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV that must have at least `columns`; a missing file or column, or no rows, is one StudyError.

    Numbers are parsed exactly as Python's float() does (pandas 3's default), so a value reads back bit for bit.
    """
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file (run the stage that writes it first: `dvc repro`)") from None
    except pd.errors.EmptyDataError:
        raise StudyError(f"{path}: no rows") from None
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise StudyError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
    if table.empty:
        raise StudyError(f"{path}: no rows")
    for name in ("diverged",) if "diverged" in table.columns else ():
        if table[name].dtype != bool:
            raise StudyError(f"{path}: malformed value (column {name} must be True or False)")
    return table

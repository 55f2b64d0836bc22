"""The command a manifest records, written so that it says nothing about the machine it ran on."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

PATH_OPTIONS = ("--store", "--data")  # options whose values are paths


def recorded_command(argv: list[str] | None, store: Path) -> str:
    """`python -m training ...` as run (`argv`, or the process's arguments when None), every path option's value
    written relative to the folder that holds the store (the store itself becomes its name): the command runs
    as recorded from there."""
    words = list(sys.argv[1:] if argv is None else argv)
    base = Path(store).absolute().parent
    for i, word in enumerate(words):
        option, equals, value = word.partition("=")
        if option in PATH_OPTIONS and equals:
            words[i] = f"{option}={relative(value, base)}"
        elif i > 0 and words[i - 1] in PATH_OPTIONS:
            words[i] = relative(word, base)
    return shlex.join(["python", "-m", "training", *words])


def relative(path: str, base: Path) -> str:
    """`path` (absolute, or relative to the working folder) relative to `base`."""
    return Path(os.path.relpath(Path(path).absolute(), base)).as_posix()

"""Provenance: the part of every output's `meta` that says what made it, and the code (git commit)
each `ganaug run` invocation ran on."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from ganaug import __version__
from ganaug.runtime.files import atomic_write_json

SOURCE_FILE = "source.json"  # run_dir/source.json: one entry per `ganaug run` invocation


def provenance(stage: str, **extra: Any) -> dict[str, Any]:
    """The common part of every output's `meta`."""
    return {"stage": stage, "version": __version__, "torch": torch.__version__, **extra}


def source_commit(where: Path | None = None) -> dict[str, Any]:
    """The git commit of the ganaug source tree and whether it had uncommitted changes to tracked
    files; commit None when the package is not in a git checkout (an installed wheel) or git is
    missing."""
    where = where or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        run = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=True
        )
        return run.stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status.strip())}


def record_source(run_dir: Path, profile: str) -> list[dict[str, Any]]:
    """Append this invocation (time, commit, version, profile) to run_dir/source.json, so the
    report can say which code produced the run, resumes included; returns the whole record."""
    path = Path(run_dir) / SOURCE_FILE
    try:
        record = json.loads(path.read_text()) if path.is_file() else []
    except (OSError, ValueError):
        record = []  # unreadable: start again rather than refuse the run
    record = record if isinstance(record, list) else []
    started = datetime.datetime.now().isoformat(timespec="seconds")
    entry = {"started": started, "version": __version__, "profile": profile, **source_commit()}
    record.append(entry)
    atomic_write_json(path, record)
    return record

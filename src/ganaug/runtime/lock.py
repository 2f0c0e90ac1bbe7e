"""The run-directory lock: one live ganaug process per output directory."""

from __future__ import annotations

import json
import logging
import os
import socket
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from ganaug import InputError
from ganaug.runtime.torchrun import is_main

log = logging.getLogger("ganaug")


class RunLock:
    """`run.lock` holding host and pid; a second live process on the directory is refused.

    A lock left by a dead process on this host (a kill -9) is stale and taken over, and the
    temporary files its interrupted atomic writes left (`.NAME.<random>.tmp`, see atomic_path) are
    removed: with the lock held no other process can be writing them. Directories
    the lock had to create are removed again on release when nothing else was written into them,
    so a command refused for bad input leaves no empty output directory behind.
    """

    def __init__(self, directory: Path | str, name: str = "run.lock") -> None:
        self.path = Path(directory) / name
        self.held = False
        self.created: list[Path] = []  # directories acquire() made, deepest first

    def _owner_alive(self) -> tuple[bool, str]:
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False, "unreadable"
        desc = f"pid {info.get('pid')} on {info.get('host')}"
        if info.get("host") != socket.gethostname():
            return True, desc  # cannot check another host's process: assume alive
        try:
            os.kill(int(info["pid"]), 0)
        except (ProcessLookupError, KeyError, ValueError, TypeError):
            return False, desc
        except PermissionError:
            return True, desc
        return True, desc

    def acquire(self) -> None:
        missing = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = missing
        payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                alive, owner = self._owner_alive()
                if alive:
                    raise InputError(
                        f"{self.path}: another ganaug process ({owner}) is working in this "
                        "directory; wait for it or use another --out"
                    ) from None
                log.warning("taking over stale lock %s (%s is gone)", self.path, owner)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
            self.held = True
            self._remove_leftovers()
            return
        raise InputError(f"{self.path}: could not take the lock; remove it if no run is active")

    def _remove_leftovers(self) -> None:
        leftovers = [p for p in self.path.parent.rglob(".*.tmp") if p.is_file()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        if leftovers:
            log.debug("removed %d temporary file(s) of interrupted writes", len(leftovers))

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
        for directory in self.created:  # deepest first; stops at the first one holding files
            try:
                directory.rmdir()
            except OSError:
                break
        self.created = []

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def main_process_lock(directory: Path | str) -> AbstractContextManager:
    """A RunLock taken by rank 0 only: the other ranks of a torchrun job work under its lock."""
    return RunLock(directory) if is_main() else nullcontext()

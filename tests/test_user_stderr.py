"""stderr as the user sees it: the installed `ganaug` script, no warning filters, one line.

The refusals of tests/test_bad_inputs.py run in-process under pytest, which captures warnings, so
a torch UserWarning printed before the one-line error went unseen there. Here a few of them run
through the console script in a clean subprocess. The second half fills the disk (a simulated
ENOSPC) under the atomic writers and under a real command: the previous file stays byte for byte,
no temp file is left, and the CLI says on one line which file could not be written (exit 1).
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bad_inputs.make_corpus import (
    MARKER,
    Case,
    _RunsCode,
    config_cases,
    folder_cases,
    npz_cases,
    write_good,
)
from conftest import make_imageset
from ganaug import InputError
from ganaug.data import write_npz
from ganaug.runtime import (
    DiskFull,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    disk_full,
    safe_torch_load,
)
from test_bad_inputs import RESUME_AT, argv_for

GANAUG = shutil.which("ganaug", path=str(Path(sys.executable).parent))
PICKLE4 = "plain pickle with code"  # protocol 4: torch warns before weights_only refuses it

# (case name, input kind, command): one or two refusals per kind of input a user hands over
REFUSALS = [
    ("renamed text file", "npz", "data"),
    ("object arrays (pickle)", "npz", "select --real"),
    ("decompression bomb", "folder", "data"),
    ("YAML with an unknown key", "profile", "data"),
    ("--set with a wrong type", "set", "data"),
    ("checkpoint that is a pickle with code", "checkpoint", "gan sample"),
    ("checkpoint that is a pickle with code", "checkpoint", "classify (resume)"),
    (PICKLE4, "checkpoint", "gan sample"),
    (PICKLE4, "checkpoint", "classify (resume)"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[dict[str, Case], dict[str, Path]]:
    """The corpus cases REFUSALS uses (not its slow genuine checkpoints), plus PICKLE4."""
    folder = tmp_path_factory.mktemp("corpus")
    good = write_good(folder)
    cases = npz_cases(folder) + folder_cases(folder) + config_cases(folder)
    code = folder / "code.pt"
    torch.save({"model": _RunsCode(folder / MARKER)}, code)
    plain = folder / "code_p4.pkl"
    plain.write_bytes(pickle.dumps({"model": _RunsCode(folder / MARKER)}, protocol=4))
    cases += [
        Case("checkpoint that is a pickle with code", "checkpoint", code, "", code.name),
        Case(PICKLE4, "checkpoint", plain, "", plain.name),
    ]
    return {case.name: case for case in cases}, good


def quiet_env() -> dict[str, str]:
    """The caller's environment without anything that changes which warnings are shown."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONDEVMODE")}


def assert_one_line(result: subprocess.CompletedProcess, status: int) -> str:
    err = result.stderr
    assert result.returncode == status, err
    assert len(err.splitlines()) == 1 and err.strip(), f"stderr is not one line: {err!r}"
    assert "Traceback" not in err and "warning" not in err.lower(), err
    assert "Traceback" not in result.stdout, result.stdout
    return err.strip()


def test_console_script_is_installed():
    assert GANAUG is not None, f"no ganaug script beside {sys.executable}; pip install -e ."


@pytest.mark.parametrize("name, kind, command", REFUSALS, ids=[f"{n}->{c}" for n, _, c in REFUSALS])
def test_refusal_is_one_line_on_the_users_stderr(corpus, name, kind, command, tmp_path):
    cases, good = corpus
    case = cases[name]
    out = tmp_path / "out"
    out.mkdir()
    if command in RESUME_AT:  # the bad file sits where the resumed run finds its checkpoint
        (out / RESUME_AT[command]).parent.mkdir(parents=True)
        shutil.copy(case.path, out / RESUME_AT[command])
    argv = argv_for(case, kind, command, good, out)
    result = subprocess.run(
        [GANAUG, *argv], capture_output=True, text=True, env=quiet_env(), cwd=tmp_path, timeout=120
    )
    line = assert_one_line(result, 2)
    assert line.startswith("ganaug: error: ")
    named = Path(RESUME_AT[command]).name if command in RESUME_AT else case.names
    assert named in line and case.needle in line
    assert not (case.path.parent / MARKER).exists(), "the pickled checkpoint's code ran"


# ---------------------------------------------------------------------------------------------
# a full disk


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write_half(path: Path, data: bytes) -> None:
    """Path.write_bytes on a disk that fills up half way through."""
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
    _no_space()


_SAVEZ = np.savez


def _savez_half(fh, **arrays) -> None:
    """np.savez on a disk that fills up: part of the archive written, then ENOSPC."""
    _SAVEZ(fh, **arrays)
    fh.truncate(fh.tell() // 2)
    _no_space()


WRITERS = {  # name -> (write new content to path, read it back as bytes)
    "atomic_torch_save": lambda p: atomic_torch_save({"w": torch.arange(64.0)}, p),
    "write_npz": lambda p: write_npz(p, make_imageset(n=6, size=4)),
    "atomic_write_text": lambda p: atomic_write_text(p, "new line\n" * 500),
    "atomic_write_json": lambda p: atomic_write_json(p, {"new": list(range(500))}),
}


def _fail_at(point: str, writer: str, monkeypatch) -> None:
    if point == "fsync":
        monkeypatch.setattr(os, "fsync", _no_space)
    elif point == "replace":
        monkeypatch.setattr(os, "replace", _no_space)
    elif writer == "write_npz":  # mid-write: the archive is half on disk
        monkeypatch.setattr(np, "savez", _savez_half)
    else:
        monkeypatch.setattr(Path, "write_bytes", _write_half)


@pytest.mark.parametrize("point", ["write", "fsync", "replace"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_disk_keeps_the_previous_file(writer, point, tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    WRITERS[writer](target)
    old = target.read_bytes()
    _fail_at(point, writer, monkeypatch)
    with pytest.raises(DiskFull) as caught:
        WRITERS[writer](target)
    monkeypatch.undo()
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left
    err = caught.value
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    assert str(err) == (
        f"{target}: no space left on device; free some space and rerun the same command to resume"
    )


def test_disk_full_over_quota_pickles_and_is_found_in_a_chain(tmp_path):
    quota = DiskFull(tmp_path / "x.pt", errno.EDQUOT)
    assert str(quota).startswith(f"{tmp_path / 'x.pt'}: disk quota exceeded; free some space")
    again = pickle.loads(pickle.dumps(quota))  # process pools send it back pickled
    assert type(again) is DiskFull and again.errno == errno.EDQUOT and str(again) == str(quota)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "log.csv"))
        except OSError as low:
            raise RuntimeError("while logging") from low
    except RuntimeError as high:
        assert str(disk_full(high)).startswith(f"{tmp_path / 'log.csv'}: no space left")
    assert disk_full(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full(ValueError("x")) is None


# The command runs in a fresh interpreter: os.replace fails with ENOSPC for one file name, as it
# would once the disk filled up while that file was being written.
FULL_DISK_SCRIPT = """
import errno, os, sys
from pathlib import Path

replace = os.replace

def full(src, dst, *args, **kwargs):
    if Path(dst).name == sys.argv[1]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return replace(src, dst, *args, **kwargs)

os.replace = full
from ganaug.cli import app
app(sys.argv[2:])
"""


def _data_argv(tmp_path: Path) -> tuple[Path, list[str]]:
    source = tmp_path / "source.npz"
    write_npz(source, make_imageset(n=6, size=8))
    out = tmp_path / "work" / "real.npz"
    out.parent.mkdir()
    out.write_bytes(b"the previous real.npz")
    argv = ["data", "--data", str(source), "--out", str(out), "--force", "--profile", "smoke"]
    return out, argv


def test_cli_full_disk_is_exit_1_and_one_line(tmp_path):
    out, argv = _data_argv(tmp_path)
    cmd = [sys.executable, "-c", FULL_DISK_SCRIPT, out.name, *argv]
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=quiet_env(), cwd=tmp_path, timeout=120
    )
    line = assert_one_line(result, 1)
    assert line == (
        f"ganaug: error: {out}: no space left on device; "
        "free some space and rerun the same command to resume"
    )
    assert out.read_bytes() == b"the previous real.npz"
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_cli_full_disk_with_debug_shows_the_traceback(tmp_path, monkeypatch, cli, capsys):
    out, argv = _data_argv(tmp_path)
    monkeypatch.setattr(os, "fsync", _no_space)
    capsys.readouterr()
    assert cli([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    monkeypatch.undo()
    assert "Traceback" in err and "OSError: [Errno 28]" in err
    first = out.with_suffix(".config.yaml")  # the first write; the npz is written last
    assert err.strip().splitlines()[-1] == f"ganaug: error: {first}: " + (
        "no space left on device; free some space and rerun the same command to resume"
    )
    assert out.read_bytes() == b"the previous real.npz"
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_safe_load_keeps_torchs_protocol_warning_to_itself(corpus):
    cases, _ = corpus
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match="code_p4.pkl: not a loadable"):
            safe_torch_load(cases[PICKLE4].path)
        warnings.warn("the caller's own warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["the caller's own warning"]

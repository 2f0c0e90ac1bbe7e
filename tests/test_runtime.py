import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganaug import InputError
from ganaug.runtime import (
    RunLock,
    atomic_path,
    atomic_torch_save,
    make_generator,
    pick_device,
    record_source,
    refuse_overwrite,
    safe_torch_load,
    source_commit,
)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_lock_refuses_second_and_takes_over_stale(tmp_path: Path):
    with RunLock(tmp_path):
        with pytest.raises(InputError, match="another ganaug process"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / "run.lock").exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run.lock").write_text(f'{{"pid": {dead.pid}, "host": "{os.uname().nodename}"}}')
    lock = RunLock(tmp_path)
    lock.acquire()
    assert lock.held
    lock.release()


def test_lock_removes_temporaries_of_a_killed_write_and_nothing_else(tmp_path: Path):
    cell = tmp_path / "classify" / "cell"
    cell.mkdir(parents=True)
    (cell / "notes.txt").write_text("mine")
    (tmp_path / "data.tmp").write_text("not ours: no leading dot")
    script = (
        "import os, sys\n"
        "from ganaug.runtime import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    os._exit(9)  # dies mid-write, as a kill -9 would\n"
    )
    subprocess.run([sys.executable, "-c", script, str(cell / "metrics.json")], check=False)
    left = [p.name for p in cell.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".metrics.json.")
    with RunLock(tmp_path):
        names = sorted(p.name for p in cell.iterdir())
    assert names == ["notes.txt"]
    assert (tmp_path / "data.tmp").read_text() == "not ours: no leading dot"


# torch warns that a plain pickle is not its own protocol before refusing it: expected here
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_safe_load_refuses_code_and_garbage(tmp_path: Path):
    good = tmp_path / "good.pt"
    atomic_torch_save({"w": torch.ones(2)}, good)
    assert torch.equal(safe_torch_load(good)["w"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(InputError, match="evil.pt: not a loadable"):
        safe_torch_load(evil)
    assert not (tmp_path / "pwned").exists()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:50])
    with pytest.raises(InputError, match="trunc.pt"):
        safe_torch_load(trunc)


def test_refuse_overwrite_and_generators(tmp_path: Path):
    existing = tmp_path / "x"
    existing.write_text("mine")
    with pytest.raises(InputError, match="--force"):
        refuse_overwrite(existing, force=False)
    refuse_overwrite(existing, force=True)
    a = torch.rand(3, generator=make_generator(5))
    assert torch.equal(a, torch.rand(3, generator=make_generator(5)))
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    assert pick_device("cpu").type == "cpu"


def test_source_commit_and_record(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f.txt").write_text("one")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert source_commit(repo) == {"commit": head.strip(), "dirty": False}
    (repo / "f.txt").write_text("two")  # a tracked file changed: dirty
    assert source_commit(repo) == {"commit": head.strip(), "dirty": True}
    outside = tmp_path / "plain"
    outside.mkdir()
    assert source_commit(outside) == {"commit": None, "dirty": None}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = record_source(run_dir, "standard")
    second = record_source(run_dir, "standard")
    assert len(first) == 1 and len(second) == 2 and second[0] == first[0]
    assert set(second[1]) == {"started", "version", "profile", "commit", "dirty"}

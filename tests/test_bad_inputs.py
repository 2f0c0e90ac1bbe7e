"""Every bad input of tests/bad_inputs/make_corpus.py, fed to every command that reads it.

Each must end with exit status 2, one line on stderr naming the file (key or value) and the
problem, no traceback, and nothing created or modified: the listing, sizes and mtimes of every
file under the corpus and the output folder are the same before and after (directory mtimes are
not compared: the run lock comes and goes), and the pickled checkpoint's code never ran.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

from bad_inputs.make_corpus import MARKER, Case, write_corpus

EXPECTED_CASES = 51  # README's Reliability section quotes this number

# command lines per input kind; {bad} is the case's path, {out} an empty work folder
NPZ_COMMANDS = {
    "data": ["data", "--data", "{bad}", "--out", "{out}/real.npz"],
    "augment": ["augment", "--data", "{bad}", "--out", "{out}/classic.npz"],
    "gan train": ["gan", "train", "--data", "{bad}", "--out", "{out}/gan"],
    "select --samples": [
        "select",
        "--samples",
        "{bad}",
        "--real",
        "{good}",
        "--out",
        "{out}/s.npz",
    ],
    "select --real": [
        "select",
        "--samples",
        "{samples}",
        "--real",
        "{bad}",
        "--out",
        "{out}/s.npz",
    ],
    "select --trained-on": [
        "select",
        "--samples",
        "{samples}",
        "--real",
        "{good}",
        "--trained-on",
        "{bad}",
        "--out",
        "{out}/s.npz",
    ],
    "classify --train": ["classify", "--train", "{bad}", "--eval", "{good}", "--out", "{out}/c"],
    "classify --eval": ["classify", "--train", "{good}", "--eval", "{bad}", "--out", "{out}/c"],
    "run": ["run", "--data", "{bad}", "--out", "{out}/run"],
}
FOLDER_COMMANDS = {k: NPZ_COMMANDS[k] for k in ("data", "run")}
CONFIG_COMMANDS = {
    "data": ["data", "--data", "{good}", "--out", "{out}/real.npz"],
    "augment": ["augment", "--data", "{good}", "--out", "{out}/classic.npz"],
    "gan train": ["gan", "train", "--data", "{good}", "--out", "{out}/gan"],
    "gan sample": ["gan", "sample", "--checkpoint", "{gan_checkpoint}", "--out", "{out}/raw.npz"],
    "select": ["select", "--samples", "{samples}", "--real", "{good}", "--out", "{out}/s.npz"],
    "classify": ["classify", "--train", "{good}", "--eval", "{good}", "--out", "{out}/c"],
    "run": ["run", "--data", "{good}", "--out", "{out}/run"],
}
CLASSIFY = ["classify", "--train", "{good}", "--eval", "{good}", "--out", "{out}/c"]
RESUME_COMMANDS = {  # the bad file sits where a resumed run finds its checkpoint
    "gan train (resume)": ["gan", "train", "--data", "{good}", "--out", "{out}/gan"],
    "classify (resume)": [*CLASSIFY, "--model", "resnet18"],
    "classify (classify.weights)": [
        *CLASSIFY,
        "--model",
        "resnet50",
        "--set",
        "classify.weights={bad}",
    ],
}
CHECKPOINT_COMMANDS = {
    "gan sample": ["gan", "sample", "--checkpoint", "{bad}", "--out", "{out}/raw.npz"],
    "select --checkpoint": [*CONFIG_COMMANDS["select"], "--checkpoint", "{bad}"],
    **RESUME_COMMANDS,
}
RESUME_AT = {"gan train (resume)": "gan/checkpoints/last.pt", "classify (resume)": "c/last.pt"}
FILE_OUT_COMMANDS = {  # commands whose --out is one file; {bad} a directory there
    "data": ["data", "--data", "{good}", "--out", "{bad}"],
    "augment": ["augment", "--data", "{good}", "--out", "{bad}"],
    "select": ["select", "--samples", "{samples}", "--real", "{good}", "--out", "{bad}"],
    "gan sample": ["gan", "sample", "--checkpoint", "{gan_checkpoint}", "--out", "{bad}"],
}
DIR_OUT_COMMANDS = {  # commands whose --out is a run directory; {bad} a file there
    "gan train": ["gan", "train", "--data", "{good}", "--out", "{bad}"],
    "classify": ["classify", "--train", "{good}", "--eval", "{good}", "--out", "{bad}"],
    "run": ["run", "--data", "{good}", "--out", "{bad}"],
}
COMMANDS = {
    "npz": NPZ_COMMANDS,
    "folder": FOLDER_COMMANDS,
    "profile": CONFIG_COMMANDS,
    "set": CONFIG_COMMANDS,
    "set-vs-samples": {"run": CONFIG_COMMANDS["run"]},
    # options: {bad} is the option itself, e.g. --n=0
    "option": {"gan sample": [*CONFIG_COMMANDS["gan sample"], "{bad}"]},
    "select-k": {"select": [*CONFIG_COMMANDS["select"], "{bad}"]},
    "seed-option": {
        c: [*CONFIG_COMMANDS[c], "{bad}"] for c in ("augment", "classify", "gan sample")
    },
    "checkpoint": CHECKPOINT_COMMANDS,
    "gan-checkpoint": RESUME_COMMANDS,
    "classifier-for-gan": {
        c: CHECKPOINT_COMMANDS[c]
        for c in ("gan sample", "select --checkpoint", "gan train (resume)")
    },
    "gan-for-classify": {
        c: RESUME_COMMANDS[c] for c in ("classify (resume)", "classify (classify.weights)")
    },
    "out-is-dir": FILE_OUT_COMMANDS,
    "out-is-file": DIR_OUT_COMMANDS,
    "out-under-file": {**FILE_OUT_COMMANDS, **DIR_OUT_COMMANDS},
    "run-dir": {"report": ["report", "{bad}"]},
}
PAIRS = [(kind, command) for kind, commands in COMMANDS.items() for command in commands]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[list[Case], dict[str, Path]]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under the roots: files and links with (size, mtime_ns), directories bare."""
    seen: dict[str, tuple] = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                seen[os.path.join(folder, name)] = ("dir",)
            for name in files:
                stat = os.lstat(os.path.join(folder, name))
                seen[os.path.join(folder, name)] = (stat.st_size, stat.st_mtime_ns)
    return seen


def argv_for(case: Case, kind: str, command: str, good: dict[str, Path], out: Path) -> list[str]:
    argv = list(COMMANDS[kind][command])
    if kind == "profile":
        argv += ["--profile", str(case.path)]
    elif command != "report":
        argv += ["--profile", "smoke"]
    if kind.startswith("set"):
        argv += ["--set", str(case.path)]
    names = {k: str(v) for k, v in good.items()}
    return [a.format(bad=case.path, out=out, **names) for a in argv]


def problems_of(case, kind, command, good, work, cli, capsys) -> list[str]:
    """Run one (case, command); return what went wrong (empty when the refusal was clean)."""
    out = work / f"{case.name}-{command}".replace(" ", "_").replace("/", "_")
    out.mkdir()
    if command in RESUME_AT:
        (out / RESUME_AT[command]).parent.mkdir(parents=True)
        shutil.copy(case.path, out / RESUME_AT[command])
    argv = argv_for(case, kind, command, good, out)
    corpus_dir = good["good"].parent
    before = snapshot(corpus_dir, out)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as shown:  # what a user's stderr would also show
        warnings.simplefilter("default")
        status = cli(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    found = []
    if status != 2:
        found.append(f"exit {status}, not 2")
    if len(err.splitlines()) != 1 or "Traceback" in err:
        found.append(f"stderr is not one line: {err[-400:]!r}")
    if shown:
        found.append(f"warnings a user would see: {[str(w.message)[:120] for w in shown]}")
    named = Path(RESUME_AT[command]).name if command in RESUME_AT else case.names
    if named not in err or case.needle not in err:
        found.append(f"message lacks {named!r} / {case.needle!r}: {err!r}")
    if snapshot(corpus_dir, out) != before:
        after = snapshot(corpus_dir, out)
        changed = sorted(set(before.items()) ^ set(after.items()))
        found.append(f"files created or modified: {changed[:4]}")
    if (corpus_dir / MARKER).exists():
        found.append("the pickled checkpoint's code ran")
    return [f"{case.name} -> {command}: {p}" for p in found]


def test_corpus_has_every_case(corpus):
    cases, _ = corpus
    assert len(cases) == EXPECTED_CASES
    assert len({c.name for c in cases}) == EXPECTED_CASES
    assert {c.kind for c in cases} == set(COMMANDS)


@pytest.mark.parametrize("kind, command", PAIRS, ids=[f"{k}:{c}" for k, c in PAIRS])
def test_bad_input_is_refused_cleanly(corpus, kind, command, tmp_path, cli, capsys):
    cases, good = corpus
    chosen = [case for case in cases if case.kind == kind]
    assert chosen
    problems = []
    for case in chosen:
        problems += problems_of(case, kind, command, good, tmp_path, cli, capsys)
    assert not problems, "\n".join(problems)


def test_invocation_count():
    """The number of (case, command) runs above, for the README."""
    per_kind = {
        "npz": 15,
        "folder": 8,
        "profile": 6,
        "set": 5,
        "set-vs-samples": 1,
        "option": 2,
        "select-k": 2,
        "seed-option": 1,
        "checkpoint": 3,
        "gan-checkpoint": 1,
        "classifier-for-gan": 1,
        "gan-for-classify": 1,
        "out-is-dir": 1,
        "out-is-file": 1,
        "out-under-file": 1,
        "run-dir": 2,
    }
    total = sum(n * len(COMMANDS[k]) for k, n in per_kind.items())
    assert sum(per_kind.values()) == EXPECTED_CASES
    options = 2 + 2 + 3  # option, select-k, seed-option
    checkpoints = 15 + 3 + 3 + 2  # checkpoint, gan-checkpoint, classifier-for-gan, gan-for-classify
    outs = 4 + 3 + 7  # out-is-dir, out-is-file, out-under-file
    sets = 35 + 1  # set, set-vs-samples
    assert total == 135 + 16 + 42 + sets + options + checkpoints + outs + 2 == 275

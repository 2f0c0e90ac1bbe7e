"""Runtime helpers shared by every stage, one concern per module:

- `device`: device choice, seeding, thread count (commands call `seed_everything` once at their
  entry; library code takes explicit `torch.Generator`s from `make_generator`)
- `fastpaths`: bf16 autocast, channels_last, fused optimisers, compile, pinned copies
- `torchrun`: rank, barrier, all-reduce, broadcast and gather helpers (no-ops in one process)
- `files`: atomic writes, DiskFull, safe checkpoint loading, refuse_overwrite
- `lock`: the run-directory lock
- `logs`: logging setup, --quiet, progress bars
- `meta`: provenance of every output; the git commit of each `ganaug run`
- `images`: PNG image grids

Every name is re-exported here, so `from ganaug.runtime import X` works for all of them.
"""

from ganaug.runtime.device import make_generator, pick_device, seed_everything, set_threads
from ganaug.runtime.fastpaths import (
    PLAIN,
    FastPaths,
    as_input,
    autocast,
    fast_paths,
    make_optimiser,
    prepare_module,
    to_device,
)
from ganaug.runtime.files import (
    DiskFull,
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    disk_full,
    refuse_overwrite,
    safe_torch_load,
)
from ganaug.runtime.images import image_grid, save_image_grid
from ganaug.runtime.lock import RunLock, main_process_lock
from ganaug.runtime.logs import log_above_bars, progress, set_quiet, setup_logging
from ganaug.runtime.meta import SOURCE_FILE, provenance, record_source, source_commit
from ganaug.runtime.torchrun import (
    DistInfo,
    all_finite,
    all_reduce_mean_grads,
    all_reduce_sum,
    barrier,
    broadcast_from_main,
    broadcast_params,
    dist_info,
    distributed,
    gather_objects,
    init_distributed,
    is_main,
)

__all__ = [
    "PLAIN",
    "SOURCE_FILE",
    "DiskFull",
    "DistInfo",
    "FastPaths",
    "RunLock",
    "all_finite",
    "all_reduce_mean_grads",
    "all_reduce_sum",
    "as_input",
    "atomic_path",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "autocast",
    "barrier",
    "broadcast_from_main",
    "broadcast_params",
    "disk_full",
    "dist_info",
    "distributed",
    "fast_paths",
    "gather_objects",
    "image_grid",
    "init_distributed",
    "is_main",
    "log_above_bars",
    "main_process_lock",
    "make_generator",
    "make_optimiser",
    "pick_device",
    "prepare_module",
    "progress",
    "provenance",
    "record_source",
    "refuse_overwrite",
    "safe_torch_load",
    "save_image_grid",
    "seed_everything",
    "set_quiet",
    "set_threads",
    "source_commit",
    "setup_logging",
    "to_device",
]

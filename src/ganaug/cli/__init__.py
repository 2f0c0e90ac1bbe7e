"""The `ganaug` command line (typer): app.py (the app, exit statuses, shared options, --out
checks), commands.py (data, augment, run, classify, report, select), gan.py (gan train, gan
sample). `python -m ganaug.cli` runs it too (e.g. under torchrun).
"""

from ganaug.cli import commands, gan  # noqa: F401  (registers the commands on the app)
from ganaug.cli.app import Shared, app, build_config, shared_options

__all__ = ["Shared", "app", "build_config", "shared_options"]

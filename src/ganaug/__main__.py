"""The `ganaug` console script and `python -m ganaug`.

Signal handlers go in before the heavy imports (torch, typer), so Ctrl-C or SIGTERM while the
program is still starting also ends with one line and exit 130 / 143, never a traceback.
"""

from __future__ import annotations

import signal
import sys

from ganaug import install_signal_handlers


def main() -> None:
    install_signal_handlers()
    try:
        from ganaug.cli import app
    except KeyboardInterrupt as stop:  # nothing was started yet: nothing to resume
        signum = getattr(stop, "signum", signal.SIGINT)
        print("ganaug: interrupted while starting; nothing was written", file=sys.stderr)
        sys.exit(128 + int(signum))
    app()


if __name__ == "__main__":
    main()

"""`python -m ganaug.cli ...` (torchrun launches it this way)."""

from ganaug.cli import app

app()

"""report.html in headless Chromium (Debian's package; `.ci/run` installs it when absent).

Used by tests/test_report.py; run by hand to refresh the screenshot in docs/:
    .venv/bin/python tests/browser.py runs/quick/report/report.html docs/report_top.png
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# root in a container needs --no-sandbox; the rest keep Chromium off the (closed) network
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Rendered:
    images: list[dict]  # per <img>: alt, complete, naturalWidth, naturalHeight
    tables: int  # <table> elements
    headings: list[str]  # <h1>/<h2> texts
    errors: list[str] = field(default_factory=list)  # console errors and uncaught page errors


def render(html: Path, screenshot: Path | None = None, width: int = 1200) -> Rendered:
    """Open `html` in headless Chromium; what a reader's browser shows (and logs)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(Path(html).resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                """() => Array.from(document.images, (i) => ({alt: i.alt, complete: i.complete,
                    naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}))"""
            )
            tables = page.evaluate("() => document.querySelectorAll('table').length")
            headings = page.evaluate(
                "() => Array.from(document.querySelectorAll('h1, h2'), (h) => h.textContent)"
            )
            if screenshot is not None:
                page.screenshot(path=str(screenshot))  # the top of the page, one viewport
        finally:
            browser.close()
    return Rendered(images, tables, headings, errors)


if __name__ == "__main__":
    shown = render(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{len(shown.images)} images, {shown.tables} tables, errors: {shown.errors}")

"""Headless Chromium for the dashboard's browser tests, driven by Playwright.

The browser is Debian's `chromium` (tools/install-browser.sh, run by `make
test`), never one Playwright downloads: `playwright install` is not part of
the build.  A machine without it fails these tests and says how to get it,
since a silent skip would let the dashboard go untested; DESKLINE_NO_BROWSER=1
skips them on purpose.

`launch()` gives a `Kit` (the Playwright driver and one browser; Playwright
keeps the profile in a fresh temporary directory and removes it on close).
Each `Kit.page()` records the page's JavaScript errors (uncaught exceptions and
`console.error`) so a test can fail on them; `screenshot()` keeps a picture,
named by its test, under artifacts/browser/<group>/ at the repo root for
whoever reads a CI run.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts" / "browser"
FLAGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root or in a container without user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A laptop's screen; the wall-screen layout is the same page wider.
VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = 10_000  # Playwright's own default is 30 s: a stuck page should fail sooner
NO_BROWSER = "DESKLINE_NO_BROWSER"


def require_chromium() -> Path:
    """Debian's chromium, or a skip when asked for, or a failure that says what to do."""
    if os.environ.get(NO_BROWSER) == "1":
        pytest.skip(f"{NO_BROWSER}=1: browser tests skipped on purpose")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} not found: the dashboard's browser tests need Debian's chromium. "
            "Run tools/install-browser.sh (make test runs it), "
            f"or set {NO_BROWSER}=1 to skip these tests.",
            pytrace=False,
        )
    return CHROMIUM


class Kit:
    """One Chromium for a test module: contexts and pages, each page's JS errors."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.errors: dict[Page, list[str]] = {}  # each page's JS errors, as they came

    def context(self, **options: Any) -> BrowserContext:
        """A fresh context: its own cookies and storage, as a second browser profile."""
        options.setdefault("viewport", VIEWPORT)
        ctx = self.browser.new_context(**options)
        ctx.set_default_timeout(TIMEOUT_MS)
        return ctx

    def page(self, ctx: BrowserContext | None = None) -> Page:
        page = (ctx or self.context()).new_page()
        errors = self.errors.setdefault(page, [])

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                where = msg.location.get("url", "") if msg.location else ""
                errors.append(f"console.error: {msg.text} ({where})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        return page

    def js_errors(self, page: Page, allow: Iterable[str] = ()) -> list[str]:
        """The page's JS errors so far, less those matching an `allow` pattern.

        Chromium logs an HTTP error answer (a 401 the test asked for) as a
        console error too; a test that expects one names it in `allow`.
        """
        patterns = [re.compile(a) for a in allow]
        return [e for e in self.errors.get(page, []) if not any(p.search(e) for p in patterns)]

    def forget_errors(self, page: Page) -> None:
        self.errors.get(page, []).clear()

    def assert_no_js_errors(self, page: Page, allow: Iterable[str] = ()) -> None:
        errors = self.js_errors(page, allow)
        assert not errors, "JavaScript errors on the page:\n" + "\n".join(errors)


@contextmanager
def launch() -> Iterator[Kit]:
    """Starts Playwright's driver and Chromium; closes both, whatever happens."""
    exe = require_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(exe), headless=True, args=FLAGS)
        try:
            yield Kit(browser)
        finally:
            for ctx in browser.contexts:
                ctx.close()
            browser.close()


def fresh_artifacts(group: str) -> Path:
    """artifacts/browser/<group>/, emptied: no picture left from an earlier run misleads."""
    folder = ARTIFACTS / group
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, folder: Path, test: str, step: str = "") -> Path:
    """Saves the whole page as <folder>/<test>-<step>.png (a file system-safe name)."""
    name = re.sub(r"[^A-Za-z0-9._]+", "-", f"{test}-{step}" if step else test).strip("-")
    path = folder / f"{name}.png"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for(
    page: Page,
    function: str,
    arg: Any = None,
    timeout_s: float = 5.0,
    since: float | None = None,
) -> float:
    """Waits until a JS function (given `arg`) holds on the page; returns the seconds it took.

    A function, not a bare expression: Playwright evals an expression inside
    the page, which a page's Content-Security-Policy without 'unsafe-eval'
    (the dashboard's) refuses.

    Counted from `since` (a time.monotonic() taken before the cause, such as
    a press) or from the call.  Polled on every animation frame, so the
    figure is the DOM's own latency within a frame (~16 ms), not a polling
    interval's.
    """
    start = time.monotonic() if since is None else since
    page.wait_for_function(function, arg=arg, timeout=timeout_s * 1000, polling="raf")
    return time.monotonic() - start

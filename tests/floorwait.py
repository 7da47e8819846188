"""Waiting on a daemon's store from end-to-end tests, while the daemon writes it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from deskline.errors import DesklineError


def configs_applied(db: Path, n: int) -> bool:
    """Whether n consoles run a config the daemon pushed."""
    if not db.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT count(*) FROM consoles WHERE config_version > 0").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return bool(row and row[0] >= n)


def wait(pred: Callable[[], bool], timeout: float, every: float = 0.25) -> bool:
    """Polls pred until it holds; a busy store or a socket not up yet is a no."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except (sqlite3.Error, OSError, DesklineError):
            pass
        time.sleep(every)
    return False

"""`python -m deskline.esptoolrun ARGS` runs `esptool ARGS`, in its own process.

esptool formats every packet it sends and receives as hex for its trace log
even when tracing is off: its `HexFormatter` is meant to format lazily, but
the f-strings at the trace() call sites format it before trace() looks at
the flag.  That is about 1.1 s of CPU per MB written — four fifths of a
write's CPU (esptool 5.6) — and the one thing that limits flashing a floor
of consoles at once from a laptop.  Without --trace this launcher swaps in a
formatter that formats nothing, then hands over to esptool's own command
line; nothing else is changed.

This module is the only one that imports esptool, and it runs only in
esptool's process, never inside deskline's: the daemon and the flasher reach
esptool across a process boundary.  `FlashOptions.esptool` can name plain
`python -m esptool` instead.
"""

from __future__ import annotations

import sys


def main() -> None:
    import esptool  # noqa: PLC0415 — only in this process, only when run
    import esptool.loader  # noqa: PLC0415

    tracing = any(a in ("--trace", "-t") for a in sys.argv[1:])
    formatter = getattr(esptool.loader, "HexFormatter", None)
    if not tracing and formatter is not None:
        formatter.__str__ = lambda self: ""
    sys.argv[0] = "esptool"
    esptool._main()


if __name__ == "__main__":
    main()

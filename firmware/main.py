# Starts the console app unless boot.py chose safe boot.
import safeboot

if not safeboot.skip:
    import gc

    import board

    hw = board.make()
    del board
    import asyncio

    # asyncio loads its parts on first use; load them before our own modules.
    _parts = (asyncio.Event, asyncio.StreamReader, asyncio.sleep_ms)
    del _parts
    import sys

    try:
        # The update code's names go into the qstr pool now, while the heap
        # is in one piece: loaded first mid-shift, a grown pool would need
        # ~8 KB in one block.  The code itself goes; it loads when needed.
        _m = ("xfer", "appupdate", "apptrial", "fwupdate", "ed25519", "updcodes")
        _n = ""
        for _n in _m:
            __import__(_n)
        for _n in _m:
            del sys.modules[_n]
        del _m, _n
        # Loading modules leaves small holes all over the heap; holding a
        # block meanwhile keeps room in one piece for the app's buffers.
        gc.collect()
        _room = bytearray(16384)
        import app

        del _room
        gc.collect()
        app.main(hw)
    except Exception as e:
        # A broken app resets at once: boot.py counts the start of an app
        # on trial and goes back to the previous one (bootslot.py).
        sys.print_exception(e)
        hw.reset()
    # The app left for the REPL: keep the watchdog fed while mpremote works,
    # and give it the heap the app was using.
    hw.keep_fed()
    del app, hw
    sys.modules.clear()
    gc.collect()

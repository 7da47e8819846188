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
    # Loading modules leaves small holes all over the heap; holding a block
    # meanwhile keeps room in one piece for the app's buffers.
    gc.collect()
    _room = bytearray(16384)
    import app

    del _room
    gc.collect()
    app.main(hw)
    # The app left for the REPL: give mpremote the heap it was using.
    import sys

    del app, hw
    sys.modules.clear()
    gc.collect()

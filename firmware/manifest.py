# Freezes the console app into a custom MicroPython build (make ... FROZEN_MANIFEST=),
# so its bytecode runs from flash and the heap holds only the app's data.
metadata(version="0.1.0", description="Deskline agent console app")

for name in (
    "agent",
    "app",
    "apptrial",
    "appupdate",
    "board",
    "boardesp32",
    "bootinfo",
    "bootslot",
    "buzzer",
    "cfgcheck",
    "config",
    "display",
    "ed25519",
    "fwupdate",
    "journal",
    "keys",
    "leds",
    "link",
    "safeboot",
    "ssd1306",
    "updcodes",
    "wire",
    "xfer",
):
    module(name + ".py")

# The only module that touches machine pins on a real console (ESP32,
# ESP32-S3): pins, pixels, OLED, buzzer, watchdog, RTC memory.
import sys

from micropython import const

_WDT_MS = const(8000)


def escalate_held(s):
    import machine

    p = s["pins"]["escalate"]
    pin = machine.Pin(p["gpio"], machine.Pin.IN, machine.Pin.PULL_UP)
    return pin.value() == p.get("active", 0)


class _Null:
    # Stands in for a display that did not answer on I2C: the console keeps
    # working on LEDs and buzzer, and the fault is reported in the hello log.
    def fill(self, c):
        pass

    def text(self, s, x, y, c=1):
        pass

    def show(self):
        pass


class Board:
    def __init__(self, s):
        import machine
        import neopixel

        self.name = s["board"]
        self.chip = s["chip"]
        self.faults = []
        pins = s["pins"]
        Pin = machine.Pin

        def inp(name):
            p = pins[name]
            if p.get("pull") == "up":
                pin = Pin(p["gpio"], Pin.IN, Pin.PULL_UP)
            else:
                pin = Pin(p["gpio"], Pin.IN)
            active = p.get("active", 0)
            return lambda: 1 if pin.value() == active else 0

        self.escalate = inp("escalate")
        self.hook = inp("hook")
        kp = s["keypad"]
        # Open-drain rows: two keys held in one column must not short a high
        # row to a low one.
        self.rows = [Pin(pins[n]["gpio"], Pin.OPEN_DRAIN, value=1) for n in kp["rows"]]
        self.cols = [Pin(pins[n]["gpio"], Pin.IN, Pin.PULL_UP) for n in kp["cols"]]
        self.keymap = kp["keys"]
        self.pixels = neopixel.NeoPixel(Pin(pins["pixels"]["gpio"], Pin.OUT), s["pixels"]["count"])
        o = s["oled"]
        try:
            import ssd1306

            i2c = machine.I2C(
                o.get("i2c", 0),
                sda=Pin(pins["sda"]["gpio"]),
                scl=Pin(pins["scl"]["gpio"]),
                freq=o.get("freq", 400000),
            )
            self.oled = ssd1306.SSD1306_I2C(o["width"], o["height"], i2c, o.get("addr", 0x3C))
        except OSError:
            self.faults.append("oled not found")
            self.oled = _Null()
        self.pwm = machine.PWM(Pin(pins["buzzer"]["gpio"]), freq=s["buzzer"]["freq"], duty_u16=0)
        self.wdt = machine.WDT(timeout=_WDT_MS)
        self._rtc = machine.RTC()
        self._machine = machine
        self.stream_in = sys.stdin.buffer
        self.stream_out = sys.stdout.buffer

    def rtc_memory(self, data=None):
        if data is None:
            return self._rtc.memory()
        self._rtc.memory(data)
        return None

    def keep_fed(self):
        # The app left for the REPL: nothing loops to feed the watchdog, and
        # an ESP32 cannot stop it.  A hardware timer feeds it meanwhile (its
        # callback runs in the main task, between bytecodes and while the REPL
        # waits for input) so mpremote is not cut off after 8 s; a reset ends it.
        wdt = self.wdt
        t = self._machine.Timer(0)
        t.init(
            period=_WDT_MS // 4,
            mode=self._machine.Timer.PERIODIC,
            callback=lambda _t: wdt.feed(),
        )
        self._feeder = t

    def reset_cause(self):
        return self._machine.reset_cause()

    def reset(self):
        self._machine.reset()

    def unique_id(self):
        import binascii

        return binascii.hexlify(self._machine.unique_id()).decode()

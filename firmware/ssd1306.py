# SSD1306 OLED over I2C as a framebuf.FrameBuffer (MONO_VLSB): the real
# board's 128x32 panel.  show() sends the whole frame in one I2C write.
import framebuf
from micropython import const

# Control bytes: the rest of the write is commands / display RAM.
_CTRL_CMD = const(0x00)
_CTRL_DATA = const(0x40)

_DISPLAY_OFF = const(0xAE)
_DISPLAY_ON = const(0xAF)
_SET_CONTRAST = const(0x81)
_COL_ADDR = const(0x21)
_PAGE_ADDR = const(0x22)

# Power-up configuration, one command stream, the panel left off; the bytes at
# _AT_* depend on the geometry (values here: 128x32) and the supply.
_INIT = (
    b"\x00"  # control byte: commands follow
    b"\xae"  # display off while configuring
    b"\x20\x00"  # memory addressing: horizontal
    b"\x40"  # display start line 0
    b"\xa1"  # segment remap: column 127 is SEG0
    b"\xa8\x1f"  # multiplex ratio: rows - 1
    b"\xc8"  # COM scan from COM[N-1] to COM0
    b"\xd3\x00"  # display offset 0
    b"\xda\x02"  # COM pins: sequential for 32 rows, alternative (0x12) for 64
    b"\xd5\x80"  # clock divide ratio / oscillator frequency
    b"\xd9\xf1"  # pre-charge periods (internal charge pump; 0x22 for external VCC)
    b"\xdb\x30"  # VCOMH deselect level 0.83 Vcc
    b"\x81\x8f"  # contrast
    b"\xa4"  # output follows RAM
    b"\xa6"  # normal, not inverted
    b"\x8d\x14"  # charge pump on (0x10: off, for external VCC)
)
_AT_MUX = const(7)
_AT_COM_PINS = const(12)
_AT_PRECHARGE = const(16)
_AT_CHARGE_PUMP = const(24)


# The constructor takes micropython-lib's arguments, so board.py (and code
# written for that driver) can use this one unchanged.
class SSD1306_I2C(framebuf.FrameBuffer):
    def __init__(self, width, height, i2c, addr=0x3C, external_vcc=False):
        self._i2c = i2c
        self._addr = addr
        pages = height // 8
        # One buffer for the whole write: the data control byte, then the frame.
        self._buf = bytearray(1 + width * pages)
        self._buf[0] = _CTRL_DATA
        super().__init__(memoryview(self._buf)[1:], width, height, framebuf.MONO_VLSB)
        self._cmd1 = bytearray((_CTRL_CMD, 0))
        self._cmd2 = bytearray((_CTRL_CMD, 0, 0))
        # The RAM window the frame fills; in horizontal mode the address wraps
        # back to its start after each full frame, so show() needs no command.
        self._window = bytes((_CTRL_CMD, _COL_ADDR, 0, width - 1, _PAGE_ADDR, 0, pages - 1))
        self._resync = False
        init = bytearray(_INIT)
        init[_AT_MUX] = height - 1
        init[_AT_COM_PINS] = 0x02 if width > 2 * height else 0x12
        if external_vcc:
            init[_AT_PRECHARGE] = 0x22
            init[_AT_CHARGE_PUMP] = 0x10
        i2c.writeto(addr, init)
        i2c.writeto(addr, self._window)
        # RAM holds noise at power-up: clear it before turning the panel on.
        self.fill(0)
        self.show()
        self.poweron()

    def show(self):
        if self._resync:
            self._i2c.writeto(self._addr, self._window)
            self._resync = False
        try:
            self._i2c.writeto(self._addr, self._buf)
        except OSError:
            # A partial frame leaves the RAM address mid-window: reset it next time.
            self._resync = True
            raise

    def poweroff(self):
        self._command(_DISPLAY_OFF)

    def poweron(self):
        self._command(_DISPLAY_ON)

    def contrast(self, value):
        cmd = self._cmd2
        cmd[1] = _SET_CONTRAST
        cmd[2] = value
        self._i2c.writeto(self._addr, cmd)

    def _command(self, c):
        self._cmd1[1] = c
        self._i2c.writeto(self._addr, self._cmd1)

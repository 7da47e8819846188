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


class SSD1306(framebuf.FrameBuffer):
    def __init__(self, i2c, addr=0x3C, width=128, height=32, contrast=0x8F):
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
        self._init(width, height, contrast)

    def _init(self, width, height, contrast):
        self._i2c.writeto(
            self._addr,
            bytes(
                (
                    _CTRL_CMD,
                    _DISPLAY_OFF,
                    0x20, 0x00,  # memory addressing: horizontal
                    0x40,  # display start line 0
                    0xA1,  # segment remap: column 127 is SEG0
                    0xA8, height - 1,  # multiplex ratio: 0x1F for 32 rows
                    0xC8,  # COM scan from COM[N-1] to COM0
                    0xD3, 0x00,  # display offset 0
                    0xDA, 0x02 if width > 2 * height else 0x12,  # COM pins
                    0xD5, 0x80,  # clock divide ratio / oscillator
                    0xD9, 0xF1,  # pre-charge: internal charge pump
                    0xDB, 0x30,  # VCOMH deselect 0.83 Vcc
                    _SET_CONTRAST, contrast,
                    0xA4,  # output follows RAM
                    0xA6,  # normal, not inverted
                    0x8D, 0x14,  # charge pump on
                )
            ),
        )
        self._i2c.writeto(self._addr, self._window)
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

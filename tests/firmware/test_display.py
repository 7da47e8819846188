# Tests for display.py (text lines, mmss) and the ssd1306.py driver.
# Fake OLED and I2C objects; run with tests/firmware/run.py test_display.
import display as D
import ssd1306


class FakeOled:
    def __init__(self):
        self.calls = []

    def fill(self, c):
        self.calls.append(("fill", c))

    def text(self, s, x, y, c):
        self.calls.append(("text", s, x, y, c))

    def show(self):
        self.calls.append(("show",))


def test_first_flush_draws_all_lines():
    oled = FakeOled()
    d = D.Display(oled)
    d.line(0, "READY")
    d.line(2, "ESC 12 4:59")
    assert d.lines == ["READY", "", "ESC 12 4:59", ""]
    assert d.flush()
    assert oled.calls == [
        ("fill", 0),
        ("text", "READY", 0, 0, 1),
        ("text", "", 0, 8, 1),
        ("text", "ESC 12 4:59", 0, 16, 1),
        ("text", "", 0, 24, 1),
        ("show",),
    ], oled.calls


def test_flush_only_on_change():
    oled = FakeOled()
    d = D.Display(oled)
    d.line(0, "READY")
    d.flush()
    oled.calls = []
    d.line(0, "READY")  # the app re-sets lines every tick
    assert not d.flush()
    assert oled.calls == []
    d.line(3, "SL GREEN")
    assert d.flush()
    assert oled.calls[-1] == ("show",) and ("text", "SL GREEN", 0, 24, 1) in oled.calls
    oled.calls = []
    assert not d.flush()
    d.invalidate()
    assert d.flush() and oled.calls[-1] == ("show",)


def test_lines_truncated_to_16():
    oled = FakeOled()
    d = D.Display(oled)
    d.line(1, "0123456789ABCDEFGHIJ")
    d.flush()
    assert ("text", "0123456789ABCDEF", 0, 8, 1) in oled.calls
    # A longer text with the same first 16 chars changes nothing on screen.
    oled.calls = []
    d.line(1, "0123456789ABCDEFxyz")
    assert not d.flush()


def test_other_geometry():
    oled = FakeOled()
    d = D.Display(oled, cols=8, rows=2)
    d.line(1, "abcdefghij")
    d.flush()
    assert oled.calls[1:3] == [("text", "", 0, 0, 1), ("text", "abcdefgh", 0, 8, 1)]


def test_mmss():
    cases = [
        (0, "0:00"),
        (5, "0:05"),
        (59, "0:59"),
        (60, "1:00"),
        (599, "9:59"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3661, "1:01:01"),
        (36000, "10:00:00"),
        (-1, "-0:01"),
        (-75, "-1:15"),
        (-3725, "-1:02:05"),
        (90.9, "1:30"),
    ]
    for seconds, want in cases:
        got = D.mmss(seconds)
        assert got == want, (seconds, got, want)


# --- ssd1306 ----------------------------------------------------------------


class FakeI2c:
    def __init__(self):
        self.writes = []

    def writeto(self, addr, buf):
        self.writes.append((addr, bytes(buf)))


class FailingI2c(FakeI2c):
    fail = False

    def writeto(self, addr, buf):
        if self.fail:
            raise OSError(19)
        super().writeto(addr, buf)


def test_ssd1306_init_sequence():
    i2c = FakeI2c()
    oled = ssd1306.SSD1306_I2C(128, 32, i2c)
    addrs = {a for a, _ in i2c.writes}
    assert addrs == {0x3C}
    init = i2c.writes[0][1]
    assert init[0] == 0x00  # command stream
    assert init[1] == 0xAE  # display off while configuring
    # 128x32: multiplex 0x1F, COM pins 0x02, charge pump on.
    assert bytes((0xA8, 0x1F)) in init
    assert bytes((0xDA, 0x02)) in init
    assert bytes((0x8D, 0x14)) in init
    assert bytes((0x81, 0x8F)) in init
    assert bytes((0xD9, 0xF1)) in init
    assert bytes((0x20, 0x00)) in init  # horizontal addressing
    # Then the RAM window, a cleared frame, and display on last.
    assert i2c.writes[1][1] == bytes((0x00, 0x21, 0, 127, 0x22, 0, 3))
    frame = i2c.writes[2][1]
    assert len(frame) == 513 and frame[0] == 0x40 and frame[1:] == bytes(512)
    assert i2c.writes[3][1] == bytes((0x00, 0xAF))
    assert len(i2c.writes) == 4
    assert isinstance(oled, ssd1306.framebuf.FrameBuffer)


def test_ssd1306_geometry_and_supply():
    i2c = FakeI2c()
    oled = ssd1306.SSD1306_I2C(128, 64, i2c, 0x3D, external_vcc=True)
    init = i2c.writes[0][1]
    assert bytes((0xA8, 0x3F)) in init and bytes((0xDA, 0x12)) in init
    assert bytes((0xD9, 0x22)) in init and bytes((0x8D, 0x10)) in init
    assert i2c.writes[1][1] == bytes((0x00, 0x21, 0, 127, 0x22, 0, 7))
    assert len(i2c.writes[2][1]) == 1025 and i2c.writes[0][0] == 0x3D
    oled.pixel(0, 63, 1)


def test_ssd1306_show_is_one_write():
    i2c = FakeI2c()
    oled = ssd1306.SSD1306_I2C(128, 32, i2c)
    i2c.writes = []
    oled.text("A", 0, 0, 1)
    oled.pixel(127, 31, 1)
    oled.show()
    assert len(i2c.writes) == 1
    addr, data = i2c.writes[0]
    assert addr == 0x3C and len(data) == 512 + 1 and data[0] == 0x40
    assert any(data[1:9])  # the glyph, in page 0 columns 0-7
    assert data[512] & 0x80  # pixel (127, 31): last page, last column, top bit


def test_flush_allocates_nothing():
    import micropython

    i2c = FakeI2c()
    oled = ssd1306.SSD1306_I2C(128, 32, i2c)
    i2c.writeto = lambda addr, buf: None
    d = D.Display(oled)
    d.flush()
    text = "ON CALL 1:23"
    micropython.heap_lock()
    try:
        d.line(0, text)
        d.line(3, "SL GREEN")
        assert d.flush()
        oled.show()
    finally:
        micropython.heap_unlock()


def test_ssd1306_power_and_contrast():
    i2c = FakeI2c()
    oled = ssd1306.SSD1306_I2C(128, 32, i2c)
    i2c.writes = []
    oled.poweroff()
    oled.poweron()
    oled.contrast(0x20)
    assert [w for _, w in i2c.writes] == [b"\x00\xae", b"\x00\xaf", b"\x00\x81\x20"]


def test_ssd1306_resyncs_after_failed_write():
    i2c = FailingI2c()
    oled = ssd1306.SSD1306_I2C(128, 32, i2c)
    i2c.fail = True
    try:
        oled.show()
        raise AssertionError("no OSError")
    except OSError:
        pass
    i2c.fail = False
    i2c.writes = []
    oled.show()
    assert [len(w) for _, w in i2c.writes] == [7, 513]
    i2c.writes = []
    oled.show()
    assert [len(w) for _, w in i2c.writes] == [513]


def test_display_on_ssd1306():
    i2c = FakeI2c()
    d = D.Display(ssd1306.SSD1306_I2C(128, 32, i2c))
    i2c.writes = []
    d.line(0, "WRAP " + D.mmss(-75))
    assert d.flush()
    assert len(i2c.writes) == 1 and any(i2c.writes[0][1][1:])
    assert not d.flush()
    assert len(i2c.writes) == 1

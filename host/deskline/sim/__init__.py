"""Virtual consoles: the real firmware on the MicroPython unix port."""

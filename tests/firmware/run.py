# Runs one firmware test module under the MicroPython unix port.
# Usage (from the repository root):
#   micropython tests/firmware/run.py test_journal [MPY_DIR]
# MPY_DIR holds the firmware compiled by mpy-cross, as a console runs it;
# without it the sources are compiled on import (needs a larger heap).
import sys

sys.path.insert(0, "tests/firmware")
sys.path.insert(0, "firmware")
if len(sys.argv) > 2:
    sys.path.insert(0, sys.argv[2])


def main():
    name = sys.argv[1]
    mod = __import__(name)
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    passed = failed = 0
    for n in names:
        try:
            getattr(mod, n)()
            passed += 1
            print("PASS", n)
        except Exception as e:
            failed += 1
            print("FAIL", n)
            sys.print_exception(e)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


main()

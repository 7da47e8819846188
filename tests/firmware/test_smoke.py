# Smoke test of the firmware test runner itself.
def test_runner_imports_firmware_path():
    import sys

    assert "firmware" in sys.path

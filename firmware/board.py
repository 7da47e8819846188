# Builds the console's hardware from /board.json (a copy of one of
# hardware/boards/*.json): boardesp32.py for real chips, boardsim.py for the sim.
import json

PATH = "/board.json"


def spec():
    with open(PATH) as f:
        return json.load(f)


def escalate_held():
    # Read once at power-up by boot.py, before the app owns the pins.
    s = spec()
    if s["chip"] == "sim":
        import boardsim

        return boardsim.escalate_held(s)
    import boardesp32

    return boardesp32.escalate_held(s)


def make():
    s = spec()
    if s["chip"] == "sim":
        import boardsim

        return boardsim.SimBoard(s)
    import boardesp32

    return boardesp32.Board(s)

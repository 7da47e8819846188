# Safe boot: ESCALATE held at power-up skips the app and leaves the REPL to
# mpremote.  boot.py decides; main.py obeys (modules live on between them).
skip = False


def check():
    global skip
    try:
        import board

        skip = board.escalate_held()
    except Exception as e:  # a broken board file must not lock the REPL out
        print("deskline: board check failed:", e)
        skip = True
    if skip:
        print("deskline: safe boot, app not started; the REPL is free")

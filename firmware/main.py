# Starts the console app unless boot.py chose safe boot.
import safeboot

if not safeboot.skip:
    import app

    app.main()

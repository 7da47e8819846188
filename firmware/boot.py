# Runs first at every boot: decides safe boot before main.py starts the app.
import safeboot

safeboot.check()

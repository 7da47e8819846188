#!/bin/sh
# Debian's chromium for the dashboard's browser tests (tests/browserkit.py).
# `make test` runs this first; it does nothing when chromium is already there.
# Playwright drives this browser: `playwright install` (a download) is never used.
set -eu

CHROMIUM=/usr/bin/chromium

if [ "${DESKLINE_NO_BROWSER:-}" = 1 ]; then
    echo "install-browser: DESKLINE_NO_BROWSER=1, the browser tests will be skipped"
    exit 0
fi
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

fail() {
    echo "install-browser: $*" >&2
    echo "install-browser: install Debian's chromium as root (apt-get install chromium)," >&2
    echo "install-browser: or set DESKLINE_NO_BROWSER=1 to skip the browser tests" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "no apt-get here to install $CHROMIUM"
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    # At a terminal sudo may ask for a password; elsewhere (CI) it must not hang.
    if [ -t 0 ]; then as_root="sudo"; else as_root="sudo -n"; fi
else
    fail "not root and no sudo: cannot install $CHROMIUM"
fi

echo "install-browser: installing Debian's chromium for the browser tests (apt-get)"
$as_root apt-get update -qq || fail "apt-get update failed"
$as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends chromium || fail "apt-get install chromium failed"
[ -x "$CHROMIUM" ] || fail "apt-get installed chromium but $CHROMIUM is missing"
"$CHROMIUM" --version

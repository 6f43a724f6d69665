#!/usr/bin/env bash
# Debian libraries for headless MuJoCo rendering (EGL / OSMesa) and Chromium for the page check. Installs them
# when we are root and they are missing; otherwise says what to install. Never fails the build: rendering chapters
# and the page check check for themselves.
set -u
# chromium: scripts/check_pages.py (make page-check) looks at the built pages in it.
pkgs="libosmesa6 libegl1 libgl1 libegl-mesa0 libgles2 libglx-mesa0 chromium"
missing=""
for p in $pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing headless rendering libraries:$missing"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
    || echo "warning: apt-get could not install$missing; image rendering will be unavailable"
else
  echo "note: for headless rendering install:$missing (sudo apt-get install ...)"
fi
exit 0

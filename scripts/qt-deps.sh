#!/usr/bin/env bash
# The system libraries Qt's X11 (xcb) platform plugin needs, found with ldd on the plugin itself.
# On a fresh Debian/Ubuntu desktop some are missing (libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1...)
# and Qt aborts at start with a message about the "xcb" plugin. Installs them with apt-get when run
# as root; otherwise prints the one command that does. Skipped when Qt is told to use another platform.
# Exit status: 0 ready (or not needed), 1 libraries missing that could not be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
case "${QT_QPA_PLATFORM:-xcb}" in xcb*) ;; *) exit 0 ;; esac
plugin=$("$VENV/bin/python" -c "import pathlib, PySide6; print(pathlib.Path(PySide6.__file__).parent / 'Qt/plugins/platforms/libqxcb.so')")
[ -f "$plugin" ] || exit 0
missing=$(ldd "$plugin" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
[ -z "$missing" ] && exit 0
declare -A package=(
  [libxcb-cursor.so.0]=libxcb-cursor0 [libxcb-icccm.so.4]=libxcb-icccm4 [libxcb-keysyms.so.1]=libxcb-keysyms1
  [libxcb-image.so.0]=libxcb-image0 [libxcb-render-util.so.0]=libxcb-render-util0 [libxcb-xkb.so.1]=libxcb-xkb1
  [libxkbcommon-x11.so.0]=libxkbcommon-x11-0 [libxkbcommon.so.0]=libxkbcommon0 [libxcb-shape.so.0]=libxcb-shape0
  [libxcb-randr.so.0]=libxcb-randr0 [libxcb-util.so.1]=libxcb-util1 [libxcb-xfixes.so.0]=libxcb-xfixes0
  [libxcb-sync.so.1]=libxcb-sync1 [libxcb-shm.so.0]=libxcb-shm0 [libxcb-render.so.0]=libxcb-render0
  [libX11-xcb.so.1]=libx11-xcb1 [libEGL.so.1]=libegl1 [libGL.so.1]=libgl1 [libfontconfig.so.1]=libfontconfig1
  [libglib-2.0.so.0]=libglib2.0-0 [libgthread-2.0.so.0]=libglib2.0-0 [libdbus-1.so.3]=libdbus-1-3
  [libfreetype.so.6]=libfreetype6
)
pkgs=()
unknown=()
for lib in $missing; do
  if [ -n "${package[$lib]:-}" ]; then pkgs+=("${package[$lib]}"); else unknown+=("$lib"); fi
done
pkgs=($(printf '%s\n' "${pkgs[@]}" | sort -u))
echo "qt-deps: Qt's X11 platform plugin needs system libraries that are missing: $(echo $missing)" >&2
if [ ${#pkgs[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "qt-deps: installing ${pkgs[*]}" >&2
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1 ||
     { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1; }; then
    [ ${#unknown[@]} -eq 0 ] && exit 0
  fi
fi
[ ${#pkgs[@]} -gt 0 ] && echo "qt-deps: install them with:  sudo apt-get install ${pkgs[*]}" >&2
[ ${#unknown[@]} -gt 0 ] && echo "qt-deps: also needed (find the package of your system): ${unknown[*]}" >&2
exit 1

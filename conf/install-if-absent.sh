#!/bin/sh
# install-if-absent.sh: meson install script: copy default config files into a directory, never over an existing file.
# Usage (from meson.add_install_script): install-if-absent.sh DIR FILE...
# DIR is absolute (config_directory, outside the prefix); $DESTDIR, when set, is prepended as meson does.
set -eu
[ $# -ge 2 ] || {
        echo "usage: $0 DIR FILE..." >&2
        exit 2
}
dir=$1
shift
if [ -n "${MESON_INSTALL_DRY_RUN:-}" ]; then
        exit 0
fi
dest=${DESTDIR:-}$dir
install -d -m 0755 "$dest"
for f in "$@"; do
        target=$dest/$(basename "$f")
        if [ -e "$target" ] || [ -L "$target" ]; then
                # An operator's file (or a package's %config(noreplace) one) always wins.
                [ -n "${MESON_INSTALL_QUIET:-}" ] || echo "Keeping existing $target"
                continue
        fi
        install -m 0644 "$f" "$target"
        [ -n "${MESON_INSTALL_QUIET:-}" ] || echo "Installing $f to $target"
done

#!/usr/bin/env bash
# Builds sessiongate and installs it as a systemd service (Debian 12 or 13, as root).
#
#   bash deploy/install.sh                    # /usr/bin, /etc/sessiongate, /usr/lib/systemd/system
#   PREFIX=/usr/local bash deploy/install.sh  # /usr/local/bin, /usr/local/etc/sessiongate, ...
#   DESTDIR=/tmp/root bash deploy/install.sh  # stage into a directory (packaging); no systemctl
#
# Creates no user, group or directory of its own: the unit's DynamicUser=, StateDirectory= and
# LogsDirectory= make those when the service starts. An existing gateway.toml is kept (the new
# default is written beside it as gateway.toml.new). Then edit the configuration and run
#   systemctl enable --now sessiongate
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr}
build=${SG_BUILD_DIR:-build-release}

bash deploy/install-deps.sh run
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$build" -j"$(nproc)" --target sessiongate
cmake --install "$build" --prefix "$prefix"

root=${DESTDIR:-}
# The configuration the installed unit runs with, checked by the installed binary.
unit="$root$prefix/lib/systemd/system/sessiongate.service"
config=$(awk '/^ExecStart=/ { for (i = 1; i <= NF; i++) if ($i == "--config") print $(i + 1) }' "$unit")
if [ -d /var/lib/sessiongate ]; then
  "$root$prefix/bin/sessiongate" --check --config "$root$config"
else
  # --check wants the snapshot's directory to exist, and /var/lib/sessiongate is systemd's to
  # create (StateDirectory=) when the service starts: check a copy that keeps it elsewhere.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  sed "s|\"/var/lib/sessiongate/|\"$tmp/|" "$root$config" >"$tmp/gateway.toml"
  "$root$prefix/bin/sessiongate" --check --config "$tmp/gateway.toml"
fi
if [ -n "$root" ]; then
  echo "staged into $root"
elif [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "installed: edit $config, then: systemctl enable --now sessiongate"
else
  echo "installed (systemd is not running here: no daemon-reload)"
fi

#!/usr/bin/env bash
# Installs what sessiongate needs to build, run and test, from Debian's packages only.
#
# On Debian 12 (bookworm) llhttp 9.2 is not packaged; the 8.1 copy inside node-llhttp accepts
# request-smuggling patterns (CVE-2023-30589, CVE-2024-27982, CVE-2025-23167), so we take
# libllhttp-dev and libllhttp9.2 alone from Debian 13 (trixie) through an apt pin. The trixie source
# reuses the URI of the machine's own Debian source: no mirror host is named here.
#
# Usage: deploy/install-deps.sh [run|test]   (test adds the test and benchmark tools)
set -euo pipefail

want=${1:-test}
[ "$(id -u)" -eq 0 ] || { echo "install-deps: run as root (apt-get)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

# First URI of the machine's main Debian archive (not -security), deb822 or one-line format.
debian_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/ && $i ~ /debian\/?$/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\// && $i !~ /security/ && $i ~ /debian\/?$/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
}

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ "$codename" = bookworm ] && ! dpkg -s libllhttp-dev >/dev/null 2>&1; then
  uri=$(debian_uri)
  [ -n "$uri" ] || { echo "install-deps: no Debian source found in /etc/apt" >&2; exit 1; }
  cat >/etc/apt/sources.list.d/sessiongate-trixie.sources <<SRC
# Added by sessiongate deploy/install-deps.sh: only llhttp 9.2 is taken from here (see preferences.d).
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/sessiongate-llhttp <<'PIN'
# Nothing from trixie unless asked for by name...
Package: *
Pin: release n=trixie
Pin-Priority: 1

# ...except llhttp 9.2, which bookworm does not have.
Package: libllhttp-dev libllhttp9.2
Pin: release n=trixie
Pin-Priority: 500
PIN
fi

pkgs=(build-essential cmake pkg-config libuv1-dev libllhttp-dev libssl-dev libtomlplusplus-dev
      libhiredis-dev doctest-dev libnghttp2-dev python3 curl ca-certificates openssl)
if [ "$want" = test ]; then
  pkgs+=(redis-server redis-tools wrk nginx-light haproxy valgrind clang-14 libclang-rt-14-dev
         clang-format strace procps prometheus chromium  # chromium: tests/integration/test_browser.py
         slowhttptest  # tests/bench/slowhttp.sh
         python3-yaml  # tests/integration/test_deploy.py parses the Kubernetes manifests
         nghttp2-client python3-h2  # HTTP/2 clients (nghttp, h2load) for the HTTP/2 tests
         php-cli)  # tests/integration/test_identity_verifiers.py runs the PHP verifier
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# A freshly installed nginx or redis may have started system services; our tests start their own.
for svc in nginx redis-server haproxy prometheus; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
done
exit 0

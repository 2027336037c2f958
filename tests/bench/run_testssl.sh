#!/usr/bin/env bash
# testssl.sh against the gateway's TLS listener (issue 5). Not a test and not in CI: a report.
#
#   bash tests/bench/run_testssl.sh                 # full run, EC P-256 certificate
#   KEY=rsa bash tests/bench/run_testssl.sh         # RSA 2048 certificate
#   FAST=1 bash tests/bench/run_testssl.sh          # testssl --fast
#
# Needs the Debian package testssl.sh (`apt-get install testssl.sh`, command `testssl`), openssl,
# python3 and a built gateway. Starts, on loopback free ports: a stdlib Python origin answering
# 200, and the gateway with [tls] (a self-signed certificate made here, default min_version and
# ciphers, strict_transport_security set) and [server] redirect_listen. Runs
# `testssl --quiet --color 0` on the TLS port, prints its output, then a summary: the rating
# section and every finding above OK/INFO severity (from testssl's JSON). Everything started is
# stopped at exit. Environment: SG_BIN, KEY=ec|rsa, FAST=1, KEEP_TMP=1, TESTSSL (the command).
# Sources bench_lib.sh (this folder) for the parts shared with the benchmarks.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_lib.sh"  # root, stop_pid, py, the Python helper, the configuration pieces
SG_BIN=${SG_BIN:-$root/build/sessiongate}
KEY=${KEY:-ec}
TESTSSL=${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}

if [[ -z $TESTSSL ]]; then
  echo "run_testssl.sh: testssl not found; apt-get install testssl.sh" >&2
  exit 2
fi
[[ -x $SG_BIN ]] || { echo "run_testssl.sh: build the gateway first ($SG_BIN)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/sg-testssl.XXXXXX)
bench_traps
bench_kept_note() { echo "kept $tmp" >&2; }
bench_helper </dev/null

read -r P_ORIGIN P_TLS P_REDIRECT < <(py free_ports 3)
bench_cert "$KEY" "$tmp/cert.pem" "$tmp/key.pem" 90

cat >"$tmp/origin.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"testssl origin\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$tmp/origin.py" "$P_ORIGIN" &
pids+=($!)

{
  gateway_toml "$P_TLS" "$P_ORIGIN" "redirect_listen = \"127.0.0.1:$P_REDIRECT\"
drain_timeout = \"2s\""
  cat <<EOF
[tls]
certificate = "$tmp/cert.pem"
private_key = "$tmp/key.pem"
strict_transport_security = "max-age=31536000; includeSubDomains"
EOF
} >"$tmp/gateway.toml"
"$SG_BIN" --config "$tmp/gateway.toml" >"$tmp/sg.out" 2>"$tmp/sg.err" &
SG_PID=$!
pids+=("$SG_PID")
py wait_tls "$P_TLS" 10 || { echo "gateway did not start: $(cat "$tmp/sg.err")" >&2; exit 1; }

args=(--quiet --color 0 --warnings off --ip 127.0.0.1 --jsonfile "$tmp/testssl.json")
[[ ${FAST:-0} == 1 ]] && args+=(--fast)
echo "== $TESTSSL ${args[*]} localhost:$P_TLS  (gateway $("$SG_BIN" --version), key $KEY)"
"$TESTSSL" "${args[@]}" "localhost:$P_TLS" | tee "$tmp/testssl.txt"
rc=${PIPESTATUS[0]}

echo
echo "== summary (testssl exit $rc)"
if grep -q 'Rating (experimental)' "$tmp/testssl.txt"; then
  sed -n '/Rating (experimental)/,$p' "$tmp/testssl.txt" | sed '/^ *Done /,$d'
else
  echo "(no rating section: testssl $("$TESTSSL" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1) predates it)"
fi
grep -E '^ (SSLv2|SSLv3|TLS 1(\.[0-3])?|ALPN/HTTP2|Has server cipher order\?|Session Resumption|Strict Transport Security|Cookie\(s\)) ' "$tmp/testssl.txt"
python3 - "$tmp/testssl.json" <<'PY'
import json, sys
try:
    items = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"no JSON from testssl: {e}"); sys.exit(0)
bad = [i for i in items if i.get("severity") not in ("OK", "INFO", "DEBUG")]
print(f"findings above OK/INFO: {len(bad)}")
for i in bad:
    print(f"  {i.get('severity'):8} {i.get('id')}: {i.get('finding')}")
PY
if ! kill -0 "$SG_PID" 2>/dev/null; then
  echo "the gateway died during the scan: $(tail -5 "$tmp/sg.err")"
  exit 1
fi

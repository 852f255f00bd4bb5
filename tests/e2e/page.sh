#!/usr/bin/env bash
# The status page ([control] http) as an operator's browser shows it:
# headless chromium renders the page of a running switch with one member
# down, one disabled and one up, after a reload; the rendered DOM is checked
# for each member's state, the generation, the ports and a drop reason the
# test caused. The same listener's /api/overview and /metrics are checked
# independently (JSON, promtool), the Grafana dashboard asks only for
# metrics the switch exports, and the listener is read-only and loopback.
# A screenshot is kept for a person to look at: in scripts/test.sh's log
# directory ($SLUICE_TEST_LOG), else in /tmp/sluice-artifacts.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v chromium >/dev/null || apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1
command -v promtool >/dev/null || apt-get install -y -qq prometheus >/dev/null 2>&1
command -v curl >/dev/null || apt-get install -y -qq curl >/dev/null 2>&1
command -v socat >/dev/null || apt-get install -y -qq socat >/dev/null 2>&1

VIP=198.51.100.10
HTTP=127.0.0.1:9178
LABSH="$HERE/scripts/lab.sh"
PY=/usr/bin/python3
ARTIFACTS=${SLUICE_TEST_LOG:-/tmp/sluice-artifacts}
mkdir -p "$ARTIFACTS"

page_cleanup() {
    [ -n "${LOOP:-}" ] && kill "$LOOP" 2>/dev/null
    [ -n "${FAKE:-}" ] && kill "$FAKE" 2>/dev/null
    "$LABSH" start-member 2 >/dev/null 2>&1
}
trap 'page_cleanup; cleanup' EXIT

# render URL OUT: the DOM after the page's scripts ran (8 s of virtual time:
# the first fetch and a few polls).
render() {
    timeout -k 5 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$WORK/chromium" \
        --virtual-time-budget=8000 --dump-dom "$1" >"$2" 2>"$WORK/chromium.err"
}
expect_members() { # expect_members M1 M2 M3: the JSON of all six rows
    local vs i s out="" sep=""
    for vs in web web-udp; do
        i=1
        for s in "$@"; do
            out+="$sep\"$vs|10.20.0.1$i:8080\": \"$s\""
            sep=", "
            i=$((i + 1))
        done
    done
    echo "{$out}"
}

"$LABSH" up >/dev/null
# A bare port: the listener binds 127.0.0.1 by default.
"$LABSH" config dest_nat 2 | sed "/^socket = /a http = ${HTTP##*:}" >"$WORK/page.toml"
printf '\n[health_check.fast]\nkind = "tcp"\ninterval = "500ms"\ntimeout = "400ms"\nfall = 2\nrise = 2\n' >>"$WORK/page.toml"
sed -i 's/^\[pool.web\]$/[pool.web]\nhealth_check = "fast"/' "$WORK/page.toml"
if ! start_sluice "$WORK/page.toml"; then bad "sluice starts"; finish; exit; fi

section "1. the listener"
listening=$(ss -Hltn "sport = :${HTTP##*:}" | awk '{ print $4 }' | tr '\n' ' ')
check "http = ${HTTP##*:} listens on $HTTP and nowhere else (${listening})" test "$listening" = "$HTTP "
code=$(curl -s -D "$WORK/post.h" -o /dev/null -w '%{http_code}' -X POST "http://$HTTP/")
check "POST / is refused with 405 ($code), naming what is allowed" \
    bash -c "test '$code' = 405 && grep -qi '^Allow: GET, HEAD' '$WORK/post.h'"
printf 'HEAD / HTTP/1.0\r\nHost: %s\r\n\r\n' "$HTTP" | timeout 5 socat - "TCP:$HTTP" >"$WORK/head.out"
len=$(grep -i '^Content-Length:' "$WORK/head.out" | tr -dc 0-9)
check "HEAD / answers 200 with the page's length (${len:-none}) and no body" \
    bash -c "head -1 '$WORK/head.out' | grep -q ' 200 ' && test '${len:-0}' -gt 1000 && ! grep -q '<html' '$WORK/head.out'"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: rebound.example:${HTTP##*:}" "http://$HTTP/api/overview")
check "a request naming another host (DNS rebinding) is refused with 403 ($code)" test "$code" = 403
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: localhost:${HTTP##*:}" "http://$HTTP/api/overview")
check "  and one naming localhost is answered ($code)" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$HTTP/nothing-here")
check "an unknown path is 404 ($code)" test "$code" = 404
ctype=$(curl -s -o /dev/null -w '%{content_type}' "http://$HTTP/")
check "GET / is an HTML page ($ctype)" grep -q '^text/html' <<<"$ctype"

section "2. a switch with a member down, one disabled, after a reload"
for i in 1 2 3; do wait_state "10.20.0.1$i:8080" up 10 web || true; done
client bash -c "for i in \$(seq 6); do curl -s -m 5 http://$VIP/ >/dev/null; done"
# Three datagrams to a port of the VIP with no virtual server: dropped, and counted.
client "$PY" -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3): s.sendto(b'x', ('$VIP', 9999))"
# A real change (m1's weight), so the reload makes generation 1 (0 at boot).
sed -i 's/{ address = "10.20.0.11:8080" }/{ address = "10.20.0.11:8080", weight = 2 }/' "$WORK/page.toml"
out=$(ctl reload); rc=$?
check "reload answers ok ($(tr '\n' ' ' <<<"$out"))" test "$rc" -eq 0 -a -n "$(grep "^reloaded: generation 1$" <<<"$out")"
"$LABSH" stop-member 2 >/dev/null
ctl member disable 10.20.0.13:8080 >/dev/null
if wait_state 10.20.0.12:8080 down 10 web; then ok "m2 is down for sluicectl (${WAITED}s)"; else bad "m2 went down"; fi
# Requests (at most 80, 20 s) until the rate history has two points.
client bash -c "for i in \$(seq 80); do curl -s -m 2 http://$VIP/ >/dev/null; sleep 0.25; done" &
LOOP=$!
points=0
for _ in $(seq 100); do
    points=$(curl -s "http://$HTTP/api/overview" | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["history"]["points"]))' 2>/dev/null)
    [ "${points:-0}" -ge 2 ] && break
    sleep 0.25
done
curl -s "http://$HTTP/api/overview" >"$WORK/rates.json"
kill "$LOOP" 2>/dev/null; wait "$LOOP" 2>/dev/null
check "the rate history has points (${points:-0}) and web's packets/s is above 0 in one" "$PY" -c "
import json, sys
pts = json.load(open('$WORK/rates.json'))['history']['points']
rates = [s['packets_per_s'] for p in pts for s in p['servers'] if s['name'] == 'web']
print(rates)
sys.exit(0 if len(pts) >= 2 and max(rates, default=0) > 0 else 1)"

render "http://$HTTP/" "$WORK/dom.html"
check "chromium rendered the page ($(wc -c <"$WORK/dom.html") bytes)" test -s "$WORK/dom.html"
expect="{\"members\": $(expect_members up down disabled), \"generation\": 1,
  \"ports\": {\"ext\": \"up\", \"int\": \"up\"}, \"virtual_servers\": [\"web\", \"web-udp\"],
  \"drops\": {\"no_virtual_server\": 3}, \"error\": false,
  \"charts\": {\"servers.packets_per_s\": [\"web\", \"web-udp\"], \"servers.sessions\": [\"web\"],
              \"workers.packets_per_s\": [\"worker 0\", \"worker 1\"]}}"
if "$PY" "$HERE/tests/lab/page_check.py" "$WORK/dom.html" "$expect" >"$WORK/page_check.out" 2>&1; then
    ok "the rendered page shows m1 up, m2 down, m3 disabled in both virtual servers, generation 1, both ports up, the 3 drops, rate lines per server and worker"
else
    bad "the rendered page:"; sed 's/^/         /' "$WORK/page_check.out"
fi
wrong="{\"members\": $(expect_members up up disabled)}"
check "the same check refuses a page that would show m2 up" \
    bash -c "! '$PY' '$HERE/tests/lab/page_check.py' '$WORK/dom.html' '$wrong' >/dev/null 2>&1"
timeout -k 5 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$WORK/chromium" \
    --virtual-time-budget=8000 --window-size=1400,1800 --screenshot="$ARTIFACTS/status-page.png" \
    "http://$HTTP/" >/dev/null 2>&1
check "a screenshot is kept ($ARTIFACTS/status-page.png)" bash -c "head -c 8 '$ARTIFACTS/status-page.png' | od -An -tx1 | grep -q '89 50 4e 47'"

section "3. /api/overview and /metrics on the same listener"
curl -s "http://$HTTP/api/overview" >"$WORK/overview.json"
check "/api/overview has each member's state (m1 up, m2 down, m3 disabled)" "$PY" -c "
import json, sys
o = json.load(open('$WORK/overview.json'))
got = {(m['virtual_server'], m['member']): m['state'] for m in o['members']}
want = {(vs, '10.20.0.1%d:8080' % i): s for vs in ('web', 'web-udp') for i, s in ((1, 'up'), (2, 'down'), (3, 'disabled'))}
sys.exit(0 if got == want else print(got))"
curl -s "http://$HTTP/metrics" >"$WORK/metrics.txt"
check "/metrics passes promtool check metrics" bash -c "promtool check metrics <'$WORK/metrics.txt' >'$WORK/promtool.out' 2>&1"
check "/metrics has m2 down" grep -qxF 'sluice_member_up{virtual_server="web",pool="web",member="10.20.0.12:8080"} 0' "$WORK/metrics.txt"
ctl metrics >"$WORK/metrics-ctl.txt"
series() { awk '/^#/ { print; next } { print $1 }' "$1"; }
if diff <(series "$WORK/metrics.txt") <(series "$WORK/metrics-ctl.txt") >"$WORK/metrics.diff"; then
    ok "/metrics has the families and series sluicectl metrics prints ($(grep -c '^# TYPE' "$WORK/metrics.txt") families)"
else
    bad "/metrics and sluicectl metrics differ:"; head -20 "$WORK/metrics.diff" | sed 's/^/         /'
fi
if "$PY" "$HERE/tests/lab/dashboard_check.py" "$HERE/packaging/grafana-dashboard.json" "$WORK/metrics.txt" \
    --optional sluice_kernel_frames_total >"$WORK/dashboard.out" 2>&1; then
    ok "every metric the Grafana dashboard asks for is exported ($(grep -c . "$WORK/dashboard.out") lines of report)"
else
    bad "the dashboard asks for metrics the switch lacks:"; sed 's/^/         /' "$WORK/dashboard.out"
fi

section "4. the control socket, as a person or a script speaks it"
sock() { echo "$1" | timeout 5 socat - "UNIX-CONNECT:$LAB_DIR/sluice.sock"; }
check "a typed command line gets the text table (m2 down)" \
    bash -c "$(declare -f sock); LAB_DIR=$LAB_DIR; sock members | awk '\$1 == \"web\" && \$3 == \"10.20.0.12:8080\" { print \$5 }' | grep -qx down"
sock '--json stats' >"$WORK/stats.json"
check "--json stats gets JSON with the 3 drops it counted" "$PY" -c "
import json, sys
d = json.load(open('$WORK/stats.json'))
n = sum(w['drops_by_reason']['no_virtual_server'] for w in d['workers'])
print(n)
sys.exit(0 if n >= 3 else 1)"
out=$(sock '{"command":"member","action":"enable","member":"10.20.0.13:8080"}')
check "a JSON request line gets one typed answer line (${out:0:60})" grep -q '^{"Ok":' <<<"$out"
check "  and m3 is enabled again" wait_state 10.20.0.13:8080 up 5 web
out=$(sock '{"command":"member","action":"enable","member":"10.9.9.9:1"}')
check "an unknown member is an Err of kind not_found (${out:0:80})" grep -q '^{"Err":.*"not_found"' <<<"$out"
ctl member disable 10.9.9.9:1 >/dev/null 2>&1; rc=$?
check "sluicectl exits 1 when the switch refuses" test "$rc" -eq 1
"$SLUICECTL" --socket "$WORK/nothing.sock" status >/dev/null 2>&1; rc=$?
check "sluicectl exits 3 when no switch answers" test "$rc" -eq 3
"$SLUICECTL" status --socket "$LAB_DIR/sluice.sock" >/dev/null 2>&1; rc=$?
check "--socket may follow the command, as it could before the typed API ($rc)" test "$rc" -eq 0
ctl frobnicate >/dev/null 2>&1; rc=$?
check "sluicectl exits 2 on an unknown command" test "$rc" -eq 2
out=$(ctl --json member weight 10.20.0.11:8080 5000); rc=$?
check "a weight above 1000 is refused with exit 1 and kind usage ($out)" \
    bash -c "test '$rc' -eq 1 && grep -q '\"kind\":\"usage\"' <<<'$out'"

section "5. names are shown as text, never as markup"
"$PY" - "$WORK/overview.json" "$WORK/evil.json" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))
evil = '<img src=x onerror="document.title=1">'
for v in o["virtual_servers"]:
    v["name"] = v["name"].replace("web", evil, 1) if v["name"] == "web" else v["name"]
for m in o["members"]:
    if m["virtual_server"] == "web":
        m["virtual_server"] = evil
        m["last"] = "<script>document.title=2</script>"
json.dump(o, open(sys.argv[2], "w"))
PYEOF
"$PY" "$HERE/tests/lab/fake_overview.py" 9179 --json "$WORK/evil.json" >"$WORK/fake-evil.out" 2>&1 &
FAKE=$!
sleep 1
render "http://127.0.0.1:9179/" "$WORK/dom-evil.html"
kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null
check "a virtual server named like an <img> tag is text on the page, not an element" \
    bash -c "grep -q '&lt;img src=x' '$WORK/dom-evil.html' && ! grep -q '<img' '$WORK/dom-evil.html' && ! grep -q '<script>document' '$WORK/dom-evil.html'"

section "6. the page says so when the switch goes away"
"$PY" "$HERE/tests/lab/fake_overview.py" 9179 --die-after 2 >"$WORK/fake.out" 2>&1 &
FAKE=$!
sleep 1
render "http://127.0.0.1:9179/" "$WORK/dom-gone.html"
kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null
check "after the overview stops answering, the page shows its error and keeps the data" \
    "$PY" "$HERE/tests/lab/page_check.py" "$WORK/dom-gone.html" '{"error": true}'

check "SIGTERM exits 0" stop_sluice
finish

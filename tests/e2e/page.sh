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
METRICS=127.0.0.1:9177
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

# browse URL CHROMIUM-ARGS...: headless chromium on URL after 8 s of
# virtual time (the first fetch and a few polls).
browse() {
    local url=$1; shift
    timeout -k 5 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$WORK/chromium" \
        --virtual-time-budget=8000 "$@" "$url" 2>"$WORK/chromium.err"
}
# render URL OUT: the DOM after the page's scripts ran.
render() { browse "$1" --dump-dom >"$2"; }
# fake_page PORT ARGS...: tests/lab/fake_overview.py in the background (FAKE),
# once it answers.
fake_page() {
    local port=$1; shift
    "$PY" "$HERE/tests/lab/fake_overview.py" "$port" "$@" >"$WORK/fake-$port.out" 2>&1 &
    FAKE=$!
    wait_for 5 curl -sf "http://127.0.0.1:$port/" || bad "fake_overview.py answers on $port"
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
"$LABSH" config dest_nat 2 | sed "/^socket = /a http = ${HTTP##*:}\nmetrics = \"$METRICS\"" >"$WORK/page.toml"
printf '\n[health_check.fast]\nkind = "tcp"\ninterval = "500ms"\ntimeout = "400ms"\nfall = 2\nrise = 2\n' >>"$WORK/page.toml"
sed -i 's/^\[pool.web\]$/[pool.web]\nhealth_check = "fast"/' "$WORK/page.toml"
if ! start_sluice "$WORK/page.toml"; then bad "sluice starts"; finish; exit; fi

section "1. the listener"
listening=$(ss -Hltn "sport = :${HTTP##*:}" | awk '{ print $4 }' | tr '\n' ' ')
check "http = ${HTTP##*:} listens on $HTTP and nowhere else (${listening})" test "$listening" = "$HTTP "
code=$(curl -s -D "$WORK/post.h" -o /dev/null -w '%{http_code}' -X POST "http://$HTTP/")
check "POST / is refused with 405 ($code), naming what is allowed" \
    bash -c "test '$code' = 405 && grep -qi '^Allow: GET, HEAD' '$WORK/post.h'"
# head PATH: the raw answer to HEAD PATH.
head_of() { printf 'HEAD %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" "$HTTP" | timeout 5 socat - "TCP:$HTTP"; }
head_of / >"$WORK/head.out"
len=$(grep -i '^Content-Length:' "$WORK/head.out" | tr -dc 0-9)
got=$(curl -s "http://$HTTP/" | wc -c)
check "HEAD / answers 200 with the length GET gives (${len:-none} = $got) and no body" \
    bash -c "head -1 '$WORK/head.out' | grep -q ' 200 ' && test '${len:-0}' -eq '$got' -a '$got' -gt 1000 && ! grep -q '<html' '$WORK/head.out'"
head_of /metrics >"$WORK/head-metrics.out"
check "HEAD /metrics answers 200 and no body" \
    bash -c "head -1 '$WORK/head-metrics.out' | grep -q ' 200 ' && ! grep -q '^sluice_' '$WORK/head-metrics.out'"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: rebound.example:${HTTP##*:}" "http://$HTTP/api/overview")
check "a request naming another host (DNS rebinding) is refused with 403 ($code)" test "$code" = 403
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: rebound.example:${METRICS##*:}" "http://$METRICS/metrics")
check "  on the [control] metrics listener too ($code)" test "$code" = 403
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
points() { curl -s "http://$HTTP/api/overview" | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["history"]["points"]))'; }
wait_for 25 test "$(points)" -ge 2
curl -s "http://$HTTP/api/overview" >"$WORK/rates.json"
kill "$LOOP" 2>/dev/null; wait "$LOOP" 2>/dev/null
check "the rate history has points ($(points)) and web's packets/s is above 0 in one" "$PY" -c "
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
"$PY" "$HERE/tests/lab/page_check.py" "$WORK/dom.html" "$wrong" >"$WORK/wrong.out" 2>&1; rc=$?
check "the same check refuses a page that would show m2 up (rc $rc)" \
    bash -c "test $rc -eq 1 && grep -qxF \"MISMATCH member web|10.20.0.12:8080: state 'down', expected 'up'\" '$WORK/wrong.out'"
rm -f "$ARTIFACTS/status-page.png"
browse "http://$HTTP/" --window-size=1400,1800 --screenshot="$ARTIFACTS/status-page.png" >/dev/null; rc=$?
check "a screenshot is kept ($ARTIFACTS/status-page.png, chromium rc $rc)" \
    bash -c "test $rc -eq 0 && head -c 8 '$ARTIFACTS/status-page.png' | od -An -tx1 | grep -q '89 50 4e 47'"

section "3. /api/overview and /metrics on the same listener"
curl -s "http://$HTTP/api/overview" >"$WORK/overview.json"
check "/api/overview has each member's state (m1 up, m2 down, m3 disabled)" "$PY" -c "
import json, sys
o = json.load(open('$WORK/overview.json'))
got = {(m['virtual_server'], m['member']): m['state'] for m in o['members']}
want = {(vs, '10.20.0.1%d:8080' % i): s for vs in ('web', 'web-udp') for i, s in ((1, 'up'), (2, 'down'), (3, 'disabled'))}
print(got)
sys.exit(0 if got == want else 1)"
curl -s "http://$HTTP/metrics" >"$WORK/metrics.txt"
check "/metrics passes promtool check metrics" bash -c "promtool check metrics <'$WORK/metrics.txt' >'$WORK/promtool.out' 2>&1"
check "/metrics has m2 down" grep -qxF 'sluice_member_up{virtual_server="web",pool="web",member="10.20.0.12:8080"} 0' "$WORK/metrics.txt"
ctl metrics >"$WORK/metrics-ctl.txt"
series() { awk '/^#/ { print; next } { print $1 }' "$1"; }
families=$(grep -c '^# TYPE' "$WORK/metrics.txt")
if [ "$families" -gt 0 ] && diff <(series "$WORK/metrics.txt") <(series "$WORK/metrics-ctl.txt") >"$WORK/metrics.diff"; then
    ok "/metrics has the families and series sluicectl metrics prints ($families families)"
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
out=$(sock '{"command":"member","action":{"weight":4000},"member":"10.20.0.11:8080"}')
check "a JSON weight above 1000 is refused as bad_request (${out:0:80})" grep -q '^{"Err":{"kind":"bad_request"' <<<"$out"
check "  and m1 keeps its weight of 2" \
    bash -c "$SLUICECTL --socket $LAB_DIR/sluice.sock members | awk '\$1 == \"web\" && \$3 == \"10.20.0.11:8080\" { print \$10 }' | grep -qx 2"
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
fake_page 9179 --json "$WORK/evil.json"
render "http://127.0.0.1:9179/" "$WORK/dom-evil.html"
kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null
check "a virtual server named like an <img> tag is text on the page, not an element" \
    bash -c "grep -q '&lt;img src=x' '$WORK/dom-evil.html' && ! grep -q '<img' '$WORK/dom-evil.html' && ! grep -q '<script>document' '$WORK/dom-evil.html'"

section "6. the page says so when the switch goes away"
fake_page 9180 --die-after 2
render "http://127.0.0.1:9180/" "$WORK/dom-gone.html"
kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null
# What fake_overview.py serves (its fixture), still shown under the banner.
kept='{"error": true, "generation": 1, "virtual_servers": ["web", "dns"],
  "members": {"web|10.20.0.11:8080": "up", "web|10.20.0.12:8080": "down", "dns|10.20.1.22:53": "disabled"}}'
check "after the overview stops answering, the page shows its error and keeps the data" \
    "$PY" "$HERE/tests/lab/page_check.py" "$WORK/dom-gone.html" "$kept"

check "SIGTERM exits 0" stop_sluice
finish

#!/usr/bin/env bash
# PROXY protocol v2 (`proxy_protocol = "v2"`) with real servers, in the
# dual-stack lab, with 1 and then 2 workers. Member m1 runs nginx: a
# `proxy_protocol` listener on :8081 (IPv4 and IPv6) behind Both-NAT
# servers with the header, and a plain listener on :8082 behind a Both-NAT
# server without it (the control: the header is per virtual server).
# Member m2 runs a recorder that keeps each connection's header and the
# bytes after it: on :9000 it waits for the client, on :9001 it speaks
# first (a banner, as SMTP does) once it has the header.
#
# Checked: --check takes proxy_protocol only with both_nat / lan_to_lan and
# tcp; http checks of a PROXY pool reach nginx's proxy_protocol listener
# (so they sent the v2 LOCAL command: nginx drops a connection without a
# header) and tcp checks begin with LOCAL; nginx logs the client's own
# address and port and the VIP's ($proxy_protocol_*), the SNAT address as
# $remote_addr; a 20 MB download and a 5 MB upload arrive intact; five
# keep-alive requests share one nginx connection ($connection_requests
# 1..5), so the sequence shift holds past the first segment in both
# directions; 200 KB written at once (a full first segment: no room in it
# for the header) and a half-close arrive whole;
# a member that speaks first gets the header before the client says
# anything; a header lost before the member comes again with the client's
# first bytes sent again (small, or a full segment); the plain server's member sees the SNAT
# address and an untouched request; nginx logs no broken header. IPv4 and
# IPv6 alike (server-speaks-first and the lost header: IPv4 only).
# shellcheck disable=SC2016  # awk programs in single quotes, on purpose
set -uo pipefail
source "$(dirname "$0")/lib.sh"
NGINX=/usr/sbin/nginx
if [ ! -x "$NGINX" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1
    # The package starts its own server: this test runs its own, in m1.
    systemctl disable --now nginx >/dev/null 2>&1 || true
fi

VIP=198.51.100.10
VIP6=2001:db8:1::10
SNAT=10.20.0.100
SNAT6=fd00:20::100
NGX=$WORK/nginx    # nginx's configuration, logs and temporary files
WWW=$WORK/www      # its document root
REC=$WORK/rec.log  # the recorder's lines
BG=()              # nginx and the recorder; ended on any exit

proxy_cleanup() {
    local p
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${BG[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
}
proxy_logs() { # what sluice and the members said, when a check failed
    [ "$FAIL" -gt 0 ] || return 0
    ctl members 2>/dev/null | sed 's/^/       /'
    local f
    for f in "$WORK/sluice.out" "$NGX/error.log" "$NGX/pp.log" "$NGX/plain.log" "$REC"; do
        [ -e "$f" ] && { echo "--- $f"; tail -20 "$f" | cat -v; }
    done
}
trap 'proxy_logs; proxy_cleanup; cleanup' EXIT

in_m() { local n=$1; shift; ip netns exec "${LAB}-m$n" "$@"; }
listening() { in_m "$1" ss -Hltn "sport = :$2" | grep -q .; }   # listening N PORT
sha() { sha256sum "$1" | cut -d' ' -f1; }
# log_has FILE AWK-CONDITION [N]: at least N (default 1) lines match.
log_has() { [ "$(awk "$2" "$1" | wc -l)" -ge "${3:-1}" ]; }
# member_up_with MEMBER TEXT: its `sluicectl members` line says up and holds
# TEXT (the last check's result); at boot a member is up before any check.
member_up_with() { member_lines "$1" | awk -v t="$2" '$5 == "up" && index($0, t) { f = 1 } END { exit !f }'; }

# --------------------------------------------------------------------------
section "configuration: proxy_protocol only with both_nat / lan_to_lan and tcp"
one_server() { # FORWARDING PROTOCOL VALUE: the lab's ports, one server with proxy_protocol = VALUE
    local extra=""
    case $1 in
        both_nat) extra="snat_addresses = [\"$SNAT\"]" ;;
        lan_to_lan) extra=$'snat_addresses = ["'"$SNAT"$'"]\nlan_subnets = ["10.20.0.0/24"]' ;;
    esac
    "$HERE/scripts/lab.sh" config-base 1
    cat <<TOML

[pool.p]
members = [ { address = "10.20.0.11:8081" } ]

[[virtual_server]]
name = "v"
address = "$VIP:80"
protocol = "$2"
pool = "p"
forwarding = "$1"
$extra
proxy_protocol = "$3"
TOML
}
for bad in "dest_nat tcp v2" "both_nat udp v2" "both_nat tcp v1"; do
    read -r fwd proto value <<<"$bad"
    one_server "$fwd" "$proto" "$value" >"$WORK/bad.toml"
    out=$("$SLUICE" --config "$WORK/bad.toml" --check 2>&1); rc=$?
    check "--check refuses proxy_protocol = \"$value\" on a $proto $fwd server (rc=$rc): $(head -1 <<<"$out")" \
        test "$rc" -eq 2
    check "  and names the key" grep -q proxy_protocol <<<"$out"
done
for fwd in both_nat lan_to_lan; do
    one_server "$fwd" tcp v2 >"$WORK/good.toml"
    check "--check accepts proxy_protocol = \"v2\" on a tcp $fwd server" "$SLUICE" --config "$WORK/good.toml" --check
done

# --------------------------------------------------------------------------
section "the lab: nginx in m1 (:8081 proxy_protocol, :8082 plain), a recorder in m2 (:9000, :9001)"
"$HERE/scripts/lab.sh" up --ipv6 >/dev/null
CLIENT=$(client ip -4 -o addr show dev c0 | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
CLIENT6=$(client ip -6 -o addr show dev c0 scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
echo "  client: $CLIENT and $CLIENT6; SNAT: $SNAT and $SNAT6"

mkdir -p "$NGX" "$WWW/up"
echo "hello from nginx" >"$WWW/hello.txt"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$WWW/big.bin"
for i in 1 2 3 4 5; do head -c $((100000 + i * 1111)) /dev/urandom >"$WWW/k$i.bin"; done
head -c $((5 * 1024 * 1024)) /dev/urandom >"$WORK/up.src"

# $request comes last so awk's fields 1-9 are fixed; a variable nginx has
# no value for (no PROXY header, or a LOCAL one) is logged as "-". No
# real_ip_header: $remote_addr stays the connection's source, the SNAT address.
cat >"$NGX/nginx.conf" <<CONF
user root;   # the document root is under \$WORK, readable by root only
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log info;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    client_body_temp_path $NGX/body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    client_max_body_size 64m;
    keepalive_timeout 30s;
    log_format pp '\$proxy_protocol_addr \$proxy_protocol_port \$remote_addr \$connection '
                  '\$connection_requests \$status \$body_bytes_sent '
                  '\$proxy_protocol_server_addr \$proxy_protocol_server_port \$request';
    log_format plain '\$remote_addr \$remote_port \$connection \$connection_requests '
                     '\$status \$body_bytes_sent \$request';
    server {
        listen 8081 proxy_protocol;
        listen [::]:8081 proxy_protocol;
        root $WWW;
        access_log $NGX/pp.log pp;
        location = /healthz { default_type text/plain; return 200 "ok\n"; }
        location /up/ { dav_methods PUT; }
    }
    server {
        listen 8082;
        root $WWW;
        access_log $NGX/plain.log plain;
        location = /healthz { default_type text/plain; return 200 "ok\n"; }
    }
}
CONF
if ! "$NGINX" -t -p "$NGX/" -c "$NGX/nginx.conf" -e "$NGX/error.log" >"$NGX/t.out" 2>&1; then
    bad "nginx takes its configuration:"; sed 's/^/       /' "$NGX/t.out"; finish; exit
fi
in_m 1 "$NGINX" -p "$NGX/" -c "$NGX/nginx.conf" -e "$NGX/error.log" -g 'daemon off;' \
    >"$NGX/stdout" 2>&1 </dev/null &
BG+=("$!")

# The recorder: per connection, it reads to the end (or 5 s of silence),
# logs the PROXY v2 header it found (command, family, the addresses in it)
# and the count and SHA-256 of the bytes after it, answers with these two
# and closes. On :9001 it first reads the header alone and answers it with
# "220 <source in the header>" before reading on.
cat >"$WORK/recorder.py" <<'PY'
import hashlib, ipaddress, socket, struct, sys, threading

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
log_path, addrs = sys.argv[1], sys.argv[2:]
DIGEST, BANNER = 9000, 9001
lock = threading.Lock()

def endpoint(addr, port, v6):
    a = ipaddress.ip_address(bytes(addr))
    p = struct.unpack("!H", port)[0]
    return f"[{a}]:{p}" if v6 else f"{a}:{p}"

def header(data):
    """What the connection began with, and the bytes after the header."""
    if len(data) < 16 or data[:12] != SIG:
        return "cmd=none", data
    ver_cmd, fam, n = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if len(data) < 16 + n:
        return "cmd=cut", data
    block, rest = data[16:16 + n], data[16 + n:]
    cmd = {0x20: "LOCAL", 0x21: "PROXY"}.get(ver_cmd, f"0x{ver_cmd:02x}")
    src = dst = "-"
    if fam == 0x11 and n >= 12:
        src, dst = endpoint(block[0:4], block[8:10], False), endpoint(block[4:8], block[10:12], False)
    elif fam == 0x21 and n >= 36:
        src, dst = endpoint(block[0:16], block[32:34], True), endpoint(block[16:32], block[34:36], True)
    return f"cmd={cmd} fam=0x{fam:02x} len={n} src={src} dst={dst}", rest

def read_exactly(conn, data, n):
    while len(data) < n:
        d = conn.recv(n - len(data))
        if not d:
            raise EOFError
        data += d

def serve(conn, peer, port):
    conn.settimeout(5)
    data, end = bytearray(), "eof"
    try:
        if port == BANNER:
            read_exactly(conn, data, 16)
            if data[:12] == SIG:
                read_exactly(conn, data, 16 + struct.unpack("!H", data[14:16])[0])
            desc, _ = header(bytes(data))
            src = desc.partition(" src=")[2].split(" ")[0] or "-"
            conn.sendall(f"220 {src}\r\n".encode())
        while True:
            d = conn.recv(65536)
            if not d:
                break
            data += d
    except socket.timeout:
        end = "timeout"
    except EOFError:
        end = "eof-in-header"
    except OSError as e:
        end = type(e).__name__
    desc, rest = header(bytes(data))
    digest = hashlib.sha256(rest).hexdigest()
    try:
        conn.sendall(f"bytes={len(rest)} sha256={digest}\n".encode())
    except OSError:
        pass
    conn.close()
    with lock, open(log_path, "a") as f:
        print(f"peer={peer} {desc} bytes={len(rest)} sha256={digest} end={end} port={port}", file=f)

def listen(addr, port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve, args=(conn, peer[0], port), daemon=True).start()

threads = [threading.Thread(target=listen, args=(a, p), daemon=True) for a in addrs for p in (DIGEST, BANNER)]
for t in threads:
    t.start()
for t in threads:
    t.join()
PY
: >"$REC"
in_m 2 python3 "$WORK/recorder.py" "$REC" 10.20.0.12 fd00:20::12 >"$WORK/recorder.out" 2>&1 </dev/null &
BG+=("$!")

if wait_for 5 listening 1 8081 && wait_for 5 listening 1 8082 && wait_for 5 listening 2 9000 \
    && wait_for 5 listening 2 9001; then
    ok "nginx listens on :8081 and :8082 in m1, the recorder on :9000 and :9001 in m2"
else
    bad "nginx and the recorder listen:"; cat "$NGX/stdout" "$NGX/error.log" "$WORK/recorder.out" 2>/dev/null
    finish; exit
fi

# The switch's configuration: the lab's ports, then these servers. Every
# pool is checked every 500 ms (down after 2 failures); one http check for
# the PROXY pools and the plain one alike: whether it sends LOCAL is the
# pool's affair, not the check's.
lab_config() { # WORKERS
    "$HERE/scripts/lab.sh" config-base "$1"
    cat <<TOML

[health_check.web]
kind = "http"
interval = "500ms"
timeout = "400ms"
fall = 2
rise = 2
path = "/healthz"
expect_status = [200]
expect_body = "ok"

[health_check.conn]
kind = "tcp"
interval = "500ms"
timeout = "400ms"
fall = 2
rise = 2

[pool.pp]
health_check = "web"
members = [ { address = "10.20.0.11:8081" } ]

[pool.plain]
health_check = "web"
members = [ { address = "10.20.0.11:8082" } ]

[pool.raw]
health_check = "conn"
members = [ { address = "10.20.0.12:9000" } ]

[pool.banner]
health_check = "conn"
members = [ { address = "10.20.0.12:9001" } ]

[pool.pp6]
health_check = "web"
members = [ { address = "[fd00:20::11]:8081" } ]

[pool.raw6]
health_check = "conn"
members = [ { address = "[fd00:20::12]:9000" } ]

[[virtual_server]]
name = "pp"
address = "$VIP:80"
protocol = "tcp"
pool = "pp"
forwarding = "both_nat"
snat_addresses = ["$SNAT"]
proxy_protocol = "v2"

[[virtual_server]]
name = "plain"
address = "$VIP:81"
protocol = "tcp"
pool = "plain"
forwarding = "both_nat"
snat_addresses = ["$SNAT"]

[[virtual_server]]
name = "raw"
address = "$VIP:9000"
protocol = "tcp"
pool = "raw"
forwarding = "both_nat"
snat_addresses = ["$SNAT"]
proxy_protocol = "v2"

[[virtual_server]]
name = "banner"
address = "$VIP:25"
protocol = "tcp"
pool = "banner"
forwarding = "both_nat"
snat_addresses = ["$SNAT"]
proxy_protocol = "v2"

[[virtual_server]]
name = "pp6"
address = "[$VIP6]:80"
protocol = "tcp"
pool = "pp6"
forwarding = "both_nat"
snat_addresses = ["$SNAT6"]
proxy_protocol = "v2"

[[virtual_server]]
name = "raw6"
address = "[$VIP6]:9000"
protocol = "tcp"
pool = "raw6"
forwarding = "both_nat"
snat_addresses = ["$SNAT6"]
proxy_protocol = "v2"
TOML
}

# --------------------------------------------------------------------------
# Health checks: up by a check, not merely unconfirmed since boot.
health() {
    local m
    for m in 10.20.0.11:8081 "[fd00:20::11]:8081" 10.20.0.11:8082; do
        if wait_for 10 member_up_with "$m" "status 200"; then
            ok "$m is up by its http check (${WAITED}s): $(member_lines "$m" | cut -d' ' -f8-)"
        else
            bad "$m is not up by its http check within 10s:"; member_lines "$m" | sed 's/^/         /'
        fi
    done
    for m in 10.20.0.12:9000 10.20.0.12:9001 "[fd00:20::12]:9000"; do
        if wait_for 10 member_up_with "$m" connected; then
            ok "$m is up by its tcp check (${WAITED}s)"
        else
            bad "$m is not up by its tcp check within 10s:"; member_lines "$m" | sed 's/^/         /'
        fi
    done
    # nginx logs a request only once it has read a header: these checks
    # reached HTTP, so each began with a header nginx took. LOCAL carries
    # no address: $proxy_protocol_addr is "-", $remote_addr the switch.
    local hz='$10 == "GET" && $11 == "/healthz"' v4='$3 !~ /:/' v6='$3 ~ /:/' n4 n6 wrong
    wait_for 10 log_has "$NGX/pp.log" "$hz && $v4" 3
    wait_for 10 log_has "$NGX/pp.log" "$hz && $v6" 3
    n4=$(awk "$hz && $v4" "$NGX/pp.log" | wc -l)
    n6=$(awk "$hz && $v6" "$NGX/pp.log" | wc -l)
    check "http checks reached nginx's proxy_protocol listener ($n4 over IPv4, $n6 over IPv6)" \
        test "$n4" -ge 3 -a "$n6" -ge 3
    check "  from the switch's addresses ($(awk "$hz { print \$3 }" "$NGX/pp.log" | sort -u | tr '\n' ' '))" \
        test "$(awk "$hz && \$3 != \"10.20.0.1\" && \$3 != \"fd00:20::1\"" "$NGX/pp.log" | wc -l)" -eq 0
    wrong=$(awk "$hz && !(\$1 == \"-\" && \$8 == \"-\" && \$6 == 200)" "$NGX/pp.log" | wc -l)
    check "  each with a LOCAL header (no addresses in it) and answered 200 ($wrong not)" test "$wrong" -eq 0
    check "the plain listener's http checks carry no header: nginx answers them 200" \
        log_has "$NGX/plain.log" '$7 == "GET" && $8 == "/healthz" && $5 == 200' 2
    check "  and only 200 ($(awk '$8 == "/healthz" && $5 != 200' "$NGX/plain.log" | wc -l) not)" \
        test "$(awk '$8 == "/healthz" && $5 != 200' "$NGX/plain.log" | wc -l)" -eq 0
    # The recorder sees exactly what the tcp checks send (peers other than
    # the SNAT addresses are the switch's checks).
    local c4="\$1 !~ /^peer=.*:/ && \$1 != \"peer=$SNAT\"" c6="\$1 ~ /^peer=.*:/ && \$1 != \"peer=$SNAT6\""
    wait_for 10 log_has "$REC" "$c4" 3
    wait_for 10 log_has "$REC" "$c6" 3
    n4=$(awk "$c4" "$REC" | wc -l)
    n6=$(awk "$c6" "$REC" | wc -l)
    wrong=$(awk "($c4 || $c6) && \$2 != \"cmd=LOCAL\"" "$REC" | wc -l)
    check "tcp checks: $n4 connections over IPv4, $n6 over IPv6, $wrong not beginning with a v2 LOCAL header" \
        test "$n4" -ge 3 -a "$n6" -ge 3 -a "$wrong" -eq 0
    echo "       recorder: $(awk "$c4" "$REC" | head -1)"
    echo "       recorder: $(awk "$c6" "$REC" | head -1)"
}

# --------------------------------------------------------------------------
# One request, a 20 MB download, five keep-alive requests, a 5 MB upload
# through the PROXY server at URL_BASE; nginx must log the client CLIENT_IP
# (and its port), the VIP VIP_IP:80 and the SNAT address SNAT_IP.
through_nginx() { # LABEL CURL_FAMILY URL_BASE CLIENT_IP SNAT_IP VIP_IP UPLOAD_NAME
    local label=$1 fam=$2 base=$3 cip=$4 sip=$5 vip=$6 up=$7 out code port line
    out=$(client curl "$fam" -g -s -m 10 -w '\n%{http_code} %{local_port}' "$base/hello.txt")
    read -r code port <<<"$(tail -1 <<<"$out")"
    check "$label: GET /hello.txt answered 200 ($code): $(head -1 <<<"$out")" \
        test "$code" = 200 -a "$(head -1 <<<"$out")" = "hello from nginx"
    wait_for 5 log_has "$NGX/pp.log" "\$11 == \"/hello.txt\" && \$2 == \"$port\""
    line=$(awk -v p="$port" '$11 == "/hello.txt" && $2 == p' "$NGX/pp.log" | tail -1)
    echo "       pp.log: $line"
    check "  \$proxy_protocol_addr:port is the client, $cip:$port" \
        test "$(awk '{ print $1 ":" $2 }' <<<"$line")" = "$cip:$port"
    check "  \$proxy_protocol_server_addr:port is the VIP, $vip:80" \
        test "$(awk '{ print $8 ":" $9 }' <<<"$line")" = "$vip:80"
    check "  \$remote_addr is the SNAT address $sip" test "$(awk '{ print $3 }' <<<"$line")" = "$sip"

    rm -f "$WORK/big.got"
    out=$(client curl "$fam" -g -s -m 60 -o "$WORK/big.got" -w '%{http_code} %{size_download} %{speed_download}' \
        "$base/big.bin")
    check "$label: 20 MB download ($out: status, bytes, bytes/s) has the original's SHA-256" \
        test "$(sha "$WORK/big.got" 2>/dev/null)" = "$(sha "$WWW/big.bin")"

    # One curl, five URLs: curl keeps the connection for all of them.
    local args=() i
    for i in 1 2 3 4 5; do args+=(-o "$WORK/k$i.got" "$base/k$i.bin"); done
    rm -f "$WORK"/k?.got
    out=$(client curl "$fam" -g -s -m 30 -w '%{http_code} %{num_connects} %{local_port}\n' "${args[@]}")
    check "$label: 5 keep-alive requests answered 200 over one connection: $(tr '\n' ' ' <<<"$out")" \
        test "$(awk '$1 == 200 { n++ } { c += $2; p[$3] = 1 } END { print n "/" c "/" length(p) }' <<<"$out")" = 5/1/1
    local same=1
    for i in 1 2 3 4 5; do cmp -s "$WORK/k$i.got" "$WWW/k$i.bin" || same=0; done
    check "  all 5 bodies intact" test "$same" -eq 1
    port=$(awk '{ print $3; exit }' <<<"$out")
    wait_for 5 log_has "$NGX/pp.log" "\$11 ~ /^\\/k[1-5]\\.bin\$/ && \$2 == \"$port\"" 5
    local lines
    lines=$(awk -v p="$port" '$11 ~ /^\/k[1-5]\.bin$/ && $2 == p { print $1, $4, $5, $11 }' "$NGX/pp.log")
    check "  nginx: one \$connection, \$connection_requests 1 to 5, each from $cip: $(awk '{ print $2 "#" $3 }' <<<"$lines" | tr '\n' ' ')" \
        test "$(awk -v c="$cip" '$1 == c && $3 == NR && $4 == "/k" NR ".bin" { n++ } { id[$2] = 1 } END { print n "/" length(id) }' <<<"$lines")" = 5/1

    rm -f "$WWW/up/$up"
    out=$(client curl "$fam" -g -s -m 60 -T "$WORK/up.src" -o /dev/null -w '%{http_code} %{local_port}' "$base/up/$up")
    read -r code port <<<"$out"
    check "$label: 5 MB upload (PUT) taken ($code) and stored intact" \
        test "$(sha "$WWW/up/$up" 2>/dev/null)" = "$(sha "$WORK/up.src")"
    check "  nginx logged it from the client $cip:$port" \
        wait_for 5 log_has "$NGX/pp.log" "\$10 == \"PUT\" && \$1 == \"$cip\" && \$2 == \"$port\""
}

# 200 KB written at once, then a half-close: the client's first segment is
# a full one, with no room in it for the header; the client's FIN must be
# shifted like its data, or the member never sees the end (the recorder
# then answers after 5 s of silence, with end=timeout).
through_recorder() { # LABEL DST SRC_IP DST_ENDPOINT FAMILY_BYTE
    local label=$1 dst=$2 src=$3 want_dst=$4 fam=$5 out port n sum reply line
    out=$(client timeout 20 python3 - "$dst" 2>&1 <<'PY'
import hashlib, os, socket, sys
blob = os.urandom(200_000)
s = socket.create_connection((sys.argv[1], 9000), timeout=15)
s.sendall(blob)
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    reply += d
print(s.getsockname()[1], len(blob), hashlib.sha256(blob).hexdigest(), reply.decode().strip())
PY
)
    read -r port n sum reply <<<"$out"
    check "$label: 200 KB at once and a half-close: the member got them all after the header (${reply:-$(tail -1 <<<"$out")})" \
        test "$reply" = "bytes=$n sha256=$sum"
    wait_for 5 grep -qF "src=$src:$port " "$REC"
    line=$(grep -F "src=$src:$port " "$REC" | tail -1)
    echo "       recorder: ${line:-nothing from $src:$port}"
    check "  its first bytes are a v2 PROXY header for $src:$port -> $want_dst" \
        test "$(awk '{ print $2, $3, $6 }' <<<"$line")" = "cmd=PROXY fam=$fam dst=$want_dst"
    check "  and it saw the client's half-close (FIN) where the data ended" grep -q ' end=eof ' <<<"$line"
}

# Server speaks first: the member waits for the header alone before its
# banner, the client for the banner before it sends anything. The header
# must go to the member without waiting for the client's first bytes.
banner_server() {
    local out port banner line
    out=$(client timeout 20 python3 - "$VIP" 2>&1 <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], 25), timeout=5)
banner = b""
try:
    while not banner.endswith(b"\r\n"):
        d = s.recv(100)
        if not d:
            break
        banner += d
except socket.timeout:
    banner += b"(no banner within 5 s)"
s.sendall(b"QUIT\r\n")
s.shutdown(socket.SHUT_WR)
while s.recv(4096):
    pass
print(s.getsockname()[1], banner.decode(errors="replace").strip())
PY
)
    read -r port banner <<<"$out"
    check "server speaks first ($VIP:25): its banner names the client from the header before the client sent a byte ($banner)" \
        test "$banner" = "220 $CLIENT:$port"
    wait_for 5 grep -qF "src=$CLIENT:$port " "$REC"
    line=$(grep -F "src=$CLIENT:$port " "$REC" | tail -1)
    echo "       recorder: ${line:-nothing from $CLIENT:$port}"
    check "  then the client's QUIT arrived after the header, and its FIN" \
        test "$(awk '{ print $2, $7, $9, $10 }' <<<"$line")" = \
        "cmd=PROXY bytes=6 end=eof port=9001"
}

# The control: no header on a server without proxy_protocol.
plain_server() {
    local out code port line
    out=$(client curl -s -m 10 -w '\n%{http_code} %{local_port}' "http://$VIP:81/hello.txt")
    read -r code port <<<"$(tail -1 <<<"$out")"
    check "plain server $VIP:81: GET /hello.txt answered 200 ($code): $(head -1 <<<"$out")" \
        test "$code" = 200 -a "$(head -1 <<<"$out")" = "hello from nginx"
    wait_for 5 log_has "$NGX/plain.log" '$8 == "/hello.txt"'
    line=$(awk '$8 == "/hello.txt"' "$NGX/plain.log" | tail -1)
    echo "       plain.log: $line"
    check "  its member sees the SNAT address $SNAT and the request line as sent" \
        test "$(awk '{ print $1, $7, $8, $9 }' <<<"$line")" = "$SNAT GET /hello.txt HTTP/1.1"
}

# lose_header N PORT: in member N, the first segment from the SNAT address
# to PORT that begins with the PROXY v2 signature (the header alone, or the
# client's first bytes behind it) is dropped, once per connection, before
# the member's TCP sees it. The switch keeps no copy: the header must come
# again in front of the client's first bytes when the client sends them
# again (same sequence numbers, same bytes). found_header N: undo, print
# how many were dropped.
lose_header() {
    in_m "$1" nft -f - <<NFT
table ip sluice_pp_lose {
    chain input {
        type filter hook input priority filter; policy accept;
        ip saddr $SNAT tcp dport $2 @ih,0,32 0x0d0a0d0a ct mark != 0x1 ct mark set 0x1 counter drop
    }
}
NFT
}
found_header() {
    in_m "$1" nft list table ip sluice_pp_lose \
        | awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'
    in_m "$1" nft delete table ip sluice_pp_lose
}

header_lost() {
    local out ports dropped
    if ! lose_header 1 8081; then bad "nft takes the rule that loses the header (@ih needs Linux 5.16)"; return; fi
    out=$(client bash -c "for i in 1 2 3 4 5; do curl -s -m 10 -o /dev/null -w '%{http_code} %{local_port}\n' http://$VIP/hello.txt; done")
    dropped=$(found_header 1)
    check "header lost: 5 new connections answered 200 all the same ($(awk '{ print $1 }' <<<"$out" | tr '\n' ' '))" \
        test "$(grep -c '^200 ' <<<"$out")" -eq 5
    check "  m1 dropped a segment with the header of each (${dropped:-none}) and took it sent again" \
        test "${dropped:-0}" -ge 5
    ports=$(awk '{ print $2 }' <<<"$out")
    local p logged=0
    wait_for 5 log_has "$NGX/pp.log" "\$11 == \"/hello.txt\" && \$2 == \"$(tail -1 <<<"$ports")\""
    for p in $ports; do
        awk -v c="$CLIENT" -v p="$p" '$1 == c && $2 == p && $11 == "/hello.txt" && $6 == 200 { f = 1 } END { exit !f }' \
            "$NGX/pp.log" && logged=$((logged + 1))
    done
    check "  with the client's address and port in the header each time ($logged of 5)" test "$logged" -eq 5
    # The client's first segment sent again is a full one: no room in it
    # for the header.
    lose_header 2 9000 || return
    through_recorder "header lost, first segment full" "$VIP" "$CLIENT" "$VIP:9000" 0x11
    dropped=$(found_header 2)
    check "  m2 dropped the segment with the header (${dropped:-none})" test "${dropped:-0}" -ge 1
}

run() { # WORKERS
    local workers=$1
    section "$workers worker(s)"
    : >"$NGX/pp.log"; : >"$NGX/plain.log"; : >"$NGX/error.log"; : >"$REC"
    lab_config "$workers" >"$WORK/lab.toml"
    check "--check accepts the lab's configuration" "$SLUICE" --config "$WORK/lab.toml" --check
    if ! start_sluice "$WORK/lab.toml"; then bad "sluice starts"; return; fi
    health
    through_nginx IPv4 -4 "http://$VIP" "$CLIENT" "$SNAT" "$VIP" v4.bin
    through_recorder IPv4 "$VIP" "$CLIENT" "$VIP:9000" 0x11
    banner_server
    plain_server
    header_lost
    through_nginx IPv6 -6 "http://[$VIP6]" "$CLIENT6" "$SNAT6" "$VIP6" v6.bin
    through_recorder IPv6 "$VIP6" "[$CLIENT6]" "[$VIP6]:9000" 0x21
    # Broken or missing headers (v1 "broken header: ...", v2 "header is
    # too large", a connection closed "while reading PROXY protocol") and
    # garbage where a request should be ("client sent invalid ...").
    local errors='broken header|PROXY protocol|header is too large|invalid|\[(error|crit|alert|emerg)\]' n
    n=$(grep -cE "$errors" "$NGX/error.log")
    check "nginx's error log has no PROXY protocol or request errors ($n lines)" test "$n" -eq 0
    check "no member went down meanwhile ($(grep -c ' DOWN' "$WORK/sluice.out") DOWN lines)" \
        bash -c "! grep -q ' DOWN' '$WORK/sluice.out'"
    stop_sluice; local rc=$?
    check "SIGTERM exits 0 (rc=$rc)" test "$rc" -eq 0
}

run 1
run 2
finish

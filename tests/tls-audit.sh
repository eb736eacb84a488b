#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `make tls-audit`: runs testssl.sh against a local tableguard with freshly generated ECDSA and
# RSA certificates, keeps its JSON and CSV reports in BUILD_DIR/tls-audit/, prints a summary,
# and fails on any HIGH or CRITICAL finding that is not a documented waiver.
#
# usage: sh tests/tls-audit.sh BUILD_DIR        (KEY_TYPES="ecdsa rsa" by default)
set -eu

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/tableguard
OUT=$BUILD/tls-audit
KEY_TYPES=${KEY_TYPES:-ecdsa rsa}
TESTSSL=${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}

# HIGH or CRITICAL findings accepted, each with its reason (docs/operations.md, "TLS audit").
# Prints the reason when `id` is waived, nothing otherwise. A waiver of server behaviour holds
# only when this script's own check of that behaviour, made against the same server, passed.
waiver() {
    case $1 in
    cert_revocation)
        echo "the certificate's profile, not the server: a cluster-private CA that only the" \
            "API server trusts has no CRL or OCSP responder to name, and the API server (Go)" \
            "checks neither; revoking is rotating the CA in caBundle"
        ;;
    secure_client_renego)
        if [ "$RENEGOTIATION" = refused ]; then
            echo "testssl 3.0.8 races here (its s_client can exit before reading the server's" \
                "close_notify, then the exit code 0 reads as VULNERABLE); checked directly:" \
                "a TLS 1.2 client-initiated renegotiation gets no ServerHello, the server" \
                "closes the connection"
        fi
        ;;
    esac
}

# Asks for a client-initiated renegotiation over TLS 1.2 and watches the server's answer: sets
# RENEGOTIATION to "refused" when the server closes without a new ServerHello.
check_renegotiation() {
    ca=$1
    RENEGOTIATION=unknown
    msgs=$( (sleep 1; echo R; sleep 2) | openssl s_client -connect "127.0.0.1:$PORT" -no_tls1_3 \
        -CAfile "$ca" -msg 2>&1 || true)
    after=$(printf '%s\n' "$msgs" | sed -n '/^RENEGOTIATING/,$p')
    if [ -n "$after" ] && ! printf '%s\n' "$after" | grep -q 'ServerHello' &&
        printf '%s\n' "$after" | grep -Eq 'close_notify|^closed'; then
        RENEGOTIATION=refused
    fi
}

if [ ! -x "$BIN" ]; then
    echo "tls-audit: $BIN not found; run make first" >&2
    exit 2
fi
if [ -z "$TESTSSL" ]; then
    echo "tls-audit: testssl not found; apt-get install testssl.sh" >&2
    exit 2
fi
mkdir -p "$OUT"

PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

random_port() {
    od -An -N2 -tu2 /dev/urandom | awk '{ print 20000 + $1 % 20000 }'
}

# Starts the server on a free random loopback port; sets PID and PORT.
start_server() {
    certs=$1 log=$2
    for _ in 1 2 3 4 5; do
        PORT=$(random_port)
        "$BIN" serve --policy "$ROOT/policy/default.yaml" \
            --tls-cert "$certs/tls.crt" --tls-key "$certs/tls.key" \
            --listen "127.0.0.1:$PORT" --metrics-listen off --shutdown-delay 0 \
            --service tableguard --namespace tableguard >"$log" 2>&1 &
        PID=$!
        i=0
        while [ $i -lt 100 ]; do
            if ! kill -0 "$PID" 2>/dev/null; then
                break # exited: most likely the port was taken; try another
            fi
            if curl -sf --cacert "$certs/ca.crt" "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
                return 0
            fi
            sleep 0.1
            i=$((i + 1))
        done
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
    done
    echo "tls-audit: the server did not start; its log:" >&2
    cat "$log" >&2
    exit 1
}

# Prints the CSV rows (id, severity, finding) of a testssl CSV report, unquoted, tab-separated.
rows() {
    awk -F'","' 'NR > 1 { gsub(/^"|"$/, "", $1); gsub(/"$/, "", $7); print $1 "\t" $4 "\t" $5 }' "$1"
}

status=0
for kt in $KEY_TYPES; do
    certs=$OUT/certs-$kt
    rm -rf "$certs"
    if ! "$BIN" certs generate --service tableguard --namespace tableguard --dns localhost \
        --ip 127.0.0.1 --key-type "$kt" --out "$certs" >"$OUT/certs-$kt.log" 2>&1; then
        cat "$OUT/certs-$kt.log" >&2
        exit 1
    fi
    start_server "$certs" "$OUT/server-$kt.log"
    json=$OUT/testssl-$kt.json csv=$OUT/testssl-$kt.csv txt=$OUT/testssl-$kt.txt
    rm -f "$json" "$csv" "$txt"
    echo "== testssl against tableguard ($kt certificate) on 127.0.0.1:$PORT"
    "$TESTSSL" --quiet --color 0 --warnings off --nodns none --add-ca "$certs/ca.crt" \
        --jsonfile "$json" --csvfile "$csv" "https://127.0.0.1:$PORT/healthz" >"$txt" 2>&1 ||
        true # testssl's exit code counts findings of every severity; the CSV is judged below
    check_renegotiation "$certs/ca.crt"
    cleanup
    PID=
    if [ ! -s "$csv" ]; then
        echo "tls-audit: testssl wrote no report; its output:" >&2
        cat "$txt" >&2
        exit 1
    fi

    echo "   protocols:  $(rows "$csv" | awk -F'\t' '$1 ~ /^(SSLv[23]|TLS1(_[123])?)$/ {
        printf "%s=%s  ", $1, ($3 ~ /^offered/ ? "offered" : "no") }')"
    echo "   suites:     $(rows "$csv" | awk -F'\t' '$1 ~ /^cipher_x/ { split($3, f, / +/); printf "%s ", f[2] }')"
    echo "   severities: $(rows "$csv" | awk -F'\t' '{ n[$2]++ } END {
        for (s in n) printf "%s=%d ", s, n[s] }')"
    rows "$csv" | awk -F'\t' '$2 ~ /^(LOW|MEDIUM|HIGH|CRITICAL|WARN)$/ {
        printf "   %-8s %-22s %s\n", $2, $1, $3 }'

    bad=$(rows "$csv" | awk -F'\t' '$2 == "HIGH" || $2 == "CRITICAL" { print $1 }')
    for id in $bad; do
        reason=$(waiver "$id")
        if [ -n "$reason" ]; then
            echo "   waived   $id: $reason"
        else
            echo "   FAIL     $id is HIGH or CRITICAL" >&2
            status=1
        fi
    done
    echo "   renegotiation (TLS 1.2, client-initiated, checked with openssl s_client): $RENEGOTIATION"
    echo "   reports:    $json $csv $txt"
done

if [ $status -ne 0 ]; then
    echo "tls-audit: FAILED (high or critical findings above)" >&2
else
    echo "tls-audit: OK (no high or critical finding beyond the documented waivers)"
fi
exit $status

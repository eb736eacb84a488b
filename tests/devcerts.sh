#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Creates development certificates for `make run` in BUILD_DIR/certs unless they are already there.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
build=$1
out=$build/certs
force=""
if [ -f "$out/tls.crt" ]; then
    # Keep a usable pair; replace one that expired or lost its key (the CA is reused if valid).
    if "$build/tableguard" certs inspect "$out/tls.crt" --key "$out/tls.key" >/dev/null 2>&1; then
        exit 0
    fi
    echo "$out/tls.crt is unusable; making a new one" >&2
    force=--force
fi
"$build/tableguard" certs generate --service tableguard --namespace tableguard \
    --dns localhost --ip 127.0.0.1 --ip ::1 --out "$out" $force >/dev/null
echo "development certificates in $out (trust $out/ca.crt)"

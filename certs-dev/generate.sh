#!/usr/bin/env bash
# DEVELOPMENT ONLY. Regenerates the keys and certificates in this folder, used by
# `idp-server demo` and the tests. Never use them outside development: production keys
# come from configuration.
set -euo pipefail
cd "$(dirname "$0")"

# TLS for localhost (demo with TLS, tests of the TLS listener). A self-signed leaf, not
# a CA: clients that trust the file itself (rustls/webpki) refuse a CA as a server cert.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=localhost/O=DEVELOPMENT ONLY" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" \
  -keyout tls-dev.key -out tls-dev.crt 2>/dev/null
echo "regenerated in $(pwd)"

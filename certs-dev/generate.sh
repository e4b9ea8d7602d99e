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

# SPID service-provider signing certificate for a public SP, as Avviso SPID n.29 v3
# requires: subject with commonName, organizationName, organizationIdentifier
# "PA:IT-<IPA code>", countryName IT, localityName, uri (2.5.4.83) = the SP's entity ID
# (here the demo's); basicConstraints CA:FALSE, not critical; certificatePolicies agIDcert
# (1.3.76.16.6) and spid-publicsector-SP (1.3.76.16.4.2.1); keyUsage digitalSignature and
# nonRepudiation, critical; RSA 3072, SHA-256. The IPA code is a placeholder.
cat > spid-sp.cnf <<'CNF'
oid_section = spid_oids
[spid_oids]
uri = 2.5.4.83
agIDcert = 1.3.76.16.6
spid-publicsector-SP = 1.3.76.16.4.2.1
[req]
distinguished_name = dn
prompt = no
string_mask = utf8only
utf8 = yes
[dn]
commonName = Identity provider delle scuole (DEVELOPMENT ONLY)
organizationName = Ministero dell\'istruzione e del merito (DEVELOPMENT ONLY)
organizationIdentifier = PA:IT-m_pi
countryName = IT
localityName = Roma
uri = http://localhost:8080/spid
[spid_sp]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
certificatePolicies = @agid_policy,@spid_policy
subjectKeyIdentifier = hash
[agid_policy]
policyIdentifier = agIDcert
userNotice.1 = @agid_notice
[agid_notice]
explicitText = "agIDcert"
[spid_policy]
policyIdentifier = spid-publicsector-SP
userNotice.1 = @spid_notice
[spid_notice]
explicitText = "cert_SP_Pub"
CNF
openssl req -x509 -new -newkey rsa:3072 -sha256 -nodes -days 730 -config spid-sp.cnf \
  -extensions spid_sp -keyout spid-sp.key -out spid-sp.crt 2>/dev/null
rm spid-sp.cnf

# The local SPID test IdP's signing key (spid-test-idp; also the IdP that spid-sp-test
# plays in CI, through IDP_CERT_PATH).
openssl req -x509 -new -newkey rsa:3072 -sha256 -nodes -days 730 \
  -subj "/CN=spid-test-idp DEVELOPMENT ONLY/O=DEVELOPMENT ONLY/C=IT/L=Roma" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature,nonRepudiation" \
  -keyout spid-test-idp.key -out spid-test-idp.crt 2>/dev/null
echo "regenerated in $(pwd)"

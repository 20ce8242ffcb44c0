#!/bin/sh
# Installs what the tests need beyond Node and OpenSSL, on Debian 12, as root. Idempotent: apt-get
# runs only when a binary is missing.
#  - PKCS#11 root tests (DESIGN §4.6): SoftHSM2, OpenSC's pkcs11-tool, OpenSSL's pkcs11 engine.
#  - Interop tests (test/interop.test.ts): GnuTLS certtool + gnutls-cli, nginx, curl, and Python's
#    `cryptography` >= 43 (x509.verification with a client verifier).
#  - Expiry tests (test/expiry.test.ts): libfaketime's `faketime`.
#  - Name-constraint tests (test/name-constraints.test.ts): Go (golang-go) for crypto/x509's verifier.
set -eu

missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need softhsm2-util softhsm2
need pkcs11-tool opensc
engines_dir=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
[ -n "$engines_dir" ] && [ -f "$engines_dir/pkcs11.so" ] || missing="$missing libengine-pkcs11-openssl"
need certtool gnutls-bin
command -v gnutls-cli >/dev/null 2>&1 || case "$missing" in *gnutls-bin*) ;; *) missing="$missing gnutls-bin" ;; esac
need nginx nginx
need curl curl
need faketime faketime
need python3 python3
need go golang-go

if [ -n "$missing" ]; then
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  sh "$(dirname "$0")/../../scripts/setup/apt-install.sh" install-deps $missing
  # The nginx package starts a system nginx on :80; the tests run their own on loopback only.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
else
  echo "install-deps: softhsm2, pkcs11 engine, gnutls-bin, nginx, curl, faketime, python3 and go are present"
fi

# Python's RFC 5280 verifier: cryptography >= 43 (Debian 12's python3-cryptography is 38, too old).
has_verifier() { python3 -c 'import cryptography.x509.verification as v; v.PolicyBuilder.build_client_verifier' >/dev/null 2>&1; }
if ! has_verifier; then
  echo "install-deps: python3 cryptography lacks x509.verification (need >= 43); trying pip"
  python3 -m pip install --user --quiet 'cryptography>=43' >/dev/null 2>&1 \
    || python3 -m pip install --user --quiet --break-system-packages 'cryptography>=43' >/dev/null 2>&1 || true
fi
if has_verifier; then
  echo "install-deps: python3 cryptography $(python3 -c 'import cryptography; print(cryptography.__version__)') has the RFC 5280 verifier"
else
  # Not fatal here: the interop test fails and says why, so CI still reports every other result.
  echo "install-deps: WARNING python3 cryptography >= 43 unavailable (pip missing or offline) — the Python interop test will fail" >&2
fi

#!/bin/sh
# Installs what the PKCS#11 root tests need (DESIGN §4.6): SoftHSM2, OpenSC's pkcs11-tool and
# OpenSSL's pkcs11 engine. Idempotent: apt-get runs only when something is missing.
set -eu

missing=""
command -v softhsm2-util >/dev/null 2>&1 || missing="$missing softhsm2"
command -v pkcs11-tool >/dev/null 2>&1 || missing="$missing opensc"
engines_dir=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
[ -n "$engines_dir" ] && [ -f "$engines_dir/pkcs11.so" ] || missing="$missing libengine-pkcs11-openssl"

if [ -z "$missing" ]; then
  echo "install-deps: softhsm2, pkcs11-tool and the openssl pkcs11 engine are present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing:$missing — run as root, or: sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing

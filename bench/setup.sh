#!/bin/sh
# Installs the tools `make bench` compares against, from Debian, when missing: easy-rsa and
# golang-cfssl. Idempotent; needs root (or sudo) only when something is missing.
set -eu
missing=""
[ -x /usr/share/easy-rsa/easyrsa ] || missing="$missing easy-rsa"
command -v cfssl >/dev/null 2>&1 || missing="$missing golang-cfssl"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/setup.sh: missing:$missing — run as root, or: sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "bench/setup.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # the package list is meant to split
apt-get install -y -qq --no-install-recommends $missing

#!/bin/sh
# Installs the tools `make bench` compares against, from Debian, when missing: easy-rsa and
# golang-cfssl. Idempotent; needs root (or sudo) only when something is missing.
set -eu
missing=""
[ -x /usr/share/easy-rsa/easyrsa ] || missing="$missing easy-rsa"
command -v cfssl >/dev/null 2>&1 || missing="$missing golang-cfssl"
# shellcheck disable=SC2086 # the package list is meant to split
sh "$(dirname "$0")/../scripts/setup/apt-install.sh" bench/setup.sh $missing

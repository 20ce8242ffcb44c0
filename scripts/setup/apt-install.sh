#!/bin/sh
# apt-install.sh WHO PKG… — installs the given Debian packages, as root, non-interactively. Shared by
# test/setup/install-deps.sh and bench/setup.sh, which decide what is missing; WHO prefixes messages.
set -eu
who=$1; shift
[ "$#" -gt 0 ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "$who: missing: $* — run as root, or: sudo apt-get install -y $*" >&2
  exit 1
fi
echo "$who: installing $*"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@"

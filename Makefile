# rivet-ca — the two commands a newcomer needs are `make demo` and `make test`.
# CA-side targets use RIVET_CA_DIR (default /shared/rivet-ca); see README.
SHELL := /bin/bash
RIVET := ./scripts/rivet-ca.mts
PROVISION := ./scripts/provision-ct.mts
NODE_MODULES := node_modules/.package-lock.json

.PHONY: all deps build check unit static-checks test test-all typecheck lint format format-check imports demo renew revoke crl bench

all: test

# npm ci empties node_modules first: where node_modules is a link to a shared install (a git
# worktree), that would empty it for every checkout using it, so a link is left alone.
$(NODE_MODULES): package.json package-lock.json
	@if [ -L node_modules ]; then echo "node_modules is a link to a shared install: not running npm ci here" >&2; \
	else npm ci --no-audit --no-fund && touch $@; fi

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

# The tiers (TESTING.md). `make check` is the edit–test loop: the static checks plus the in-process
# unit suites (test/unit/, mirroring lib/'s layers), under 20 s. `make test` adds every end-to-end
# suite, 3 at a time (TEST_WORKERS=N), through scripts/dev/run-tests.mts, which prints each suite's
# uvu summary and a last `N passed, N failed` line. The static checks run side by side (-j).
RUN_TESTS := node --import tsx scripts/dev/run-tests.mts
CACHE := .cache

check: $(NODE_MODULES)
	@$(MAKE) --no-print-directory -j4 --output-sync=target static-checks unit

test: deps
	@$(MAKE) --no-print-directory -j4 --output-sync=target static-checks
	$(RUN_TESTS)

# What CI runs (.ci/run): installs the independent verifiers and faketime when missing
# (test/setup/install-deps.sh), then every suite, those included (run-tests --all: interop, pkcs11,
# expiry), with the slow loads at full size — the crash test's 220 SIGKILLs instead of 40.
test-all: deps
	@$(MAKE) --no-print-directory -j4 --output-sync=target static-checks
	sh test/setup/install-deps.sh
	RIVET_CRASH_KILLS=220 $(RUN_TESTS) --all

static-checks: typecheck lint format-check imports

unit: $(NODE_MODULES)
	@$(RUN_TESTS) --unit

# Incremental: the second run after an edit re-checks only what the edit touched.
typecheck: $(NODE_MODULES)
	@npx tsc --noEmit --incremental --tsBuildInfoFile $(CACHE)/tsc.tsbuildinfo && echo "typecheck: ok"

# eslint.config.js says which rules and why (no type-aware rules: tsc already runs here).
lint: $(NODE_MODULES)
	@node_modules/.bin/eslint --cache --cache-location $(CACHE)/eslint . && echo "lint: ok"

# The layer rule of lib/ (docs/ARCHITECTURE.md): no upward import, no cycle.
imports: $(NODE_MODULES)
	@node --import tsx scripts/dev/check-imports.mts

# prettier (.prettierrc) on the code. `make format` rewrites it; `make check` checks it once the
# tree has been formatted (the marker .prettier-formatted, written by `make format`), so that
# branches made before the one formatting pass keep a green check.
PRETTIER_FILES := '**/*.{ts,mts,js,mjs}'
format: $(NODE_MODULES)
	node_modules/.bin/prettier --write --log-level warn $(PRETTIER_FILES)
	@echo "the tree was formatted by \`make format\` (.prettierrc); make check runs prettier --check while this file exists" > .prettier-formatted

format-check: $(NODE_MODULES)
	@if [ -f .prettier-formatted ]; then node_modules/.bin/prettier --check --cache --cache-location $(CACHE)/prettier --log-level warn $(PRETTIER_FILES) && echo "format: ok"; \
	else echo "format: not checked yet — the tree gets one \`make format\` pass (see .prettierrc)"; fi

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

# rivet-ca — the two commands a newcomer needs are `make demo` and `make test`.
# CA-side targets use RIVET_CA_DIR (default /shared/rivet-ca); see README.
SHELL := /bin/bash
RIVET := ./scripts/rivet-ca.mts
NODE_MODULES := node_modules/.package-lock.json

.PHONY: all deps build test test-all typecheck demo renew revoke crl bench

all: test

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_MODULES) dist/.built

# The CLI bundle that makes `rivet-ca` start fast (scripts/build.mts, scripts/launch.mjs). Rebuilt
# when a source changes; the launcher also checks every input itself and falls back to tsx.
BUILD_INPUTS := $(shell find lib scripts -name '*.ts' -o -name '*.mts' 2>/dev/null) package-lock.json
dist/.built: $(BUILD_INPUTS) $(NODE_MODULES)
	@node_modules/.bin/tsx scripts/build.mts --best-effort
	@touch $@

build: dist/.built

typecheck: deps
	npx tsc --noEmit

# The whole suite: typecheck, then every test/*.test.ts with the real openssl.
test: deps typecheck
	node --import tsx node_modules/uvu/bin.js test '\.test\.ts$$'

demo: deps
	./scripts/demo.mts

# Daily from cron/systemd: CA-side renewal where a CA is present (and CRL refresh when due).
renew: deps
	@if [ -f "$${RIVET_CA_DIR:-/shared/rivet-ca}/root/ca.crt" ]; then $(RIVET) renew; fi

# make revoke CN=opus@ct111 [REASON=keyCompromise]
revoke: deps
	@test -n "$(CN)" || { echo "usage: make revoke CN=<cn> [REASON=keyCompromise]" >&2; exit 2; }
	$(RIVET) revoke "$(CN)" $(if $(REASON),--reason "$(REASON)")

crl: deps
	$(RIVET) crl

# The enrollment service (DESIGN §4.7): make serve [LISTEN=0.0.0.0:8443]. Its TLS identity is the
# CA host's node cert (RIVET_NODE_DIR/node.crt|key); the bootstrap secret comes from the environment.
.PHONY: serve
serve: deps
	$(RIVET) serve $(if $(LISTEN),--listen "$(LISTEN)")

# Side-by-side benchmark against easy-rsa and cfssl (bench/README.md); writes BENCHMARKS.md.
bench: deps
	./bench/setup.sh
	node_modules/.bin/tsx bench/run.mts

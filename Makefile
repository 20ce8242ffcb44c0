# rivet-ca — the two commands a newcomer needs are `make demo` and `make test`.
# CA-side targets use RIVET_CA_DIR (default /shared/rivet-ca); see README.
SHELL := /bin/bash
RIVET := ./scripts/rivet-ca.mts
NODE_MODULES := node_modules/.package-lock.json

.PHONY: all deps test test-all typecheck demo renew revoke crl

all: test

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_MODULES)

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

# The two commands: `make dev` runs the service locally, `make test` checks everything.
# Both install what they need on a fresh machine (cmake via apt-get, secantusd-rs via cargo
# install into .tools/, test clients into project-local folders).

SHELL := /bin/bash
SECANTUS_VERSION := 0.5.3-beta.196
TOOLS := $(CURDIR)/.tools
SECANTUSD := $(TOOLS)/bin/secantusd-rs
VENV := $(CURDIR)/.venv
DEPLOY_VENV := $(TOOLS)/deploy
export SAM_CLI_TELEMETRY := 0
NODE_DIR := tests/node
WEB_DIR := web
# The stock socket.io-client browser build, copied from node_modules into the static site.
WEB_VENDOR := $(WEB_DIR)/public/vendor/socket.io.esm.min.js
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: dev test bench seed-stack fuzz conformance lint-template package watch-smoke tools db-tool client-tools web web-tools deploy-web deploy-tools migrate status clean-data web-size

## dev: start secantusd-rs (data in .data/, unless MONGO_URI is set), migrate, serve on :8000
## (the web client at http://127.0.0.1:8000/)
dev: db-tool web
	@scripts/dev.sh

## test: fmt check, clippy (warnings denied), template lint, unit + integration tests with real clients
##       (end-to-end twice: experiments off, then on as in production)
test: db-tool client-tools web-tools lint-template
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	SECANTUSD=$(SECANTUSD) CHAT_VENV=$(VENV) cargo test --workspace
	@echo "end-to-end again, with the experiments on as in production"
	SECANTUSD=$(SECANTUSD) CHAT_VENV=$(VENV) CHAT_TEST_EXPERIMENTS=on cargo test -p chat-tests --test e2e
	scripts/watch-smoke.sh

## bench: release builds, chat-load at 100 and 1,000 connections, round trips, cold starts -> BENCHMARKS.md
bench: db-tool
	scripts/bench.sh

## seed-stack: the product's original Python stack (bench/seed: FastAPI + python-socketio + motor,
##             venv in .tools/seed-venv) on :8001 (PORT), against MONGO_URI or a throwaway database
seed-stack: db-tool
	scripts/bench-seed.sh

## fuzz: every cargo-fuzz target for FUZZ_SECONDS (20) on its corpus in fuzz/corpus (nightly, installs cargo-fuzz)
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := protocol_frames client_events rest_input mobile_numbers
fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run --fuzz-dir fuzz $$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

## conformance: the Engine.IO/Socket.IO protocol conformance server on localhost:3000
conformance: db-tool
	scripts/conformance.sh

## lint-template: cfn-lint, sam validate --lint and SAM's own transform, all offline, no findings allowed
lint-template: deploy-tools
	$(DEPLOY_VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 $(DEPLOY_VENV)/bin/sam validate --lint --template template.yaml
	AWS_DEFAULT_REGION=us-east-1 $(DEPLOY_VENV)/bin/python scripts/sam-transform.py

## package: release builds of every function for arm64 with cargo-lambda; prints bootstrap sizes
package: deploy-tools
	scripts/package.sh

## watch-smoke: cargo lambda watch serves the HTTP functions; log in through them
watch-smoke: db-tool deploy-tools
	scripts/watch-smoke.sh

## migrate / status: run the migration runner against MONGO_URI (default localhost:27017)
migrate:
	cargo run -q -p chat-migrations --bin migrate -- up
status:
	cargo run -q -p chat-migrations --bin migrate -- status

tools: db-tool client-tools web-tools deploy-tools

## web: the web client's static site in web/public (copies the socket.io-client build in)
web: $(WEB_VENDOR)

$(WEB_DIR)/node_modules/.installed: $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json
	cd $(WEB_DIR) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_VENDOR): $(WEB_DIR)/node_modules/.installed
	mkdir -p $(dir $@)
	cp $(WEB_DIR)/node_modules/socket.io-client/dist/socket.io.esm.min.js $@

## web-tools: the static site, Playwright (npm) and Debian's chromium for the browser tests
web-tools: web
	@test -x $(CHROMIUM) || { echo "installing chromium"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

## deploy-web: upload web/public and a config.json with the API URLs to a deployed stack
deploy-web: web deploy-tools
	@test -n "$(STACK)" || { echo "usage: make deploy-web STACK=<stack-name>"; exit 2; }
	$(DEPLOY_VENV)/bin/python scripts/deploy-web.py $(STACK)

## web-size: the web client's files and their gzipped total
web-size: web
	@cd $(WEB_DIR)/public && for f in index.html app.css app.js vendor/socket.io.esm.min.js; do \
	  printf '%-32s %7d bytes, gzip -9 %6d\n' $$f $$(wc -c < $$f) $$(gzip -9c $$f | wc -c); done; \
	  printf '%-32s %21d\n' total $$(cat index.html app.css app.js vendor/socket.io.esm.min.js | gzip -9c | wc -c)

$(SECANTUSD):
	@command -v cmake >/dev/null || { echo "installing cmake"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq cmake; }
	cargo install secantus-mdb --version $(SECANTUS_VERSION) --ignore-rust-version --locked --root $(TOOLS)

db-tool: $(SECANTUSD)

client-tools: $(NODE_DIR)/node_modules/.installed $(VENV)/.installed

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.installed: tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

deploy-tools: $(DEPLOY_VENV)/.installed

$(DEPLOY_VENV)/.installed: tools/deploy-requirements.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install -q --disable-pip-version-check -r tools/deploy-requirements.txt
	touch $@

clean-data:
	rm -rf .data

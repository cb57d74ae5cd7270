# sudo's secure_path usually lacks Go: fall back to where the official
# tarball installs it.
GO       ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
PREFIX   ?= /usr/local
BIN      := bin/portwarden
PKGS     := ./...
FUZZTIME ?= 2m

.PHONY: build install test lint race fuzz bench demo clean

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

# Static (CGO_ENABLED=0): hooks start the binary for every command, and
# the dynamic loader and libc cost every start about 100 page faults.
# Without Go 1.26's random heap base (a hardening for cgo, which a static
# binary has none of) the heap starts where internal/prefault maps it in
# one call; a toolchain that lacks the setting builds without it.
# Added to any GOEXPERIMENT of the caller's; "=", so that only build asks.
HEAPBASE    = $(shell GOEXPERIMENT=norandomizedheapbase64 $(GO) env GOEXPERIMENT >/dev/null 2>&1 && echo norandomizedheapbase64)
comma      := ,
EXPERIMENTS = $(GOEXPERIMENT)$(if $(and $(GOEXPERIMENT),$(HEAPBASE)),$(comma))$(HEAPBASE)

build:
	CGO_ENABLED=0 GOEXPERIMENT=$(EXPERIMENTS) $(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/portwarden

# make build as yourself, then sudo make install: install only copies, so
# nothing in the tree becomes root's.
install:
	@test -x $(BIN) || { echo "run make build first (as yourself), then make install"; exit 1; }
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/portwarden

# The one test command: unit tests, CLI scripts and kernel tests (kernel tests
# need root; under CI=true they fail instead of skipping).
test: lint
	@skips=$$(mktemp); PORTWARDEN_SKIP_LOG=$$skips $(GO) test -count=1 -timeout 25m $(PKGS); rc=$$?; \
	  if [ -s $$skips ]; then \
	    echo; echo "$$(wc -l < $$skips) kernel tests were SKIPPED, so the firewall was not tested:"; \
	    sort $$skips | uniq -c | sed 's/^/  /'; \
	    echo "Run make test as root (sudo make test) to run them; CI=true makes them fail instead of skipping."; \
	  fi; rm -f $$skips; exit $$rc

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

race:
	$(GO) test -race -count=1 $(PKGS)

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) ./policies

bench: build
	$(GO) test -run='^$$' -bench=. -benchtime=1x -timeout=30m ./backends/... ./verify/... ./internal/nfgen
	# The command as hooks run it: a fresh process per case beside nft -f.
	PORTWARDEN_BIN=$(CURDIR)/$(BIN) $(GO) test -run='^$$' -bench=CLI -benchtime=1x -timeout=90m ./cmd/portwarden

# The demo builds a lab of namespaces, applies examples/port27 in it, shows
# plan, apply and verification, and removes everything (needs root).
demo:
	bash examples/demo/demo.sh

clean:
	rm -rf bin

GO       ?= go
BIN      := bin/portwarden
PKGS     := ./...
FUZZTIME ?= 2m

.PHONY: build test lint race fuzz bench demo clean

build:
	$(GO) build -o $(BIN) ./cmd/portwarden

# The one test command: unit tests, CLI scripts and kernel tests (kernel tests
# need root; under CI=true they fail instead of skipping).
test: lint
	$(GO) test -count=1 -timeout 30m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

race:
	$(GO) test -race -count=1 $(PKGS)

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzLoad -fuzztime=$(FUZZTIME) ./policies

bench:
	$(GO) test -run='^$$' -bench=. -benchtime=1x -timeout=30m ./backends/... ./verify/...

# The demo builds a lab of namespaces, applies examples/port27 in it, shows
# plan, apply and verification, and removes everything (needs root).
demo:
	bash examples/demo/demo.sh

clean:
	rm -rf bin

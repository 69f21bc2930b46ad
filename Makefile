# The README's two commands: `make run` (the embedded demo) and `make test`
# (every test). Benchmarks are separate: `make bench` writes BENCHMARKS.md.
GO      ?= go
PKGS    ?= ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test deps bench lint build fuzz clean

run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/vumi run -c deploy/local/vumi.yaml

# The test servers and packages (carbon, prosody, ngircd from apt; npm
# packages into project-local dirs); idempotent, quick when present.
deps:
	./scripts/install-test-deps.sh

test: deps lint
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench:
	./scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/vumi ./cmd/vumi

# Short fuzzing session over every fuzz target (not part of `make test`,
# which replays the saved corpus).
fuzz:
	./scripts/fuzz.sh 30s

clean:
	rm -rf bin data

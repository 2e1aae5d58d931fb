# mmcr: build, test, demo. The tests and the demo need root.
GO ?= go
# How long each Fuzz* function runs in `make test` / `make fuzz`.
FUZZTIME ?= 5s
# go test's timeout for the whole suite (unit tests and e2e).
TEST_TIMEOUT ?= 40m

.PHONY: all build vet test unit fuzz demo bench clean

all: build

build:
	$(GO) build -o bin/mmcr ./cmd/mmcr

# vet also wants every Go file as gofmt writes it.
vet:
	$(GO) vet ./...
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted: $$unformatted"; exit 1; fi

# The whole suite: vet, unit tests of every package plus the end-to-end
# process trees (test/e2e), then a short fuzz run of every Fuzz* function.
test: vet unit fuzz

# -count=1: never a cached result. test/e2e builds mmcr from source with
# go build, which go test's cache does not see, so a cached "ok" could
# hide a change in dump/ or restore/.
unit:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Every Fuzz* function of every package, FUZZTIME each (scripts/fuzz.sh:
# it repeats once a target that only hit Go 1.26's fuzztime deadline race).
fuzz:
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME)

demo:
	bash scripts/demo.sh

# The benchmark of issue 5 (root, gcc): mmcr dump/restore medians against
# dd/read references on tmpfs. BENCH_FLAGS=-quick for a smoke run; also
# -runs N, -cases a,b, -json FILE, -markdown (see bench/main.go).
BENCH_FLAGS ?=
bench: build
	$(GO) run ./bench -mmcr bin/mmcr $(BENCH_FLAGS)

clean:
	rm -rf bin

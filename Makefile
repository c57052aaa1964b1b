# SprayDryFS. `make demo` ingests a small tree and shows it; `make test` runs
# every test (CI runs it through .ci/run); `make bench` runs the benchmarks.
GO      ?= go
BIN     := bin/spraydryfs
DEMO    := _demo

.PHONY: all build deps demo test fuzz bench vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/spraydryfs

# deps: what the demo and the tests need beyond Go (Debian, as root).
deps:
	@command -v fusermount3 >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null; } || \
		echo "note: install fuse3 for the FUSE mount"; }

# demo: ingest two versions of this source tree, list and check them, then
# mount all roots with FUSE, browse and compare them, and unmount.
demo: build deps
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/src $(DEMO)/mnt
	@cp -r backend $(DEMO)/src/backend && cp README.md $(DEMO)/src/
	./$(BIN) -s $(DEMO)/store.sdfs ingest demo@v1 $(DEMO)/src
	@echo "a change for v2" >> $(DEMO)/src/README.md
	./$(BIN) -s $(DEMO)/store.sdfs ingest demo@v2 $(DEMO)/src
	./$(BIN) -s $(DEMO)/store.sdfs roots
	./$(BIN) -s $(DEMO)/store.sdfs ls -l demo@v2
	./$(BIN) -s $(DEMO)/store.sdfs stats
	./$(BIN) -s $(DEMO)/store.sdfs check --read-data
	./$(BIN) -s $(DEMO)/store.sdfs cat demo@v2/README.md | tail -n 1
	@./$(BIN) -s $(DEMO)/store.sdfs mount $(DEMO)/mnt & pid=$$!; \
	for i in $$(seq 100); do grep -q " $$(pwd)/$(DEMO)/mnt " /proc/self/mounts && break; sleep 0.1; done; \
	echo "+ ls -l $(DEMO)/mnt/demo" && ls -l $(DEMO)/mnt/demo && \
	echo "+ diff -r $(DEMO)/src $(DEMO)/mnt/demo/latest" && diff -r $(DEMO)/src $(DEMO)/mnt/demo/latest && echo "identical"; \
	status=$$?; kill $$pid; wait $$pid; exit $$status

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# Fuzz every decoder of stored or received bytes, and WebDAV request paths, briefly.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeDir -fuzztime 10s ./backend/tree
	$(GO) test -run '^$$' -fuzz FuzzDecodeChunkList -fuzztime 10s ./backend/tree
	$(GO) test -run '^$$' -fuzz FuzzParseDirRecord -fuzztime 10s ./backend/store
	$(GO) test -run '^$$' -fuzz FuzzWireRead -fuzztime 10s ./frontends/ninep
	$(GO) test -run '^$$' -fuzz FuzzWireWrite -fuzztime 10s ./frontends/ninep
	$(GO) test -run '^$$' -fuzz FuzzCleanPath -fuzztime 10s ./frontends/webdav
	$(GO) test -run '^$$' -fuzz FuzzDecodeObject -fuzztime 10s ./backend/layout
	$(GO) test -run '^$$' -fuzz FuzzDecodeIndex -fuzztime 10s ./backend/layout

# With gotestsum on PATH (.ci/run installs a pinned one) every test is named
# as it finishes and the run ends with "DONE N tests"; without it, plain go
# test, whose per-package "ok"/"FAIL" lines come as each package finishes.
GOTEST  ?= $(if $(shell command -v gotestsum),gotestsum --format testname --,$(GO) test)

test: vet
	$(GOTEST) -race -count=1 -timeout 12m ./...
	$(MAKE) fuzz

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./backend/...
	bash bench/run.sh
	bash bench/fuse.sh
	bash bench/webdav.sh
	bash bench/ninep.sh
	bash bench/dict.sh
	bash bench/delta.sh

clean:
	rm -rf bin $(DEMO)

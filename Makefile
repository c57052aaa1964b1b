# SprayDryFS. `make demo` ingests a small tree and shows it; `make test` runs
# every test (CI runs it through .ci/run); `make bench` runs the benchmarks.
GO      ?= go
BIN     := bin/spraydryfs
DEMO    := _demo
# install: the binary in $(DESTDIR)$(PREFIX)/bin, and mount(8)'s helper
# for type spraydryfs, $(DESTDIR)$(SBINDIR)/mount.spraydryfs, a link to it.
PREFIX  ?= /usr/local
SBINDIR ?= /sbin

.PHONY: all build deps demo test test-unit test-integration fuzz bench vet cross cross-check clean install uninstall

all: build

build:
	$(GO) build -o $(BIN) ./cmd/spraydryfs

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/spraydryfs
	install -d $(DESTDIR)$(SBINDIR)
	ln -sfn $(PREFIX)/bin/spraydryfs $(DESTDIR)$(SBINDIR)/mount.spraydryfs

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/spraydryfs $(DESTDIR)$(SBINDIR)/mount.spraydryfs

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

# cross: the command builds for every OS and CPU it ships for, and go vet
# (tests included) passes under each OS. Two pairs build at a time, without
# optimizing (-N -l: a quarter less compile time, and compiling is what is
# checked); vet runs under each OS after its pair, reusing that build.
# linux/amd64 builds as `make vet` does, which has compiled it already.
# On a machine with an empty build cache each OS takes about 110 s on 2
# cores (most of it SQLite's transpiled C), so `make test` runs
# cross-check instead: go vet ./... under the two systems furthest from
# Linux (macOS, Windows), which type-checks the command and every test
# there; `make cross` runs all eight builds and three vets.
CROSS_OS      := linux darwin windows freebsd
CROSS_ARCH    := amd64 arm64
CROSS_VETS    := darwin-arm64 windows-amd64 freebsd-amd64
CROSS_CHECK   := darwin-arm64 windows-amd64
CROSS_GCFLAGS := -gcflags='all=-N -l'
cross_env      = GOOS=$(word 1,$(subst -, ,$*)) GOARCH=$(word 2,$(subst -, ,$*))

cross: $(foreach os,$(CROSS_OS),$(foreach arch,$(CROSS_ARCH),cross-build-$(os)-$(arch)))
	$(MAKE) $(foreach p,$(CROSS_VETS),cross-vet-$(p))

cross-check: $(foreach p,$(CROSS_CHECK),cross-vet-$(p))

cross-build-linux-amd64:
	$(GO) build -o /dev/null ./cmd/spraydryfs

cross-build-%:
	$(cross_env) $(GO) build $(CROSS_GCFLAGS) -o /dev/null ./cmd/spraydryfs

cross-vet-%:
	$(cross_env) $(GO) vet $(CROSS_GCFLAGS) ./...

# Fuzz every decoder of stored or received bytes, and WebDAV request paths,
# briefly (FUZZTIME each; longer runs: make fuzz FUZZTIME=5m). The default is
# a count, not a duration: Go 1.26's fuzz coordinator can fail a target with
# "context deadline exceeded" when a duration ends mid-run (go.dev/issue/75804).
FUZZTIME ?= 30000x
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeDir -fuzztime $(FUZZTIME) ./backend/tree
	$(GO) test -run '^$$' -fuzz FuzzDecodeChunkList -fuzztime $(FUZZTIME) ./backend/tree
	$(GO) test -run '^$$' -fuzz FuzzParseDirRecord -fuzztime $(FUZZTIME) ./backend/store
	$(GO) test -run '^$$' -fuzz FuzzWireRead -fuzztime $(FUZZTIME) ./frontends/ninep
	$(GO) test -run '^$$' -fuzz FuzzWireWrite -fuzztime $(FUZZTIME) ./frontends/ninep
	$(GO) test -run '^$$' -fuzz FuzzCleanPath -fuzztime $(FUZZTIME) ./frontends/webdav
	$(GO) test -run '^$$' -fuzz FuzzDecodeObject -fuzztime $(FUZZTIME) ./backend/layout
	$(GO) test -run '^$$' -fuzz FuzzDecodeIndex -fuzztime $(FUZZTIME) ./backend/layout

# With gotestsum on PATH (.ci/run installs a pinned one) every test is named
# as it finishes and each run ends with "DONE N tests"; without it, plain go
# test, whose per-package "ok"/"FAIL" lines come as each package finishes.
GOTEST  ?= $(if $(shell command -v gotestsum),gotestsum --format testname --,$(GO) test)

# test: every test, in about 11 minutes on 2 cores with an empty build
# cache. Unit tests run under the race detector (which instruments
# SQLite's transpiled C too: a few CPU-bound sequential tests skip
# themselves under -race, raceEnabled, and run after it without). The
# end-to-end tests (./integration) run without it, beside them: they
# drive real clients and the kernel and wait on them much of the time,
# and under -race they took 380 s instead of 210 s; the servers they use
# in-process have race-checked unit tests of their own. The fuzz targets'
# seed inputs run as unit tests; `make fuzz` fuzzes.
test: vet
	$(MAKE) -j2 cross-check
	$(MAKE) -j2 test-unit test-integration
	$(GOTEST) -count=1 -run '^TestGCRepacksTables$$' ./backend

test-unit:
	$(GOTEST) -race -count=1 -timeout 12m $$($(GO) list ./... | grep -v '/integration$$')

test-integration:
	$(GOTEST) -count=1 -timeout 12m ./integration

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./backend/...
	bash bench/run.sh
	bash bench/fuse.sh
	bash bench/webdav.sh
	bash bench/ninep.sh
	bash bench/dict.sh
	bash bench/delta.sh
	bash bench/gc.sh
	bash bench/remote.sh
	bash bench/s3.sh

clean:
	rm -rf bin $(DEMO)

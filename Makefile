# telex — the front door. `make run` and `make test` do all set-up on a fresh
# Debian 12 machine (as root): they bootstrap dependencies, build, then run.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
PREFIX      ?= /usr/local
DESTDIR     ?=
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
LISTEN      ?= 127.0.0.1:8080
FUZZ_SECONDS ?= 60

.PHONY: all bootstrap build build-asan run test test-unit test-asan test-integration test-browser bench fuzz install clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD_ASAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTELEX_SANITIZE=ON

build-asan: bootstrap $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j $(JOBS)

run: build
	@echo "telex: chat page at http://$(LISTEN)/  (Ctrl-C stops)"
	exec $(BUILD)/telex serve --listen $(LISTEN)

test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure

test-integration: build build-asan
	TELEX_BIN=$(CURDIR)/$(BUILD)/telex node --test --test-concurrency=1 tests/integration/
	TELEX_BIN=$(CURDIR)/$(BUILD_ASAN)/telex TELEX_SANITIZED=1 node --test --test-concurrency=1 tests/integration/

test-browser: build
	@if ls tests/browser/*.test.js >/dev/null 2>&1; then \
	  TELEX_BIN=$(CURDIR)/$(BUILD)/telex node --test --test-concurrency=1 tests/browser/; fi

test: test-unit test-asan test-integration test-browser
	@echo "telex: all suites passed"

bench: build
	bench/run.sh $(BUILD)

fuzz: bootstrap
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEX_FUZZ=ON -DTELEX_TESTS=OFF
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_sse_parser fuzz_http1_response fuzz_json_memo fuzz_json_load
	mkdir -p $(BUILD_FUZZ)/corpus && cp tests/fuzz/corpus/* $(BUILD_FUZZ)/corpus/ 2>/dev/null || true
	$(BUILD_FUZZ)/fuzz_sse_parser -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD_FUZZ)/corpus
	mkdir -p $(BUILD_FUZZ)/corpus_http1_response && \
	  cp tests/fuzz/corpus_http1_response/* $(BUILD_FUZZ)/corpus_http1_response/ 2>/dev/null || true
	$(BUILD_FUZZ)/fuzz_http1_response -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD_FUZZ)/corpus_http1_response
	mkdir -p $(BUILD_FUZZ)/corpus_json_memo && \
	  cp tests/fuzz/corpus_json_memo/* $(BUILD_FUZZ)/corpus_json_memo/ 2>/dev/null || true
	$(BUILD_FUZZ)/fuzz_json_memo -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD_FUZZ)/corpus_json_memo
	mkdir -p $(BUILD_FUZZ)/corpus_json_load && \
	  cp tests/fuzz/corpus_json_load/* $(BUILD_FUZZ)/corpus_json_load/ 2>/dev/null || true
	$(BUILD_FUZZ)/fuzz_json_load -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $(BUILD_FUZZ)/corpus_json_load

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)

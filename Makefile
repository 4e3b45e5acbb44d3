# telex — the front door. `make run` and `make test` do all set-up on a fresh
# Debian 12 machine (as root): they bootstrap what they need, build, then run.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
PREFIX      ?= /usr/local
DESTDIR     ?=
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
LISTEN      ?= 127.0.0.1:8080
FUZZ_SECONDS ?= 60

.PHONY: all bootstrap build build-gateway build-asan run test test-unit test-asan test-integration test-browser test-lanes bench fuzz soak install clean

all: build

# Each target installs only what it needs (scripts/bootstrap MODE): `make run`
# and `make install` the compiler and the libraries telex links; `make test`
# also cmocka, chromium, Node.js and the npm test tools; `make fuzz` clang;
# `make bench` gnuplot and h2load. `make bootstrap` installs everything.
bootstrap:
	@scripts/bootstrap all

CONFIGURE = cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

# The gateway and libtelex alone: no test dependency is needed or built. A
# build directory configured earlier (with tests or not) is reused as it is.
build-gateway:
	@scripts/bootstrap run
	@test -f $(BUILD)/CMakeCache.txt || $(CONFIGURE) -DTELEX_TESTS=OFF
	cmake --build $(BUILD) -j $(JOBS) --target telex telex_static telex_shared

# Everything, the unit tests included (configured with TELEX_TESTS=ON, even
# over a build directory that `make run` configured without them).
build:
	@scripts/bootstrap test
	@grep -q '^TELEX_TESTS:[A-Z]*=ON$$' $(BUILD)/CMakeCache.txt 2>/dev/null || $(CONFIGURE) -DTELEX_TESTS=ON
	cmake --build $(BUILD) -j $(JOBS)

build-asan:
	@scripts/bootstrap test
	@test -f $(BUILD_ASAN)/CMakeCache.txt || \
	  cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTELEX_SANITIZE=ON -DTELEX_TESTS=ON
	cmake --build $(BUILD_ASAN) -j $(JOBS)

run: build-gateway
	@echo "telex: chat page at http://$(LISTEN)/  (Ctrl-C stops)"
	exec $(BUILD)/telex serve --listen $(LISTEN)

test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure

# node:test, one file at a time. No test may take over 4 minutes (the slowest takes
# about 40 s under ASan), and no run over 30: a hang fails by name instead of eating
# CI's time. The timing reporter ends each run with the slowest files and the failures.
NODE_TEST = timeout --kill-after=30 1800 node --test --test-concurrency=1 --test-timeout=240000 \
  --test-reporter=tap --test-reporter-destination=stdout \
  --test-reporter=./tests/timing_reporter.mjs --test-reporter-destination=stdout

test-integration: build build-asan
	TELEX_BIN=$(CURDIR)/$(BUILD)/telex $(NODE_TEST) tests/integration/
	TELEX_BIN=$(CURDIR)/$(BUILD_ASAN)/telex TELEX_SANITIZED=1 $(NODE_TEST) tests/integration/

test-browser: build
	@if ls tests/browser/*.test.js >/dev/null 2>&1; then \
	  TELEX_BIN=$(CURDIR)/$(BUILD)/telex $(NODE_TEST) tests/browser/; fi

# `make test`: the unit suites, then the Node suites in two lanes side by side
# (plain integration + browser | ASan integration: scripts/test-lanes); the
# targets above still run one suite alone.
test: test-unit test-asan test-lanes
	@echo "telex: all suites passed"

test-lanes: build build-asan
	NODE_TEST="$(NODE_TEST)" scripts/test-lanes $(CURDIR)/$(BUILD)/telex $(CURDIR)/$(BUILD_ASAN)/telex

bench: build
	@scripts/bootstrap bench
	bench/run.sh $(BUILD)

# Every libFuzzer target (tests/fuzz/fuzz_*.c) for FUZZ_SECONDS each, one
# after the other, from its seeds in tests/fuzz/corpus_<name>/ (fuzz_sse_parser:
# tests/fuzz/corpus/); new inputs go to $(BUILD_FUZZ)/corpus_<name>/.
# fuzz_request runs a whole gateway in the fuzzer's process (leak checks off:
# its threads keep memory across inputs by design).
FUZZERS = sse_parser http1_response json_memo json_load anthropic_stream provider_stream request
fuzz:
	@scripts/bootstrap fuzz
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTELEX_FUZZ=ON -DTELEX_TESTS=OFF
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZERS))
	@set -e; for f in $(FUZZERS); do \
	  seeds=tests/fuzz/corpus_$$f; [ $$f = sse_parser ] && seeds=tests/fuzz/corpus; \
	  mkdir -p $(BUILD_FUZZ)/corpus_$$f; cp $$seeds/* $(BUILD_FUZZ)/corpus_$$f/ 2>/dev/null || true; \
	  extra=; [ $$f = request ] && extra=-detect_leaks=0; \
	  echo "fuzz: fuzz_$$f for $(FUZZ_SECONDS) s"; \
	  $(BUILD_FUZZ)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -max_len=8192 $$extra $(BUILD_FUZZ)/corpus_$$f; \
	done

# A long run of 1,000 streams with drops, resumes, cancels and upstream faults;
# fails if RSS, descriptors or the stream gauges grow without bound
# (tests/soak/soak.mjs; not part of `make test`).
SOAK_SECONDS ?= 300
SOAK_STREAMS ?= 1000
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_STREAMS=$(SOAK_STREAMS) TELEX_BIN=$(CURDIR)/$(BUILD)/telex node tests/soak/soak.mjs

# telex.pc is written at this step, naming $(PREFIX) (DESTDIR only stages).
install: build-gateway
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)

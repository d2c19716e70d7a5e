# txscan: thin wrapper over CMake. `make run` and `make test` do all set-up.
BUILD   ?= build
JOBS    ?= $(shell nproc)
CMAKE   ?= cmake

.PHONY: all deps build run test sanitize tsan bench fuzz clean

all: build

deps:
	@./scripts/setup.sh

build: deps
	@$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTXS_WERROR=ON >/dev/null
	@$(CMAKE) --build $(BUILD) -j$(JOBS)

# Exit status 1 means "findings at or above --fail-on": expected on the sample.
run: build
	@./scripts/plugin-deps.sh
	@./$(BUILD)/txscan scan -p examples/plugins --format table \
	  examples/transactions/sample.jsonl; rc=$$?; [ $$rc -le 1 ]

test: build
	@./scripts/plugin-deps.sh
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# ASan + UBSan over every unit test, debug build (owner-thread asserts on).
sanitize: deps
	@$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTXS_ASAN=ON -DTXS_BENCH=OFF >/dev/null
	@$(CMAKE) --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  TXS_TEST_SLACK_MS=40 ctest --output-on-failure -L unit -j$(JOBS)

# TSan over the executor and host tests (test_host_process covers the process
# isolation parent; test_isolate alone: build-tsan/tests/test_isolate, whose 50 ms
# deadlines TSan's slowdown can pass). JSC's own internals are suppressed, never ours.
# JSC's concurrent collector is off here: it suspends threads with signals, which TSan
# delays, and test_executor hung about one run in five (an engine thread in engine_free
# waiting for heap access, the collector waiting for a thread to acknowledge a suspend);
# 0 hangs in 10 runs with it off.
tsan: deps
	@$(CMAKE) -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DTXS_TSAN=ON -DTXS_BENCH=OFF >/dev/null
	@$(CMAKE) --build build-tsan -j$(JOBS)
	cd build-tsan && JSC_useConcurrentGC=0 TSAN_OPTIONS=suppressions=$(CURDIR)/tests/tsan.supp:halt_on_error=1:report_signal_unsafe=0 \
	  TXS_TEST_SLACK_MS=100 ctest --output-on-failure -L "executor|host"

bench: build
	./bench/run

# libFuzzer drivers (clang): plugin.json parsing, the scan request body, a
# plugin's answer (findings) and a plugin's source (engine_new).
# FUZZ_SECONDS per driver (default 60).
FUZZ_SECONDS ?= 60
fuzz: build
	./fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-tsan

# Thin wrapper over scripts/install-deps.sh and meson. Every target installs what it needs.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# How long `make fuzz` (and so `make sanitize`) fuzzes the logscan line parser and scanner.
FUZZ_SECONDS ?= 60
# CI builds with -Werror; local builds keep warnings as warnings.
MESON_FLAGS := $(if $(filter true,$(CI)),-Dwerror=true,)
SANITIZER_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

.PHONY: all deps deps-bench build test demo demo-queue bench sanitize asan tsan fuzz install clean

all: build

deps:
	@scripts/install-deps.sh core

deps-bench:
	@scripts/install-deps.sh bench

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: build
	meson test -C $(BUILD) --no-suite tsan --print-errorlogs

# logscan on a 1 GB sample corpus, made once in $(BUILD)/demo-corpus.
demo: build
	scripts/demo.sh $(BUILD)

# The program that hangs with Python's multiprocessing.Queue, ported.
demo-queue: build
	$(BUILD)/examples/queue_join

# deps-bench may just have installed the peers (Boost, ZeroMQ, iceoryx): an existing build
# dir must look for them again, or their rows would show as not built.
bench: deps-bench
	if [ -f $(BUILD)/build.ninja ]; then meson setup --reconfigure $(BUILD) >/dev/null; fi
	$(MAKE) build
	python3 bench/run_bench.py --build $(BUILD)

sanitize: asan tsan fuzz

asan: deps
	[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) $(MESON_FLAGS) \
		-Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled
	ninja -C $(ASAN_BUILD)
	$(SANITIZER_ENV) meson test -C $(ASAN_BUILD) --no-suite tsan --print-errorlogs --timeout-multiplier 3

# ThreadSanitizer runs the in-process (threaded) variants of the lock-free tests, and only
# their programs are built. Its shadow memory needs a fixed address layout, hence setarch -R
# (no ASLR).
tsan: deps
	[ -f $(TSAN_BUILD)/build.ninja ] || meson setup $(TSAN_BUILD) $(MESON_FLAGS) \
		-Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false -Dbench=disabled
	targets=$$(scripts/suite-targets.py $(TSAN_BUILD) tsan) && ninja -C $(TSAN_BUILD) $$targets
	$(SANITIZER_ENV) setarch -R meson test -C $(TSAN_BUILD) --suite tsan --no-rebuild \
		--print-errorlogs --timeout-multiplier 3

# libFuzzer on the logscan contract core (tests/logscan/fuzz_scan.cpp), built by clang apart
# from meson: -fsanitize=fuzzer needs clang while the project builds with the default
# compiler. The corpus starts from the rule files and grows across local runs; a crash is
# written to $(FUZZ_BUILD)/crash-* and fails the target.
LOGSCAN_DIR := examples/logscan
FUZZ_SOURCES := tests/logscan/fuzz_scan.cpp $(addprefix $(LOGSCAN_DIR)/,line_parser.cpp \
	payload_check.cpp report.cpp report_format.cpp scan.cpp)
FUZZ_CXXFLAGS := -std=c++20 -O1 -g -Wall -Wextra -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -fno-omit-frame-pointer -I$(LOGSCAN_DIR) $(if $(filter true,$(CI)),-Werror,)

$(FUZZ_BUILD)/fuzz_scan: $(FUZZ_SOURCES) $(wildcard $(LOGSCAN_DIR)/*.h) | deps
	mkdir -p $(FUZZ_BUILD)
	clang++ $(FUZZ_CXXFLAGS) $(FUZZ_SOURCES) -lsimdjson -lpugixml -o $@

fuzz: deps $(FUZZ_BUILD)/fuzz_scan
	mkdir -p $(FUZZ_BUILD)/corpus
	cp tests/logscan/rules/*.log $(FUZZ_BUILD)/corpus/
	$(SANITIZER_ENV) $(FUZZ_BUILD)/fuzz_scan -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
		-timeout=20 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

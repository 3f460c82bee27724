# Thin wrapper over scripts/install-deps.sh and meson. Every target installs what it needs.
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
# CI builds with -Werror; local builds keep warnings as warnings.
MESON_FLAGS := $(if $(filter true,$(CI)),-Dwerror=true,)
SANITIZER_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

.PHONY: all deps deps-bench build test demo demo-queue bench sanitize asan tsan install clean

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

bench: deps-bench build
	python3 bench/run_bench.py --build $(BUILD)

sanitize: asan tsan

asan: deps
	[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) $(MESON_FLAGS) \
		-Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled
	ninja -C $(ASAN_BUILD)
	$(SANITIZER_ENV) meson test -C $(ASAN_BUILD) --no-suite tsan --print-errorlogs --timeout-multiplier 3

# ThreadSanitizer runs the in-process (threaded) variants of the lock-free tests. Its shadow
# memory needs a fixed address layout, hence setarch -R (no ASLR).
tsan: deps
	[ -f $(TSAN_BUILD)/build.ninja ] || meson setup $(TSAN_BUILD) $(MESON_FLAGS) \
		-Dbuildtype=debug -Db_sanitize=thread -Db_lundef=false -Dbench=disabled
	ninja -C $(TSAN_BUILD)
	$(SANITIZER_ENV) setarch -R meson test -C $(TSAN_BUILD) --suite tsan --print-errorlogs \
		--timeout-multiplier 3

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)

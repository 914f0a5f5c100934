# wisp - build, test, fuzz, sanitizer and benchmark targets.
#
#   make              build build/wisp, the runtimes and the examples
#   make run          build, start the platform with the examples deployed
#   make test         build and run every test; ends with "N passed, N failed"
#   make asan-test    the same under AddressSanitizer + UBSan (build/asan)
#   make fuzz         build libFuzzer targets with clang (build/fuzz) and run each briefly
#   make bench        run the benchmark suite (bench/)
#   make format       clang-format the tree; make check-format verifies it
#
# Variables: WERROR=1 turns warnings into errors (CI), SANITIZE=1 builds with
# ASan+UBSan into build/asan, V=1 echoes commands.

BUILD ?= build
CC ?= gcc
ifeq ($(SANITIZE),1)
BUILD := build/asan
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif

PKGS := libuv jansson sqlite3 libseccomp libcap libarchive openssl libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lm

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
        -Wno-unused-parameter
# -Wno-unused-parameter: libuv and http-parser callbacks have fixed signatures.
ifeq ($(WERROR),1)
WARN += -Werror
endif
GIT_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -fno-omit-frame-pointer $(CFLAGS) $(WARN) $(SAN_FLAGS) \
              -Isrc $(PKG_CFLAGS) -DWISP_VERSION='"0.1.0"' -DWISP_GIT='"$(GIT_VERSION)"' \
              -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)

ifneq ($(V),1)
Q := @
endif

SRCS := $(shell find src -name '*.c' | sort)
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS := $(filter-out $(BUILD)/src/main.o,$(OBJS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%)

DEPS_STAMP := build/.deps-$(shell cat scripts/deps.sh | md5sum | cut -c1-8)


.PHONY: all deps test-deps run test asan-test fuzz bench format check-format clean
all: $(DEPS_STAMP) $(BUILD)/wisp runtimes examples

$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p build
	$(Q)bash scripts/deps.sh build
	@touch $@

deps: $(DEPS_STAMP)

test-deps:
	$(Q)bash scripts/deps.sh test

$(BUILD)/wisp: $(OBJS)
	@mkdir -p $(@D)
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(PKG_LIBS)

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/tap.h $(LIB_OBJS)
	@mkdir -p $(@D)
	@echo "  TEST    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJS) $(PKG_LIBS)

# Fuzz targets replayed over their corpora by `make test` (plain driver, no clang needed).
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c tests/fuzz/replay.c $(LIB_OBJS)
	@mkdir -p $(@D)
	@echo "  FUZZ    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c $(LIB_OBJS) $(PKG_LIBS)

include runtimes/runtimes.mk

run: all
	$(Q)bash scripts/run.sh $(BUILD)

test: all test-deps $(UNIT_BINS) $(FUZZ_REPLAY_BINS)
	$(Q)bash tests/run.sh $(BUILD)

asan-test:
	$(Q)$(MAKE) --no-print-directory SANITIZE=1 test

# libFuzzer builds: every fuzz target with clang, ASan and UBSan; each runs for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
fuzz: test-deps
	$(Q)bash tests/fuzz/run-libfuzzer.sh $(FUZZ_SECONDS)

bench: all
	$(Q)bash scripts/deps.sh bench
	$(Q)bash bench/run.sh $(BUILD)

format:
	$(Q)clang-format -i $(shell find src tests runtimes examples bench -name '*.[ch]')

check-format:
	$(Q)clang-format --dry-run --Werror $(shell find src tests runtimes examples bench -name '*.[ch]')

clean:
	rm -rf build

-include $(OBJS:.o=.d)

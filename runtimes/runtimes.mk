# runtimes.mk - builds the built-in runtimes and the compiled examples.
# Included by the top-level Makefile (uses BUILD, CC, WARN, Q from there).
#
#   make runtimes   $(BUILD)/runtimes/: the folder to mount at /var/runtime
#                     python3/bootstrap.py, python3/wisp_bootstrap.py (+ its .pyc)
#                     python3/zygote.py, python3/libwispenter.so (the python3 zygote)
#                     nodejs/bootstrap.js
#                     exec-stem (what an exec stem runs until it is bound; spawner.c)
#                     libwisp_runtime.a, include/wisp_runtime.h (for C functions)
#   make examples   $(BUILD)/examples/<name>/bootstrap for every examples/<name>/main.c,
#                   each a static executable ready for `wisp deploy --runtime provided`
#
# C functions are linked statically (-static): the sandbox's root has the
# host's /usr but a static bootstrap needs nothing from it and starts fastest.
# The sanitizer flags of SANITIZE=1 are not used here (they cannot be static).

.PHONY: runtimes examples

RT_OUT := $(BUILD)/runtimes
RT_PYTHON ?= /usr/bin/python3
RT_CFLAGS := -std=gnu11 -D_GNU_SOURCE -O2 -g0 $(WARN) -Iruntimes/c
RT_LDFLAGS := -static

RT_FILES := $(RT_OUT)/python3/bootstrap.py $(RT_OUT)/python3/wisp_bootstrap.py \
            $(RT_OUT)/python3/.compiled $(RT_OUT)/python3/zygote.py \
            $(RT_OUT)/python3/libwispenter.so $(RT_OUT)/nodejs/bootstrap.js \
            $(RT_OUT)/libwisp_runtime.a $(RT_OUT)/include/wisp_runtime.h $(RT_OUT)/exec-stem
EXAMPLE_C_NAMES := $(patsubst examples/%/main.c,%,$(wildcard examples/*/main.c))
EXAMPLE_C_BINS := $(EXAMPLE_C_NAMES:%=$(BUILD)/examples/%/bootstrap)

runtimes: $(RT_FILES)

examples: $(EXAMPLE_C_BINS)

$(RT_OUT)/python3/%.py: runtimes/python3/%.py
	@mkdir -p $(@D)
	$(Q)cp $< $@

# Compiles wisp_bootstrap.py into __pycache__ with the interpreter the
# sandboxes run, so no cold start pays for compiling it.
$(RT_OUT)/python3/.compiled: $(RT_OUT)/python3/wisp_bootstrap.py
	@echo "  PYC     $<"
	$(Q)rm -rf $(@D)/__pycache__
	$(Q)if [ -x $(RT_PYTHON) ]; then $(RT_PYTHON) -m py_compile $<; fi
	$(Q)touch $@

# The C half of the python3 zygote (src/sandbox/zygote_child.c), loaded with
# ctypes by zygote.py: the sandbox set-up code of the spawner, position-independent.
# (No seccomp.c: the zygote and its forks run under the spawner's filter, inherited.)
ZYG_SRCS := src/core/buf.c src/core/err.c src/core/log.c src/core/util.c src/sandbox/ns.c \
            src/sandbox/mounts.c src/sandbox/protocol.c src/sandbox/zygote_child.c
$(RT_OUT)/python3/libwispenter.so: $(ZYG_SRCS) src/sandbox/internal.h src/sandbox/sandbox.h
	@mkdir -p $(@D)
	@echo "  SO      $@"
	$(Q)$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -g0 -fPIC -shared $(WARN) -Isrc \
	    $(shell pkg-config --cflags libcap jansson) -o $@ $(ZYG_SRCS) \
	    $(shell pkg-config --libs libcap jansson)

$(RT_OUT)/nodejs/bootstrap.js: runtimes/nodejs/bootstrap.js
	@mkdir -p $(@D)
	$(Q)cp $< $@

# No C library (see the file): static, freestanding, no stack protector.
$(RT_OUT)/exec-stem: runtimes/exec-stem/exec_stem.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) -std=gnu11 -O2 -g0 $(WARN) -ffreestanding -fno-builtin -fno-stack-protector \
	    -fno-tree-loop-distribute-patterns -nostdlib -static -o $@ $<

$(RT_OUT)/include/wisp_runtime.h: runtimes/c/wisp_runtime.h
	@mkdir -p $(@D)
	$(Q)cp $< $@

$(RT_OUT)/wisp_runtime.o: runtimes/c/wisp_runtime.c runtimes/c/wisp_runtime.h
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(RT_CFLAGS) -c -o $@ $<

$(RT_OUT)/libwisp_runtime.a: $(RT_OUT)/wisp_runtime.o
	@echo "  AR      $@"
	$(Q)rm -f $@
	$(Q)ar rcs $@ $<

$(BUILD)/examples/%/bootstrap: examples/%/main.c $(RT_OUT)/libwisp_runtime.a runtimes/c/wisp_runtime.h
	@mkdir -p $(@D)
	@echo "  EXAMPLE $@"
	$(Q)$(CC) $(RT_CFLAGS) $(RT_LDFLAGS) -o $@ $< $(RT_OUT)/libwisp_runtime.a

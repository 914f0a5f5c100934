# runtimes.mk - builds the C runtime library and the compiled examples.
# (Owned by the runtimes work; included by the top-level Makefile.)
.PHONY: runtimes examples
runtimes:
examples:

# The README's two commands, for those who type make.
#   make demo   scripts/demo: build, boot a LUO guest, run a live update with
#               kvcache and luod-exec, check every byte, print the timeline
#   make test   scripts/test: unit tests, the VM suite, sanitizers, fuzzers
# Both install dependencies with apt first; SKIP_SETUP=1 skips that.

.PHONY: help demo test

help:
	@sed -n '2,5s/^# \{0,1\}//p' Makefile

demo:
	scripts/demo

test:
	scripts/test

# tern — a small KVM VMM for OSv-style unikernels.
#
#   make run    install what is missing, build, build the test guest, boot it on this terminal
#   make test   install what is missing, build everything, run all tests
#
# Sources are picked up by directory, so a new device or loader is one new file.

CC      ?= cc
BUILD   := build
CFLAGS  += -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -MMD -MP \
	   -D_GNU_SOURCE -I. $(shell pkg-config --cflags libseccomp yajl 2>/dev/null)
LDLIBS  += -lpthread -lfdt $(shell pkg-config --libs libseccomp yajl 2>/dev/null || echo -lseccomp -lyajl)
PYTHON  := /usr/bin/python3

# Debian packages the build, the test guest and the tests need. The guest's lwIP comes from
# Debian's source package (apt-get source, unpacked by dpkg-source: dpkg-dev, xz-utils).
DEPS := build-essential pkg-config libseccomp-dev libfdt-dev libyajl-dev device-tree-compiler \
	python3 python3-pytest iproute2 dnsmasq-base iputils-ping curl socat qemu-system-x86 \
	dpkg-dev xz-utils python3-pytest-timeout busybox gdb acpica-tools clang libclang-rt-14-dev

VMM_SRCS  := $(wildcard vmm/*.c vmm/migration/*.c guest-boot/*.c net/*.c)
VMM_OBJS  := $(VMM_SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/vmm/main.o,$(VMM_OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

GUEST     := $(BUILD)/guest/guest.elf

# Fuzzers (clang's libFuzzer, with ASan and UBSan): tests/fuzz/fuzz_NAME.c feeds one input to
# the code that reads it; tests/fuzz/corpus/fuzz_NAME/ holds its seeds and every input that
# once found a bug, which `make test` replays. The VMM's objects are built again for them,
# instrumented, under $(BUILD)/fuzz/obj.
FUZZ_CC     := clang
FUZZ_CFLAGS := $(filter-out -O2,$(CFLAGS)) -O1 -fno-omit-frame-pointer \
	       -Wno-gnu-variable-sized-type-not-at-end \
	       -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJS   := $(LIB_OBJS:$(BUILD)/%=$(BUILD)/fuzz/obj/%)
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_TIME   ?= 60

.PHONY: all deps guest run test unit fuzzers fuzz bench clean format

all: $(BUILD)/tern

# V=1 shows the whole commands.
Q := $(if $(V),,@)

$(BUILD)/tern: $(VMM_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS)
	@echo "  FUZZLD  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# Installs only what is missing, so a machine that has everything needs no network.
deps:
	@missing=$$(for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

# The test guest; its first build fetches Debian's lwip source into $(BUILD)/guest/lwip-src
# (tests/guest/fetch-lwip.sh), later ones reuse it without the network.
guest:
	$(MAKE) -C tests/guest BUILD=$(abspath $(BUILD))/guest

unit: $(UNIT_BINS)

fuzzers: $(FUZZ_BINS)

# Kept, so that a fuzzer added later does not rebuild them all.
.SECONDARY: $(FUZZ_OBJS)

# Each fuzzer for FUZZ_TIME seconds; what it learns stays in $(BUILD)/fuzz/corpus, and an input
# that breaks it is left as $(BUILD)/fuzz/crash-* (copy it into the seeds once it is fixed).
fuzz: deps fuzzers
	@set -e; for f in $(FUZZ_BINS); do n=$${f##*/}; echo "fuzz: $$n for $(FUZZ_TIME) s"; \
		mkdir -p $(BUILD)/fuzz/corpus/$$n; \
		$$f -max_total_time=$(FUZZ_TIME) -artifact_prefix=$(BUILD)/fuzz/ \
			$(BUILD)/fuzz/corpus/$$n tests/fuzz/corpus/$$n; done

# A test that hangs fails after 5 minutes, with every thread's stack, instead of stalling CI.
PYTEST := $(PYTHON) -m pytest -p no:cacheprovider --timeout=300 tests
KVM_OK := $(PYTHON) -c 'import sys; sys.path[:0] = ["tests"]; import conftest; \
	sys.exit(conftest.kvm_unusable() is not None)'

# $(call with_kvm,COMMAND): runs COMMAND here where /dev/kvm works (or with TERN_NESTED=0), and
# otherwise in the nested test host (tests/nested: Debian's kernel with kvm_amd under QEMU's TCG),
# so that every test still meets a real KVM on a machine that has none.
with_kvm = if [ "$(TERN_NESTED)" = 0 ] || $(KVM_OK); then $(1); else \
	echo "$@: no usable /dev/kvm here, so in the nested test host (emulated: slow)"; \
	tests/nested/build.sh $(BUILD)/nested && tests/nested/run.sh $(BUILD)/nested $(1); fi

run: deps all guest
	@$(call with_kvm,$(BUILD)/tern -kernel $(GUEST) -append "echo ticks" -m 128M -nographic -serial stdio)

test: deps all guest unit fuzzers
	@$(call with_kvm,$(PYTEST))

# Figures, never assertions; in the nested test host they are emulation's, not a machine's.
bench: all guest
	@$(call with_kvm,sh -c 'tests/bench/boot.sh && tests/bench/migrate.sh && tests/bench/net.sh && tests/bench/disk.sh')

format:
	clang-format -i $(VMM_SRCS) $(wildcard vmm/*.h vmm/migration/*.h guest-boot/*.h net/*.h)

clean:
	rm -rf $(BUILD)

-include $(VMM_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d)

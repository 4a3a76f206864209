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
	dpkg-dev xz-utils

VMM_SRCS  := $(wildcard vmm/*.c vmm/migration/*.c guest-boot/*.c net/*.c)
VMM_OBJS  := $(VMM_SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/vmm/main.o,$(VMM_OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

GUEST     := $(BUILD)/guest/guest.elf

.PHONY: all deps guest run test unit integration bench clean format

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

run: deps all guest
	$(BUILD)/tern -kernel $(GUEST) -append "echo ticks" -m 128M -nographic -serial stdio

unit: $(UNIT_BINS)

test: deps all guest unit
	$(PYTHON) -m pytest -p no:cacheprovider tests

bench: all guest
	tests/bench/boot.sh

format:
	clang-format -i $(VMM_SRCS) $(wildcard vmm/*.h vmm/migration/*.h guest-boot/*.h net/*.h)

clean:
	rm -rf $(BUILD)

-include $(VMM_OBJS:.o=.d)

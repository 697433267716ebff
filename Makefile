# firebreak — one Makefile for every module.
#
#   make            build libraries and programs into build/plain
#   make test       install missing Debian packages, build plain and with
#                   ASan+UBSan, run every suite under both
#   make demo       a sandbox under examples/policies/demo.yaml
#   make guest      the qemu backend's guest image, into build/guest
#   make fuzz       libFuzzer targets, each for FUZZ_SECONDS
#   make bench      benchmarks under tests/bench, with their baselines
#   make install    PREFIX (default /usr/local) and DESTDIR honoured
#
# Each module folder holds one public header named after it; every X/*.c
# except X/main*.c goes into build/…/lib/libfbX.a, and X/main_NAME.c is
# the program NAME.

PREFIX  ?= /usr/local
BUILD   ?= build/plain
SAN     ?=
CC      ?= cc
CFLAGS  ?= -O2 -g
FUZZ_SECONDS ?= 60
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)

PKGS      := libnftnl libmnl openssl yaml-0.1 libidn2 libpcre2-8 libcares libpsl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS  = $(shell pkg-config --libs cmocka 2>/dev/null)

override CFLAGS += -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. \
		   $(PKG_CFLAGS) $(SAN) -MMD -MP
override LDFLAGS += $(SAN)

MODULES := policy nft proxy vmhost
# Link order: a module may use the ones after it.
LINK_ORDER := vmhost proxy nft policy

lib_srcs = $(filter-out $(1)/main%.c,$(wildcard $(1)/*.c))
LIBS := $(foreach m,$(LINK_ORDER),$(if $(call lib_srcs,$(m)),$(BUILD)/lib/libfb$(m).a))

PROGRAM_SRCS := $(wildcard $(addsuffix /main_*.c,$(MODULES)))
PROGRAMS := $(foreach s,$(PROGRAM_SRCS),$(BUILD)/bin/$(patsubst main_%,%,$(basename $(notdir $(s)))))

TESTLIB_SRCS := $(wildcard tests/lib/*.c)
TESTLIB := $(if $(TESTLIB_SRCS),$(BUILD)/lib/libfbtest.a)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCHES := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
HELPER_SRCS := $(wildcard tests/e2e/helper_*.c)
HELPERS := $(patsubst tests/e2e/%.c,$(BUILD)/tests/%,$(HELPER_SRCS))

.PHONY: all tests test demo guest fuzz bench install deps clean check-examples
.DEFAULT_GOAL := all

all: $(PROGRAMS)

tests: all $(UNITS) $(HELPERS) $(BENCHES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

define module_lib
$(BUILD)/lib/libfb$(1).a: $(patsubst %.c,$(BUILD)/obj/%.o,$(call lib_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(if $(call lib_srcs,$(m)),$(eval $(call module_lib,$(m)))))

$(BUILD)/lib/libfbtest.a: $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define program
$(BUILD)/bin/$(patsubst main_%,%,$(basename $(notdir $(1)))): $(BUILD)/obj/$(1:.c=.o) $(LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$< $(LIBS) $$(PKG_LIBS)
endef
$(foreach s,$(PROGRAM_SRCS),$(eval $(call program,$(s))))

# firebreak-proxy runs once per sandbox, so its start and what it maps
# are paid hundreds of times over.  The libraries Debian ships as .a are
# linked in statically: only the objects the proxy uses come along, and
# the dynamic loader no longer looks up every symbol of libcrypto and
# libssl at each start (4 of the 13 ms of CPU a --help run took).
# libmnl has no .a, and libidn2's and libpsl's need libunistring's, which
# no package the build installs ships: those three stay shared, as does
# libc.  PIE is
# kept, its relocations packed (DT_RELR); -z now leaves the GOT read-only.
PROXY_STATIC_PKGS := libnftnl openssl yaml-0.1 libpcre2-8 libcares
PROXY_SHARED_PKGS := libmnl libidn2 libpsl
proxy_static_libs = $(shell pkg-config --libs $(PROXY_STATIC_PKGS) 2>/dev/null)
uniq = $(if $(1),$(firstword $(1)) $(call uniq,$(filter-out $(firstword $(1)),$(1))))
$(BUILD)/bin/firebreak-proxy: override LDFLAGS += -Wl,-z,now \
	-Wl,-z,pack-relative-relocs -Wl,--as-needed
$(BUILD)/bin/firebreak-proxy: PKG_LIBS = -Wl,-Bstatic $(proxy_static_libs) \
	-Wl,-Bdynamic $(call uniq,$(filter-out $(proxy_static_libs),$(shell \
	pkg-config --static --libs $(PROXY_STATIC_PKGS) 2>/dev/null) \
	$(shell pkg-config --libs $(PROXY_SHARED_PKGS) 2>/dev/null)))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TESTLIB) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(LIBS) $(PKG_LIBS) $(TEST_LIBS)

$(BUILD)/tests/helper_%: $(BUILD)/obj/tests/e2e/helper_%.o $(TESTLIB) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(LIBS) $(PKG_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(TESTLIB) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TESTLIB) $(LIBS) $(PKG_LIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- Debian packages -------------------------------------------------
DEB_BUILD := gcc make pkg-config libnftnl-dev libmnl-dev libssl-dev \
	     libyaml-dev libidn2-dev libpcre2-dev libc-ares-dev \
	     libpsl-dev publicsuffix
# The qemu backend's test boots a real microVM (about 25 s under TCG).
DEB_GUEST := qemu-system-x86 busybox-static
DEB_TEST  := libcmocka-dev iproute2 nftables curl python3 openssl \
	     ca-certificates procps $(DEB_GUEST)
DEB_FUZZ  := clang libclang-rt-14-dev
DEB_DEMO  := $(DEB_GUEST)

deps:
	@DEBS="$(DEB_BUILD) $(DEB_TEST) $(EXTRA_DEBS)" tests/deps.sh

# ---- the two commands ------------------------------------------------
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/plain tests
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/asan \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" tests
	@$(MAKE) --no-print-directory check-examples
	@tests/run.sh build/plain build/asan

demo:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(DEB_DEMO)"
	@$(MAKE) --no-print-directory -j$$(nproc) all
	@vmhost/guest/build.sh build/guest
	@examples/demo.sh build/plain

guest:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(DEB_GUEST)"
	@vmhost/guest/build.sh build/guest

check-examples: all
	OPENAI_API_KEY=dummy-key-for-check DEMO_API_KEY=dummy-key-for-check \
		$(BUILD)/bin/firebreak policy check examples/policies/*.yaml

# ---- fuzzing and benchmarks -----------------------------------------
FUZZ_BUILD := build/fuzz
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

fuzz:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(DEB_FUZZ)"
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SAN="$(FUZZ_SAN)" \
		$(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/fuzz/%,$(FUZZ_SRCS))
	@tests/fuzz/run.sh $(FUZZ_BUILD)/fuzz $(FUZZ_SECONDS)

$(FUZZ_BUILD)/fuzz/%: $(FUZZ_BUILD)/obj/tests/fuzz/%.o $(TESTLIB) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=fuzzer,address,undefined -o $@ $< $(TESTLIB) $(LIBS) $(PKG_LIBS)

bench:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory BUILD=build/plain tests
	@tests/bench/run.sh build/plain

# ---- install ---------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/firebreak/policies
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 examples/policies/*.yaml $(DESTDIR)$(PREFIX)/share/firebreak/policies/

clean:
	rm -rf build

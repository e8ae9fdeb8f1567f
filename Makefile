# gostx: `make demo` and `make test` are the two set-up commands (README). Both install what they
# need: apt packages when root, pip packages into the active Python (or .venv where the system
# Python is externally managed), then build the one extension in place.

SHELL := /bin/bash
ROOT := $(abspath .)
SYS_PY := $(shell command -v python3)
EXTERNALLY_MANAGED := $(shell $(SYS_PY) -c 'import sysconfig,os,sys;print(int(sys.prefix==sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"],"EXTERNALLY-MANAGED"))))' 2>/dev/null)
ifeq ($(wildcard .venv/bin/python),)
  ifeq ($(EXTERNALLY_MANAGED),1)
    PY := $(ROOT)/.venv/bin/python
    NEED_VENV := 1
  else
    PY := $(SYS_PY)
  endif
else
  PY := $(ROOT)/.venv/bin/python
endif

APT_PKGS := gcc make libssl-dev python3-dev python3-venv iproute2 iputils-ping iperf3 curl tcpdump iptables openvpn procps openssl microsocks nftables patch xz-utils stunnel4 \
  clang libclang-rt-14-dev wireguard-go wireguard-tools prometheus dnsutils shadowsocks-libev
# setuptools 77 or later: the SPDX `license` in pyproject.toml, and no FutureWarning from wheel's old
# bdist_wheel entry point during the build (older ones are upgraded by pip-deps)
SETUPTOOLS_MIN := 77
PIP_PKGS := setuptools wheel Cython PyYAML cryptography pytest ruff PySocks hypothesis matplotlib mypy types-PyYAML websockets aiohttp prometheus_client
CC ?= gcc
# CDEFS: extra -D flags for the C tests, e.g. `make -B tests/c/bin/test_gcm CDEFS=-DGX_NO_SIMD` (the
# build without our SIMD crypto; setup.py's GX_NO_SIMD=1 is the same for the extension)
CDEFS ?=
CFLAGS_C := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -Icsrc/include $(CDEFS)
# csrc/<area>/*.c (csrc/stack/ apart: it needs lwIP's headers and flags); csrc/*.c too, for a module not yet filed
CSRC := $(wildcard csrc/*.c) $(filter-out csrc/stack/%,$(wildcard csrc/*/*.c))
CTESTS := $(wildcard tests/c/test_*.c)
# the tungo netstack (csrc/stack/) needs lwIP: its tests link a static lwIP built with relaxed flags
STACK_SRC := $(wildcard csrc/stack/*.c)
STACK_DEPS := $(STACK_SRC) $(wildcard csrc/stack/*.h) third_party/lwip/port/lwipopts.h
LWIP_INC := -isystem third_party/lwip/port -isystem third_party/lwip/src/src/include
LWIP_AR = $(SYS_PY) third_party/lwip/lwip_build.py archive   # stdlib only: no venv needed
PYTEST_ARGS ?=

.PHONY: all deps apt-deps pip-deps build ctest asan test pytest lint demo bench clean fuzz fuzz-smoke fuzz-build

all: build

deps: apt-deps pip-deps

apt-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "== installing apt packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || { echo "error: apt-get install$$missing failed" >&2; exit 1; }; fi; \
	else echo "== not root or no apt-get: skipping system packages ($(APT_PKGS))"; fi

pip-deps:
	@if [ "$(NEED_VENV)" = 1 ] && [ ! -x .venv/bin/python ]; then echo "== creating .venv"; $(SYS_PY) -m venv .venv; fi
	@missing=$$($(PY) -c 'import importlib.util as u; m={"Cython":"Cython","PyYAML":"yaml","cryptography":"cryptography","pytest":"pytest","ruff":"ruff","setuptools":"setuptools","wheel":"wheel","PySocks":"socks","hypothesis":"hypothesis","matplotlib":"matplotlib","mypy":"mypy","types-PyYAML":"yaml-stubs","websockets":"websockets","aiohttp":"aiohttp","prometheus_client":"prometheus_client"}; print(" ".join(k for k,v in m.items() if u.find_spec(v) is None))'); \
	  if [ -n "$$missing" ]; then echo "== installing pip packages: $$missing"; $(PY) -m pip install -q $$missing; fi
	@old=$$($(PY) -c 'import setuptools as s; print(int(int(s.__version__.split(".")[0]) < $(SETUPTOOLS_MIN)))' 2>/dev/null); \
	  if [ "$$old" = 1 ]; then echo "== upgrading setuptools to >= $(SETUPTOOLS_MIN)"; \
	    $(PY) -m pip install -q "setuptools>=$(SETUPTOOLS_MIN)"; fi

# The editable install (the `gost` command) runs only when gostx is not yet installed from this checkout,
# and without the extension (GOSTX_EDITABLE_NO_EXT, setup.py): build_ext --inplace then compiles it once,
# or rebuilds what changed, with the compiler's messages shown.
INSTALLED_HERE := $(PY) -c 'import os,sys; sys.path=[p for p in sys.path if p not in ("",os.getcwd())]; \
  import importlib.util as u; s=u.find_spec("gostx"); sys.exit(0 if s and s.origin==os.path.join("$(ROOT)","gostx","__init__.py") else 1)'

build: pip-deps
	@mkdir -p build
	@if ! (cd / && $(INSTALLED_HERE)) 2>/dev/null; then echo "== installing gostx from this checkout (editable)"; \
	  GOSTX_EDITABLE_NO_EXT=1 $(PY) -m pip install -q --no-build-isolation --no-deps -e . >build/pip-install.log 2>&1 \
	  || { cat build/pip-install.log; echo "error: pip install -e . failed" >&2; exit 1; }; fi
	@$(PY) setup.py -q build_ext --inplace 2>&1 | grep -v -E '^(running|copying|creating)' || true
	@$(PY) -c 'import gostx._engine' || { echo "error: the C extension did not build" >&2; exit 1; }

# csrc/ is compiled once per build kind (plain -O2, ASan+UBSan) into objects every C test links
CHDRS := $(wildcard csrc/include/gx/*.h csrc/*.h csrc/*/*.h)
ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
COBJ := $(patsubst csrc/%.c,tests/c/bin/obj/%.o,$(CSRC))
COBJ_ASAN := $(patsubst csrc/%.c,tests/c/bin/obj-asan/%.o,$(CSRC))
STACK_OBJ := $(patsubst csrc/stack/%.c,tests/c/bin/obj/stack/%.o,$(STACK_SRC))
STACK_OBJ_ASAN := $(patsubst csrc/stack/%.c,tests/c/bin/obj-asan/stack/%.o,$(STACK_SRC))

tests/c/bin/obj/stack/%.o: csrc/stack/%.c $(CHDRS) $(STACK_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_C) $(LWIP_INC) -O2 -c -o $@ $<

tests/c/bin/obj-asan/stack/%.o: csrc/stack/%.c $(CHDRS) $(STACK_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_C) $(LWIP_INC) $(ASAN_FLAGS) -c -o $@ $<

tests/c/bin/obj/%.o: csrc/%.c $(CHDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_C) -O2 -c -o $@ $<

tests/c/bin/obj-asan/%.o: csrc/%.c $(CHDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_C) $(ASAN_FLAGS) -c -o $@ $<

tests/c/bin/%: tests/c/%.c $(COBJ) $(CHDRS) $(wildcard tests/c/*.h)
	@mkdir -p tests/c/bin
	$(CC) $(CFLAGS_C) -O2 -o $@ $< $(COBJ) -lssl -lcrypto -lpthread

tests/c/bin/asan-%: tests/c/%.c $(COBJ_ASAN) $(CHDRS) $(wildcard tests/c/*.h)
	@mkdir -p tests/c/bin
	$(CC) $(CFLAGS_C) $(ASAN_FLAGS) -o $@ $< $(COBJ_ASAN) -lssl -lcrypto -lpthread

# test_wycheproof reads the Wycheproof vectors as lines of text made from their JSON
WYCHEPROOF_JSON := $(wildcard tests/vectors/wycheproof/*.json)
tests/c/bin/wycheproof.txt: $(WYCHEPROOF_JSON) tests/c/wycheproof_to_txt.py
	@mkdir -p tests/c/bin
	$(SYS_PY) tests/c/wycheproof_to_txt.py tests/vectors/wycheproof $@
tests/c/bin/test_wycheproof tests/c/bin/asan-test_wycheproof: tests/c/bin/wycheproof.txt

tests/c/bin/liblwip.a: third_party/lwip/port/lwipopts.h third_party/lwip/lwip_build.py $(wildcard third_party/lwip/patches/*.patch)
	@mkdir -p tests/c/bin
	$(LWIP_AR) $@ $(CC) -O2 -g

tests/c/bin/liblwip-asan.a: third_party/lwip/port/lwipopts.h third_party/lwip/lwip_build.py $(wildcard third_party/lwip/patches/*.patch)
	@mkdir -p tests/c/bin
	$(LWIP_AR) $@ $(CC) -O1 -g -fsanitize=address -fno-omit-frame-pointer

# test_stack replays tests/fuzz/corpus/stack through fuzz_stack.c (compiled in; it needs stack_int.h)
tests/c/bin/test_stack tests/c/bin/asan-test_stack: tests/fuzz/fuzz_stack.c tests/fuzz/fuzz.h
tests/c/bin/test_stack: tests/c/test_stack.c $(COBJ) $(STACK_OBJ) $(STACK_DEPS) $(CHDRS) $(wildcard tests/c/*.h) tests/c/bin/liblwip.a
	$(CC) $(CFLAGS_C) $(LWIP_INC) -Icsrc/stack -O2 -o $@ $< $(COBJ) $(STACK_OBJ) tests/c/bin/liblwip.a -lssl -lcrypto -lpthread

tests/c/bin/asan-test_stack: tests/c/test_stack.c $(COBJ_ASAN) $(STACK_OBJ_ASAN) $(STACK_DEPS) $(CHDRS) $(wildcard tests/c/*.h) tests/c/bin/liblwip-asan.a
	$(CC) $(CFLAGS_C) $(LWIP_INC) -Icsrc/stack $(ASAN_FLAGS) \
	  -o $@ $< $(COBJ_ASAN) $(STACK_OBJ_ASAN) tests/c/bin/liblwip-asan.a -lssl -lcrypto -lpthread

# the fuzz-regression test compiles fuzz targets in (tests/fuzz/README.md)
tests/c/bin/test_fuzz_regressions tests/c/bin/asan-test_fuzz_regressions: $(wildcard tests/fuzz/fuzz_*.c tests/fuzz/fuzz.h)

CTEST_BINS := $(patsubst tests/c/%.c,tests/c/bin/%,$(CTESTS))
ASAN_BINS := $(patsubst tests/c/%.c,tests/c/bin/asan-%,$(CTESTS))
NPROC := $(shell nproc 2>/dev/null || echo 2)

ctest:
	@$(MAKE) -s --no-print-directory -j$(NPROC) $(CTEST_BINS)
	@set -e; for t in $(CTEST_BINS); do echo "== $$t"; ./$$t; done

asan:
	@$(MAKE) -s --no-print-directory -j$(NPROC) $(ASAN_BINS)
	@set -e; for t in $(ASAN_BINS); do echo "== $$t (ASan+UBSan)"; ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./$$t; done

pytest: build
	$(PY) -m pytest $(PYTEST_ARGS)

test: deps lint build ctest asan fuzz-smoke
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff on everything; mypy --strict on gostx/ (pyproject.toml [tool.mypy]; the extension through gostx/_engine.pyi)
lint: pip-deps
	$(PY) -m ruff check gostx tests bench setup.py
	$(PY) -m mypy

demo: deps build
	$(PY) -m bench.demo $(DEMO_ARGS)

bench: deps build
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf build tests/c/bin tests/fuzz/bin gostx/_engine.c gostx/*.so *.egg-info

# ---- fuzzing (tests/fuzz/README.md): libFuzzer targets built with clang, ASan and UBSan ----
# `make fuzz FUZZ_S=600` runs every target FUZZ_S seconds (FUZZ_JOBS at a time) on a kept corpus in
# tests/fuzz/bin/corpus; `make fuzz-smoke` runs each FUZZ_SMOKE_S seconds from the committed seeds only.
# Crashes land in tests/fuzz/crashes/ and fail the run. FUZZ_TARGETS=aead_open,ws picks targets.
FUZZ_CC ?= clang
FUZZ_S ?= 60
FUZZ_SMOKE_S ?= 4
FUZZ_JOBS ?= 2
FUZZ_DIR := tests/fuzz
FUZZ_BIN := $(FUZZ_DIR)/bin
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := $(CFLAGS_C) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_ALL := $(patsubst $(FUZZ_DIR)/fuzz_%.c,%,$(wildcard $(FUZZ_DIR)/fuzz_*.c))
comma := ,
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SEL := $(subst $(comma), ,$(FUZZ_TARGETS))
FUZZ_HDRS := $(wildcard csrc/include/gx/*.h csrc/*.h csrc/*/*.h)
FUZZ_OBJ := $(patsubst csrc/%.c,$(FUZZ_BIN)/obj/%.o,$(CSRC))
FUZZ_STACK_OBJ := $(patsubst csrc/stack/%.c,$(FUZZ_BIN)/obj/stack/%.o,$(STACK_SRC))

$(FUZZ_BIN)/obj/%.o: csrc/%.c $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BIN)/obj/stack/%.o: csrc/stack/%.c $(STACK_DEPS) $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(LWIP_INC) -c -o $@ $<

$(FUZZ_BIN)/libgx.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BIN)/liblwip.a: third_party/lwip/port/lwipopts.h third_party/lwip/lwip_build.py $(wildcard third_party/lwip/patches/*.patch)
	@mkdir -p $(FUZZ_BIN)
	$(LWIP_AR) $@ $(FUZZ_CC) -O1 -g -fsanitize=address -fsanitize=fuzzer-no-link -fno-omit-frame-pointer

$(FUZZ_BIN)/fuzz_stack: $(FUZZ_DIR)/fuzz_stack.c $(FUZZ_DIR)/fuzz.h $(FUZZ_STACK_OBJ) $(FUZZ_BIN)/libgx.a $(FUZZ_BIN)/liblwip.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(LWIP_INC) -Icsrc/stack -fsanitize=fuzzer -o $@ $< $(FUZZ_STACK_OBJ) $(FUZZ_BIN)/libgx.a \
	  $(FUZZ_BIN)/liblwip.a -lssl -lcrypto -lpthread

$(FUZZ_BIN)/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(FUZZ_DIR)/fuzz.h $(FUZZ_BIN)/libgx.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BIN)/libgx.a -lssl -lcrypto -lpthread

fuzz-build:
	@$(FUZZ_DIR)/have_libfuzzer.sh $(FUZZ_CC); rc=$$?; [ $$rc = 3 ] && exit 0; [ $$rc = 0 ] || exit $$rc; \
	$(MAKE) -s -j$(FUZZ_JOBS) --no-print-directory $(patsubst %,$(FUZZ_BIN)/fuzz_%,$(FUZZ_SEL))

fuzz:
	@$(FUZZ_DIR)/have_libfuzzer.sh $(FUZZ_CC); rc=$$?; [ $$rc = 3 ] && exit 0; [ $$rc = 0 ] || exit $$rc; \
	$(MAKE) -s -j$(FUZZ_JOBS) --no-print-directory $(patsubst %,$(FUZZ_BIN)/fuzz_%,$(FUZZ_SEL)) && \
	$(FUZZ_DIR)/run.sh $(FUZZ_S) $(FUZZ_JOBS) $(FUZZ_BIN)/corpus $(FUZZ_SEL)

fuzz-smoke:
	@$(FUZZ_DIR)/have_libfuzzer.sh $(FUZZ_CC); rc=$$?; [ $$rc = 3 ] && exit 0; [ $$rc = 0 ] || exit $$rc; \
	$(MAKE) -s -j$(FUZZ_JOBS) --no-print-directory $(patsubst %,$(FUZZ_BIN)/fuzz_%,$(FUZZ_SEL)) && \
	w=$$(mktemp -d) && $(FUZZ_DIR)/run.sh $(FUZZ_SMOKE_S) $(FUZZ_JOBS) $$w $(FUZZ_SEL); rc=$$?; rm -rf $$w; exit $$rc

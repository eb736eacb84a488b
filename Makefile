# SPDX-License-Identifier: Apache-2.0
# tableguard's front door: CI, the Dockerfile and people call only these targets.

BUILD    ?= build
CC       ?= cc
PKGS     := libmicrohttpd gnutls libcjson yaml-0.1 libcrypto
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Debian's interpreter, where python3-pytest and friends are installed (a PATH python3 may not be).
PYTHON   ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Werror
OPT      ?= -O2 -g
SAN      ?=
# Debian's hardening (`DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags`) for every build,
# the sanitizer ones included: stack protector, fortified libc calls (they need OPT above -O0),
# full RELRO with immediate binding, and a position-independent executable.
# tests/integration/test_hardening.py checks the linked binary for each of them.
HARDEN_CPPFLAGS := -D_FORTIFY_SOURCE=2
HARDEN_CFLAGS   := -fstack-protector-strong -fstack-clash-protection -fPIE
HARDEN_LDFLAGS  := -pie -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack
CPPFLAGS_ALL = -I. -D_GNU_SOURCE $(HARDEN_CPPFLAGS) -DTG_VERSION='"$(VERSION)"' -DTG_REVISION='"$(REVISION)"' \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS_ALL = -std=c11 $(OPT) $(WARN) $(HARDEN_CFLAGS) $(SAN) $(CFLAGS)
LDFLAGS_ALL = $(HARDEN_LDFLAGS) $(LDFLAGS)
LDLIBS_ALL = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread $(LDLIBS)

# Debian 12 packages: what building and serving needs, then what the test suite adds.
DEB_BUILD := build-essential pkg-config libmicrohttpd-dev libgnutls28-dev libssl-dev \
	libcjson-dev libyaml-dev openssl curl ca-certificates
DEB_TEST  := libcmocka-dev python3 python3-pytest python3-jsonpatch python3-jsonschema \
	python3-yaml python3-lxml clang libclang-rt-14-dev gnutls-bin prometheus yamllint shellcheck \
	clang-format valgrind unzip golang-go zsh groff-base
DEB_BENCH := wrk nghttp2-client nginx-light gnuplot-nox linux-perf
# The image test: podman with runc, and debootstrap for the base image (no registry is needed).
DEB_IMAGE := podman runc containernetworking-plugins debootstrap

LIB_SRCS  := $(sort $(wildcard util/*.c policy/*.c certs/*.c) $(filter-out server/main.c,$(wildcard server/*.c)))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
HDRS      := $(wildcard util/*.h policy/*.h certs/*.h server/*.h tests/unit/*.h)

.PHONY: all run test check asan fuzz fuzz-replay bench leakcheck install clean format \
	deps deps-build deps-test deps-bench deps-image unit cases integration chart tls-audit image \
	image-test review-arena

all: $(BUILD)/tableguard

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/libtableguard.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tableguard: $(BUILD)/obj/server/main.o $(BUILD)/libtableguard.a
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libtableguard.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libtableguard.a -lcmocka $(LDLIBS_ALL)

# Each fuzz target also links against a plain driver so the suite replays its corpus
# with the same compiler and sanitizers as everything else.
$(BUILD)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(BUILD)/libtableguard.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< tests/fuzz/replay.c $(BUILD)/libtableguard.a $(LDLIBS_ALL)

deps-build:
	@sh tests/deps.sh $(DEB_BUILD)
deps-test: deps-build
	@sh tests/deps.sh $(DEB_TEST)
	@test -x build/tools/helm/helm || command -v chart-render >/dev/null || \
		sh tests/chart/install-tools.sh || echo "chart tools not installed: chart checks will skip"
deps-bench: deps-build
	@sh tests/deps.sh $(DEB_BENCH)
deps-image:
	@sh tests/deps.sh $(DEB_IMAGE)
deps: deps-test

run: deps-build
	@$(MAKE) --no-print-directory all
	@sh tests/devcerts.sh $(BUILD)
	@echo
	@echo "tableguard serving on https://127.0.0.1:8443 with policy/default.yaml. Try:"
	@echo "  curl -s --cacert $(BUILD)/certs/ca.crt -H 'Content-Type: application/json' --data @tests/cases/admission/mutate-inject-missing-traits/request.json 'https://127.0.0.1:8443/mutate?timeout=10s'"
	@echo
	exec $(BUILD)/tableguard serve --policy policy/default.yaml \
		--tls-cert $(BUILD)/certs/tls.crt --tls-key $(BUILD)/certs/tls.key \
		--listen 127.0.0.1:8443 --metrics-listen 127.0.0.1:9090 --audit-log $(BUILD)/audit.log \
		--shutdown-delay 0

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

fuzz-replay: $(FUZZ_NAMES:%=$(BUILD)/tests/replay_%)
	@set -e; for n in $(FUZZ_NAMES); do $(BUILD)/tests/replay_$$n tests/fuzz/corpus/$$n; done

integration: all
	TABLEGUARD=$(abspath $(BUILD)/tableguard) $(PYTHON) -m pytest -q tests/integration

chart: all
	@sh tests/chart/check.sh $(BUILD)

# The whole suite, as CI runs it.
check: all unit fuzz-replay integration chart
	@$(BUILD)/tableguard test tests/policy/default-suite.yaml tests/policy/exceptions-suite.yaml

test: deps
	@$(MAKE) --no-print-directory check

ASAN_VARS := OPT="-O1 -g -fno-omit-frame-pointer" \
	SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan $(ASAN_VARS) check
	@$(MAKE) --no-print-directory BUILD=build/asan-arena $(ASAN_VARS) \
		CFLAGS="$(CFLAGS) -DREVIEW_ARENA=1" review-arena

# Sanitizer builds parse reviews with one malloc per node (server/review.c), so they see every
# access; the release build parses into an arena instead. `make asan` builds again with the
# arena on (-DREVIEW_ARENA=1, in build/asan-arena) and runs what decodes reviews: these unit
# tests and the replay of the review and patch corpora.
ARENA_UNITS := test_review test_admit test_unheld test_recview
ARENA_FUZZ  := review patch
review-arena: $(ARENA_UNITS:%=$(BUILD)/tests/%) $(ARENA_FUZZ:%=$(BUILD)/tests/replay_%)
	@set -e; for t in $(ARENA_UNITS); do echo "== $(BUILD)/tests/$$t"; $(BUILD)/tests/$$t; done
	@set -e; for n in $(ARENA_FUZZ); do $(BUILD)/tests/replay_$$n tests/fuzz/corpus/$$n; done

FUZZ_SECONDS ?= 60
fuzz: deps
	@set -e; mkdir -p $(BUILD)/fuzz; for n in $(FUZZ_NAMES); do \
		clang $(CPPFLAGS_ALL) -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined \
			-o $(BUILD)/fuzz/$$n tests/fuzz/fuzz_$$n.c $(LIB_SRCS) $(LDLIBS_ALL); \
		mkdir -p $(BUILD)/fuzz/corpus-$$n; \
		$(BUILD)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$(BUILD)/fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

leakcheck: deps
	@$(MAKE) --no-print-directory all
	TABLEGUARD=$(abspath $(BUILD)/tableguard) TABLEGUARD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q" \
		$(PYTHON) -m pytest -q tests/integration

bench: deps-bench
	@$(MAKE) --no-print-directory BUILD=build/bench OPT="-O2 -flto" all
	@sh tests/bench/run.sh build/bench

tls-audit: all
	@sh tests/tls-audit.sh $(BUILD)

# The image: docker when installed, else podman. CREATED is the commit's time, so a rebuild of the
# same commit carries the same labels.
CONTAINER ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null || echo docker)
CREATED   := $(shell TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null || echo 1970-01-01T00:00:00Z)
image:
	$(CONTAINER) build -t tableguard:$(VERSION) --build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(REVISION) --build-arg CREATED=$(CREATED) .

# Builds the Dockerfile unchanged with podman and runs the image as the chart does (about 5
# minutes on a fresh machine, 1 with build/image's cached base and podman's layer cache).
image-test: deps-image all
	BUILD=$(abspath $(BUILD)) TABLEGUARD=$(abspath $(BUILD)/tableguard) $(PYTHON) -m pytest -q -rs tests/image

PREFIX ?= /usr/local
install: all
	install -D -m 0755 $(BUILD)/tableguard $(DESTDIR)$(PREFIX)/bin/tableguard
	install -D -m 0644 man/tableguard.1 $(DESTDIR)$(PREFIX)/share/man/man1/tableguard.1

format:
	clang-format -i $(wildcard util/*.[ch] policy/*.[ch] certs/*.[ch] server/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c tests/bench/*.c)

clean:
	rm -rf build

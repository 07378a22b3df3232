# SPDX-License-Identifier: MIT
# tciafs build. `make` builds build/tciafs; `make check` runs every test (unit, valgrind,
# integration through a real mount, then all again under ASan+UBSan); `make demo` mounts
# the bundled fake archive at ./mnt. Each installs missing Debian packages first (deps).

VERSION   := 0.1.0
BUILD     ?= build
SANITIZE  ?=
CC        ?= cc
PYTHON    ?= /usr/bin/python3

PKGS      := fuse3 libcurl jansson libzip sqlite3 expat libcrypto
# libfuse: the 3.17 that scripts/libfuse.sh built into build/fuse317 (static, with FUSE
# passthrough) when it is there, else the system's (3.14 on Debian 12: no passthrough).
# FUSE=system forces the system's.
FUSE      ?= auto
FUSE_DIR  := $(CURDIR)/build/fuse317
# Recursive (=) on purpose: evaluated when a recipe runs, after `deps` has installed them
# and built libfuse.
FUSE_ENV   = $(if $(filter system,$(FUSE)),,$(if $(wildcard $(FUSE_DIR)/.done),PKG_CONFIG_PATH=$(FUSE_DIR)/lib/pkgconfig))
PKG_CFLAGS = $(shell $(FUSE_ENV) pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell $(FUSE_ENV) pkg-config --libs $(PKGS)) -lpthread
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)

WARN      := -std=c17 -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
             -Wmissing-prototypes -Wvla -Werror
OPT       ?= -O2 -g
CPPFLAGS  += -D_GNU_SOURCE -Iinclude -DTCIAFS_VERSION=\"$(VERSION)\"
ifneq ($(SANITIZE),)
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT       := -O1 -g
endif
ALL_CFLAGS = $(WARN) $(OPT) $(SANFLAGS) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

MODEL     := utf8 jsonobj jsonpick log failures fileio md5 spool ahead inodes http http_fleet auth metacache catalog catalog_load catalog_query catalog_view record tcia_parse tcia_stream tcia idc idc_answer idc_row idc_bucket source unzip store_table store store_fetch store_ahead store_part view names loader tree tree_archive tree_files tree_node tree_colls tree_tciafs tree_facets tree_mans tree_citation tree_table tree_xattr
MODEL_OBJ := $(MODEL:%=$(BUILD)/%.o)
BIN       := $(BUILD)/tciafs
UNIT      := test_jsonobj test_log test_utf8 test_store test_source test_failures test_spool test_ahead test_inodes test_http test_fleet test_metacache test_catalog test_tcia test_idc test_tree test_unzip test_view
UNIT_BIN  := $(UNIT:%=$(BUILD)/%)

.SECONDARY:


PHONY_EXTRA := torture torture-short tsan format format-check
.PHONY: $(PHONY_EXTRA) FORCE layers-check check-system-fuse fuzz install uninstall bench all deps check unit unit-run valgrind integration check-build check-asan demo clean

all: $(BIN) $(BUILD)/tciafs-prefetch

deps:
	@sh scripts/deps.sh
	@sh scripts/libfuse.sh

# Which libfuse a build uses, so that switching relinks and recompiles what sees FUSE.
$(BUILD)/.fuse: FORCE | deps
	@mkdir -p $(BUILD)
	@echo '$(FUSE_ENV)' | cmp -s - $@ || echo '$(FUSE_ENV)' > $@
$(BUILD)/main.o $(BUILD)/fs.o $(BUILD)/fs_dir.o: $(BUILD)/.fuse
FORCE:

# Every object also depends on every header: the compiler's .d files name their target as
# it was spelt (a build once run with an absolute BUILD leaves .d files that a relative
# one never matches), and a full rebuild takes seconds.
HEADERS   := $(wildcard include/*.h src/*.h)

$(BUILD)/%.o: src/%.c $(HEADERS) | deps
	@mkdir -p $(BUILD)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/test_%.o: tests/unit/test_%.c $(HEADERS) | deps
	@mkdir -p $(BUILD)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tool_%.o: tests/tools/%.c $(HEADERS) | deps
	@mkdir -p $(BUILD)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tcia-query: $(BUILD)/tool_tcia_query.o $(MODEL_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/idc-query: $(BUILD)/tool_idc_query.o $(MODEL_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tciafs-prefetch: $(BUILD)/prefetch.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lpthread

$(BIN): $(BUILD)/main.o $(BUILD)/fs.o $(BUILD)/fs_dir.o $(MODEL_OBJ) $(BUILD)/.fuse
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS)

$(BUILD)/test_%: $(BUILD)/test_%.o $(MODEL_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS)

# test_store serves series from a fake source: the store's calls into source.c are
# routed to the test's own functions.
$(BUILD)/test_store: ALL_LDFLAGS += -Wl,--wrap=source_get_zip -Wl,--wrap=source_files_one_by_one \
	-Wl,--wrap=source_series_bytes -Wl,--wrap=source_where -Wl,--wrap=source_cancel_fetches

# test_tcia fails allocations on purpose: route the parsers' allocations through it.
$(BUILD)/test_tcia: ALL_LDFLAGS += -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc \
	-Wl,--wrap=strdup -Wl,--wrap=strndup

unit: $(UNIT_BIN)

unit-run: unit
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t; done

valgrind: unit
	@set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	  valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 ./$$t; done

integration: $(BIN) $(BUILD)/tcia-query $(BUILD)/idc-query $(BUILD)/tciafs-prefetch
	$(PYTHON) tests/integration/run.py --bin $(BIN)

check-build:
	$(MAKE) BUILD=build unit-run valgrind integration

check-asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 unit-run integration torture-short

# ThreadSanitizer over the tests where threads meet: concurrent openers, shared stores,
# eviction under readers, interrupted waits, the network gone, prefetch in parallel,
# the views, IDC's read-ahead (one thread driving many GETs) and range reads (a recorder
# thread beside it, two mounts on one cache), the catalog's loads (long answers parsed
# on a helper thread, ahead.c), and the fault campaign; and the unit tests of the
# helper that parses long answers, of the fleet of GETs, and of the catalog, whose own
# thread checkpoints and ends readers' idle transactions (TSAN_UNIT).
# tests/tsan.supp lists (and explains) the reports suppressed, all inside libraries.
# About 2 minutes; part of check.
TSAN_TESTS := test_fetch,test_resilience,test_prefetch,test_views,test_faults.test_mount,test_browse,test_idc_mount,test_idc_ahead,test_idc_range,test_passthrough,test_catalog,test_hardening2
TSAN_UNIT := test_ahead test_store test_fleet test_tcia test_idc test_catalog
tsan: deps
	$(MAKE) BUILD=build-tsan OPT="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" \
	  build-tsan/tciafs build-tsan/tciafs-prefetch build-tsan/tcia-query \
	  $(TSAN_UNIT:%=build-tsan/%)
	for t in $(TSAN_UNIT); do \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$(CURDIR)/tests/tsan.supp" \
	  build-tsan/$$t > build-tsan/$$t.log 2>&1 || { tail -40 build-tsan/$$t.log; exit 1; }; done
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$(CURDIR)/tests/tsan.supp" \
	  $(PYTHON) tests/integration/run.py --bin build-tsan/tciafs -k $(TSAN_TESTS)
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$(CURDIR)/tests/tsan.supp" \
	  $(PYTHON) tests/torture/torture.py --bin build-tsan/tciafs --seconds 30 --kills 0

# The fault and crash campaigns (tests/torture): short in check (under ASan there),
# long in `make torture`, which also fuzzes and writes docs/reliability.md.
TORTURE_SECONDS ?= 240
TORTURE_KILLS   ?= 120
TORTURE_DAMAGE  ?= 60
TORTURE_OVERLONG ?= 20
torture-short: $(BIN)
	$(PYTHON) tests/torture/torture.py --bin $(BIN) --seconds 20 --kills 10

torture: deps $(BIN)
	$(MAKE) fuzz FUZZ_SECONDS=120
	$(PYTHON) tests/torture/torture.py --bin $(BIN) --seconds $(TORTURE_SECONDS) \
	  --kills $(TORTURE_KILLS) --damage-rounds $(TORTURE_DAMAGE) \
	  --overlong $(TORTURE_OVERLONG) --report docs/reliability.md

# The build against the system's libfuse (3.14 on Debian 12: no passthrough) stays
# supported: built, and the tests where the read path and FUSE's behaviour matter run
# against it.
SYSFUSE_TESTS := test_passthrough,test_fetch,test_mount,test_hardening,test_browse,test_prefetch
check-system-fuse: deps
	$(MAKE) BUILD=build-sysfuse FUSE=system build-sysfuse/tciafs build-sysfuse/tcia-query \
	  build-sysfuse/tciafs-prefetch
	$(PYTHON) tests/integration/run.py --bin build-sysfuse/tciafs -k $(SYSFUSE_TESTS)

# Every C file as the committed .clang-format says, by the clang-format Debian 12 ships
# (another version formats some lines differently): `make format` rewrites them.
CLANG_FORMAT ?= clang-format-14
FORMAT_FILES := $(wildcard src/*.c src/*.h include/*.h tests/unit/*.c tests/tools/*.c \
  tests/fuzz/*.c scripts/*.c)
format: deps
	$(CLANG_FORMAT) -i $(FORMAT_FILES)
format-check: deps
	$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES)

# Every call goes down docs/architecture.md's module table (no circle between files).
layers-check:
	$(PYTHON) scripts/check_layers.py

check: deps
	$(MAKE) format-check
	$(MAKE) layers-check
	$(MAKE) check-build
	$(MAKE) check-system-fuse
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(MAKE) check-asan
	$(MAKE) tsan
	$(MAKE) fuzz FUZZ_SECONDS=10
	@echo "make check: all suites passed"

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
DOCDIR    ?= $(PREFIX)/share/doc/tciafs

install: $(BIN) $(BUILD)/tciafs-prefetch
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BIN) $(BUILD)/tciafs-prefetch $(DESTDIR)$(BINDIR)/
	install -m 0644 docs/tciafs.1 docs/tciafs-prefetch.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 README.md docs/mnt-tcia.mount LICENSE $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tciafs $(DESTDIR)$(BINDIR)/tciafs-prefetch
	rm -f $(DESTDIR)$(MANDIR)/man1/tciafs.1 $(DESTDIR)$(MANDIR)/man1/tciafs-prefetch.1
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/mnt-tcia.mount \
	  $(DESTDIR)$(DOCDIR)/LICENSE
	-rmdir $(DESTDIR)$(DOCDIR)

# Fuzzing with libFuzzer (clang): the parsers, the name sanitiser and the zip
# extractor. Corpora grow in build-fuzz/; the fixtures and the hostile zips seed them.
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = $(WARN) -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS)
FUZZ_OBJ     := $(MODEL:%=$(FUZZ_BUILD)/%.o)
FUZZERS      := tcia idc names unzip view jsonobj pick

$(FUZZ_BUILD)/%.o: src/%.c $(HEADERS) | deps
	@mkdir -p $(FUZZ_BUILD)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS)

fuzz: $(FUZZERS:%=$(FUZZ_BUILD)/fuzz_%)
	@set -e; for t in $(FUZZERS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus-$$t; \
	  case $$t in tcia) seeds=tests/fixtures/tcia;; unzip) seeds=tests/hostile/zips;; \
	    view) seeds=tests/fuzz/seeds-view;; idc) seeds=tests/fuzz/seeds-idc;; \
	    jsonobj|pick) seeds=tests/fuzz/seeds-jsonobj;; \
	    *) seeds=tests/fuzz/seeds-names;; esac; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	  if ! $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=2 \
	    -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus-$$t $$seeds \
	    tests/fuzz/regressions-$$t > $(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	    tail -40 $(FUZZ_BUILD)/fuzz_$$t.log; \
	    echo "fuzz_$$t found a crash: see $(FUZZ_BUILD)/ (add it to tests/fuzz/regressions-$$t)"; \
	    exit 1; fi; \
	  tail -1 $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

# Not part of check: timings on shared machines are for reading, not for asserting.
bench: $(BIN) $(BUILD)/tciafs-prefetch $(BUILD)/floorfs $(BUILD)/passthrough_hp
	$(PYTHON) scripts/bench.py $(BIN)

# The floors under make bench's rows: a FUSE daemon that keeps nothing (walks), and
# libfuse's own passthrough example from the 3.17 source make deps fetched (reads;
# skipped by the bench when that source or a C++ compiler is not there).
$(BUILD)/floorfs: scripts/floorfs.c $(BUILD)/.fuse
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(PKG_LIBS)

HP_SRC := build/apt/src/libfuse/example/passthrough_hp.cc
$(BUILD)/passthrough_hp: $(wildcard $(HP_SRC)) $(BUILD)/.fuse
	@if [ -f $(HP_SRC) ] && [ -f $(FUSE_DIR)/.done ] && command -v $(CXX) >/dev/null; then \
	  $(CXX) -std=c++17 -O2 -Wno-deprecated-declarations -I$(dir $(HP_SRC)) \
	    $$(PKG_CONFIG_PATH=$(FUSE_DIR)/lib/pkgconfig pkg-config --cflags fuse3) -o $@ \
	    $(HP_SRC) $$(PKG_CONFIG_PATH=$(FUSE_DIR)/lib/pkgconfig pkg-config --libs fuse3) \
	    -lpthread; \
	else echo "bench: no libfuse 3.17 source or C++ compiler: the passthrough_hp floor is skipped"; fi

demo: $(BIN)
	@sh scripts/demo.sh $(BIN) $(or $(SOURCE),nbia)

clean:
	rm -rf build build-asan build-fuzz build-tsan build-sysfuse

-include $(wildcard $(BUILD)/*.d)

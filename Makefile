# ernie-doc - one non-recursive GNU Makefile.
#
#   make                 build ./ernie-doc
#   make check           unit, golden, corpus, fuzz-replay and CLI tests
#   make bench           benchmarks (BENCH lines with ratios)
#   make deps            install the Debian packages the build needs
#   make SANITIZE=address,undefined check
#   make valgrind        the tests under valgrind
#   make lint            banned functions
#   make check-deps      #include direction between modules
#   make fuzz [FUZZ_SECONDS=60]  libFuzzer on every target (clang)
#   make install [PREFIX=/usr/local] [DESTDIR=]

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
PKG_CONFIG ?= pkg-config
BUILD ?= build

PKGS := poppler-glib gio-2.0 cairo libtiff-4 libpng libjpeg libcurl sqlite3 \
	libpcre2-8 jansson

ifeq ($(filter clean deps demo lint check-deps uninstall,$(MAKECMDGOALS)),)
MISSING := $(strip $(foreach p,$(PKGS),$(if $(shell $(PKG_CONFIG) --exists $(p) && echo y),,$(p))))
ifneq ($(MISSING),)
$(error missing development packages: $(MISSING) (run 'make deps' or install them with your package manager))
endif
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS))
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
# -ffp-contract=off: tiling and model numerics must not change with the
# compiler's choice of fused multiply-adds.
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -I. -O2 -g \
	-ffp-contract=off -fno-strict-aliasing $(WARN)
# DNNL=1: dense float products with many rows through oneDNN's sgemm
# (Debian libdnnl-dev), measured faster on large products; our kernels
# stay the default and the fallback.
DNNL_CFLAGS := $(if $(filter 1,$(DNNL)),-DED_HAVE_DNNL,)
DNNL_LIBS := $(if $(filter 1,$(DNNL)),-ldnnl -lgomp,)
SAN_FLAGS := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
	-fno-sanitize-recover=all,)
ALL_CFLAGS = $(BASE_CFLAGS) $(DNNL_CFLAGS) $(SAN_FLAGS) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
LIBS := $(PKG_LIBS) $(DNNL_LIBS) -lm -lpthread

MODULES := common render model model/kernels store pipeline
LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
CMD_SRC := $(wildcard cmd/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ := $(CMD_SRC:%.c=$(BUILD)/%.o)

TEST_NAMES := common render model grammar store pipeline vfs
TEST_BINS := $(TEST_NAMES:%=$(BUILD)/tests/test_%)
TOOL_BINS := $(BUILD)/tests/peakrss $(BUILD)/tests/mkpdf $(BUILD)/tests/stcmp \
	$(BUILD)/tests/mkmodel $(BUILD)/tests/jinjarender
FUZZ_BINS := $(patsubst %.c,$(BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))
# allocation failure injected into the library's own calls (--wrap)
ALLOC_BIN := $(BUILD)/tests/test_alloc
ALLOC_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=aligned_alloc
BENCH_BIN := $(BUILD)/bench/bench
# the failing SQLite VFS, preloaded into ernie-doc by tests/faults.sh
FAULT_SO := $(BUILD)/tests/faultvfs.so

# Rebuild everything when the flags change (e.g. SANITIZE on or off).
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW := $(ALL_CFLAGS) | $(ALL_LDFLAGS) | $(LIBS)
$(shell mkdir -p $(BUILD); \
	if [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" != '$(FLAGS_NOW)' ]; then \
	  printf '%s' '$(FLAGS_NOW)' > $(FLAGS_STAMP); fi)

.PHONY: all check bench deps install uninstall clean lint check-deps \
	valgrind demo docs-shots fuzz print-libs print-cflags
.DEFAULT_GOAL := all

all: ernie-doc

ernie-doc: $(BUILD)/ernie-doc
	cp $< $@

$(BUILD)/ernie-doc: $(CMD_OBJ) $(BUILD)/libernie.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CMD_OBJ) $(BUILD)/libernie.a $(LIBS)

$(BUILD)/libernie.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(TEST_BINS) $(TOOL_BINS) $(FUZZ_BINS): $(BUILD)/tests/%: $(BUILD)/tests/%.o \
		$(BUILD)/libernie.a
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libernie.a $(LIBS)

$(FAULT_SO): tests/faultvfs.c tests/faultvfs.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -o $@ tests/faultvfs.c \
		$(shell $(PKG_CONFIG) --libs sqlite3)

$(ALLOC_BIN): $(BUILD)/tests/test_alloc.o $(BUILD)/libernie.a
	$(CC) $(ALL_LDFLAGS) $(ALLOC_WRAP) -o $@ $< $(BUILD)/libernie.a $(LIBS)

# the benchmarks alone use OpenBLAS, as the sgemm roofline
BLAS_CFLAGS = $(shell $(PKG_CONFIG) --cflags openblas 2>/dev/null)
BLAS_LIBS = $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
$(BUILD)/bench/bench.o: ALL_CFLAGS += $(BLAS_CFLAGS)
$(BUILD)/bench/bench: $(BUILD)/bench/bench.o $(BUILD)/libernie.a
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libernie.a $(LIBS) $(BLAS_LIBS)

check: ernie-doc $(TEST_BINS) $(ALLOC_BIN) $(TOOL_BINS) $(FUZZ_BINS) $(FAULT_SO)
	@BUILD=$(BUILD) ED_SANITIZED=$(SANITIZE) sh tests/run.sh

valgrind: ernie-doc $(TEST_BINS) $(ALLOC_BIN) $(TOOL_BINS) $(FUZZ_BINS) $(FAULT_SO)
	@BUILD=$(BUILD) VALGRIND=1 sh tests/run.sh

bench: ernie-doc $(BENCH_BIN) $(BUILD)/tests/mkpdf $(BUILD)/tests/mkmodel
	@BUILD=$(BUILD) sh bench/run.sh

# The quick start (scripts/demo.sh works without make installed, too):
# dependencies, build, and the main job on the sample document.
demo:
	sh scripts/demo.sh

deps:
	sh scripts/deps.sh

# Coverage-guided fuzzing: scripts/fuzz.sh builds build-fuzz/ with clang
# and runs each tests/fuzz target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	sh scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
print-libs:
	@echo $(LIBS)
print-cflags:
	@echo $(PKG_CFLAGS)

# The README's pictures of the review and the report: tests/review.sh's
# store, through headless Chromium.
docs-shots: ernie-doc $(BUILD)/tests/mkpdf
	mkdir -p docs
	ED_BUILD=$(BUILD) ED_SHOTS=$(CURDIR)/docs sh tests/review.sh

install: ernie-doc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 ernie-doc $(DESTDIR)$(BINDIR)/ernie-doc
	install -m 644 man/ernie-doc.1 $(DESTDIR)$(MANDIR)/man1/ernie-doc.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ernie-doc $(DESTDIR)$(MANDIR)/man1/ernie-doc.1

lint:
	@sh scripts/lint.sh

check-deps:
	@sh scripts/check-deps.sh

clean:
	rm -rf $(BUILD) ernie-doc

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d)
-include $(wildcard $(BUILD)/tests/*.d $(BUILD)/tests/fuzz/*.d \
	$(BUILD)/bench/*.d)

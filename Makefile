# Makefile - build and install connection-core the way a C library is
# expected to install (plain GNU make; cargo does the building).
#
#   make                      cargo build --release: the static library, the
#                             shared library and include/connection.h
#   make install              PREFIX=/usr/local DESTDIR= (the usual variables;
#                             also INCLUDEDIR, LIBDIR, PKGCONFIGDIR, CMAKEDIR,
#                             MANDIR)
#   make uninstall            removes exactly the files `make install` wrote,
#                             same variables; directories are left alone
#                             (but for our own CMAKEDIR, once empty)
#   make header               refresh the committed include/connection.h from
#                             the header the build generates (in OUT_DIR)
#   make man                  refresh the committed man pages (man/man3) from
#                             include/connection.h (python3 man/generate.py)
#   make examples             the C examples (c-examples/Makefile)
#   make print-version        what the version variables below resolve to
#   make clean                the examples' outputs and cargo's target dir
#
# Installed files:
#   $(INCLUDEDIR)/connection.h
#   $(LIBDIR)/libconnection_core.a
#   $(LIBDIR)/libconnection_core.so.$(VERSION)          the real file
#   $(LIBDIR)/libconnection_core.so.$(ABI) -> .so.$(VERSION)   (the soname)
#   $(LIBDIR)/libconnection_core.so        -> .so.$(ABI)       (for -l at link time)
#   $(PKGCONFIGDIR)/connection-core.pc
#   $(CMAKEDIR)/connection-coreConfig.cmake          find_package(connection-core):
#   $(CMAKEDIR)/connection-coreConfigVersion.cmake   connection-core::shared, ::static
#   $(MANDIR)/man3/*.3                      one page per function, connection-core.3,
#                                           and a .so page per type (committed, from
#                                           the header: `make man`)
#
# A top-level Makefile rather than an `install` target in c-examples/:
# installing is about the library, not the example, and `make && make
# install` in the root of a source tree is what a C programmer types first.
# c-examples/Makefile forwards `install` and `uninstall` here.

CARGO ?= cargo
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR

PREFIX ?= /usr/local
DESTDIR ?=
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/connection-core
MANDIR ?= $(PREFIX)/share/man

INSTALL ?= install
LN_S ?= ln -sfn
space := $(subst ,, )

# Everything about the version comes from Cargo.toml's [package] section.
cargo_field = $(shell awk -F'"' '/^\[/ { pkg = ($$0 == "[package]") } pkg && /^$(1)[ \t]*=/ { print $$2; exit }' Cargo.toml)
VERSION := $(call cargo_field,version)
DESCRIPTION := $(call cargo_field,description)
VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
VERSION_MINOR := $(word 2,$(subst ., ,$(VERSION)))
# The ABI version in the soname, as build.rs sets it: MAJOR, or 0.MINOR
# before 1.0 (where a minor release may break compatibility).
ABI := $(if $(filter 0,$(VERSION_MAJOR)),0.$(VERSION_MINOR),$(VERSION_MAJOR))

ifeq ($(strip $(VERSION)),)
$(error cannot read the version from Cargo.toml)
endif

LIBNAME = libconnection_core
STATIC_LIB = $(LIBNAME).a
SHARED_DEV = $(LIBNAME).so
SHARED_SONAME = $(LIBNAME).so.$(ABI)
SHARED_REAL = $(LIBNAME).so.$(VERSION)

BUILD_DIR = $(CARGO_TARGET_DIR)/release
HEADER = include/connection.h
PC_IN = connection-core.pc.in
PC = $(CARGO_TARGET_DIR)/connection-core.pc

# What `cargo rustc --release --lib --crate-type staticlib -- --print
# native-static-libs` lists for the static library, minus -lgcc_s and -lc,
# which the C compiler driver adds by itself (and -lgcc_s would break a
# fully static link).  c-examples/Makefile links the same list.
LIBS_PRIVATE = -lutil -lrt -lpthread -lm -ldl

# The .pc file's paths, relative to ${prefix} where they are under it.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

# The CMake config finds everything from its own directory: the way from
# CMAKEDIR up to PREFIX, then LIBDIR and INCLUDEDIR below PREFIX (absolute
# when they are elsewhere). Computed on the paths without DESTDIR.
CMAKE_TO_PREFIX = $(shell realpath -m --relative-to='$(CMAKEDIR)' '$(PREFIX)')
cmake_path = $(patsubst $(PREFIX)/%,$${_connection_core_prefix}/%,$(1))
CMAKE_IN = cmake/connection-coreConfig.cmake.in cmake/connection-coreConfigVersion.cmake.in
CMAKE_OUT = $(CARGO_TARGET_DIR)/cmake/connection-coreConfig.cmake \
            $(CARGO_TARGET_DIR)/cmake/connection-coreConfigVersion.cmake
MAN_PAGES = $(wildcard man/man3/*.3)

.PHONY: all build header man examples install uninstall print-version clean FORCE

all: build

# cargo decides what is out of date.
build:
	$(CARGO) build --release

# The build writes the header only into its OUT_DIR; copy the newest one.
header: build
	cp "$$(ls -t $(BUILD_DIR)/build/connection-core-*/out/include/connection.h | head -n 1)" $(HEADER)

man:
	python3 man/generate.py $(HEADER) man/man3 >/dev/null

examples:
	$(MAKE) -C c-examples

# Regenerated on every install: it depends on PREFIX and friends.
$(PC): $(PC_IN) Cargo.toml FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' \
	    -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' \
	    -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@DESCRIPTION@|$(subst &,\&,$(subst |,\|,$(DESCRIPTION)))|g' \
	    -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|g' \
	    $(PC_IN) > $@.tmp
	mv $@.tmp $@

# Regenerated on every install, like the .pc file.
$(CARGO_TARGET_DIR)/cmake/%.cmake: cmake/%.cmake.in Cargo.toml FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@CMAKE_TO_PREFIX@|$(CMAKE_TO_PREFIX)|g' \
	    -e 's|@CMAKE_LIBDIR@|$(call cmake_path,$(LIBDIR))|g' \
	    -e 's|@CMAKE_INCLUDEDIR@|$(call cmake_path,$(INCLUDEDIR))|g' \
	    -e 's|@CMAKE_SYSTEM_LIBS@|$(subst $(space),;,$(LIBS_PRIVATE:-l%=%))|g' \
	    -e 's|@SHARED_REAL@|$(SHARED_REAL)|g' \
	    -e 's|@SHARED_SONAME@|$(SHARED_SONAME)|g' \
	    -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
	    -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' \
	    $< > $@.tmp
	mv $@.tmp $@

install: build $(PC) $(CMAKE_OUT)
	$(INSTALL) -d '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(PKGCONFIGDIR)' \
	    '$(DESTDIR)$(CMAKEDIR)' '$(DESTDIR)$(MANDIR)/man3'
	$(INSTALL) -m 644 $(HEADER) '$(DESTDIR)$(INCLUDEDIR)/connection.h'
	$(INSTALL) -m 644 '$(BUILD_DIR)/$(STATIC_LIB)' '$(DESTDIR)$(LIBDIR)/$(STATIC_LIB)'
	$(INSTALL) -m 755 '$(BUILD_DIR)/$(SHARED_DEV)' '$(DESTDIR)$(LIBDIR)/$(SHARED_REAL)'
	$(LN_S) '$(SHARED_REAL)' '$(DESTDIR)$(LIBDIR)/$(SHARED_SONAME)'
	$(LN_S) '$(SHARED_SONAME)' '$(DESTDIR)$(LIBDIR)/$(SHARED_DEV)'
	$(INSTALL) -m 644 '$(PC)' '$(DESTDIR)$(PKGCONFIGDIR)/connection-core.pc'
	$(INSTALL) -m 644 $(CMAKE_OUT) '$(DESTDIR)$(CMAKEDIR)/'
	$(INSTALL) -m 644 $(MAN_PAGES) '$(DESTDIR)$(MANDIR)/man3/'

# Files only: a directory may have existed before `make install` (and
# usually holds other libraries), so none is removed.
uninstall:
	rm -f '$(DESTDIR)$(INCLUDEDIR)/connection.h' \
	      '$(DESTDIR)$(LIBDIR)/$(STATIC_LIB)' \
	      '$(DESTDIR)$(LIBDIR)/$(SHARED_REAL)' \
	      '$(DESTDIR)$(LIBDIR)/$(SHARED_SONAME)' \
	      '$(DESTDIR)$(LIBDIR)/$(SHARED_DEV)' \
	      '$(DESTDIR)$(PKGCONFIGDIR)/connection-core.pc' \
	      '$(DESTDIR)$(CMAKEDIR)/connection-coreConfig.cmake' \
	      '$(DESTDIR)$(CMAKEDIR)/connection-coreConfigVersion.cmake' \
	      $(patsubst man/man3/%,'$(DESTDIR)$(MANDIR)/man3/%',$(MAN_PAGES))
	-rmdir '$(DESTDIR)$(CMAKEDIR)' 2>/dev/null

print-version:
	@echo 'VERSION=$(VERSION)'
	@echo 'ABI=$(ABI)'
	@echo 'SONAME=$(SHARED_SONAME)'
	@echo 'REALNAME=$(SHARED_REAL)'

clean:
	$(MAKE) -C c-examples clean
	$(CARGO) clean

FORCE:

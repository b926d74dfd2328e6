# Build and install guix-offload from a clone (docs/install.md).
#
#   make                              # bin/guix-offload, bin/guix-offload-agent (static)
#   sudo make install                 # into /usr/local
#   make install PREFIX=/usr DESTDIR=/tmp/stage
#   sudo make uninstall
#   make docs                         # regenerate dist/ (man pages, completions)
#
# The binaries are static (CGO_ENABLED=0): they need no libc at run time,
# so one built on a foreign distribution also runs on Guix System.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
# systemd reads administrator units from /usr/local/lib/systemd/system and
# packaged ones from /usr/lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
GUILESITEDIR ?= $(DATADIR)/guile/site/3.0
DOCDIR ?= $(DATADIR)/doc/guix-offload

GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
export CGO_ENABLED = 0
GOBUILDFLAGS = -trimpath -ldflags '-X main.version=$(VERSION)'

# Where `make build` puts the programs (the static-build test builds
# elsewhere).
OUT ?= bin

PROGRAMS = guix-offload guix-offload-agent
UNITS = guix-offload-agent.service guix-offload-discover.service
# Generated from the commands by `go generate ./cmd/...` and kept in sync
# by the commands' tests.
MANPAGES = $(wildcard dist/*/man1/*.1)

INSTALL ?= install

.PHONY: all build docs install uninstall check clean

all: build

build:
	$(GO) build $(GOBUILDFLAGS) -o $(OUT)/ ./cmd/...

docs:
	$(GO) generate ./cmd/...

check:
	./test.sh

install: build
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(INSTALL) -m 755 $(addprefix $(OUT)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man1/
	for p in $(PROGRAMS); do \
	  $(INSTALL) -m 644 dist/$$p/bash-completion/$$p $(DESTDIR)$(BASHCOMPDIR)/$$p && \
	  $(INSTALL) -m 644 dist/$$p/zsh/_$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p && \
	  $(INSTALL) -m 644 dist/$$p/fish/$$p.fish $(DESTDIR)$(FISHCOMPDIR)/$$p.fish || exit 1; \
	done
	for u in $(UNITS); do \
	  sed 's|/usr/local/bin/|$(BINDIR)/|g' examples/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m 644 examples/* $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -d $(DESTDIR)$(GUILESITEDIR)/guix-offload
	$(INSTALL) -m 644 dist/guix/guix-offload/services.scm $(DESTDIR)$(GUILESITEDIR)/guix-offload/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(PROGRAMS))
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MANPAGES)))
	for p in $(PROGRAMS); do \
	  rm -f $(DESTDIR)$(BASHCOMPDIR)/$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
	done
	rm -rf $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(GUILESITEDIR)/guix-offload/services.scm
	-rmdir $(DESTDIR)$(GUILESITEDIR)/guix-offload 2>/dev/null

clean:
	rm -rf $(OUT)

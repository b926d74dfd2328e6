#!/usr/bin/env bash
# Runs the whole test suite: installs the real peers the tests talk to
# (Guile, guile-gcrypt, Avahi, D-Bus, OpenSSH, iproute2, BIND 9; make, systemd-analyze and strace
# for the install and unit tests; systemd itself is never started) with apt-get when
# run as root, then gofmt, go vet, staticcheck (a pinned version), go mod
# tidy -diff and go test -race over every package.
# Under CI=true a test that cannot reach a real peer fails instead of
# skipping.
set -euo pipefail
cd "$(dirname "$0")"

packages=(guile-3.0 guile-gcrypt avahi-daemon avahi-utils dbus openssh-server
  openssh-client iproute2 procps make systemd strace bind9 bind9-dnsutils bind9-utils)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing packages ${missing[*]}; run as root to install them" >&2
    return 0
  fi
  # Packages must not start their services (avahi-daemon, sshd) in this
  # machine's own network namespace: the tests start them inside namespaces
  # they create.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "test.sh: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_packages

echo "test.sh: gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "test.sh: go vet"
go vet ./...
# The benchmark suite (bench/run.sh) is behind a build tag: vet it too, so
# it cannot rot unseen.
go vet -tags bench ./bench
# staticcheck at a pinned version, built from the module proxy (a fresh
# CI machine needs nothing but Go), and go.mod and go.sum as tidy as
# `go mod tidy` leaves them.
staticcheck=honnef.co/go/tools/cmd/staticcheck@v0.8.2
echo "test.sh: staticcheck ($staticcheck)"
go run "$staticcheck" ./...
go run "$staticcheck" -tags bench ./bench
echo "test.sh: go mod tidy -diff"
go mod tidy -diff
echo "test.sh: go test -race"
go test -race -count=1 -timeout 30m ./... "$@"

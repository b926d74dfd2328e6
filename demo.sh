#!/usr/bin/env bash
# demo.sh — guix-offload on one machine, safely.
#
# Makes two network namespaces joined by a veth pair (addresses from
# 169.254.0.0/16 only): a build machine running guix-offload-agent on its
# defaults, with a throwaway SSH host key and Guix signing key, and a
# master running `guix-offload discover`. Shows what the master sees,
# stops the agent and shows that its goodbye was heard, then removes
# everything (namespaces, processes, temporary files), also on failure or
# Ctrl-C. Nothing is sent in this machine's own network namespace: its
# real interfaces lead to a network that is not ours.
#
# Needs root (network namespaces), Go, iproute2 and ssh-keygen (the last
# two installed with apt-get when missing). Guile with guile-gcrypt makes
# a real Guix signing key; without it the agent runs unsigned and says so.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run me as root: I create network namespaces (sudo ./demo.sh)"
command -v go >/dev/null || die "Go is needed to build guix-offload (https://go.dev/dl/)"
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "please install ${missing[*]}"
  echo "demo.sh: installing ${missing[*]}"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

tmp=$(mktemp -d /tmp/guix-offload-demo.XXXXXX)
# What discover caches (its good signatures) stays with the demo's files.
export XDG_CACHE_HOME="$tmp/cache"
suffix=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
builder="gob$suffix"   # the build machine's network namespace
master="gom$suffix"    # the master's
net=$(( $(od -An -N1 -tu1 /dev/urandom) % 254 + 1 ))  # 169.254.$net.0/24; 0 and 255 are reserved
agent_pid=""
watch_pid=""

cleanup() {
  set +e
  for pid in $agent_pid $watch_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  ip netns delete "$builder" 2>/dev/null
  ip netns delete "$master" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "demo.sh: interrupted"; exit 130' INT TERM

say "building guix-offload and guix-offload-agent"
go build -o "$tmp/bin/" ./cmd/guix-offload ./cmd/guix-offload-agent

say "two hosts: $builder (build machine, 169.254.$net.1) and $master (master, 169.254.$net.2)"
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
for ns in "$builder" "$master"; do
  ip netns add "$ns"
  # The IPv6 link-local address is usable at once (no duplicate address
  # detection in a two-host network).
  inns "$ns" sh -c 'echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad'
  ip -n "$ns" link set lo up
done
# The veth pair is created inside the namespaces: nothing appears in this
# machine's own.
ip -n "$builder" link add demo0 type veth peer name demo0 netns "$master"
ip -n "$builder" addr add "169.254.$net.1/16" dev demo0
ip -n "$master" addr add "169.254.$net.2/16" dev demo0
ip -n "$builder" link set demo0 multicast on up
ip -n "$master" link set demo0 multicast on up

say "throwaway keys for the build machine"
mkdir -p "$tmp/builder" "$tmp/master"
ssh-keygen -q -t ed25519 -N '' -C "demo host key" -f "$tmp/builder/ssh_host_ed25519_key"
echo "SSH host key:      $(cut -d' ' -f1-2 "$tmp/builder/ssh_host_ed25519_key.pub")"
signed=no
if command -v guile >/dev/null && guile -c '(use-modules (gcrypt pk-crypto))' 2>/dev/null; then
  # What `guix archive --generate-key` does: an ECDSA key on Ed25519,
  # written as libgcrypt's advanced S-expressions.
  guile --no-auto-compile -c '
    (use-modules (gcrypt pk-crypto))
    (let* ((pair (generate-key (string->canonical-sexp
                                "(genkey (ecc (curve Ed25519) (flags rfc6979)))")))
           (write-key (lambda (file key)
                        (call-with-output-file file
                          (lambda (port) (display (canonical-sexp->string key) port))))))
      (write-key (cadr (command-line)) (find-sexp-token pair (quote public-key)))
      (write-key (caddr (command-line)) (find-sexp-token pair (quote private-key))))' \
    "$tmp/builder/signing-key.pub" "$tmp/builder/signing-key.sec"
  chmod 600 "$tmp/builder/signing-key.sec"
  # The master authorizes that key, as `guix archive --authorize` would.
  { echo "(acl"; echo " (entry"; sed 's/^/  /' "$tmp/builder/signing-key.pub"; echo "  (tag (guix import))))"; } > "$tmp/master/acl"
  signed=yes
  echo "Guix signing key:  made with guile-gcrypt, authorized in the master's ACL"
else
  echo "Guile with guile-gcrypt not found (Debian: guile-3.0 guile-gcrypt): the agent runs unsigned"
fi

say "starting guix-offload-agent on $builder (defaults, plus those keys)"
: > "$tmp/builder/agent.toml"   # an empty configuration: every key detected or default
setsid ip netns exec "$builder" "$tmp/bin/guix-offload-agent" --config "$tmp/builder/agent.toml" \
  --host-key-file "$tmp/builder/ssh_host_ed25519_key.pub" --signing-key "$tmp/builder/signing-key.sec" \
  >"$tmp/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
  grep -q 'msg=advertising' "$tmp/agent.log" && break
  kill -0 "$agent_pid" 2>/dev/null || { cat "$tmp/agent.log"; die "the agent exited"; }
  sleep 0.1
done
grep -q 'msg=advertising' "$tmp/agent.log" || { cat "$tmp/agent.log"; die "the agent did not start advertising within 10 s"; }
sed 's/^/  agent: /' "$tmp/agent.log"

say "on $master: guix-offload discover --trust any"
inns "$master" "$tmp/bin/guix-offload" discover --trust any

if [ "$signed" = yes ]; then
  say "on $master: guix-offload discover --acl ACL --format scm   (default trust policy: signed by a key in the ACL)"
  inns "$master" "$tmp/bin/guix-offload" discover --acl "$tmp/master/acl" --format scm
fi

say "on $master: guix-offload discover --watch, while the agent is stopped with SIGTERM"
setsid ip netns exec "$master" "$tmp/bin/guix-offload" discover --watch --trust any >"$tmp/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 100); do grep -q '^add' "$tmp/watch.log" && break; sleep 0.1; done
kill -TERM "$agent_pid"
wait "$agent_pid" || true
agent_pid=""
for _ in $(seq 50); do grep -q '^remove' "$tmp/watch.log" && break; sleep 0.1; done
kill -TERM "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null || true
watch_pid=""
grep 'goodbye' "$tmp/agent.log" | sed 's/^/  agent: /'
sed 's/^/  discover --watch: /' "$tmp/watch.log"
grep -q '^remove' "$tmp/watch.log" || die "the master did not see the goodbye within 5 s"

say "done; removing the namespaces and temporary files"

#!/usr/bin/env bash
# bench/run.sh — guix-offload's benchmark suite (issue 7).
#
#   bench/run.sh                      # every row group
#   bench/run.sh decide transfer      # a subset: decide accept transfer discover footprint offload widearea hostile
#   bench/run.sh --results            # also rewrite bench/RESULTS.md and docs/benchmarks.md's table
#   bench/run.sh --quick transfer     # small sizes, for a quick look (not for RESULTS.md)
#
# Prints one Markdown table of medians and ratios, each ours against a
# reference measured in the same run on this machine. Needs root (network
# namespaces, sshd); installs what it needs with apt-get; everything runs on
# 127.0.0.1 or inside network namespaces it makes and removes (addresses in
# 169.254.0.0/16 only). Takes 7-15 minutes on a 2-core machine, by its load.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

groups=(decide accept transfer discover footprint offload widearea hostile)
selected=()
results=no
quick=()
for a in "$@"; do
  case "$a" in
    --results) results=yes ;;
    --quick) quick=(-bench.transfer-mib=64 -bench.corpus-mib=64 -bench.runs=2 -bench.probes=6
                    -bench.discover-runs=3 -bench.agents=8 -bench.idle=10s) ;;
    -h|--help) usage ;;
    *)
      ok=no
      for g in "${groups[@]}"; do [ "$a" = "$g" ] && ok=yes; done
      [ $ok = yes ] || { echo "run.sh: unknown row group '$a' (known: ${groups[*]})" >&2; exit 2; }
      selected+=("$a") ;;
  esac
done
[ ${#selected[@]} -gt 0 ] || selected=("${groups[@]}")
if [ $results = yes ] && [ ${#quick[@]} -gt 0 ]; then
  echo "run.sh: --quick figures do not go into RESULTS.md" >&2; exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: needs root (network namespaces, sshd on 127.0.0.1)" >&2; exit 1
fi

# The real peers the rows compare against, and the tools the rows use.
packages=(guile-3.0 guile-ssh openssh-server openssh-client iproute2 avahi-daemon
  avahi-utils dbus procps util-linux bind9 bind9-dnsutils bind9-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
policy_made=no
tmp=$(mktemp -d /tmp/guix-offload-bench.XXXXXX)
pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # The suite stops on SIGTERM and runs its own cleanups; give it time.
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Whatever namespaces the suite made and could not remove (killed with
  # SIGKILL): only those it listed, never anyone else's.
  if [ -s "$tmp/namespaces" ]; then
    while read -r ns; do
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
      ip netns delete "$ns" 2>/dev/null || true
    done < "$tmp/namespaces"
  fi
  [ $policy_made = yes ] && rm -f /usr/sbin/policy-rc.d
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ${#missing[@]} -gt 0 ]; then
  # Installed services must not start in this machine's own network
  # namespace (avahi-daemon would multicast on its real interface).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_made=yes
  fi
  echo "run.sh: installing ${missing[*]}" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# With --results, measure exactly the committed tree (HEAD), so that
# RESULTS.md names the commit it measured; otherwise the working tree.
src=$PWD
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ $results = yes ]; then
  if [ -n "$(git status --porcelain -- . 2>/dev/null)" ]; then
    echo "run.sh: --results measures commit $commit; uncommitted changes in this tree are not measured" >&2
  fi
  src=$tmp/src
  mkdir -p "$src"
  git archive HEAD | tar -x -C "$src"
fi
echo "run.sh: building the suite" >&2
(cd "$src" && go test -tags bench -c -o "$tmp/bench.test" ./bench)

rows=$(IFS=,; echo "${selected[*]}")
start=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "run.sh: measuring $rows (started $start)" >&2
# The suite runs from bench/ (its Guile scripts are there); its progress
# goes to stderr, the table to stdout and $tmp/table.md.
(cd "$src/bench" && exec "$tmp/bench.test" -test.run '^TestSuite$' -test.v -test.timeout 30m \
  -bench.rows="$rows" -bench.out="$tmp/table.md" -bench.summary="$tmp/summary.md" \
  -bench.manifest="$tmp/namespaces" \
  "${quick[@]}") >&2 &
pid=$!
status=0
wait $pid || status=$?
pid=""
if [ ! -s "$tmp/table.md" ]; then
  echo "run.sh: the suite stopped (status $status) before printing its table" >&2
  exit 1
fi
cat "$tmp/table.md"
[ $status -eq 0 ] || echo "run.sh: some measures failed (status $status); their rows say so, the log above says why" >&2

if [ $results = yes ]; then
  mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  machine="$(nproc) CPUs ($cpu), $mem memory, Linux $(uname -r)"
  cmdline="bench/run.sh --results"
  [ ${#selected[@]} -lt ${#groups[@]} ] && cmdline="bench/run.sh --results ${selected[*]}"
  {
    echo "# Benchmark results"
    echo
    echo "Measured $start with \`$cmdline\` (as root), at commit $commit."
    echo
    echo "Machine: $machine, shared with other work while measuring — hence"
    echo "medians and ratios measured in the same run. Ratios are ours ÷ reference:"
    echo "below 1 is better for times, memory and CPU, above 1 for throughput."
    echo
    cat "$tmp/table.md"
  } > bench/RESULTS.md
  echo "run.sh: wrote bench/RESULTS.md" >&2

  # docs/benchmarks.md's copy of the table, between its markers; nothing
  # else in that page is touched.
  begin='<!-- bench-results:begin -->'
  end='<!-- bench-results:end -->'
  if grep -qxF "$begin" docs/benchmarks.md && grep -qxF "$end" docs/benchmarks.md; then
    {
      echo "$begin"
      echo
      echo "Latest run ($start, $machine; \`$cmdline\`). How each figure was"
      echo "taken is under the full table in [bench/RESULTS.md](../bench/RESULTS.md)."
      echo
      cat "$tmp/summary.md"
      echo
      echo "$end"
    } > "$tmp/section"
    awk -v b="$begin" -v e="$end" -v f="$tmp/section" '
      $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
      $0 == e { skip = 0; next }
      !skip { print }' docs/benchmarks.md > "$tmp/benchmarks.md"
    cat "$tmp/benchmarks.md" > docs/benchmarks.md
    echo "run.sh: updated the table in docs/benchmarks.md" >&2
  else
    echo "run.sh: docs/benchmarks.md has no $begin … $end markers; its table was not updated" >&2
  fi
fi
exit $status

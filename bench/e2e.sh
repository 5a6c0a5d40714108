#!/usr/bin/env bash
# bench/e2e.sh [REPO]: the whole path, from `fgctl project add` to a queryable graph, on a
# dedicated stack (FG_STACK_DIR=var/bench-e2e, FG_PORT_OFFSET=800, release build in build-bench).
#
# REPO defaults to the synthetic history of bench/extract.sh (bench/gen_repo.py, seed 1) with
# BENCH_COMMITS commits (default 100,000), made once and kept in var/bench/. The bench works on a
# bare clone of REPO (hard-linked objects; REPO itself is never written), because it adds one
# commit to it:
#   1. register the clone (fgctl project add --forge git), time until the project is done and
#      every event is TRIPLES_STORE;
#   2. add one commit, request a sync (fgctl project sync), time until SPARQL ASK finds its IRI;
#   3. compare the graph with git: commits, distinct author emails (ASCII lower-cased),
#      insertions, deletions (--no-renames, merges give 0); exit 1 on any mismatch;
#   4. print each service's idle resident memory (VmRSS) and take the stack down (--purge;
#      BENCH_KEEP_LOGS=DIR copies the services' logs to DIR first).
# Also printed: when the first commit sync completed (event-log's `synced`), polled every 0.2 s.
#
# Last line: bench e2e commits=… seconds=… commits_per_s=… triples=… push_to_query_ms=…
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
commits_wanted=${BENCH_COMMITS:-100000}
timeout_s=${BENCH_TIMEOUT:-1800}
repo=${1:-}

export FG_STACK_DIR=${FG_STACK_DIR:-$root/var/bench-e2e}
export FG_PORT_OFFSET=${FG_PORT_OFFSET:-800}
export FG_BUILD_DIR=${FG_BUILD_DIR:-$root/build-bench}
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
stack=$root/deploy/local/stack.sh
fgctl=$FG_BUILD_DIR/tools/fgctl/fgctl
services="token-repository event-log webhook commit-sync triples-generator"

now() { date +%s.%N; }
say() { echo "bench e2e: $*" >&2; }

if [ -z "$repo" ]; then
  repo=$root/var/bench/synthetic-$commits_wanted-seed1.git
  if [ ! -d "$repo" ]; then
    mkdir -p "$root/var/bench"
    rm -rf "$repo.tmp"
    say "generating $repo (once)"
    python3 "$root/bench/gen_repo.py" --out "$repo.tmp" --commits "$commits_wanted" --seed 1
    mv "$repo.tmp" "$repo"
  fi
fi
repo=$(cd "$repo" && pwd)

say "release build in $FG_BUILD_DIR"
cmake -S "$root" -B "$FG_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFG_TESTS=OFF >/dev/null
cmake --build "$FG_BUILD_DIR" -j"$(nproc)" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/fg-bench-e2e.XXXXXX")
cleanup() {
  [ -z "${poller:-}" ] || kill "$poller" 2>/dev/null || true
  "$stack" down --purge ${BENCH_KEEP_LOGS:+--keep-logs "$BENCH_KEEP_LOGS"} >/dev/null 2>&1 ||
    echo "bench e2e: stack.sh down failed" >&2
  rm -rf "$work"
}
trap cleanup EXIT
clone=$work/repo.git
git clone -q --bare "$repo" "$clone"

say "starting the stack ($FG_STACK_DIR, offset $FG_PORT_OFFSET); load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
"$stack" down --purge >/dev/null 2>&1 || true
"$stack" up >&2
eval "$("$stack" env)"

# ---- 1. registration to every event in TRIPLES_STORE ----
t0=$(now)
id=$("$fgctl" --json project add --forge git --url "$clone" --path "bench/e2e-$$" |
  sed -n 's/^ *"id": *\([0-9]*\).*/\1/p' | head -1)
[ -n "$id" ] || { say "project add failed"; exit 1; }
# when the first sync completes (every event known to event-log), beside --wait
(
  until "$fgctl" --json project status "$id" 2>/dev/null | grep -q '"synced": *true'; do
    sleep 0.2
  done
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "bench e2e: first commit sync done after %.2f s\n", b - a }' >&2
) &
poller=$!
"$fgctl" project status "$id" --wait --timeout "$timeout_s" >&2
t1=$(now)
wait "$poller" || true
poller=
status_json=$("$fgctl" --json project status "$id")
total=$(printf '%s' "$status_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
stored=$(printf '%s' "$status_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["byStatus"]["TRIPLES_STORE"])')
mismatch=0
if [ "$total" != "$stored" ]; then
  say "MISMATCH: $stored of $total events in TRIPLES_STORE"
  mismatch=1
fi

graph="<$FG_GRAPH_BASE/projects/$id>"
prefix='PREFIX fg: <https://w3id.org/forgegraph/ns#> PREFIX prov: <http://www.w3.org/ns/prov#>'
value() { "$fgctl" sparql "$prefix $1" | sed -n 2p | tr -d '\r'; }

# ---- 2. one new commit: from the sync request to a queryable commit ----
branch=$(git -C "$clone" symbolic-ref HEAD)
export GIT_INDEX_FILE=$work/index
git -C "$clone" read-tree HEAD
blob=$(printf 'bench e2e %s\nsecond line\n' "$(now)" | git -C "$clone" hash-object -w --stdin)
git -C "$clone" update-index --add --cacheinfo "100644,$blob,bench-e2e-$$.txt"
tree=$(git -C "$clone" write-tree)
unset GIT_INDEX_FILE
sha=$(GIT_AUTHOR_NAME='Bench Pusher' GIT_AUTHOR_EMAIL=bench-pusher@example.org \
  GIT_COMMITTER_NAME='Bench Pusher' GIT_COMMITTER_EMAIL=bench-pusher@example.org \
  git -C "$clone" commit-tree "$tree" -p HEAD -m "bench e2e: one pushed commit")
git -C "$clone" update-ref "$branch" "$sha"
ask="ASK { GRAPH $graph { <$FG_GRAPH_BASE/commits/$sha> a fg:Commit } }"
p0=$(now)
"$fgctl" project sync "$id" >/dev/null
deadline=$(($(date +%s) + 120))
until [ "$("$fgctl" sparql "$prefix $ask")" = true ]; do
  if [ "$(date +%s)" -gt "$deadline" ]; then
    say "the pushed commit $sha is not queryable after 120 s"
    exit 1
  fi
  sleep 0.005
done
p1=$(now)
"$fgctl" project status "$id" --wait --timeout 120 >/dev/null

# ---- 3. the graph against git ----
git_commits=$(git -C "$clone" rev-list --branches --tags | wc -l)
git_authors=$(git -C "$clone" log --branches --tags --format=%ae | tr 'A-Z' 'a-z' | sort -u | wc -l)
read -r git_ins git_del < <(git -C "$clone" log --branches --tags --no-renames --numstat --format= |
  awk -F'\t' '$1 != "-" { i += $1 } $2 != "-" { d += $2 } END { printf "%d %d\n", i, d }')
g_commits=$(value "SELECT (COUNT(DISTINCT ?c) AS ?n) WHERE { GRAPH $graph { ?c a fg:Commit } }")
g_authors=$(value "SELECT (COUNT(DISTINCT ?p) AS ?n) WHERE { GRAPH $graph { ?a fg:type \"authored-commit\" ; prov:wasAssociatedWith ?p } }")
g_ins=$(value "SELECT (SUM(?i) AS ?n) WHERE { GRAPH $graph { ?c a fg:Commit ; fg:insertions ?i } }")
g_del=$(value "SELECT (SUM(?d) AS ?n) WHERE { GRAPH $graph { ?c a fg:Commit ; fg:deletions ?d } }")
triples=$(value "SELECT (COUNT(*) AS ?n) WHERE { GRAPH $graph { ?s ?p ?o } }")
check() {
  if [ "$2" = "$3" ]; then
    say "$1: graph $2 = git $3"
  else
    say "MISMATCH $1: graph $2, git $3"
    mismatch=1
  fi
}
check commits "$g_commits" "$git_commits"
check "distinct author emails" "$g_authors" "$git_authors"
check insertions "$g_ins" "$git_ins"
check deletions "$g_del" "$git_del"

# ---- 4. idle memory ----
for svc in $services; do
  pid=$("$stack" status | awk -v s="$svc" '$1 == s && $2 == "running" { print $4 }')
  # resident: anonymous (heap, stacks) and file-backed (mostly shared libraries' pages)
  rss=$(awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%s%.1f", n++ ? " " : "", $2 / 1024 }' \
    "/proc/$pid/status" 2>/dev/null || echo '? ? ?')
  read -r total_mb anon_mb file_mb <<<"$rss"
  echo "idle rss $svc pid=$pid rss_mb=$total_mb anon_mb=$anon_mb file_mb=$file_mb"
done

awk -v c="$total" -v a="$t0" -v b="$t1" -v t="$triples" -v p="$p0" -v q="$p1" 'BEGIN {
  s = b - a
  printf "bench e2e commits=%d seconds=%.2f commits_per_s=%.0f triples=%d push_to_query_ms=%.0f\n",
         c, s, c / s, t, (q - p) * 1000 }'
exit $mismatch

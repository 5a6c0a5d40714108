#!/usr/bin/env bash
# bench/extract.sh [REPO]: commit extraction (cs_extract, every core) against git's own
# `git log --branches --tags --no-renames --numstat --format=fuller` on the same repository, in
# the same run. Each side runs FG_BENCH_RUNS times (default 3) and its best wall time counts.
# Our totals (commits, insertions, deletions, files) must equal git's: exit 1 otherwise.
#
# REPO defaults to a synthetic history of 100,000 commits (bench/gen_repo.py, seed 1), made once
# with git fast-import and kept in var/bench/. The driver is fg-bench-extract from a Release
# build in FG_BUILD_DIR (default build-rel), built here if missing.
#
# Last line: bench extract commits=… ours_s=… git_log_numstat_s=… ratio=… peak_rss_mb=…
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FG_BUILD_DIR:-$root/build-rel}
runs=${FG_BENCH_RUNS:-3}
driver=$build/bench/fg-bench-extract
repo=${1:-}

# git must not read this machine's configuration (diff.algorithm, log.showRoot... change counts)
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

if [ -z "$repo" ]; then
  repo=$root/var/bench/synthetic-100000-seed1.git
  if [ ! -d "$repo" ]; then
    mkdir -p "$root/var/bench"
    rm -rf "$repo.tmp"
    echo "generating $repo (once; a few minutes)" >&2
    python3 "$root/bench/gen_repo.py" --out "$repo.tmp" --commits 100000 --seed 1
    mv "$repo.tmp" "$repo"
  fi
fi
if [ ! -x "$driver" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFG_TESTS=OFF >/dev/null
  cmake --build "$build" --target fg-bench-extract -j"$(nproc)" >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "repo=$repo load: $(cut -d' ' -f1-3 /proc/loadavg) cores=$(nproc)" >&2

# git's totals, from one untimed run
git -C "$repo" log --branches --tags --no-renames --numstat --format=fuller | awk '
  /^commit [0-9a-f]+/ { commits++ }
  /^([0-9]+|-)\t([0-9]+|-)\t/ { files++; if ($1 != "-") ins += $1; if ($2 != "-") del += $2 }
  END { printf "commits=%d insertions=%d deletions=%d files=%d\n", commits, ins, del, files }' \
  >"$tmp/git_totals"

best() { sort -g | head -1; }
for i in $(seq "$runs"); do
  /usr/bin/time -f "%e %M" -o "$tmp/git_time.$i" \
    git -C "$repo" log --branches --tags --no-renames --numstat --format=fuller >/dev/null
  /usr/bin/time -f "%e %M" -o "$tmp/ours_time.$i" "$driver" "$repo" >"$tmp/ours_out.$i"
  echo "run $i: git $(cut -d' ' -f1 "$tmp/git_time.$i") s, ours $(cut -d' ' -f1 "$tmp/ours_time.$i") s" >&2
done
git_s=$(cat "$tmp"/git_time.* | cut -d' ' -f1 | best)
ours_s=$(cat "$tmp"/ours_time.* | cut -d' ' -f1 | best)
rss_kb=$(cat "$tmp"/ours_time.* | cut -d' ' -f2 | sort -g | tail -1)
git_rss_kb=$(cat "$tmp"/git_time.* | cut -d' ' -f2 | sort -g | tail -1)

# every run of ours must give git's totals
status=0
for out in "$tmp"/ours_out.*; do
  ours=$(grep -o 'commits=[0-9]* merges=[0-9]* insertions=[0-9]* deletions=[0-9]* files=[0-9]*' "$out" |
    sed 's/ merges=[0-9]*//')
  if [ "$ours" != "$(cat "$tmp/git_totals")" ]; then
    echo "MISMATCH: ours [$ours] git [$(cat "$tmp/git_totals")]" >&2
    status=1
  fi
done
commits=$(sed 's/commits=\([0-9]*\).*/\1/' "$tmp/git_totals")
awk -v c="$commits" -v o="$ours_s" -v g="$git_s" -v r="$rss_kb" -v gr="$git_rss_kb" \
  -v t="$(nproc)" -v ok="$status" 'BEGIN {
  printf "bench extract commits=%d ours_s=%.2f git_log_numstat_s=%.2f ratio=%.2f peak_rss_mb=%.0f " \
         "ours_commits_per_s=%.0f git_commits_per_s=%.0f git_peak_rss_mb=%.0f threads=%d totals_equal=%s\n",
         c, o, g, o / g, r / 1024, c / o, c / g, gr / 1024, t, ok == 0 ? "yes" : "no" }'
exit $status

#!/usr/bin/env bash
# forgegraph in one command: installs the Debian packages that are missing, builds the release
# binaries, starts the local stack (servers + the five services) and runs the main job.
# Stop everything with: deploy/local/stack.sh down      (runbook: docs/operations.md)
#
# Settings are stack.sh's (FG_STACK_DIR, FG_PORT_OFFSET, FG_BUILD_DIR, ...).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK="$REPO/deploy/local/stack.sh"

step() { printf '\n==> %s\n' "$*"; }

BUILD_DIR=${FG_BUILD_DIR:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$REPO/$BUILD_DIR ;; esac

build() {
	cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFG_TESTS=OFF
	cmake --build "$BUILD_DIR" -j"$(nproc)"
}

FGCTL() { "$BUILD_DIR/tools/fgctl/fgctl" "$@"; }

# The main job: forgegraph turns its own repository into a knowledge graph and reports on it.
# Registering is idempotent and a sync is requested each time, so a second run picks up new
# commits and changes nothing else.
main_job() {
	local env_out id graph
	env_out=$("$STACK" env)
	eval "$env_out"
	FGCTL status
	step "registering this repository ($REPO)"
	id=$(FGCTL --json project add --forge git --url "$REPO" --path forgegraph/forgegraph |
		sed -n 's/^ *"id": *\([0-9]*\).*/\1/p' | head -1)
	if [ -z "$id" ]; then
		echo "up.sh: registering the repository failed" >&2
		exit 1
	fi
	FGCTL project sync "$id" >/dev/null
	step "waiting until every commit of project $id is in the graph"
	FGCTL project status "$id" --wait --timeout "${FG_DEMO_TIMEOUT:-900}"
	graph="<$FG_GRAPH_BASE/projects/$id>"
	step "report (SPARQL over $graph)"
	report "$graph"
	cat <<EOF

The stack is up (state in $FG_STACK_DIR).
  configure a shell (fgctl, psql, curl):  eval "\$($STACK env)"
  query the graph:                        $BUILD_DIR/tools/fgctl/fgctl sparql 'SELECT ...'
  status / logs:                          $STACK status ; $STACK logs [name] [-f]
  stop everything:                        $STACK down
EOF
}

# A short report from SPARQL over the project's graph.
report() {
	local g=$1
	local p='PREFIX fg: <https://w3id.org/forgegraph/ns#> PREFIX prov: <http://www.w3.org/ns/prov#> PREFIX schema: <http://schema.org/>'
	echo "-- commits and lines"
	FGCTL sparql "$p SELECT (COUNT(DISTINCT ?c) AS ?commits) (SUM(?i) AS ?insertions) (SUM(?d) AS ?deletions) WHERE { GRAPH $g { ?c a fg:Commit ; fg:insertions ?i ; fg:deletions ?d } }"
	echo "-- contributors"
	FGCTL sparql "$p SELECT (COUNT(DISTINCT ?person) AS ?contributors) WHERE { GRAPH $g { ?a a fg:Activity ; prov:wasAssociatedWith ?person } }"
	echo "-- activities by type"
	FGCTL sparql "$p SELECT ?type (COUNT(?a) AS ?activities) WHERE { GRAPH $g { ?a fg:type ?type } } GROUP BY ?type ORDER BY DESC(?activities)"
	echo "-- top 5 contributors (authored commits)"
	FGCTL sparql "$p SELECT (SAMPLE(?n) AS ?name) (COUNT(DISTINCT ?c) AS ?commits) WHERE { GRAPH $g { ?a fg:type \"authored-commit\" ; fg:commit ?c ; prov:wasAssociatedWith ?person . ?person schema:name ?n } } GROUP BY ?person ORDER BY DESC(?commits) LIMIT 5"
}

main() {
	step "installing missing packages"
	"$REPO/deploy/local/install-deps.sh"
	step "building (release)"
	build
	step "starting the local stack"
	"$STACK" up
	step "main job"
	main_job
}

main "$@"

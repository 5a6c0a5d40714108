#!/usr/bin/env bash
# Installs the Debian 12 packages forgegraph needs to build, test and run its local stack.
# Idempotent: it asks dpkg what is missing first, so a second run takes a fraction of a second and
# touches neither the network nor apt's lists. Run as root, or as a user with sudo.
#
# Note: where /usr/sbin/policy-rc.d does not forbid it, installing postgresql, rabbitmq-server and
# virtuoso-opensource also starts Debian's system services (ports 5432, 5672/4369, 1111/8890).
# The local stack (deploy/local/stack.sh) never uses them and never collides with them: it runs its
# own servers on its own ports and directories.
set -euo pipefail

# One list, grouped by why we need it. Keep it exact: every package here is used by the build, the
# tests, the local stack or the benchmarks.
PACKAGES=(
	# toolchain (a fresh Debian 12 may lack them; gcc only *recommends* libc6-dev)
	gcc libc6-dev make cmake pkg-config git
	# libraries (cmake/FgDeps.cmake); the sanitizer runtimes come with gcc-12
	libevent-dev libgit2-dev libcurl4-openssl-dev librabbitmq-dev libjson-c-dev libpq-dev
	libssl-dev zlib1g-dev libcmocka-dev
	# servers of the local stack: PostgreSQL 15, RabbitMQ 3.10 (+ Erlang, epmd), Virtuoso 7
	postgresql rabbitmq-server virtuoso-opensource
	# tools used by stack.sh, the tests and the benchmarks
	curl ca-certificates python3 python3-jsonschema procps iproute2 wrk
)

# Prints the packages that dpkg does not report as installed.
missing_packages() {
	local pkg status
	for pkg in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		if [ "$status" != installed ]; then
			printf '%s\n' "$pkg"
		fi
	done
}

main() {
	local missing=() sudo=()

	if ! command -v dpkg-query >/dev/null 2>&1; then
		echo "install-deps.sh: this script needs Debian 12 (dpkg/apt); install the packages listed in it by hand" >&2
		exit 1
	fi
	mapfile -t missing < <(missing_packages)
	if [ "${#missing[@]}" -eq 0 ]; then
		echo "install-deps.sh: all ${#PACKAGES[@]} packages are installed"
		return 0
	fi

	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			echo "install-deps.sh: missing packages and not root (no sudo); run as root:" >&2
			echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
			exit 1
		fi
	fi

	echo "install-deps.sh: installing ${missing[*]}"
	# Lock::Timeout: wait for another apt run (unattended-upgrades, a parallel job) instead of failing.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
		--no-install-recommends "${missing[@]}"

	mapfile -t missing < <(missing_packages)
	if [ "${#missing[@]}" -ne 0 ]; then
		echo "install-deps.sh: still missing after apt-get install: ${missing[*]}" >&2
		exit 1
	fi
	echo "install-deps.sh: done"
}

main "$@"

#!/usr/bin/env bash
# bench-compare.sh [BASE]: builds the standalone switchboard at git revision
# BASE (default: the merge base of HEAD and main) and from the working
# tree, and runs tools/loadgen/benchcompare against both and against the
# load generator's ceilings, in one run. Loopback only; a few minutes.
# Extra flags for benchcompare come from BENCH_FLAGS (e.g. -quick).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
base=${1:-}
if [[ -z "$base" ]]; then
	base=$(git merge-base HEAD main)
fi
base=$(git rev-parse --verify "$base^{commit}")
head=$(git rev-parse --short HEAD)
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
	head="$head+dirty"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
cleanup() {
	git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true
	rm -rf "$tmp/base" "$tmp/bin"
}
trap cleanup EXIT

echo "bench-compare: base $(git rev-parse --short "$base"), working tree $head; building in $tmp" >&2
git worktree add --detach --quiet "$tmp/base" "$base"
mkdir -p "$tmp/bin" "$tmp/out"
(cd "$tmp/base" && go build -o "$tmp/bin/switchboard-base" ./services/standalone/cmd/switchboard)
go build -o "$tmp/bin/switchboard-head" ./services/standalone/cmd/switchboard
go build -o "$tmp/bin/loadgen" ./tools/loadgen
go build -o "$tmp/bin/benchcompare" ./tools/loadgen/benchcompare
# The nats-ws reference runs the real nats-server, as deploy/cluster.sh does.
if [[ ! -x .bin/nats-server ]]; then
	echo "installing nats-server v2.15.2 into .bin/" >&2
	GOWORK=off GOBIN="$root/.bin" go install github.com/nats-io/nats-server/v2@v2.15.2
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$tmp/bin/benchcompare" -base "$tmp/bin/switchboard-base" -head "$tmp/bin/switchboard-head" -loadgen "$tmp/bin/loadgen" -nats-server "$root/.bin/nats-server" \
	-base-rev "$(git rev-parse --short "$base")" -head-rev "$head" -out "$tmp/out" ${BENCH_FLAGS:-}

#!/usr/bin/env bash
# Runs Switchboard as separate services on a 3-node NATS JetStream cluster,
# all on loopback: the way a deployment past one machine is laid out, in
# miniature. Each service connects with its own NATS user (nats/accounts.conf
# confines each to its subjects and its own streams and buckets), after the
# admin user set JetStream up (switchboard -setup); streams and buckets
# have 3 replicas. Org "demo" has a backend user.
#
#   deploy/cluster.sh          start everything (Ctrl-C stops it all)
#
# Everything a run writes (JetStream stores, logs) goes under data/cluster/,
# which git ignores: the servers run from the repo root, where the nodes'
# relative store_dir points. Two variables let a check run it next to a
# `make run` without touching either:
#
#   SWITCHBOARD_CLUSTER_PORT_OFFSET  added to every port (default 0)
#   SWITCHBOARD_CLUSTER_STATE        the directory that holds data/cluster/
#                                    (default the repo root)
#
# Needs nats-server, which this script installs into .bin/ from the Go
# module proxy when it is missing, and builds bin/ (make build) every run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/usr/local/go/bin:$PATH"
off=${SWITCHBOARD_CLUSTER_PORT_OFFSET:-0}
state=$(cd "${SWITCHBOARD_CLUSTER_STATE:-$root}" && pwd)
logs="$state/data/cluster"

if [ ! -x .bin/nats-server ]; then
  echo "installing nats-server v2.15.2 into .bin/" >&2
  GOWORK=off GOBIN="$root/.bin" go install github.com/nats-io/nats-server/v2@v2.15.2
fi
make build >/dev/null

mkdir -p "$logs"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# node_args n: node n's config as it is, or with every port moved by the
# offset.
node_args() {
  local n=$1
  echo -c "$root/deploy/nats/n$n.conf"
  if [ "$off" != 0 ]; then
    local routes="" i
    for i in 1 2 3; do routes="$routes,nats://route:route-local-only@127.0.0.1:$((6221 + i + off))"; done
    echo -p $((4221 + n + off)) -m $((8221 + n + off)) \
      --cluster "nats://127.0.0.1:$((6221 + n + off))" --routes "${routes#,}"
  fi
}
for n in 1 2 3; do
  # shellcheck disable=SC2046 # node_args is a list of words
  (cd "$state" && exec "$root/.bin/nats-server" $(node_args "$n")) >"$logs/n$n.log" 2>&1 &
  pids+=($!)
done

# wait_ready url...: each answers 200 within 30s, or the run stops.
wait_ready() {
  local url
  for url in "$@"; do
    local tries=0
    until curl -sf -o /dev/null "$url"; do
      tries=$((tries + 1))
      if [ "$tries" -gt 300 ]; then
        echo "not ready: $url (logs in $logs/)" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
}
wait_ready "http://127.0.0.1:$((8222 + off))/healthz" "http://127.0.0.1:$((8223 + off))/healthz" \
  "http://127.0.0.1:$((8224 + off))/healthz"

urls() { # user, then the node to try first
  local u=$1 first=$2 out=""
  for i in 0 1 2; do
    local n=$(( (first + i) % 3 + 1 ))
    out="$out,nats://$u:$u-local-only@127.0.0.1:$((4221 + n + off))"
  done
  echo "${out#,}"
}

export SWITCHBOARD_REPLICAS=3
export SWITCHBOARD_JWT_SECRET=${SWITCHBOARD_JWT_SECRET:-cluster-demo-secret-change-me-0123456789}
service() { # binary log user first-node, then VAR=value...
  local bin=$1 log=$2 user=$3 first=$4
  shift 4
  env SWITCHBOARD_NATS_URL="$(urls "$user" "$first")" "$@" "bin/$bin" >"$logs/$log.log" 2>&1 &
  pids+=($!)
}
# Only the admin may create or update streams and buckets: once, here.
if ! SWITCHBOARD_NATS_URL="$(urls admin 0)" bin/switchboard -setup >"$logs/setup.log" 2>&1; then
  echo "JetStream setup failed (logs in $logs/setup.log)" >&2
  exit 1
fi
service messaging messaging messaging 0 SWITCHBOARD_METRICS_LISTEN="127.0.0.1:$((9101 + off))"
service messaging messaging2 messaging 1 SWITCHBOARD_METRICS_LISTEN="127.0.0.1:$((9102 + off))"
service presence presence presence 1 SWITCHBOARD_METRICS_LISTEN="127.0.0.1:$((9103 + off))"
service ratelimit ratelimit ratelimit 2 SWITCHBOARD_METRICS_LISTEN="127.0.0.1:$((9104 + off))"
service edge edge1 edge 0 SWITCHBOARD_LISTEN="127.0.0.1:$((8080 + off))" SWITCHBOARD_METRICS_LISTEN="127.0.0.1:$((9105 + off))"
service edge edge2 edge 2 SWITCHBOARD_LISTEN="127.0.0.1:$((8081 + off))" SWITCHBOARD_METRICS_LISTEN="127.0.0.1:$((9106 + off))"
ready=()
for p in 9101 9102 9103 9104 8080 8081; do ready+=("http://127.0.0.1:$((p + off))/readyz"); done
wait_ready "${ready[@]}"

cat <<MSG
Switchboard on a 3-node NATS cluster (logs in $logs/):
  NATS nodes   nats://127.0.0.1:$((4222 + off)) $((4223 + off)) $((4224 + off)) (monitoring http://127.0.0.1:$((8222 + off)) ...)
  edges        ws://127.0.0.1:$((8080 + off))/ws  ws://127.0.0.1:$((8081 + off))/ws (metrics on 127.0.0.1:$((9105 + off)), $((9106 + off)))
  services     messaging x2, presence, ratelimit (metrics on 127.0.0.1:$((9101 + off))-$((9104 + off)))
  JWT secret   $SWITCHBOARD_JWT_SECRET
  backend      $(urls backend-demo 0 | cut -d, -f1) (org demo; inbox prefix _INBOX_backend-demo)
cluster ready; Ctrl-C stops everything.
MSG
wait

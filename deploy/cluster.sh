#!/usr/bin/env bash
# Runs Switchboard as separate services on a 3-node NATS JetStream cluster,
# all on loopback: the way a deployment past one machine is laid out, in
# miniature. Each service connects with its own NATS user (nats/accounts.conf
# confines each to its subjects) and streams and buckets have 3 replicas.
#
#   deploy/cluster.sh          start everything (Ctrl-C stops it all)
#
# Needs: bin/ (make build) and nats-server, which this script installs into
# .bin/ from the Go module proxy when it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/usr/local/go/bin:$PATH"

if [ ! -x .bin/nats-server ]; then
  echo "installing nats-server v2.15.2 into .bin/" >&2
  GOWORK=off GOBIN="$root/.bin" go install github.com/nats-io/nats-server/v2@v2.15.2
fi
[ -x bin/switchboard ] || make build >/dev/null

mkdir -p data/cluster
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for n in 1 2 3; do
  (cd deploy/nats && exec "$root/.bin/nats-server" -c "n$n.conf") >"data/cluster/n$n.log" 2>&1 &
  pids+=($!)
done
sleep 2

urls() { # user, then the node to try first
  local u=$1 first=$2 out=""
  for i in 0 1 2; do
    local n=$(( (first + i) % 3 + 1 ))
    out="$out,nats://$u:$u-local-only@127.0.0.1:$((4221 + n))"
  done
  echo "${out#,}"
}

export SWITCHBOARD_REPLICAS=3
export SWITCHBOARD_JWT_SECRET=${SWITCHBOARD_JWT_SECRET:-cluster-demo-secret-change-me}
SWITCHBOARD_NATS_URL=$(urls messaging 0) SWITCHBOARD_METRICS_LISTEN=127.0.0.1:9101 bin/messaging >data/cluster/messaging.log 2>&1 &
pids+=($!)
SWITCHBOARD_NATS_URL=$(urls messaging 1) SWITCHBOARD_METRICS_LISTEN=127.0.0.1:9102 bin/messaging >data/cluster/messaging2.log 2>&1 &
pids+=($!)
SWITCHBOARD_NATS_URL=$(urls presence 1) SWITCHBOARD_METRICS_LISTEN=127.0.0.1:9103 bin/presence >data/cluster/presence.log 2>&1 &
pids+=($!)
SWITCHBOARD_NATS_URL=$(urls ratelimit 2) SWITCHBOARD_METRICS_LISTEN=127.0.0.1:9104 bin/ratelimit >data/cluster/ratelimit.log 2>&1 &
pids+=($!)
SWITCHBOARD_NATS_URL=$(urls edge 0) SWITCHBOARD_LISTEN=127.0.0.1:8080 bin/edge >data/cluster/edge1.log 2>&1 &
pids+=($!)
SWITCHBOARD_NATS_URL=$(urls edge 2) SWITCHBOARD_LISTEN=127.0.0.1:8081 bin/edge >data/cluster/edge2.log 2>&1 &
pids+=($!)
sleep 2

cat <<MSG
Switchboard on a 3-node NATS cluster (logs in data/cluster/):
  NATS nodes   nats://127.0.0.1:4222 4223 4224 (monitoring http://127.0.0.1:8222 ...)
  edges        ws://127.0.0.1:8080/ws  ws://127.0.0.1:8081/ws
  services     messaging x2, presence, ratelimit (metrics on 127.0.0.1:9101-9104)
  JWT secret   $SWITCHBOARD_JWT_SECRET
Ctrl-C stops everything.
MSG
wait

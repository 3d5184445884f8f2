#!/usr/bin/env bash
# Regenerates proto/chatv1 from proto/switchboard/v1/*.proto with pinned tools.
#   scripts/gen-proto.sh            write the generated code into proto/chatv1
#   scripts/gen-proto.sh --check    fail when the committed code is stale
# It installs what it needs itself: Debian's protobuf-compiler (3.21.12) and
# protoc-gen-go from the Go module proxy (v1.36.12, into .bin/).
set -euo pipefail
PROTOC_VERSION=3.21.12
PROTOC_GEN_GO_VERSION=v1.36.12

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.bin"
mkdir -p "$bin"

if ! command -v protoc >/dev/null || ! protoc --version | grep -q "$PROTOC_VERSION"; then
  echo "installing protobuf-compiler $PROTOC_VERSION (apt)" >&2
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "protobuf-compiler=${PROTOC_VERSION}*" >/dev/null
fi
if [ ! -x "$bin/protoc-gen-go" ] || ! "$bin/protoc-gen-go" --version | grep -q "${PROTOC_GEN_GO_VERSION#v}"; then
  echo "installing protoc-gen-go $PROTOC_GEN_GO_VERSION" >&2
  GOWORK=off GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi

out="$root/proto/chatv1"
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
PATH="$bin:$PATH" protoc -I "$root/proto" \
  --go_out="$out" --go_opt=paths=source_relative \
  "$root"/proto/switchboard/v1/*.proto
# paths=source_relative writes under switchboard/v1; flatten into the package dir.
mv "$out"/switchboard/v1/*.pb.go "$out"/
rm -rf "$out/switchboard"

if [ "${1:-}" = "--check" ]; then
  if ! diff -ru "$root/proto/chatv1" "$out" >/dev/null; then
    diff -ru "$root/proto/chatv1" "$out" | head -40 >&2
    echo "proto/chatv1 is stale: run 'make proto' and commit the result" >&2
    exit 1
  fi
  echo "proto/chatv1 is up to date"
fi

#!/usr/bin/env bash
# test-s3.sh - start a throw-away OpenStack Swift with the S3 API (s3api) on
# 127.0.0.1 for the S3 ObjectStore tests, and export what they read:
#   TEST_S3_ENDPOINT TEST_S3_ACCESS_KEY_ID TEST_S3_SECRET_ACCESS_KEY
#   TEST_S3_REGION TEST_S3_PUBLIC_BASE   (+ TEST_S3_DIR, Swift's directory)
#
#   source scripts/test-s3.sh          starts Swift, exports the variables,
#                                      defines test_s3_stop and adds it to the
#                                      shell's EXIT trap (keeping any earlier one)
#   eval "$(bash scripts/test-s3.sh)"  the same, for shells that prefer eval
#   bash scripts/test-s3.sh stop DIR   stops a Swift started by this script and
#                                      removes DIR if this script created it
#
# CI (.ci/run, as root):
#   source scripts/test-s3.sh
#   REQUIRE_REAL_SERVICES=1 npx vitest run
#
# The first start installs Debian's swift packages (apt; runs apt-get update
# when the lists are stale) - about 45 s; later starts take about 5 s.
# Uses ../shared/tools/swift-s3.sh next to the repo when present, else the
# copy in scripts/swift-s3.sh; SWIFT_S3_SH overrides both.
# Env: TEST_S3_DIR (default: a fresh mktemp dir; its filesystem needs user
# xattrs, so not tmpfs on Linux < 6.6), TEST_S3_PORT (default: 8090 or the
# first free port above), SWIFT_S3_START_TIMEOUT (seconds, default 60).

# Everything runs in functions with local variables and without `set -e`, so
# sourcing this file never changes the options or variables of the caller's
# shell beyond the exports and the stop function.

_test_s3_swift_sh() {
  local here repo
  here=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd -P) || return 1
  repo=$(dirname "$here")
  if [ -n "${SWIFT_S3_SH:-}" ]; then
    printf '%s\n' "$SWIFT_S3_SH"
  elif [ -f "$repo/../shared/tools/swift-s3.sh" ]; then
    printf '%s\n' "$(cd -P "$repo/../shared/tools" && pwd -P)/swift-s3.sh"
  elif [ -f "$here/swift-s3.sh" ]; then
    printf '%s\n' "$here/swift-s3.sh"
  else
    echo "test-s3: swift-s3.sh not found (looked in $repo/../shared/tools and $here)" >&2
    return 1
  fi
}

# Prints shell code (exports, test_s3_stop, EXIT trap) for the caller to eval.
_test_s3_start() {
  local swift dir own=0 out t0 t1 line name value
  swift=$(_test_s3_swift_sh) || return 1
  dir=${TEST_S3_DIR:-}
  if [ -z "$dir" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/lcs-test-s3.XXXXXX") || return 1
    own=1
  fi
  t0=$(date +%s%N)
  if ! out=$(bash "$swift" start "$dir" ${TEST_S3_PORT:+"$TEST_S3_PORT"}); then
    echo "test-s3: Swift did not start (logs: $dir/log)" >&2
    [ "$own" = 1 ] && rm -rf -- "$dir"
    return 1
  fi
  t1=$(date +%s%N)
  printf 'test-s3: Swift S3 ready in %d ms (%s)\n' "$(((t1 - t0) / 1000000))" "$dir" >&2

  # swift-s3.sh prints NAME=value lines quoted with printf %q; map S3_* to TEST_S3_*.
  while IFS= read -r line; do
    name=${line%%=*}
    value=${line#*=}
    case $name in
      SWIFT_S3_DIR) printf 'export TEST_S3_DIR=%s\n' "$value" ;;
      S3_ENDPOINT | S3_ACCESS_KEY_ID | S3_SECRET_ACCESS_KEY | S3_REGION | S3_PUBLIC_BASE)
        printf 'export TEST_%s=%s\n' "$name" "$value" ;;
    esac
  done <<<"$out"
  printf 'export TEST_S3_OWN_DIR=%s\n' "$own"
  printf 'export TEST_S3_SWIFT_SH=%q\n' "$swift"
  cat <<'EOF'
test_s3_stop() {
  [ -n "${TEST_S3_DIR:-}" ] || return 0
  bash "$TEST_S3_SWIFT_SH" stop "$TEST_S3_DIR" >&2 || true
  [ "${TEST_S3_OWN_DIR:-0}" = 1 ] && rm -rf -- "$TEST_S3_DIR"
  unset TEST_S3_DIR
}
_test_s3_add_trap() {  # a function, so `set --` does not touch the shell's own arguments
  local prev
  prev=$(trap -p EXIT)
  if [ -n "$prev" ]; then
    eval "set -- $prev"   # trap -- 'CMD' EXIT
    case $3 in *test_s3_stop*) return 0 ;; esac
    trap -- "test_s3_stop; $3" EXIT
  else
    trap -- test_s3_stop EXIT
  fi
}
_test_s3_add_trap
unset -f _test_s3_add_trap
EOF
}

_test_s3_stop_dir() {
  local swift dir=${1:-}
  [ -n "$dir" ] || { echo "usage: $0 stop DIR" >&2; return 2; }
  swift=$(_test_s3_swift_sh) || return 1
  bash "$swift" stop "$dir" || return 1
  case $(basename "$dir") in lcs-test-s3.*) rm -rf -- "$dir" ;; esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced: start and apply to the current shell.
  if _test_s3_code=$(_test_s3_start); then
    eval "$_test_s3_code"
    unset _test_s3_code
  else
    unset _test_s3_code
    return 1
  fi
else
  case "${1:-start}" in
    start) _test_s3_start ;;
    stop) _test_s3_stop_dir "${2:-}" ;;
    *)
      sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
fi

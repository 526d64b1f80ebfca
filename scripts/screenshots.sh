#!/usr/bin/env bash
# Screenshots of the real window under Xvfb (1280x800) into docs/screenshots/.
#   scripts/screenshots.sh [FOLDER] [WEIGHTS] [IMAGE_PREFIX]
# Defaults: the bundled sample (resources/sample/) and the first resources/models/*.safetensors.
# Needs: apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 imagemagick
set -euo pipefail
cd "$(dirname "$0")/.."
FOLDER="${1:-resources/sample}"
WEIGHTS="${2:-$(ls resources/models/*.safetensors 2>/dev/null | head -n1 || true)}"
PREFIX="${3:-}"
if [ -z "$WEIGHTS" ]; then
  echo "no weights: pass a .safetensors or .pth file as the second argument" >&2
  exit 2
fi
DISPLAY_NUMBER=99
Xvfb ":$DISPLAY_NUMBER" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
trap 'kill "$XVFB_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  [ -e "/tmp/.X11-unix/X$DISPLAY_NUMBER" ] && break
  sleep 0.1
done
DISPLAY=":$DISPLAY_NUMBER" QT_QPA_PLATFORM=xcb python scripts/screenshots.py "$FOLDER" "$WEIGHTS" docs/screenshots --image "$PREFIX"
ls -l docs/screenshots

#!/usr/bin/env bash
# The real window under Xvfb on a 1280x800 screen whose bottom 28 px a desktop panel takes (issue 13, bug 5):
# start, shrink to 640x480, back to the start size, quit, start again; a root-window picture after each.
#   scripts/layout_check.sh OUT_DIR [FOLDER] [WEIGHTS]
# Needs: Xvfb, xdotool, xwininfo, imagemagick (import). The positions and sizes are printed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?an output folder}"; FOLDER="${2:-resources/sample}"
WEIGHTS="${3:-$(ls resources/models/*.safetensors 2>/dev/null | head -n1)}"
mkdir -p "$OUT"
DISPLAY_NUMBER=57
Xvfb ":$DISPLAY_NUMBER" -screen 0 1280x800x24 -nolisten tcp -noreset >/dev/null 2>&1 &
XVFB_PID=$!
trap 'kill "$XVFB_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$DISPLAY_NUMBER" ] && break; sleep 0.1; done
export DISPLAY=":$DISPLAY_NUMBER" QT_QPA_PLATFORM=xcb
python scripts/x_workarea.py 0 0 1280 772  # the panel: y 772-800 is not free
SETTINGS="$OUT/settings.ini"; rm -f "$SETTINGS"
start() {
  python main.py "$FOLDER" --weights "$WEIGHTS" --settings "$SETTINGS" >"$OUT/app$1.log" 2>&1 &
  APP=$!
  for _ in $(seq 60); do WIN=$(xdotool search --name "Mask R-CNN Studio" 2>/dev/null | head -1); [ -n "$WIN" ] && break; sleep 1; done
  sleep "${WAIT:-30}"  # the first prediction on a loaded CPU
}
where() { xwininfo -id "$WIN" | awk '/Absolute upper-left X/{x=$4} /Absolute upper-left Y/{y=$4} /Width/{w=$2} /Height/{h=$2} END{print x, y, w, h}'; }
quit() {  # Ctrl+Q to the focused window (no window manager: focus it first), as a user quits: the layout is saved
  xdotool windowfocus "$WIN"; sleep 0.3; xdotool key ctrl+q; sleep 3
  if kill -0 "$APP" 2>/dev/null; then echo "the app did not quit on Ctrl+Q: killed, nothing saved"; kill "$APP"; fi
  wait "$APP" 2>/dev/null
  grep -q '^layout=' "$SETTINGS" && echo "saved: the layout and its record" || echo "saved: no layout"
}
start 1
read -r X Y W H < <(where); echo "start: $X $Y ${W}x$H"; import -window root "$OUT/1_start.png"
xdotool windowsize "$WIN" 640 480; sleep 3
echo "small: $(where)"; import -window root "$OUT/2_small.png"
xdotool windowsize "$WIN" "$W" "$H"; sleep 3
echo "back: $(where)"; import -window root "$OUT/3_back.png"
quit
start 2
echo "again: $(where)"; import -window root "$OUT/4_again.png"
quit

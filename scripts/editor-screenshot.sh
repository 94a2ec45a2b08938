#!/usr/bin/env bash
# Takes the screenshot in docs/editor.md: Neovim's built-in LSP client on
# `steward lsp`, in an xterm on a virtual X display, showing a diagnostic and
# a hover. Needs Debian's neovim, xvfb, xterm and imagemagick.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p steward-cli --bin steward
out="${1:-docs/images/neovim.png}"
work="$(mktemp -d)"
cp rules/*.stw rules/*.rhai "$work/"
cat > "$work/demo.stw" <<'STW'
## Greets VIP guests booking on Airbnb.
rule vip_greeting
  when reservation.created
  if guest.vip and channel == "airbnb" and riks < 0.5
  then
    let nights_left = nights - 1
    notify role owner "VIP {guest.first_name} stays {nights_left} nights"
end
STW
display=":$((90 + RANDOM % 9))"
Xvfb "$display" -screen 0 1240x480x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; rm -rf "$work"' EXIT
sleep 1
(cd "$work" && STEWARD="$OLDPWD/target/release/steward" DISPLAY="$display" \
  xterm -geometry 136x24+0+0 -fa Monospace -fs 11 -bg '#1e1e1e' -fg '#d4d4d4' \
  -e nvim -u "$OLDPWD/lsp/nvim/init.lua" -c "luafile $OLDPWD/lsp/nvim/screenshot.lua" demo.stw) &
sleep 6
mkdir -p "$(dirname "$out")"
DISPLAY="$display" import -window root -crop 1240x480+0+0 "$out"
echo "wrote $out"

#!/usr/bin/env bash
# Start or stop the local Label Studio servers used by `empathy annotate` (through make, which installs
# Label Studio first):
#   make labelstudio                       → the study's main server: http://127.0.0.1:${LS_PORT:-8080}, data in ${LS_DATA:-.labelstudio}/
#   make labelstudio-annotator NAME=alice  → a server of alice's own (first free port from 8081), data in $LS_DATA/annotators/alice/
#   make labelstudio-stop                  → stops every server started here
# (`tools/labelstudio.sh start | annotator NAME | stop` is what those targets run.)
# Label Studio's free edition lets every account of a server open every annotation on it, so each
# annotator rates blind on a server of their own. Every server gets the same admin login and API
# token, from the environment (LABEL_STUDIO_USERNAME, LABEL_STUDIO_PASSWORD, LABEL_STUDIO_USER_TOKEN)
# at its FIRST boot; when they are not set, random ones are made once and kept in
# $LS_DATA/credentials.env (mode 600, git-ignored), which you `source`. Nobody can sign up on these
# servers without an invite link (`empathy annotate add-annotator` makes one per annotator), and a link
# makes one account only. Every server runs with tools/labelstudio/empathy_settings.py: no telemetry or
# error reports leave the machine, each server's cookies have names of their own (a browser logged in
# to two of them no longer loses the first login), every sign-up spends the link. A server listens on
# $LS_HOST only (127.0.0.1 unless set).
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VENV=${LS_VENV:-.venv-labelstudio}
LS_DATA=${LS_DATA:-.labelstudio}
LS_HOST=${LS_HOST:-127.0.0.1}
CREDENTIALS="$LS_DATA/credentials.env"

credentials() {
  mkdir -p "$LS_DATA"
  if [ -z "${LABEL_STUDIO_USER_TOKEN:-}" ] && [ ! -f "$CREDENTIALS" ]; then
    ( umask 077
      {
        echo "export LABEL_STUDIO_USERNAME=admin@localhost.local"
        echo "export LABEL_STUDIO_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
        echo "export LABEL_STUDIO_USER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
      } > "$CREDENTIALS" )
  fi
  if [ -z "${LABEL_STUDIO_USER_TOKEN:-}" ]; then
    # shellcheck disable=SC1090
    . "$CREDENTIALS"
  fi
}

free_port() {  # the first port from $1 on that nothing listens on
  python3 - "$1" <<'EOF'
import socket, sys
port = int(sys.argv[1])
while True:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            break
        except OSError:
            port += 1
print(port)
EOF
}

absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

# serve DATA_DIR PORT: start a server unless one runs from DATA_DIR already; wait until it answers.
serve() {
  local data port=$2 pidfile
  data=$(absolute "$1")
  pidfile="$data/server.pid"
  mkdir -p "$data"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    port=$(cat "$data/port")
    echo "already running (pid $(cat "$pidfile")) on port $port"
  else
    credentials
    echo "$port" > "$data/port"
    # --internal-host is the address it listens on (--host only names it in links, and Label Studio
    # then listens on every interface).
    LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
      LABEL_STUDIO_BASE_DATA_DIR="$data" \
      LABEL_STUDIO_USERNAME="$LABEL_STUDIO_USERNAME" LABEL_STUDIO_PASSWORD="$LABEL_STUDIO_PASSWORD" \
      LABEL_STUDIO_USER_TOKEN="$LABEL_STUDIO_USER_TOKEN" \
      PYTHONPATH="$PWD/tools/labelstudio" DJANGO_SETTINGS_MODULE=empathy_settings \
      nohup "$LS_VENV/bin/label-studio" start --internal-host "$LS_HOST" --port "$port" --no-browser \
        --data-dir "$data" > "$data/server.log" 2>&1 &
    echo $! > "$pidfile"
  fi
  printf "waiting for http://%s:%s/health " "$LS_HOST" "$port"
  for _ in $(seq 1 150); do
    if curl -sf "http://$LS_HOST:$port/health" > /dev/null; then
      echo "— up"
      URL="http://$LS_HOST:$port"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "— the server exited; see $data/server.log"; tail -5 "$data/server.log"; return 1
    fi
    sleep 2; printf "."
  done
  echo "— no answer after 300 s; see $data/server.log"
  return 1
}

start() {
  serve "$LS_DATA" "${LS_PORT:-8080}"
  echo "Label Studio (the study's main server): $URL"
  if [ -f "$CREDENTIALS" ]; then
    echo "admin login and token: in $CREDENTIALS. In your shell, run:"
    echo "  source $CREDENTIALS"
  else
    echo "admin login: \$LABEL_STUDIO_USERNAME / \$LABEL_STUDIO_PASSWORD; token: \$LABEL_STUDIO_USER_TOKEN"
  fi
  echo "  export LABEL_STUDIO_URL=$URL LABEL_STUDIO_API_KEY=\$LABEL_STUDIO_USER_TOKEN"
  echo "then give each annotator a server of their own: make labelstudio-annotator NAME=…"
}

annotator() {
  local name=${1:-}
  if [ -z "$name" ] || [[ ! "$name" =~ ^[A-Za-z0-9_-]+$ ]]; then
    echo "usage: make labelstudio-annotator NAME=alice   (letters, digits, - and _: a label for the server, not the e-mail)"; exit 2
  fi
  local data="$LS_DATA/annotators/$name" port
  if [ -f "$data/port" ]; then port=$(cat "$data/port"); else port=$(free_port "${LS_PORT:-8081}"); fi
  serve "$data" "$port"
  echo "Label Studio for annotator $name (no other annotator has an account here): $URL"
  echo "next: empathy annotate add-annotator DIR THEIR-EMAIL --url $URL"
}

stop() {
  local stopped=0 pidfile
  for pidfile in "$LS_DATA/server.pid" "$LS_DATA"/annotators/*/server.pid; do
    [ -f "$pidfile" ] || continue
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill "$(cat "$pidfile")" && stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
  done
  echo "stopped $stopped Label Studio server(s)"
}

case "${1:-start}" in
  start) start ;;
  annotator) annotator "${2:-}" ;;
  stop) stop ;;
  *) echo "usage: make labelstudio | make labelstudio-annotator NAME=alice | make labelstudio-stop"; exit 2 ;;
esac

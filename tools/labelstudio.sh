#!/usr/bin/env bash
# Start or stop the local Label Studio server used by `empathy annotate`.
#   tools/labelstudio.sh start   → http://127.0.0.1:${LS_PORT:-8080}, data in ${LS_DATA:-.labelstudio}/
#   tools/labelstudio.sh stop
# The admin login and API token come from the environment (LABEL_STUDIO_USERNAME, LABEL_STUDIO_PASSWORD,
# LABEL_STUDIO_USER_TOKEN) at the server's FIRST boot. When they are not set, random ones are made
# once and kept in $LS_DATA/credentials.env (mode 600, git-ignored), which you can `source`.
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VENV=${LS_VENV:-.venv-labelstudio}
LS_DATA=${LS_DATA:-.labelstudio}
LS_PORT=${LS_PORT:-8080}
LS_HOST=127.0.0.1
PIDFILE="$LS_DATA/server.pid"
CREDENTIALS="$LS_DATA/credentials.env"

stop() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")" && rm -f "$PIDFILE" && echo "Label Studio stopped"
  else
    echo "Label Studio is not running (no live $PIDFILE)"
  fi
}

start() {
  mkdir -p "$LS_DATA"
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "Label Studio already running (pid $(cat "$PIDFILE"))"
  else
    if [ -z "${LABEL_STUDIO_USER_TOKEN:-}" ] && [ ! -f "$CREDENTIALS" ]; then
      umask 077
      {
        echo "export LABEL_STUDIO_USERNAME=admin@localhost.local"
        echo "export LABEL_STUDIO_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
        echo "export LABEL_STUDIO_USER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
      } > "$CREDENTIALS"
    fi
    if [ -z "${LABEL_STUDIO_USER_TOKEN:-}" ]; then
      # shellcheck disable=SC1090
      . "$CREDENTIALS"
    fi
    LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true LABEL_STUDIO_BASE_DATA_DIR="$PWD/$LS_DATA" \
      LABEL_STUDIO_USERNAME="$LABEL_STUDIO_USERNAME" LABEL_STUDIO_PASSWORD="$LABEL_STUDIO_PASSWORD" \
      LABEL_STUDIO_USER_TOKEN="$LABEL_STUDIO_USER_TOKEN" \
      nohup "$LS_VENV/bin/label-studio" start --host "$LS_HOST" --port "$LS_PORT" --no-browser \
        --data-dir "$PWD/$LS_DATA" > "$LS_DATA/server.log" 2>&1 &
    echo $! > "$PIDFILE"
  fi
  printf "waiting for http://%s:%s/health " "$LS_HOST" "$LS_PORT"
  for _ in $(seq 1 150); do
    if curl -sf "http://$LS_HOST:$LS_PORT/health" > /dev/null; then
      echo "— up"
      echo "Label Studio: http://$LS_HOST:$LS_PORT"
      if [ -f "$CREDENTIALS" ]; then
        echo "login and token: in $CREDENTIALS — run: source $CREDENTIALS"
      else
        echo "login: \$LABEL_STUDIO_USERNAME / \$LABEL_STUDIO_PASSWORD; token: \$LABEL_STUDIO_USER_TOKEN"
      fi
      echo "then: export LABEL_STUDIO_URL=http://$LS_HOST:$LS_PORT LABEL_STUDIO_API_KEY=\$LABEL_STUDIO_USER_TOKEN"
      return 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "— the server exited; see $LS_DATA/server.log"; tail -5 "$LS_DATA/server.log"; return 1
    fi
    sleep 2; printf "."
  done
  echo "— no answer after 300 s; see $LS_DATA/server.log"
  return 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop"; exit 2 ;;
esac

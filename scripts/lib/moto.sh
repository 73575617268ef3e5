# shellcheck shell=bash
# Start and stop a private moto server (the AWS API emulator) for tests. Source it.
#
#   moto_start   starts .venv/moto/bin/tickwatch-moto (moto, DynamoDB serialized) on a free port of 127.0.0.1 (log in a temp file),
#                waits until it answers, then exports
#                  MOTO_ENDPOINT=http://127.0.0.1:PORT  AWS_ENDPOINT_URL=$MOTO_ENDPOINT
#                  AWS_ACCESS_KEY_ID=testing  AWS_SECRET_ACCESS_KEY=testing
#                  AWS_REGION=us-east-1  AWS_DEFAULT_REGION=us-east-1
#                and MOTO_PID, MOTO_LOG. Fails (printing the log) if it never answers.
#   moto_stop    stops it and removes the log. Safe to call twice, or when it never started;
#                call it from an EXIT trap.
#
# Run scripts/setup-test-env once to install moto into .venv/moto. MOTO_SERVER overrides the path of
# the moto_server executable.

MOTO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MOTO_START_TIMEOUT_S=${MOTO_START_TIMEOUT_S:-30}

_moto_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_moto_answers() {
  # Any HTTP answer means the server is up; the moto-api dashboard is cheap to serve.
  python3 - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
except urllib.error.HTTPError:
    pass
PY
}

moto_start() {
  local server=${MOTO_SERVER:-$MOTO_ROOT/.venv/moto/bin/tickwatch-moto}
  if [[ ! -x $server ]]; then
    echo "moto_start: $server not found; run scripts/setup-test-env first." >&2
    return 1
  fi
  if [[ -n ${MOTO_PID:-} ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    echo "moto_start: already running (pid $MOTO_PID) at $MOTO_ENDPOINT" >&2
    return 0
  fi

  local attempt port deadline
  MOTO_LOG=$(mktemp "${TMPDIR:-/tmp}/moto.XXXXXX.log")
  # The port is free when picked but could be taken before moto binds it: retry a few times.
  for attempt in 1 2 3; do
    port=$(_moto_free_port)
    "$server" -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
    MOTO_PID=$!
    deadline=$((SECONDS + MOTO_START_TIMEOUT_S))
    while ((SECONDS < deadline)); do
      if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        break # exited: port clash or broken install; retry or report below
      fi
      if _moto_answers "http://127.0.0.1:$port"; then
        export MOTO_PID MOTO_LOG
        export MOTO_ENDPOINT="http://127.0.0.1:$port"
        export AWS_ENDPOINT_URL=$MOTO_ENDPOINT
        export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
        export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
        echo "moto_start: moto listening at $MOTO_ENDPOINT (pid $MOTO_PID, log $MOTO_LOG)" >&2
        return 0
      fi
      sleep 0.1
    done
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    echo "moto_start: attempt $attempt on port $port failed" >&2
  done
  echo "moto_start: moto never answered; its log:" >&2
  cat "$MOTO_LOG" >&2 || true
  rm -f "$MOTO_LOG"
  unset MOTO_PID MOTO_LOG
  return 1
}

moto_stop() {
  if [[ -n ${MOTO_PID:-} ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  if [[ -n ${MOTO_LOG:-} ]]; then
    rm -f "$MOTO_LOG"
  fi
  unset MOTO_PID MOTO_LOG
}

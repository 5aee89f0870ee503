#!/usr/bin/env bash
# Usage: scripts/supervise.sh NAME COMMAND [ARGS...]
# For `make run` (one per Procfile line): run COMMAND and restart it whenever it exits, whatever the
# cause (crash, kill, any status), so one dead process never stops the demo (honcho stops everything
# when one of its processes exits). Each exit and restart is logged. The delay before a restart starts
# at SUPERVISE_MIN_DELAY_S (1), doubles after each quick exit up to SUPERVISE_MAX_DELAY_S (30), and
# goes back to the minimum once the command has run SUPERVISE_STABLE_S (60) seconds. SIGTERM, SIGINT
# or SIGHUP (honcho stopping) is passed to COMMAND, and then this script ends too.
set -uo pipefail
name=${1:?usage: supervise.sh NAME COMMAND [ARGS...]}
shift
min_delay=${SUPERVISE_MIN_DELAY_S:-1}
max_delay=${SUPERVISE_MAX_DELAY_S:-30}
stable_after=${SUPERVISE_STABLE_S:-60}
child=0
stopping=0

stop_child() {
  stopping=1
  if [ "$child" -ne 0 ]; then kill -TERM "$child" 2>/dev/null; fi
}
trap stop_child TERM INT HUP

delay=$min_delay
while true; do
  started=$SECONDS
  "$@" &
  child=$!
  echo "supervise: $name started (pid $child)" >&2
  wait "$child"
  status=$?
  while kill -0 "$child" 2>/dev/null; do  # `wait` returns early when a signal is trapped: wait for the child
    wait "$child"
    status=$?
  done
  child=0
  if [ "$stopping" -eq 1 ]; then
    exit 0
  fi
  ran=$((SECONDS - started))
  if [ "$ran" -ge "$stable_after" ]; then delay=$min_delay; fi
  echo "supervise: $name exited with status $status after ${ran}s; restarting in ${delay}s" >&2
  sleep "$delay" &
  wait $! 2>/dev/null
  if [ "$stopping" -eq 1 ]; then
    exit 0
  fi
  delay=$((delay * 2 > max_delay ? max_delay : delay * 2))
done

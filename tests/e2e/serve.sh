#!/usr/bin/env bash
# End-to-end check of `hv serve`: starts the real executable on a temporary Unix socket, drives
# the control API with `curl --unix-socket`, stops it with SIGTERM, and ends with one line
# "N passed, M failed" (status 1 when anything failed).
#
#   tests/e2e/serve.sh            builds Hypervisor.Host (Debug) and runs bin/Debug/net10.0/hv.dll
#   HV="path/to/hv" tests/e2e/serve.sh   uses that hv instead (an executable or a .dll)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: expected '$2', got '$3'"; fi
}
summary() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v curl >/dev/null; then
  bad "curl is not installed"
  summary
fi

if [ -z "${HV:-}" ]; then
  if ! dotnet build Hypervisor.Host --nologo -v q -c Debug >/dev/null 2>&1; then
    bad "dotnet build Hypervisor.Host failed"
    summary
  fi
  HV="$root/Hypervisor.Host/bin/Debug/net10.0/hv.dll"
fi
# An array, not a function: a function run in the background is a subshell, and SIGTERM would
# reach that shell instead of hv.
case "$HV" in *.dll) hv=(dotnet "$HV") ;; *) hv=("$HV") ;; esac

tmp=$(mktemp -d /tmp/hv-e2e.XXXXXX)
sock="$tmp/hv.sock"
hello="$root/samples/images/hello.elf"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Logs into the temporary directory (the file sink's path is configuration like any other).
export Serilog__WriteTo__File__Args__path="$tmp/logs/hv-.log"
"${hv[@]}" serve --socket "$sock" >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!
for _ in $(seq 1 300); do
  [ -S "$sock" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -S "$sock" ]; then
  bad "hv serve did not create $sock; its stderr:"
  sed 's/^/     /' "$tmp/stderr"
  summary
fi
ok "hv serve listens on its socket"
check "socket mode is 0600" 600 "$(stat -c %a "$sock")"

# api METHOD PATH [BODY]: sets $code, $body and $ctype.
api() {
  local args=(-s --unix-socket "$sock" -X "$1" -o "$tmp/body" -w '%{http_code} %{content_type}')
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
  local out
  out=$(curl "${args[@]}" "http://hv$2")
  code=${out%% *}
  ctype=${out#* }
  body=$(cat "$tmp/body")
}
field() { # field NAME: a string or number field of $body (flat lookup, first match)
  echo "$body" | grep -o "\"$1\": *\(\"[^\"]*\"\|[0-9-]*\)" | head -n 1 | sed 's/^"[^"]*": *//; s/^"//; s/"$//'
}

api POST /vms "{\"image\": \"$hello\", \"memory\": \"16M\"}"
check "POST /vms creates a VM (201)" 201 "$code"
id=$(field id)
check "the new VM's id" vm-1 "$id"

api GET "/vms/$id"
check "a new VM is created, not running" created "$(field state)"

api PUT "/vms/$id/actions" '{"action": "start"}'
check "PUT actions start (204)" 204 "$code"

state=""
for _ in $(seq 1 200); do
  api GET "/vms/$id"
  state=$(field state)
  [ "$state" = stopped ] || [ "$state" = failed ] && break
  sleep 0.05
done
check "hello.elf runs to its end" stopped "$state"
check "its end is the debug exit" debug-exit "$(field reason)"
check "with the status hv run gives" 1 "$(field status)"

api GET "/vms/$id/serial"
check "GET serial returns COM1 output" "Hello from hv!" "$body"

api GET "/vms/$id/snapshot"
check "GET snapshot of a stopped VM (200)" 200 "$code"
check "is an hv snapshot" hv-snapshot "$(field format)"

api PUT "/vms/$id/actions" '{"action": "pause"}'
check "pausing a stopped VM is a conflict (409)" 409 "$code"
check "errors are RFC 7807 problem bodies" "application/problem+json" "$ctype"

api POST /vms '{"image": '
check "malformed JSON is 400" 400 "$code"
api POST /vms "{\"image\": \"$hello\", \"disk\": \"x\"}"
check "an unknown field is 400" 400 "$code"
api POST /vms "{\"image\": \"$hello\", \"memory\": \"lots\"}"
check "a bad value is 400" 400 "$code"
api GET /vms
check "refused requests created nothing" 1 "$(echo "$body" | grep -o '"id":' | wc -l)"

api GET /vms/vm-99
check "an unknown id is 404" 404 "$code"

api DELETE "/vms/$id"
check "DELETE removes the VM (204)" 204 "$code"
api GET "/vms/$id"
check "a deleted VM is gone" 404 "$code"

kill -TERM "$pid"
status=""
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  bad "hv serve still runs 10 s after SIGTERM"
else
  wait "$pid"
  status=$?
  pid=""
  check "SIGTERM ends hv serve with status 0" 0 "$status"
fi
check "the socket is removed at exit" no "$([ -e "$sock" ] && echo yes || echo no)"
if grep -q "VM vm-1 exit debug-exit (status 1)" "$tmp"/logs/hv-*.log 2>/dev/null; then
  ok "the rolling log file has the structured VM events"
else
  bad "no 'VM vm-1 exit' event in $tmp/logs"
fi

# A second service on a socket in use is a service failure (status 5).
# Job control on for this one: without it bash starts background commands with SIGINT ignored,
# and an ignored signal stays ignored in hv.
set -m
"${hv[@]}" serve --socket "$sock" >/dev/null 2>&1 &
pid=$!
set +m
for _ in $(seq 1 300); do [ -S "$sock" ] && break; sleep 0.1; done
"${hv[@]}" serve --socket "$sock" >/dev/null 2>"$tmp/second.err"
check "a socket in use gives status 5" 5 "$?"
check "and says why" "hv serve: cannot listen on $sock: another process is listening on it (is hv serve already running?)" "$(cat "$tmp/second.err")"
# Ctrl-C is SIGINT: the same graceful stop as SIGTERM.
kill -INT "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
  bad "hv serve still runs 10 s after SIGINT"
else
  wait "$pid"
  check "SIGINT ends hv serve with status 0" 0 "$?"
  pid=""
fi

summary

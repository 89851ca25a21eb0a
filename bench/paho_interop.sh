#!/usr/bin/env bash
# Run the Eclipse Paho interoperability client suites (MQTT 3.1.1 and 5.0) against Hongshan.
#
#   bench/paho_interop.sh /path/to/paho.mqtt.testing [TEST ...]
#
# TEST is e.g. client_test.Test.test_keepalive or client_test5.Test.test_will_delay; without any,
# both whole suites run.  Environment:
#   PAHO_PYTHON   interpreter for the suites                   [python3]
#   PAHO_PORT     MQTT port for the broker                     [a free port]
#   PAHO_PROFILE  "paho" (limits of Paho's reference broker:   [paho]
#                 receive maximum 2, packet size 256, topic aliases 2, server keep-alive 60)
#                 or "default" (Hongshan's own defaults)
#   PAHO_LOG      broker log level                             [info]
#   KEEP_LOGS=1   keep the broker logs (their path is printed)
#
# The broker runs with an ACL that grants everything but "test/nosubscribe", the topic the
# suites expect a subscription to be refused on ("topic readwrite #" plus "topic deny ...":
# a deny rule that covers only part of a subscription holds those topics back at delivery).
set -u

PAHO=${1:?usage: $0 /path/to/paho.mqtt.testing [TEST ...]}
shift
PAHO=$(cd "$PAHO" && pwd)/interoperability
[ -f "$PAHO/client_test.py" ] || { echo "no $PAHO/client_test.py" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")/.." && pwd)
HONGSHAN=${HONGSHAN:-$HERE/.venv/bin/hongshan}
PY=${PAHO_PYTHON:-python3}
PROFILE=${PAHO_PROFILE:-paho}
LOGLEVEL=${PAHO_LOG:-info}
WORK=$(mktemp -d /tmp/paho-interop.XXXXXX)

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

BROKER_PID=
start_broker() {  # $1 = name, rest = extra options
  local name=$1; shift
  PORT=${PAHO_PORT:-$(free_port)}
  local opts=()
  if [ "$PROFILE" = paho ]; then
    opts=(--max-inflight 2 --max-packet-size 256 --topic-alias-maximum 2 --max-keepalive 60)
  fi
  "$HONGSHAN" serve --data-dir "$(mktemp -d "$WORK/data.XXXX")" --host 127.0.0.1 \
    --mqtt-port "$PORT" --http-port 0 --allow-anonymous --sys-interval 0 \
    --log-level "$LOGLEVEL" "${opts[@]}" "$@" 2>"$WORK/$name.log" &
  BROKER_PID=$!
  for _ in $(seq 100); do
    grep -q "hongshan ready" "$WORK/$name.log" 2>/dev/null && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "broker did not start; see $WORK/$name.log" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}
stop_broker() {
  [ -n "$BROKER_PID" ] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null
  wait "$BROKER_PID" 2>/dev/null
  BROKER_PID=
}
cleanup() {
  stop_broker
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# The suites read their host, port and topics from globals their __main__ sets, and hand
# sys.argv to unittest (which rejects -h/-p), so import them and set the globals instead.
RUNNER='
import sys, unittest, importlib, logging
module, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
tests = sys.argv[4:]
m = importlib.import_module(module)
base = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
wild = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
if module == "client_test5":
    m.topic_prefix = "client_test5/"
    base = [m.topic_prefix + t for t in base]
    wild = [m.topic_prefix + t for t in wild]
m.topics, m.wildtopics, m.nosubscribe_topics = base, wild, ("test/nosubscribe",)
m.host, m.port = host, port
logging.getLogger().setLevel(logging.ERROR)
class Result(unittest.TextTestResult):
    verdicts = []
    def addSuccess(self, test):
        super().addSuccess(test); self.verdicts.append((test, "PASS"))
    def addFailure(self, test, err):
        super().addFailure(test, err); self.verdicts.append((test, "FAIL"))
    def addError(self, test, err):
        super().addError(test, err); self.verdicts.append((test, "ERROR"))
    def addSkip(self, test, reason):
        super().addSkip(test, reason); self.verdicts.append((test, "SKIP"))
runner = unittest.TextTestRunner(resultclass=Result, verbosity=2, stream=sys.stdout)
prog = unittest.main(module=m, argv=[module] + tests, testRunner=runner, exit=False)
for test, verdict in Result.verdicts:
    print("RESULT %s %s" % (getattr(test, "_testMethodName", str(test)), verdict))
sys.exit(0 if prog.result.wasSuccessful() else 1)
'

run_suite() {  # $1 = module, $2 = result file, rest = tests
  local module=$1 out=$2; shift 2
  (cd "$PAHO" && timeout 900 "$PY" -c "$RUNNER" "$module" 127.0.0.1 "$PORT" "$@") >"$out" 2>&1
  echo "exit $?" >>"$out"
}

summary() {  # $1 = title, $2 = result file
  echo "== $1"
  grep -aE '^RESULT ' "$2" | awk '{printf "  %-32s %s\n", $2, $3}'
  grep -aE '^(Ran|OK|FAILED)' "$2" | sed 's/^/  /'
}

if [ $# -gt 0 ]; then
  printf 'topic readwrite #\ntopic deny test/nosubscribe\n' >"$WORK/acl"
  start_broker custom --acl-file "$WORK/acl"
  for t in "$@"; do
    run_suite "${t%%.*}" "$WORK/custom.out" "${t#*.}"
    cat "$WORK/custom.out"
  done
  exit 0
fi

printf 'topic readwrite #\ntopic deny test/nosubscribe\n' >"$WORK/acl"
start_broker suites --acl-file "$WORK/acl"
run_suite client_test "$WORK/v311.out"
run_suite client_test5 "$WORK/v5.out"
stop_broker

echo "profile: $PROFILE"
summary "MQTT 3.1.1 (client_test.py)" "$WORK/v311.out"
summary "MQTT 5.0 (client_test5.py)" "$WORK/v5.out"
if [ "${VERBOSE:-0}" = 1 ]; then
  for f in v311 v5; do echo "---- $f"; cat "$WORK/$f.out"; done
fi

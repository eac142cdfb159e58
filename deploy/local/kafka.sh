#!/usr/bin/env bash
# Single-node Kafka (KRaft) for development and tests, run straight from jars
# resolved by Maven into a user cache: no Docker, no Kafka distribution download.
set -euo pipefail

usage() {
  cat <<EOF
Usage: deploy/local/kafka.sh {fetch|start|stop|status|logs [-f]}

  fetch    resolve the Kafka jars into KAFKA_CACHE_DIR (skipped when already complete)
  start    fetch if needed, format storage once, start the broker in the background and
           wait until it is ready; prints KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>
           (already running: says so and exits 0)
  stop     SIGTERM, then SIGKILL after 20 s
  status   exit 0 if running, 1 if not
  logs     print the end of the broker log (-f to follow it)

Environment:
  KAFKA_PORT             client port on 127.0.0.1 (default 9092)
  KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1)
  KAFKA_HOME_DIR         state: data, config, pid, log (default <repo>/.run/kafka-\$KAFKA_PORT)
  KAFKA_CACHE_DIR        jars (default \${XDG_CACHE_HOME:-\$HOME/.cache}/order-processor/kafka-<version>)
  KAFKA_HEAP             JVM heap, -Xmx and -Xms (default 512m)
  KAFKA_JVM_PERFORMANCE_OPTS
                         JVM options of the broker (default: those of Kafka's own start script,
                         G1 with a 20 ms pause goal, and one GC thread)
  KAFKA_OPTS             more JVM options for the broker, e.g. -Xlog:gc:file=gc.log
  MAVEN_REPO_URL         only if mvn is missing: base URL of a Maven repository (Maven Central or
                         a mirror) to download Maven from; defaults to the first mirror in
                         ~/.m2/settings.xml

The broker is sized for sharing two cores with its clients: one GC thread, 2 request handler
threads (num.io.threads) and 1 network thread (num.network.threads), a 16 MiB log-cleaner dedupe
buffer; written to <KAFKA_HOME_DIR>/config/server.properties on every start.
EOF
}

die() { echo "kafka.sh: error: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
POM="$HERE/kafka-pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
[[ -n $KAFKA_VERSION ]] || die "cannot read <kafka.version> from $POM"

KAFKA_PORT="${KAFKA_PORT:-9092}"
[[ $KAFKA_PORT =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a number, got '$KAFKA_PORT'"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
[[ $KAFKA_CONTROLLER_PORT =~ ^[0-9]+$ ]] || die "KAFKA_CONTROLLER_PORT must be a number"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$ROOT/.run/kafka-$KAFKA_PORT}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/order-processor"
KAFKA_CACHE_DIR="${KAFKA_CACHE_DIR:-$CACHE_ROOT/kafka-$KAFKA_VERSION}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
# The defaults of Kafka's own bin/kafka-run-class.sh. The JVM's own G1 aims at 200 ms pauses,
# during which the broker answers no produce or fetch: its longest young pause in a benchmark
# run here was ~100 ms with them, ~30-60 ms with these (bench/PROFILE.md, session 12).
# Plus one GC thread: this broker shares its cores with the worker and the tests, and with two,
# a pause lasted until the slower one got a core back, the other spinning meanwhile (60-114 ms
# pauses, against ~12 ms; session 14).
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:ParallelGCThreads=1 -Djava.awt.headless=true}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
MAVEN_DIST_VERSION=3.9.11

LIB="$KAFKA_CACHE_DIR/lib"
MARKER="$KAFKA_CACHE_DIR/.complete"
PIDFILE="$KAFKA_HOME_DIR/kafka.pid"
LOG="$KAFKA_HOME_DIR/kafka.log"
CONF="$KAFKA_HOME_DIR/config"
DATA="$KAFKA_HOME_DIR/data"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# kill -0 is not enough: a dead child left unreaped (e.g. no init in a container) is a zombie.
alive() { local s; s="$(ps -p "$1" -o stat= 2>/dev/null)" && [[ $s != Z* ]]; }

running_pid() {
  local pid
  [[ -f $PIDFILE ]] || return 1
  pid="$(cat "$PIDFILE")"
  # Also match the command line so a recycled pid is not taken for our broker.
  [[ $pid =~ ^[0-9]+$ ]] && ps -p "$pid" -o args= 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

download() {
  if command -v curl >/dev/null; then curl -fsSL -o "$2" "$1"
  else python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2"
  fi
}

# Like the Maven wrapper: fetch Maven's own binary distribution when no mvn is installed.
# No repository host is hard-coded, so the URL comes from MAVEN_REPO_URL or settings.xml.
find_mvn() {
  local home="$CACHE_ROOT/apache-maven-$MAVEN_DIST_VERSION" repo url tmp
  if command -v mvn >/dev/null; then echo mvn; return; fi
  if [[ -x $home/bin/mvn ]]; then echo "$home/bin/mvn"; return; fi
  # As root on Debian, Maven is one package away (the same way redis.sh gets redis-server).
  if [[ -z ${MAVEN_REPO_URL:-} && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "mvn not found; installing Debian's maven package"
    { apt-get update -qq && apt-get install -y -qq maven; } >&2 || die "apt-get install maven failed"
    command -v mvn >/dev/null && { echo mvn; return; }
  fi
  repo="${MAVEN_REPO_URL:-}"
  if [[ -z $repo && -f $HOME/.m2/settings.xml ]]; then
    repo="$(sed -n '/<mirrors>/,/<\/mirrors>/s:.*<url>[[:space:]]*\([^<[:space:]]*\).*:\1:p' "$HOME/.m2/settings.xml" | head -n1)"
  fi
  [[ -n $repo ]] || die "mvn not found. Install Maven (e.g. apt-get install maven), or set MAVEN_REPO_URL \
to the base URL of Maven Central or a mirror so Maven $MAVEN_DIST_VERSION can be downloaded."
  url="${repo%/}/org/apache/maven/apache-maven/$MAVEN_DIST_VERSION/apache-maven-$MAVEN_DIST_VERSION-bin.tar.gz"
  say "mvn not found; downloading $url"
  mkdir -p "$CACHE_ROOT"
  tmp="$(mktemp -d "$CACHE_ROOT/.maven.XXXXXX")"
  download "$url" "$tmp/maven.tgz" || { rm -rf "$tmp"; die "download failed: $url"; }
  if download "$url.sha512" "$tmp/maven.sha512" && command -v sha512sum >/dev/null; then
    echo "$(cut -d' ' -f1 "$tmp/maven.sha512")  $tmp/maven.tgz" | sha512sum -c --quiet - >&2 \
      || { rm -rf "$tmp"; die "checksum mismatch for $url"; }
  fi
  tar -xzf "$tmp/maven.tgz" -C "$tmp"
  rm -rf "$home" && mv "$tmp/apache-maven-$MAVEN_DIST_VERSION" "$home"
  rm -rf "$tmp"
  echo "$home/bin/mvn"
}

fetch() {
  local want mvn
  want="$(cksum <"$POM")"  # a changed pom (e.g. new log4j) refetches under the same version
  if [[ -f $MARKER && "$(cat "$MARKER")" == "$want" ]]; then return 0; fi
  command -v java >/dev/null || die "java not found: install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
  mvn="$(find_mvn)"
  say "resolving Kafka $KAFKA_VERSION jars into $LIB"
  rm -rf "$LIB" "$MARKER"
  mkdir -p "$LIB"
  "$mvn" -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIB" -DincludeScope=runtime \
    >&2 || die "mvn could not resolve the Kafka jars (see above)"
  echo "$want" >"$MARKER"
}

write_config() {
  mkdir -p "$CONF" "$DATA"
  cat >"$CONF/server.properties" <<EOF
# Written by deploy/local/kafka.sh on every start; edits here are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Kafka's 128 MiB is a quarter of this heap, kept for good; with it G1's old generation sat at
# its 35% marking threshold and now and then collected every 150 ms (bench/PROFILE.md, session
# 14). 16 MiB still holds some 600,000 keys a cleaning pass.
log.cleaner.dedupe.buffer.size=16777216
# Kafka's 8 request handlers and 3 network threads are sized for a server of its own. This one
# shares two cores with its clients: with 2 and 1 it took 0.02-0.05 fewer cores in three
# alternated pairs of runs (bench/PROFILE.md, session 15).
num.io.threads=2
num.network.threads=1
EOF
  # KafkaRaftServer at INFO is what logs the "Kafka Server started" line that start waits for.
  cat >"$CONF/log4j2.yaml" <<'EOF'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
EOF
}

start() {
  local pid out i p
  if pid="$(running_pid)"; then
    say "already running (pid $pid)"
    echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $p on 127.0.0.1 is already in use (another Kafka? set KAFKA_PORT)"
  done
  fetch
  write_config
  local java=(java "-Xmx$KAFKA_HEAP" "-Dlog4j2.configurationFile=$CONF/log4j2.yaml" -cp "$LIB/*")
  if [[ ! -f $DATA/meta.properties ]]; then
    say "formatting storage in $DATA"
    out="$("${java[@]}" kafka.tools.StorageTool format -t "$("${java[@]}" kafka.tools.StorageTool random-uuid)" \
      -c "$CONF/server.properties" 2>&1)" || die "storage format failed: $out"
  fi
  [[ -f $LOG ]] && mv -f "$LOG" "$LOG.prev"
  # setsid: the broker must outlive this shell and not get the terminal's Ctrl-C;
  # stopping it is the job of `stop` (run.sh calls it from its trap).
  local detach=(nohup)
  command -v setsid >/dev/null && detach=(setsid nohup)
  local broker_opts
  # Word splitting wanted: both hold space-separated JVM options.
  read -r -a broker_opts <<<"-Xms$KAFKA_HEAP $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_OPTS"
  "${detach[@]}" "${java[@]}" "${broker_opts[@]}" kafka.Kafka "$CONF/server.properties" >"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "starting on 127.0.0.1:$KAFKA_PORT (pid $pid, log $LOG)"
  for ((i = 0; i < 120; i++)); do
    if grep -q 'Kafka Server started' "$LOG"; then
      echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    if ! alive "$pid"; then
      rm -f "$PIDFILE"
      tail -n 40 "$LOG" >&2
      die "Kafka exited during startup (log above, full log: $LOG)"
    fi
    sleep 0.5
  done
  tail -n 40 "$LOG" >&2
  stop
  die "Kafka did not report 'Kafka Server started' within 60 s (log above)"
}

stop() {
  local pid i
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    alive "$pid" || break
    sleep 0.5
  done
  if alive "$pid"; then
    say "still alive after 20 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "kafka running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
  else
    echo "kafka not running"
    return 1
  fi
}

logs() {
  [[ -f $LOG ]] || die "no log at $LOG (never started with this KAFKA_HOME_DIR?)"
  if [[ ${1:-} == -f ]]; then tail -n 100 -F "$LOG"; else tail -n 100 "$LOG"; fi
}

case "${1:-}" in
  fetch) fetch; say "jars ready in $LIB" ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  logs) logs "${2:-}" ;;
  -h | --help | help) usage ;;
  *) [[ -n ${1:-} ]] && echo "kafka.sh: unknown command '$1'" >&2; usage >&2; exit 2 ;;
esac

# Kafka for scripts/services.sh (sourced by it): one KRaft node (broker and controller) on
# $HOST:$KAFKA_PORT, its jars resolved once into .cache/kafka-libs from scripts/services/kafka/pom.xml,
# its state under .run/$STACK/kafka; our topics created on every start (kafka_ready.py).
# shellcheck shell=bash

KAFKA_LIBS=$CACHE/kafka-libs
KAFKA_POM=$ROOT/scripts/services/kafka/pom.xml
KAFKA_LOG4J=$ROOT/scripts/services/kafka/log4j2.properties

kafka_port() { echo "$KAFKA_PORT"; }

ensure_java() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v java >/dev/null 2>&1 || die "java not found"
}

kafka_libs_ready() {
  local want
  want=$(sha256sum "$KAFKA_POM" | cut -c1-64)
  [[ -f $KAFKA_LIBS/.stamp && $(cat "$KAFKA_LIBS/.stamp") == "$want" ]] &&
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null
}

# Resolve the broker's jars into .cache/kafka-libs once per pom.xml checksum.
ensure_kafka_installed() {
  ensure_java
  kafka_libs_ready && return 0
  mkdir -p "$CACHE"
  exec 8>"$CACHE/kafka-libs.lock"
  flock -w 900 8 || die "timed out waiting for another Kafka jar download"
  if ! kafka_libs_ready; then
    command -v mvn >/dev/null 2>&1 || apt_install maven
    local tmp=$CACHE/kafka-libs.tmp.$$ mvnlog=$CACHE/kafka-libs.mvn.log t0=$SECONDS
    say "resolving Kafka jars from $KAFKA_POM into $KAFKA_LIBS (once; maven log: $mvnlog)"
    rm -rf "$tmp"
    if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$mvnlog" 2>&1 9>&- 8>&-; then
      tail -n 40 "$mvnlog" >&2 || true
      rm -rf "$tmp"
      die "maven could not resolve the Kafka jars (see $mvnlog)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "maven ran but no kafka_2.13 jar in $tmp"
    sha256sum "$KAFKA_POM" | cut -c1-64 >"$tmp/.stamp"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    say "Kafka jars ready: $(ls "$KAFKA_LIBS"/*.jar | wc -l) jars in $((SECONDS - t0))s"
  fi
  flock -u 8
  exec 8>&-
}

KAFKA_DIR=$RUN/kafka
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_DATA=$KAFKA_DIR/data

kafka_is_ours() { pid_alive "$1" && pid_cmdline_has "$1" "kafka.Kafka" "$KAFKA_PROPS"; }
kafka_pid() { find_pid "$KAFKA_DIR/pid" "$KAFKA_PORT" kafka_is_ours; }

kafka_write_props() {
  cat >"$KAFKA_PROPS" <<EOF
# Written by scripts/services.sh on every start (STACK=$STACK). Do not edit.
# Single KRaft node in combined mode: broker and controller in one process.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted node cannot re-register its broker until the old
# registration's session expires (default 9s): keep that short on a single local node.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
num.network.threads=3
num.io.threads=4
log.retention.hours=168
EOF
}

# Python with confluent_kafka (the project venv), or nothing.
kafka_python() {
  [[ -x $VENV_PY ]] && "$VENV_PY" -c 'import confluent_kafka' 2>/dev/null && echo "$VENV_PY"
}

# Wait (up to $2 s) until the broker serves metadata, then create our topics (their names and
# partition counts from atomicseats/names.py) and wait until every partition has a leader.
kafka_ready_python() {
  local py=$1 timeout=$2 topics
  mapfile -t topics < <("$py" "$ROOT/atomicseats/names.py" topics 9>&-)
  ((${#topics[@]})) || return 1
  "$py" "$ROOT/scripts/services/kafka_ready.py" "$HOST:$KAFKA_PORT" "$timeout" "${topics[@]}" 9>&-
}

start_kafka() {
  ensure_kafka_installed
  local pid log=$KAFKA_DIR/log offset py
  mkdir -p "$KAFKA_DIR"
  touch "$log"
  if pid=$(kafka_pid); then
    wait_for "$START_TIMEOUT" "$pid" port_open "$KAFKA_PORT" || start_failed kafka "running (pid $pid) but port $KAFKA_PORT closed"
    if py=$(kafka_python); then
      kafka_ready_python "$py" "$START_TIMEOUT" || start_failed kafka "running (pid $pid) but not ready"
    fi
    say "kafka already running (pid $pid) on $HOST:$KAFKA_PORT"
    return 0
  fi
  claim_ports kafka "$KAFKA_DIR/pid" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  kafka_write_props

  # shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is a list of JVM flags: split on purpose
  local java_opts=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -XX:-UsePerfData -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.log.file="$log" -Dkafka.logs.dir="$KAFKA_DIR")

  if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
    # never formatted, or a format that did not finish: start from an empty log dir
    rm -rf "$KAFKA_DATA"
    mkdir -p "$KAFKA_DATA"
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"): print(s); break')
    say "formatting Kafka storage (cluster id $cluster_id)"
    if ! java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$KAFKA_PROPS" </dev/null >>"$log" 2>&1 9>&- 8>&-; then
      rm -rf "$KAFKA_DATA"
      start_failed kafka "kafka-storage format failed"
    fi
  fi

  say "starting kafka on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  # shellcheck disable=SC2034  # read by the eval'd log check below
  offset=$(stat -c %s "$log")
  setsid java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >>"$log" 2>&1 9>&- 8>&- &
  pid=$!
  echo "$pid" >"$KAFKA_DIR/pid"

  local rc=0
  wait_for "$START_TIMEOUT" "$pid" port_open "$KAFKA_PORT" || rc=$?
  ((rc == 0)) || start_failed kafka "$([[ $rc == 2 ]] && echo "process $pid exited" || echo "port $KAFKA_PORT not open after ${START_TIMEOUT}s")"
  if py=$(kafka_python); then
    kafka_ready_python "$py" "$START_TIMEOUT" || start_failed kafka "broker not ready (python check)"
  else
    warn "confluent_kafka not importable from $VENV_PY: readiness from the log only, topics not pre-created"
    rc=0
    wait_for "$START_TIMEOUT" "$pid" eval 'tail -c +$((offset + 1)) "$log" | grep -q "Kafka Server started"' || rc=$?
    ((rc == 0)) || start_failed kafka "no 'Kafka Server started' in the log"
  fi
  pid_alive "$pid" || start_failed kafka "process $pid exited"
  say "kafka ready (pid $pid) on $HOST:$KAFKA_PORT"
}

stop_kafka() { stop_service kafka "$KAFKA_DIR/pid" kafka_pid; }

status_kafka() { kafka_pid; }

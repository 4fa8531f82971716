# Redis Cluster and NATS cluster modes of the local stack; sourced by stack.sh (not run on its own).
#
#   FLASHSALE_REDIS_MODE=single|cluster   cluster: 6 redis-server nodes, 3 masters with one replica each
#   FLASHSALE_NATS_MODE=single|cluster    cluster: 3 nats-server nodes, JetStream replicated (streams R3)
#   FLASHSALE_CLUSTER_PORT_BASE (17000)   ports of the nodes, all on 127.0.0.1:
#       redis-node N (1..6): BASE+N-1, cluster bus BASE+20+N-1
#       nats-node  N (1..3): client BASE+10+N-1, routes BASE+13+N-1, monitor BASE+16+N-1
#
# Node state lives under $STATE/redis-cluster/nodeN and $STATE/nats-cluster/nodeN.

REDIS_MODE="${FLASHSALE_REDIS_MODE:-single}"
NATS_MODE="${FLASHSALE_NATS_MODE:-single}"
CLUSTER_PORT_BASE="${FLASHSALE_CLUSTER_PORT_BASE:-17000}"
REDIS_NODES=6
NATS_NODES=3
# Failure detection and replica promotion take about this long after a master dies.
REDIS_NODE_TIMEOUT_MS="${FLASHSALE_REDIS_NODE_TIMEOUT_MS:-3000}"

cluster_validate_config() {
    case "$REDIS_MODE" in single | cluster) ;; *) die "FLASHSALE_REDIS_MODE must be 'single' or 'cluster', got '$REDIS_MODE'" ;; esac
    case "$NATS_MODE" in single | cluster) ;; *) die "FLASHSALE_NATS_MODE must be 'single' or 'cluster', got '$NATS_MODE'" ;; esac
    [[ "$CLUSTER_PORT_BASE" =~ ^[0-9]+$ ]] && ((CLUSTER_PORT_BASE >= 1024 && CLUSTER_PORT_BASE <= 65500)) \
        || die "FLASHSALE_CLUSTER_PORT_BASE must be a port number between 1024 and 65500, got '$CLUSTER_PORT_BASE'"
    [[ "$REDIS_NODE_TIMEOUT_MS" =~ ^[0-9]+$ ]] && ((REDIS_NODE_TIMEOUT_MS >= 500)) \
        || die "FLASHSALE_REDIS_NODE_TIMEOUT_MS must be an integer >= 500, got '$REDIS_NODE_TIMEOUT_MS'"
}

rnode_port() { echo $((CLUSTER_PORT_BASE + $1 - 1)); }
rnode_bus_port() { echo $((CLUSTER_PORT_BASE + 20 + $1 - 1)); }
rnode_dir() { printf '%s/redis-cluster/node%s' "$STATE" "$1"; }
nnode_port() { echo $((CLUSTER_PORT_BASE + 10 + $1 - 1)); }
nnode_route_port() { echo $((CLUSTER_PORT_BASE + 13 + $1 - 1)); }
nnode_monitor_port() { echo $((CLUSTER_PORT_BASE + 16 + $1 - 1)); }
nnode_dir() { printf '%s/nats-cluster/node%s' "$STATE" "$1"; }

node_check() { # kind index
    local max
    case "$1" in
        redis-node) max=$REDIS_NODES ;;
        nats-node) max=$NATS_NODES ;;
    esac
    [[ "$2" =~ ^[0-9]+$ ]] && (($2 >= 1 && $2 <= max)) || die "$1 needs a node number between 1 and $max, got '${2-}'"
}

rcli() { # node, redis-cli arguments...
    local n="$1"
    shift
    REDISCLI_AUTH="$REDIS_PASSWORD" timeout 5 redis-cli -h "$HOST" -p "$(rnode_port "$n")" "$@" 2>/dev/null
}

# Finds the process of a node: its pidfile, else a /proc scan (redis by cwd, nats by store path).
node_pid() { # kind index
    local kind="$1" n="$2" dir pidfile pid p comm exe
    case "$kind" in
        redis-node) dir="$(rnode_dir "$n")"; pidfile="$dir/redis.pid"; exe=redis-server ;;
        nats-node) dir="$(nnode_dir "$n")"; pidfile="$dir/nats.pid"; exe=nats-server ;;
    esac
    if [[ -f "$pidfile" ]]; then
        pid="$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$exe" ]]; then
            echo "$pid"
            return 0
        fi
    fi
    for p in /proc/[0-9]*; do
        comm="$(cat "$p/comm" 2>/dev/null || true)"
        [[ "$comm" == "$exe" ]] || continue
        case "$kind" in
            redis-node) [[ "$(readlink "$p/cwd" 2>/dev/null || true)" == "$dir" ]] || continue ;;
            nats-node) [[ "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null || true)" == *"$dir/store"* ]] || continue ;;
        esac
        echo "${p#/proc/}"
        return 0
    done
    return 1
}

node_answers() { # kind index
    case "$1" in
        redis-node) [[ "$(rcli "$2" ping)" == PONG ]] ;;
        nats-node) curl -sf --max-time 3 "http://$HOST:$(nnode_monitor_port "$2")/healthz" >/dev/null 2>&1 ;;
    esac
}

node_desc() { # kind index
    case "$1" in
        redis-node) printf '%s:%s' "$HOST" "$(rnode_port "$2")" ;;
        nats-node) printf '%s:%s, routes %s, monitor %s' "$HOST" "$(nnode_port "$2")" "$(nnode_route_port "$2")" "$(nnode_monitor_port "$2")" ;;
    esac
}

start_rnode() {
    local n="$1" dir port
    dir="$(rnode_dir "$n")"
    port="$(rnode_port "$n")"
    mkdir -p "$dir"
    # requirepass for clients, masterauth for a replica syncing from its master; mode 600, out of `ps`.
    (umask 077 && printf 'requirepass %s\nmasterauth %s\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD" >"$dir/auth.conf")
    # cluster-require-full-coverage no: while a dead master's replica is being promoted, the other masters keep
    # serving their slots (the sale goes on there). cluster-replica-validity-factor 0: a replica may always
    # take over, however long its master was gone.
    (cd "$dir" && redis-server "$dir/auth.conf" \
        --port "$port" --bind "$HOST" --dir "$dir" \
        --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-port "$(rnode_bus_port "$n")" \
        --cluster-node-timeout "$REDIS_NODE_TIMEOUT_MS" --cluster-require-full-coverage no \
        --cluster-replica-validity-factor 0 \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --appendonly yes --appendfsync "$REDIS_APPENDFSYNC" --save "" \
        --lazyfree-lazy-expire yes --lazyfree-lazy-user-del yes \
        >"$dir/redis.out" 2>&1 </dev/null) \
        || { log "redis-node $n: redis-server failed to start"; tail -n 20 "$dir/redis.log" >&2 || true; exit 1; }
}

# Clients log in as in single mode; the routes between the nodes need the same credentials, or anything reaching a
# route port could join as a server and publish. All of it in a mode-600 file, out of `ps`.
write_nnode_conf() { # index file
    local n="$1" file="$2" i routes=""
    for ((i = 1; i <= NATS_NODES; i++)); do
        ((i == n)) && continue
        routes+="    nats://$NATS_USER:$NATS_PASSWORD@$HOST:$(nnode_route_port "$i")"$'\n'
    done
    write_nats_auth "$file"
    (umask 077 && cat >>"$file" <<EOF
cluster {
  name: flashsale
  listen: "$HOST:$(nnode_route_port "$n")"
  authorization {
    user: "$NATS_USER"
    password: "$NATS_PASSWORD"
  }
  routes: [
$routes  ]
}
EOF
    )
}

start_nnode() {
    local n="$1" dir
    dir="$(nnode_dir "$n")"
    mkdir -p "$dir/store"
    rm -f "$dir/nats.pid"
    write_nnode_conf "$n" "$dir/nats.conf"
    setsid nohup nats-server -c "$dir/nats.conf" -a "$HOST" -p "$(nnode_port "$n")" -m "$(nnode_monitor_port "$n")" \
        --server_name "flashsale-n$n" \
        -js -sd "$dir/store" -P "$dir/nats.pid" -l "$dir/nats.log" \
        >>"$dir/nats.out" 2>&1 </dev/null &
}

# Starts one node unless it runs; does not wait (a NATS node answers /healthz only once JetStream has a quorum).
launch_node() { # kind index
    local kind="$1" n="$2" port
    node_pid "$kind" "$n" >/dev/null && return 0
    for port in $(node_ports "$kind" "$n"); do
        port_open "$port" && die "$kind $n: port $HOST:$port is already in use by another process (set FLASHSALE_CLUSTER_PORT_BASE)"
    done
    log "$kind $n: starting"
    case "$kind" in
        redis-node) start_rnode "$n" ;;
        nats-node) start_nnode "$n" ;;
    esac
}

node_ports() {
    case "$1" in
        redis-node) echo "$(rnode_port "$2") $(rnode_bus_port "$2")" ;;
        nats-node) echo "$(nnode_port "$2") $(nnode_route_port "$2") $(nnode_monitor_port "$2")" ;;
    esac
}

wait_node() { # kind index
    local kind="$1" n="$2" deadline=$((SECONDS + WAIT_SECONDS)) started=$SECONDS log_file
    until node_answers "$kind" "$n"; do
        if ((SECONDS >= started + 2)) && ! node_pid "$kind" "$n" >/dev/null || ((SECONDS >= deadline)); then
            log "$kind $n: not answering"
            case "$kind" in
                redis-node) log_file="$(rnode_dir "$n")/redis.log" ;;
                nats-node) log_file="$(nnode_dir "$n")/nats.log" ;;
            esac
            tail -n 30 "$log_file" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.3
    done
}

redis_cluster_info() { # node field
    rcli "$1" cluster info | tr -d '\r' | sed -n "s/^$2:\(.*\)$/\1/p"
}

# Every node sees all 16384 slots served and state ok.
wait_redis_cluster_ok() {
    local deadline=$((SECONDS + WAIT_SECONDS + 30)) n ok
    while true; do
        ok=1
        for ((n = 1; n <= REDIS_NODES; n++)); do
            [[ "$(redis_cluster_info "$n" cluster_state)" == ok && "$(redis_cluster_info "$n" cluster_slots_ok)" == 16384 ]] || { ok=0; break; }
        done
        ((ok)) && return 0
        ((SECONDS < deadline)) || die "redis cluster: not ok after waiting; see $STATE/redis-cluster/node*/redis.log"
        sleep 0.5
    done
}

redis_cluster_up() {
    local n marker="$STATE/redis-cluster/.created"
    mkdir -p "$STATE/redis-cluster"
    for ((n = 1; n <= REDIS_NODES; n++)); do launch_node redis-node "$n"; done
    for ((n = 1; n <= REDIS_NODES; n++)); do wait_node redis-node "$n"; done
    if [[ ! -f "$marker" ]]; then
        [[ "$(redis_cluster_info 1 cluster_known_nodes)" == 1 ]] \
            || die "redis cluster: nodes know each other but no cluster was recorded as created; run 'stack.sh down --purge'"
        local -a seeds=()
        for ((n = 1; n <= REDIS_NODES; n++)); do seeds+=("$HOST:$(rnode_port "$n")"); done
        log "redis cluster: creating 3 masters with one replica each"
        REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --cluster create "${seeds[@]}" --cluster-replicas 1 --cluster-yes \
            >"$STATE/redis-cluster/create.log" 2>&1 \
            || { tail -n 20 "$STATE/redis-cluster/create.log" >&2; die "redis cluster: create failed"; }
        touch "$marker"
    fi
    wait_redis_cluster_ok
    for ((n = 1; n <= REDIS_NODES; n++)); do
        printf '%-12s %-8s pid %-7s %s\n' "redis-node $n" "$(rnode_role "$n")" "$(node_pid redis-node "$n" || echo '?')" "$(node_desc redis-node "$n")"
    done
}

rnode_role() { rcli "$1" role | head -n 1 || true; }

nats_cluster_up() {
    local n pid
    mkdir -p "$STATE/nats-cluster"
    for ((n = 1; n <= NATS_NODES; n++)); do
        # Whether it answers /healthz or not (a node without JetStream quorum does not), it is restarted with them.
        if pid="$(node_pid nats-node "$n")" && nats_lacks_auth "$(nnode_monitor_port "$n")"; then
            log "nats-node $n: pid $pid accepts clients without credentials; restarting it with the generated ones"
            stop_node nats-node "$n" >/dev/null
        fi
    done
    for ((n = 1; n <= NATS_NODES; n++)); do launch_node nats-node "$n"; done
    for ((n = 1; n <= NATS_NODES; n++)); do wait_node nats-node "$n"; done
    for ((n = 1; n <= NATS_NODES; n++)); do
        printf '%-12s running  pid %-7s %s\n' "nats-node $n" "$(node_pid nats-node "$n" || echo '?')" "$(node_desc nats-node "$n")"
    done
}

stop_node() { # kind index [KILL]
    local kind="$1" n="$2" sig="${3:-TERM}" pid deadline
    if ! pid="$(node_pid "$kind" "$n")"; then
        printf '%-12s %s\n' "$kind $n" "not running"
        return 0
    fi
    log "$kind $n: SIG$sig pid $pid"
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_SECONDS))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$kind $n: still alive after ${STOP_SECONDS}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    [[ "$sig" == KILL ]] || rm -f "$(node_pidfile "$kind" "$n")"
    if [[ "$sig" == KILL ]]; then
        printf '%-12s %s\n' "$kind $n" "killed (was pid $pid)"
    else
        printf '%-12s %s\n' "$kind $n" "stopped (was pid $pid)"
    fi
}

node_pidfile() {
    case "$1" in
        redis-node) printf '%s/redis.pid' "$(rnode_dir "$2")" ;;
        nats-node) printf '%s/nats.pid' "$(nnode_dir "$2")" ;;
    esac
}

# Stops every node that exists, whatever the current mode: `down` must not leave a cluster behind.
cluster_down() {
    local n
    for ((n = NATS_NODES; n >= 1; n--)); do
        [[ -d "$(nnode_dir "$n")" ]] && stop_node nats-node "$n"
    done
    for ((n = REDIS_NODES; n >= 1; n--)); do
        [[ -d "$(rnode_dir "$n")" ]] && stop_node redis-node "$n"
    done
    return 0
}

cluster_purge() {
    rm -rf "${STATE:?}/redis-cluster" "${STATE:?}/nats-cluster"
}

cluster_status() { # prints lines; returns 3 if a node of a clustered engine is down
    local n rc=0
    if [[ "$REDIS_MODE" == cluster ]]; then
        for ((n = 1; n <= REDIS_NODES; n++)); do
            if node_pid redis-node "$n" >/dev/null && node_answers redis-node "$n"; then
                printf '%-12s running (%s, %s)\n' "redis-node $n" "$(rnode_role "$n")" "$(node_desc redis-node "$n")"
            else
                printf '%-12s stopped\n' "redis-node $n"
                rc=3
            fi
        done
    fi
    if [[ "$NATS_MODE" == cluster ]]; then
        for ((n = 1; n <= NATS_NODES; n++)); do
            if node_pid nats-node "$n" >/dev/null && node_answers nats-node "$n"; then
                printf '%-12s running (%s)\n' "nats-node $n" "$(node_desc nats-node "$n")"
            else
                printf '%-12s stopped\n' "nats-node $n"
                rc=3
            fi
        done
    fi
    return "$rc"
}

redis_seeds() {
    local n out=""
    for ((n = 1; n <= REDIS_NODES; n++)); do out+="${out:+,}$HOST:$(rnode_port "$n")"; done
    echo "$out"
}

nats_seeds() {
    local n out=""
    for ((n = 1; n <= NATS_NODES; n++)); do out+="${out:+,}nats://$HOST:$(nnode_port "$n")"; done
    echo "$out"
}

# start-one / stop-one / kill9 / failover of one node, e.g. `stack.sh kill9 redis-node 2`.
node_cmd() { # command kind index
    local cmd="$1" kind="$2" n="${3-}"
    node_check "$kind" "$n"
    case "$cmd" in
        start-one)
            require_tools
            load_secrets
            launch_node "$kind" "$n"
            wait_node "$kind" "$n"
            printf '%-12s running pid %s\n' "$kind $n" "$(node_pid "$kind" "$n" || echo '?')"
            ;;
        stop-one) stop_node "$kind" "$n" ;;
        kill9) stop_node "$kind" "$n" KILL ;;
        failover)
            [[ "$kind" == redis-node ]] || die "failover applies to redis-node only"
            load_secrets
            # A manual failover: the replica waits for its master to stop writes and catch it up, then takes
            # over, so nothing acknowledged is lost (unlike a master crash).
            [[ "$(rnode_role "$n")" == slave ]] || die "redis-node $n is not a replica (CLUSTER FAILOVER runs on a replica)"
            [[ "$(rcli "$n" cluster failover)" == OK ]] || die "redis-node $n: CLUSTER FAILOVER refused"
            printf '%-12s %s\n' "redis-node $n" "failover requested"
            ;;
    esac
}

cluster_engine_cmd() { # command redis|nats
    local cmd="$1" kind="$2-node" count n
    [[ "$2" == redis ]] && count=$REDIS_NODES || count=$NATS_NODES
    case "$cmd" in
        start-one)
            require_tools
            load_secrets
            if [[ "$2" == redis ]]; then redis_cluster_up; else nats_cluster_up; fi
            ;;
        stop-one | kill9)
            for ((n = 1; n <= count; n++)); do
                if [[ "$cmd" == kill9 ]]; then stop_node "$kind" "$n" KILL; else stop_node "$kind" "$n"; fi
            done
            ;;
        failover) die "failover needs a node: failover redis-node N" ;;
    esac
}

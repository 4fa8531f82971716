#!/usr/bin/env bash
# Local development stack for OrleansFlashSale: Redis (AOF), MariaDB and NATS JetStream,
# each a real process bound to 127.0.0.1 with its data under a private state folder.
#
#   deploy/local/stack.sh up|down [--purge]|status|env|install
#   deploy/local/stack.sh start-one|stop-one|kill9 redis|mysql|nats
#   deploy/local/stack.sh start-one|stop-one|kill9 redis-node N|nats-node N, failover redis-node N (cluster modes)
#
# See deploy/local/README.md for details.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

STATE="${FLASHSALE_STATE_DIR:-$ROOT_DIR/.flashsale}"
REDIS_PORT="${FLASHSALE_REDIS_PORT:-16379}"
MYSQL_PORT="${FLASHSALE_MYSQL_PORT:-13306}"
NATS_PORT="${FLASHSALE_NATS_PORT:-14222}"
NATS_MONITOR_PORT="${FLASHSALE_NATS_MONITOR_PORT:-18222}"
MYSQL_DATABASE="${FLASHSALE_MYSQL_DATABASE:-flashsale}"
MYSQL_USER="${FLASHSALE_MYSQL_USER:-flashsale}"
NATS_USER="${FLASHSALE_NATS_USER:-flashsale}"
REDIS_APPENDFSYNC="${FLASHSALE_REDIS_APPENDFSYNC:-everysec}"
# A benchmark fills the orders table and its indexes past 1 GiB within minutes; with the old 256 MiB every group
# insert read index pages from disk. Lower it on a small machine.
MYSQL_BUFFER_POOL="${FLASHSALE_MYSQL_BUFFER_POOL:-1G}"
GATEWAY_PORT="${FLASHSALE_GATEWAY_PORT:-5080}"
SILO_HEALTH_PORT="${FLASHSALE_SILO_HEALTH_PORT:-5081}"
WAIT_SECONDS="${FLASHSALE_WAIT_SECONDS:-30}"
STOP_SECONDS=20
HOST=127.0.0.1
SERVICES=(redis mysql nats)
# shellcheck source=deploy/local/cluster.sh
source "$SCRIPT_DIR/cluster.sh"

# Secrets (filled by load_secrets).
MYSQL_PASSWORD=""
REDIS_PASSWORD=""
NATS_PASSWORD=""
ADMIN_TOKEN=""
JWT_SIGNING_KEY=""
PURCHASE_TOKEN_KEY=""

# ----------------------------------------------------------------------------- helpers

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: deploy/local/stack.sh <command>
  install                      apt-get install whatever is missing (redis, mariadb, nats, wrk, curl, chromium)
  up                           install, then start redis, mysql (MariaDB) and nats if not running
  down [--purge]               stop all services (--purge also deletes their data and secrets)
  status                       one line per service; exit 0 if all running, 3 otherwise
  env                          print eval-able 'export' lines for tests and apps
  start-one redis|mysql|nats   start (and wait for) one service
  stop-one  redis|mysql|nats   stop one service gracefully (SIGTERM, then SIGKILL after 20 s)
  kill9     redis|mysql|nats   SIGKILL one service (simulated crash; pidfile left behind)
  start-one|stop-one|kill9 redis-node N|nats-node N   one node of a cluster (FLASHSALE_REDIS_MODE/NATS_MODE=cluster)
  failover redis-node N        CLUSTER FAILOVER on replica node N (it becomes a master, its master a replica)
Modes: FLASHSALE_REDIS_MODE=single|cluster, FLASHSALE_NATS_MODE=single|cluster (see deploy/local/README.md).
EOF
}

# Single-quote a value so that the output can be eval'ed by any POSIX shell.
shquote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

random_hex() { # $1 = number of hex characters (even)
    od -An -tx1 -N"$(($1 / 2))" /dev/urandom | tr -d ' \n'
}

validate_config() {
    local name value
    for name in REDIS_PORT MYSQL_PORT NATS_PORT NATS_MONITOR_PORT GATEWAY_PORT SILO_HEALTH_PORT; do
        value="${!name}"
        [[ "$value" =~ ^[0-9]+$ ]] && ((value >= 1 && value <= 65535)) \
            || die "FLASHSALE_$name must be a TCP port number, got '$value'"
    done
    [[ "$WAIT_SECONDS" =~ ^[0-9]+$ ]] || die "FLASHSALE_WAIT_SECONDS must be an integer, got '$WAIT_SECONDS'"
    case "$REDIS_APPENDFSYNC" in
        everysec | always) ;;
        *) die "FLASHSALE_REDIS_APPENDFSYNC must be 'everysec' or 'always', got '$REDIS_APPENDFSYNC'" ;;
    esac
    [[ "$MYSQL_DATABASE" =~ ^[A-Za-z0-9_]{1,64}$ ]] || die "FLASHSALE_MYSQL_DATABASE must match [A-Za-z0-9_]+, got '$MYSQL_DATABASE'"
    [[ "$MYSQL_USER" =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "FLASHSALE_MYSQL_USER must match [A-Za-z0-9_]+, got '$MYSQL_USER'"
    [[ "$NATS_USER" =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "FLASHSALE_NATS_USER must match [A-Za-z0-9_]+, got '$NATS_USER'"
    [[ -n "$STATE" ]] || die "state directory is empty"
    cluster_validate_config
}

ensure_state_dir() {
    if [[ ! -d "$STATE" ]]; then
        mkdir -p "$STATE"
        chmod 700 "$STATE"
    fi
    STATE="$(cd "$STATE" && pwd)" # absolute: daemons are started with paths below it
}

# Generates missing secrets once and keeps them in $STATE/secrets.env (mode 600).
# The file is authoritative; values in the environment are ignored.
load_secrets() {
    ensure_state_dir
    local file="$STATE/secrets.env" name value
    local -a missing=()
    (umask 077 && touch "$file")
    chmod 600 "$file"
    for name in FLASHSALE_MYSQL_PASSWORD FLASHSALE_REDIS_PASSWORD FLASHSALE_NATS_PASSWORD FLASHSALE_ADMIN_TOKEN FLASHSALE_JWT_SIGNING_KEY FLASHSALE_PURCHASE_TOKEN_KEY; do
        value="$(sed -n "s/^$name=\([0-9a-fA-F]\{1,\}\)\$/\1/p" "$file" | tail -n 1)"
        if [[ -z "$value" ]]; then
            case "$name" in
                FLASHSALE_ADMIN_TOKEN) value="$(random_hex 32)" ;;
                FLASHSALE_JWT_SIGNING_KEY | FLASHSALE_PURCHASE_TOKEN_KEY) value="$(random_hex 64)" ;;
                *) value="$(random_hex 24)" ;;
            esac
            printf '%s=%s\n' "$name" "$value" >>"$file"
            missing+=("$name")
        fi
        case "$name" in
            FLASHSALE_MYSQL_PASSWORD) MYSQL_PASSWORD="$value" ;;
            FLASHSALE_REDIS_PASSWORD) REDIS_PASSWORD="$value" ;;
            FLASHSALE_NATS_PASSWORD) NATS_PASSWORD="$value" ;;
            FLASHSALE_ADMIN_TOKEN) ADMIN_TOKEN="$value" ;;
            FLASHSALE_JWT_SIGNING_KEY) JWT_SIGNING_KEY="$value" ;;
            FLASHSALE_PURCHASE_TOKEN_KEY) PURCHASE_TOKEN_KEY="$value" ;;
        esac
    done
    if ((${#missing[@]})); then
        log "generated ${missing[*]} in $file"
    fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# ----------------------------------------------------------------------------- per-service facts

svc_check() {
    case "$1" in
        redis | mysql | nats) ;;
        *) die "unknown service '$1' (expected redis, mysql or nats)" ;;
    esac
}

svc_dir() { printf '%s/%s' "$STATE" "$1"; }

svc_pidfile() {
    case "$1" in
        redis) printf '%s/redis/redis.pid' "$STATE" ;;
        mysql) printf '%s/mysql/mariadbd.pid' "$STATE" ;;
        nats) printf '%s/nats/nats.pid' "$STATE" ;;
    esac
}

svc_log() {
    case "$1" in
        redis) printf '%s/redis/redis.log' "$STATE" ;;
        mysql) printf '%s/mysql/error.log' "$STATE" ;;
        nats) printf '%s/nats/nats.log' "$STATE" ;;
    esac
}

svc_stdout_log() { # stdout/stderr of the daemon process itself (early start-up failures)
    case "$1" in
        redis) printf '%s/redis/redis.out' "$STATE" ;;
        mysql) printf '%s/mysql/mariadbd.out' "$STATE" ;;
        nats) printf '%s/nats/nats.out' "$STATE" ;;
    esac
}

svc_exe() {
    case "$1" in
        redis) echo redis-server ;;
        mysql) echo mariadbd ;;
        nats) echo nats-server ;;
    esac
}

svc_port() {
    case "$1" in
        redis) echo "$REDIS_PORT" ;;
        mysql) echo "$MYSQL_PORT" ;;
        nats) echo "$NATS_PORT" ;;
    esac
}

svc_ports_desc() {
    case "$1" in
        nats) echo "$HOST:$NATS_PORT, monitor $HOST:$NATS_MONITOR_PORT" ;;
        *) echo "$HOST:$(svc_port "$1")" ;;
    esac
}

svc_port_var() {
    case "$1" in
        redis) echo FLASHSALE_REDIS_PORT ;;
        mysql) echo FLASHSALE_MYSQL_PORT ;;
        nats) echo "FLASHSALE_NATS_PORT/FLASHSALE_NATS_MONITOR_PORT" ;;
    esac
}

mysql_socket() { printf '%s/mysql/mysqld.sock' "$STATE"; }

# True if $1 is a live process running the executable of service $2.
pid_is_svc() {
    local pid="$1" svc="$2" comm
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
    [[ "$comm" == "$(svc_exe "$svc")" ]]
}

# Finds our process for a service: the pidfile first, then (pidfile missing or stale,
# e.g. a daemon that died before writing it or was started by an interrupted run)
# a /proc scan for a process of the right executable whose command line names our
# state folder or, for redis (which rewrites its process title), whose cwd is our dir.
svc_pid() {
    local svc="$1" pidfile pid p comm cmdline
    pidfile="$(svc_pidfile "$svc")"
    if [[ -f "$pidfile" ]]; then
        pid="$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)"
        if pid_is_svc "$pid" "$svc"; then
            echo "$pid"
            return 0
        fi
    fi
    for p in /proc/[0-9]*; do
        comm="$(cat "$p/comm" 2>/dev/null || true)"
        [[ "$comm" == "$(svc_exe "$svc")" ]] || continue
        cmdline="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null || true)"
        case "$svc" in
            redis) [[ "$(readlink "$p/cwd" 2>/dev/null || true)" == "$STATE/redis" ]] || continue ;;
            mysql) [[ "$cmdline" == *"--datadir=$STATE/mysql/data"* ]] || continue ;;
            nats) [[ "$cmdline" == *"$STATE/nats/store"* ]] || continue ;;
        esac
        echo "${p#/proc/}"
        return 0
    done
    return 1
}

# True if the service answers on its port.
svc_answers() {
    case "$1" in
        redis)
            [[ "$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 5 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
            ;;
        mysql)
            # The socket and the TCP port are opened together; TCP login is checked by provision_mysql.
            timeout 5 mariadb-admin --no-defaults --socket="$(mysql_socket)" -uroot --connect-timeout=2 ping >/dev/null 2>&1
            ;;
        nats)
            nats_healthz
            ;;
    esac
}

nats_healthz() {
    if command -v curl >/dev/null 2>&1; then
        curl -sf --max-time 3 "http://$HOST:$NATS_MONITOR_PORT/healthz" >/dev/null 2>&1
    else
        # Fallback without curl: plain HTTP over bash's /dev/tcp.
        local reply
        reply="$(timeout 3 bash -c '
            exec 3<>"/dev/tcp/$0/$1" || exit 1
            printf "GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
            head -n 1 <&3' "$HOST" "$NATS_MONITOR_PORT" 2>/dev/null || true)"
        [[ "$reply" == *" 200 "* ]]
    fi
}

show_log_tail() {
    local svc="$1" f
    for f in "$(svc_stdout_log "$svc")" "$(svc_log "$svc")"; do
        if [[ -s "$f" ]]; then
            log "----- last lines of $f -----"
            tail -n 30 "$f" >&2 || true
        fi
    done
}

# Waits until the service answers; on timeout prints its log tail and exits 1.
wait_ready() {
    local svc="$1" started=$SECONDS deadline=$((SECONDS + WAIT_SECONDS))
    until svc_answers "$svc"; do
        if ((SECONDS >= started + 2)) && ! svc_pid "$svc" >/dev/null; then
            # Give the daemon a moment to write its pidfile before declaring it dead.
            log "$svc: process exited during start-up"
            show_log_tail "$svc"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "$svc: not answering after ${WAIT_SECONDS}s"
            show_log_tail "$svc"
            exit 1
        fi
        sleep 0.5
    done
}

# ----------------------------------------------------------------------------- install

install_packages() {
    # command -> Debian package that provides it
    local -a checks=(
        "redis-server:redis-server"
        "redis-cli:redis-tools"
        "mariadbd:mariadb-server"
        "mariadb-install-db:mariadb-server"
        "mariadb:mariadb-client"
        "mariadb-admin:mariadb-client"
        "nats-server:nats-server"
        "wrk:wrk"
        "curl:curl"
        "chromium:chromium"
        "setsid:util-linux"
        "timeout:coreutils"
    )
    local entry cmd pkg
    local -a pkgs=()
    for entry in "${checks[@]}"; do
        cmd="${entry%%:*}"
        pkg="${entry#*:}"
        if ! have_cmd "$cmd"; then
            [[ " ${pkgs[*]-} " == *" $pkg "* ]] || pkgs+=("$pkg")
        fi
    done
    if ((${#pkgs[@]} == 0)); then
        return 0
    fi
    log "installing missing packages: ${pkgs[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: ${pkgs[*]}"
    local -a sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "must be root (or have sudo) to install: ${pkgs[*]}"
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
    # Debian maintainer scripts try to start the system services; without systemd (or with a
    # policy-rc.d that forbids it) that fails, which may make apt report an error although the
    # binaries are installed. We never use the system instances, so judge by the binaries.
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >&2; then
        log "apt-get install reported an error (often a service failing to start without systemd); checking binaries"
    fi
    local -a still=()
    for entry in "${checks[@]}"; do
        cmd="${entry%%:*}"
        have_cmd "$cmd" || still+=("$cmd")
    done
    ((${#still[@]} == 0)) || die "still missing after apt-get install: ${still[*]}"
    log "install done"
}

# command -v, plus the sbin directories that a non-root PATH may lack (mariadbd is /usr/sbin).
have_cmd() {
    command -v "$1" >/dev/null 2>&1 && return 0
    local d
    for d in /usr/sbin /sbin /usr/local/sbin; do
        if [[ -x "$d/$1" ]]; then
            case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
            return 0
        fi
    done
    return 1
}

require_tools() {
    local c
    for c in redis-server redis-cli mariadbd mariadb-install-db mariadb mariadb-admin nats-server setsid timeout; do
        have_cmd "$c" || die "'$c' not found; run: deploy/local/stack.sh install"
    done
}

# ----------------------------------------------------------------------------- start

# Refuses to start if a foreign process already listens on one of our ports.
check_ports_free() {
    local svc="$1" p
    local -a ports=("$(svc_port "$svc")")
    [[ "$svc" == nats ]] && ports+=("$NATS_MONITOR_PORT")
    for p in "${ports[@]}"; do
        if port_open "$p"; then
            die "$svc: port $HOST:$p is already in use by another process (another stack? set $(svc_port_var "$svc") to choose another port)"
        fi
    done
}

start_redis() {
    local dir="$STATE/redis"
    mkdir -p "$dir"
    # Password via a mode-600 include file, so it does not show in `ps`.
    (umask 077 && printf 'requirepass %s\n' "$REDIS_PASSWORD" >"$dir/auth.conf")
    redis-server "$dir/auth.conf" \
        --port "$REDIS_PORT" --bind "$HOST" --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --appendonly yes --appendfsync "$REDIS_APPENDFSYNC" --save "" \
        --lazyfree-lazy-expire yes --lazyfree-lazy-user-del yes \
        >"$dir/redis.out" 2>&1 </dev/null \
        || { log "redis: redis-server failed to start"; show_log_tail redis; exit 1; }
}

start_mysql() {
    local dir="$STATE/mysql" sock
    local -a userarg=()
    sock="$(mysql_socket)"
    ((${#sock} <= 100)) || die "mysql: socket path too long for a unix socket (${#sock} chars): $sock; use a shorter FLASHSALE_STATE_DIR"
    ((EUID == 0)) && userarg=(--user=root)
    mkdir -p "$dir"
    if [[ ! -f "$dir/.initialized" ]]; then
        log "mysql: initialising data directory $dir/data"
        rm -rf "$dir/data"
        if ! mariadb-install-db --no-defaults "${userarg[@]}" --datadir="$dir/data" \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$dir/install-db.log" 2>&1 </dev/null; then
            log "mysql: mariadb-install-db failed"
            tail -n 30 "$dir/install-db.log" >&2 || true
            exit 1
        fi
        touch "$dir/.initialized"
    fi
    rm -f "$dir/mariadbd.pid"
    setsid nohup mariadbd --no-defaults "${userarg[@]}" --datadir="$dir/data" \
        --port="$MYSQL_PORT" --bind-address="$HOST" --socket="$sock" \
        --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --skip-name-resolve --innodb-flush-log-at-trx-commit=1 \
        --max-connections=500 --innodb-buffer-pool-size="$MYSQL_BUFFER_POOL" --innodb-log-file-size=512M \
        >>"$dir/mariadbd.out" 2>&1 </dev/null &
}

# Whoever can publish to NATS adds orders that the writer stores: clients must log in. The credentials go in a
# mode-600 configuration file (as Redis's password does), so they do not show in `ps`.
write_nats_auth() { # file
    (umask 077 && printf 'authorization {\n  user: "%s"\n  password: "%s"\n}\n' "$NATS_USER" "$NATS_PASSWORD" >"$1")
}

# True if the NATS server whose monitor listens on port $1 answers and takes anonymous clients (its /varz lacks
# auth_required): one started by a version of this script without credentials.
nats_lacks_auth() {
    local varz
    # Without curl this cannot be told; such a server is left as it is (install puts curl on the machine).
    command -v curl >/dev/null 2>&1 || return 1
    varz="$(curl -sf --max-time 3 "http://$HOST:$1/varz" 2>/dev/null)" || return 1
    [[ "$varz" != *'"auth_required": true'* ]]
}

start_nats() {
    local dir="$STATE/nats"
    mkdir -p "$dir/store"
    rm -f "$dir/nats.pid"
    write_nats_auth "$dir/auth.conf"
    setsid nohup nats-server -c "$dir/auth.conf" -a "$HOST" -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" \
        -js -sd "$dir/store" -P "$dir/nats.pid" -l "$dir/nats.log" \
        >>"$dir/nats.out" 2>&1 </dev/null &
}

# Idempotent: database, users @127.0.0.1 and @localhost, password = secrets.env.
provision_mysql() {
    local pw_sql sql host
    pw_sql="${MYSQL_PASSWORD//\'/\'\'}"
    sql="CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    for host in 127.0.0.1 localhost; do
        sql+="CREATE USER IF NOT EXISTS '$MYSQL_USER'@'$host' IDENTIFIED BY '$pw_sql';"
        sql+="ALTER USER '$MYSQL_USER'@'$host' IDENTIFIED BY '$pw_sql';"
        sql+="GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'$host';"
    done
    sql+="FLUSH PRIVILEGES;"
    # SQL on stdin, so the password does not show in `ps`.
    printf '%s\n' "$sql" | mariadb --no-defaults --socket="$(mysql_socket)" -uroot \
        || die "mysql: provisioning database/user failed"
    if ! MYSQL_PWD="$MYSQL_PASSWORD" mariadb --no-defaults -h"$HOST" -P"$MYSQL_PORT" \
        -u"$MYSQL_USER" --connect-timeout=5 -N -e 'select 1' "$MYSQL_DATABASE" >/dev/null; then
        die "mysql: TCP login as '$MYSQL_USER' to $HOST:$MYSQL_PORT/$MYSQL_DATABASE failed"
    fi
}

# Starts a service unless it is already running; waits until it answers.
# Prints a one-line summary on stdout.
start_one() {
    local svc="$1" pid how=started
    if [[ "$svc" == nats ]] && pid="$(svc_pid nats)" && nats_lacks_auth "$NATS_MONITOR_PORT"; then
        # Restarted with the credentials; its streams are on disk.
        log "nats: pid $pid accepts clients without credentials; restarting it with the generated ones"
        stop_one nats >/dev/null
    fi
    if pid="$(svc_pid "$svc")"; then
        if svc_answers "$svc"; then
            how="already running"
        else
            log "$svc: process $pid exists but does not answer yet; waiting"
            wait_ready "$svc"
            how="was starting"
        fi
    else
        rm -f "$(svc_pidfile "$svc")"
        check_ports_free "$svc"
        log "$svc: starting"
        "start_$svc"
        wait_ready "$svc"
    fi
    [[ "$svc" == mysql ]] && provision_mysql
    pid="$(svc_pid "$svc" || echo '?')"
    printf '%-6s %-15s pid %-7s %s\n' "$svc" "$how" "$pid" "$(svc_ports_desc "$svc")"
}

# ----------------------------------------------------------------------------- stop

stop_one() {
    local svc="$1" pid deadline
    if ! pid="$(svc_pid "$svc")"; then
        rm -f "$(svc_pidfile "$svc")"
        printf '%-6s %s\n' "$svc" "not running"
        return 0
    fi
    log "$svc: stopping pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_SECONDS))
    while pid_is_svc "$pid" "$svc" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if pid_is_svc "$pid" "$svc"; then
        log "$svc: still alive after ${STOP_SECONDS}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" "$svc"
    fi
    rm -f "$(svc_pidfile "$svc")"
    printf '%-6s %s\n' "$svc" "stopped (was pid $pid)"
}

wait_gone() {
    local pid="$1" svc="$2" i
    for ((i = 0; i < 50; i++)); do
        pid_is_svc "$pid" "$svc" || return 0
        sleep 0.1
    done
    die "$svc: pid $pid did not exit"
}

kill9_one() {
    local svc="$1" pid
    pid="$(svc_pid "$svc")" || die "$svc: not running"
    log "$svc: SIGKILL pid $pid (pidfile left as a crash would)"
    kill -KILL "$pid"
    wait_gone "$pid" "$svc"
    printf '%-6s %s\n' "$svc" "killed (was pid $pid)"
}

purge_data() {
    local svc
    case "$STATE" in
        / | "$HOME" | "$ROOT_DIR") die "refusing to purge suspicious state directory '$STATE'" ;;
    esac
    log "purging data in $STATE (redis/, mysql/, nats/, secrets.env)"
    for svc in "${SERVICES[@]}"; do
        rm -rf "${STATE:?}/$svc"
    done
    cluster_purge
    rm -f "$STATE/secrets.env"
    rmdir "$STATE" 2>/dev/null || true
}

# ----------------------------------------------------------------------------- commands

cmd_up() {
    install_packages
    require_tools
    load_secrets
    local svc
    for svc in "${SERVICES[@]}"; do
        case "$svc:$REDIS_MODE:$NATS_MODE" in
            redis:cluster:*) redis_cluster_up ;;
            nats:*:cluster) nats_cluster_up ;;
            *) start_one "$svc" ;;
        esac
    done
    log "all services up; state in $STATE (use: eval \"\$(deploy/local/stack.sh env)\")"
}

cmd_down() {
    local purge=0 svc
    case "${1-}" in
        "") ;;
        --purge) purge=1 ;;
        *) die "unknown option for down: '$1' (expected --purge)" ;;
    esac
    if [[ -d "$STATE" ]]; then
        STATE="$(cd "$STATE" && pwd)"
        for svc in nats mysql redis; do
            stop_one "$svc"
        done
        cluster_down
    else
        log "no state directory at $STATE; nothing to stop"
    fi
    if ((purge)) && [[ -d "$STATE" ]]; then
        purge_data
    fi
}

cmd_status() {
    local svc pid all=0
    [[ -d "$STATE" ]] && STATE="$(cd "$STATE" && pwd)"
    # Secrets are needed to ping redis; do not create anything just for status.
    if [[ -f "$STATE/secrets.env" ]]; then
        REDIS_PASSWORD="$(sed -n 's/^FLASHSALE_REDIS_PASSWORD=\([0-9a-fA-F]\{1,\}\)$/\1/p' "$STATE/secrets.env" | tail -n 1)"
    fi
    for svc in "${SERVICES[@]}"; do
        [[ "$svc:$REDIS_MODE" == redis:cluster || "$svc:$NATS_MODE" == nats:cluster ]] && continue
        if pid="$(svc_pid "$svc")"; then
            if svc_answers "$svc"; then
                printf '%-6s running (pid %s, %s)\n' "$svc" "$pid" "$(svc_ports_desc "$svc")"
            else
                printf '%-6s not answering (pid %s, %s)\n' "$svc" "$pid" "$(svc_ports_desc "$svc")"
                all=3
            fi
        else
            printf '%-6s stopped\n' "$svc"
            all=3
        fi
    done
    cluster_status || all=3
    return "$all"
}

cmd_env() {
    load_secrets
    local redis="$HOST:$REDIS_PORT" nats="nats://$HOST:$NATS_PORT" replicas=1
    [[ "$REDIS_MODE" == cluster ]] && redis="$(redis_seeds)"
    [[ "$NATS_MODE" == cluster ]] && { nats="$(nats_seeds)"; replicas=3; }
    local -a vars=(
        "FLASHSALE_GATEWAY_URL=http://$HOST:$GATEWAY_PORT"
        "FLASHSALE_SILO_HEALTH_URL=http://$HOST:$SILO_HEALTH_PORT"
        "FLASHSALE_ADMIN_TOKEN=$ADMIN_TOKEN"
        "FLASHSALE_JWT_SIGNING_KEY=$JWT_SIGNING_KEY"
        "FLASHSALE_PURCHASE_TOKEN_KEY=$PURCHASE_TOKEN_KEY"
        "FLASHSALE_REDIS=$redis"
        "FLASHSALE_REDIS_MODE=$REDIS_MODE"
        "FLASHSALE_REDIS_PASSWORD=$REDIS_PASSWORD"
        "FLASHSALE_NATS_URL=$nats"
        "FLASHSALE_NATS_USER=$NATS_USER"
        "FLASHSALE_NATS_PASSWORD=$NATS_PASSWORD"
        "FLASHSALE_NATS_MONITOR_URL=http://$HOST:$NATS_MONITOR_PORT"
        "FLASHSALE_NATS_MODE=$NATS_MODE"
        "FLASHSALE_NATS_REPLICAS=$replicas"
        "FLASHSALE_MYSQL_HOST=$HOST"
        "FLASHSALE_MYSQL_PORT=$MYSQL_PORT"
        "FLASHSALE_MYSQL_DATABASE=$MYSQL_DATABASE"
        "FLASHSALE_MYSQL_USER=$MYSQL_USER"
        "FLASHSALE_MYSQL_PASSWORD=$MYSQL_PASSWORD"
        "FLASHSALE_STATE_DIR=$STATE"
    )
    local kv
    for kv in "${vars[@]}"; do
        printf 'export %s=%s\n' "${kv%%=*}" "$(shquote "${kv#*=}")"
    done
}

one_service_cmd() {
    local cmd="$1" svc="${2-}"
    [[ -n "$svc" ]] || die "usage: stack.sh $cmd redis|mysql|nats|redis-node N|nats-node N"
    [[ -d "$STATE" ]] && STATE="$(cd "$STATE" && pwd)"
    case "$svc:$REDIS_MODE:$NATS_MODE" in
        redis-node:* | nats-node:*)
            node_cmd "$cmd" "$svc" "${3-}"
            return
            ;;
        redis:cluster:* | nats:*:cluster)
            # The whole clustered engine at once, so fault tests written for one process work on a cluster too.
            cluster_engine_cmd "$cmd" "$svc"
            return
            ;;
    esac
    [[ "$cmd" == failover ]] && die "failover applies to redis-node N"
    svc_check "$svc"
    case "$cmd" in
        start-one)
            require_tools
            load_secrets
            start_one "$svc"
            ;;
        stop-one | kill9)
            [[ -d "$STATE" ]] && STATE="$(cd "$STATE" && pwd)"
            if [[ "$cmd" == stop-one ]]; then stop_one "$svc"; else kill9_one "$svc"; fi
            ;;
    esac
}

main() {
    local cmd="${1-}"
    [[ $# -gt 0 ]] && shift
    validate_config
    case "$cmd" in
        up) cmd_up ;;
        down) cmd_down "$@" ;;
        status) cmd_status ;;
        env) cmd_env ;;
        install) install_packages && require_tools ;;
        start-one | stop-one | kill9 | failover) one_service_cmd "$cmd" "$@" ;;
        -h | --help | help) usage ;;
        "") usage; die "missing command" ;;
        *) usage; die "unknown command '$cmd'" ;;
    esac
}

main "$@"

# Silo and gateway processes of ./flashsale (sourced by it: uses its say/die/start_process/stop_process/load_env).
#
# Silo i (1-based) listens on FlashSale:Silo:SiloPort + i-1 and GatewayPort + i-1 and answers health on
# FLASHSALE_SILO_HEALTH_PORT + 2(i-1); gateway j serves HTTP on FLASHSALE_GATEWAY_PORT + 2(j-1). The stride of 2
# interleaves the two kinds on the default pair 5080/5081, so silo 1 and gateway 1 keep the single-process ports.
# PID files: $RUN/silo-i.pid and $RUN/gateway-j.pid; logs: $LOGS/silo-i.log and $LOGS/gateway-j.log.

MAX_PROCESSES=16

silo_port() { echo $(( ${FlashSale__Silo__SiloPort:-11111} + $1 - 1 )); }
silo_gateway_port() { echo $(( ${FlashSale__Silo__GatewayPort:-30000} + $1 - 1 )); }
silo_health_port() { echo $(( ${FLASHSALE_SILO_HEALTH_PORT:-5081} + 2 * ($1 - 1) )); }
gateway_http_port() { echo $(( ${FLASHSALE_GATEWAY_PORT:-5080} + 2 * ($1 - 1) )); }

# Before multi-process support the single silo and gateway wrote silo.pid and gateway.pid: adopt them as number 1.
migrate_pidfiles() {
  local kind
  for kind in silo gateway; do
    if [[ -f "$RUN/$kind.pid" && ! -f "$RUN/$kind-1.pid" ]]; then mv "$RUN/$kind.pid" "$RUN/$kind-1.pid"; fi
  done
}

check_count() { # what value
  [[ "$2" =~ ^[0-9]+$ ]] && (( $2 >= 1 && $2 <= MAX_PROCESSES )) \
    || die "$1 must be a whole number from 1 to $MAX_PROCESSES, got '$2'" 2
}

# Numbers of the processes of one kind that have a PID file (running or not), ascending.
indices() { # kind
  local f
  for f in "$RUN/$1"-*.pid; do
    [[ -e "$f" ]] || continue
    f=${f##*/$1-}; f=${f%.pid}
    [[ "$f" =~ ^[0-9]+$ ]] && echo "$f"
  done | sort -n
}

running_count() { # kind
  local i n=0
  for i in $(indices "$1"); do pid_alive "$RUN/$1-$i.pid" && n=$((n + 1)); done
  echo "$n"
}

# The Orleans dashboard, on silos and gateways together (either half alone serves nothing): off unless
# FLASHSALE_ORLEANS_DASHBOARD=1, as in production, because it costs the purchase path (docs/performance.md).
orleans_dashboard() {
  case "${FLASHSALE_ORLEANS_DASHBOARD:-0}" in
    1 | true) echo true ;;
    0 | false) echo false ;;
    *) die "FLASHSALE_ORLEANS_DASHBOARD must be 1 or 0, got '$FLASHSALE_ORLEANS_DASHBOARD'" 2 ;;
  esac
}

start_silo() { # i
  local i=$1 health dashboard; health="http://127.0.0.1:$(silo_health_port "$i")"
  dashboard=$(orleans_dashboard) || exit 2
  Urls="$health" FlashSale__Silo__SiloPort="$(silo_port "$i")" FlashSale__Silo__GatewayPort="$(silo_gateway_port "$i")" \
    FlashSale__Silo__OrleansDashboard="$dashboard" start_process "silo-$i" "$SILO_DLL" "$health"
}

start_gateway() { # j
  local url dashboard; url="http://127.0.0.1:$(gateway_http_port "$1")"
  dashboard=$(orleans_dashboard) || exit 2
  # On the local stack every buyer (demo, bench, wrk) comes from 127.0.0.1, so a per-address limit would throttle
  # all of them as one client: off unless FLASHSALE_PER_IP_TOKEN_LIMIT asks for it. Production keeps the default.
  Urls="$url" FlashSale__Gateway__RateLimits__PerIp__TokenLimit="${FLASHSALE_PER_IP_TOKEN_LIMIT:-0}" \
    FlashSale__Gateway__OrleansDashboard="$dashboard" start_process "gateway-$1" "$GATEWAY_DLL" "$url"
}

# The first gateway that runs, for the admin calls of scale and status.
live_gateway_url() {
  local j
  for j in $(indices gateway); do
    if pid_alive "$RUN/gateway-$j.pid"; then echo "http://127.0.0.1:$(gateway_http_port "$j")"; return 0; fi
  done
  return 1
}

# True while the membership lists silo i's endpoint in a state other than Dead (Joining, Active, ShuttingDown…).
in_membership() { # i
  local url body endpoint="127.0.0.1:$(silo_port "$1")"
  url=$(live_gateway_url) || return 1
  body=$(curl -fsS --max-time 5 -H "Authorization: Bearer $FLASHSALE_ADMIN_TOKEN" "$url/api/admin/cluster") || return 0
  grep -o '{[^{}]*}' <<<"$body" | grep -F "\"endpoint\":\"$endpoint\"" | grep -vq '"status":"Dead"'
}

stop_silo() { # i: SIGTERM lets Orleans deactivate its grains and mark the silo Dead before it exits
  local i=$1
  stop_process "silo-$i" "${FLASHSALE_SILO_STOP_SECONDS:-60}"
  if live_gateway_url >/dev/null; then
    local deadline=$((SECONDS + 60))
    while in_membership "$i"; do
      ((SECONDS < deadline)) || die "silo-$i stopped but still shows in the membership after 60 s"
      sleep 0.5
    done
    say "silo-$i has left the membership"
  fi
}

all_built() { [[ -f "$SILO_DLL" && -f "$GATEWAY_DLL" && -f "$CLI_DLL" && -f "$BENCH_DLL" ]]; }

check_ports() { # silos gateways: every process must get its own port
  local i seen=" " p
  for ((i = 1; i <= $1; i++)); do
    for p in "$(silo_port "$i")" "$(silo_gateway_port "$i")" "$(silo_health_port "$i")"; do
      [[ "$seen" != *" $p "* ]] || die "port $p would be used twice with $1 silos and $2 gateways; move the base ports apart" 2
      seen+="$p "
    done
  done
  for ((i = 1; i <= $2; i++)); do
    p=$(gateway_http_port "$i")
    [[ "$seen" != *" $p "* ]] || die "port $p would be used twice with $1 silos and $2 gateways; move the base ports apart" 2
    seen+="$p "
  done
}

cmd_up() {
  local silos=1 gateways=1
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --silos) silos=${2-}; shift 2 || die "--silos needs a number" 2 ;;
      --gateways) gateways=${2-}; shift 2 || die "--gateways needs a number" 2 ;;
      *) die "unknown option for up: '$1' (expected --silos N, --gateways M)" 2 ;;
    esac
  done
  check_count --silos "$silos"
  check_count --gateways "$gateways"
  orleans_dashboard >/dev/null
  check_ports "$silos" "$gateways"
  "$STACK" up
  load_env
  migrate_pidfiles
  ensure_built
  # One after the other: each silo applies the schema at start, and a joining silo is quicker to admit alone.
  local i
  for ((i = 1; i <= silos; i++)); do start_silo "$i"; done
  for ((i = 1; i <= gateways; i++)); do start_gateway "$i"; done
  say "up. Try: eval \"\$(./flashsale env)\"; curl \$FLASHSALE_GATEWAY_URL/health/ready"
}

# Starts the missing processes 1..N, stops those above N (highest first); a silo is stopped gracefully and waited
# for until it has left the membership, so its grains are reactivated elsewhere on their next call.
cmd_scale() {
  local kind=${1-} n=${2-} i
  case "$kind" in
    silos | gateways) ;;
    *) die "usage: ./flashsale scale silos|gateways N" 2 ;;
  esac
  check_count "$kind" "$n"
  kind=${kind%s}
  load_env
  migrate_pidfiles
  if [[ $kind == silo ]]; then check_ports "$n" 1; else check_ports 1 "$n"; fi
  all_built || build
  for ((i = 1; i <= n; i++)); do
    if [[ $kind == silo ]]; then start_silo "$i"; else start_gateway "$i"; fi
  done
  for i in $(indices "$kind" | sort -rn); do
    ((i > n)) || continue
    if [[ $kind == silo ]]; then stop_silo "$i"; else stop_process "gateway-$i"; fi
  done
  say "$(running_count "$kind") ${kind}(s) running"
}

cmd_kill() { # kind i
  local kind=${1-} i=${2-}
  [[ ($kind == silo || $kind == gateway) && "$i" =~ ^[0-9]+$ ]] || die "usage: ./flashsale kill silo|gateway I" 2
  pid_alive "$RUN/$kind-$i.pid" || die "$kind-$i is not running"
  kill -KILL "$(cat "$RUN/$kind-$i.pid")"
  # The PID file stays, as after a real crash: status shows the process as dead, up or scale starts it again.
  say "$kind-$i killed (SIGKILL)"
}

cmd_down() {
  local apps=0 args=() i
  for a in "$@"; do if [[ $a == --apps ]]; then apps=1; else args+=("$a"); fi; done
  migrate_pidfiles
  for i in $(indices gateway | sort -rn); do stop_process "gateway-$i"; done
  # No membership wait here: the whole cluster goes.
  for i in $(indices silo | sort -rn); do stop_process "silo-$i" "${FLASHSALE_SILO_STOP_SECONDS:-60}"; done
  if [[ $apps == 0 ]]; then "$STACK" down "${args[@]}"; fi
}

cmd_status() {
  local rc=0 kind i pidfile url
  "$STACK" status || rc=$?
  migrate_pidfiles
  for kind in silo gateway; do
    pid_alive "$RUN/$kind-1.pid" || { [[ -f "$RUN/$kind-1.pid" ]] || echo "$kind-1: stopped"; rc=3; }
    for i in $(indices "$kind"); do
      pidfile="$RUN/$kind-$i.pid"
      local ports
      if [[ $kind == silo ]]; then
        ports="silo port $(silo_port "$i"), gateway port $(silo_gateway_port "$i"), health http://127.0.0.1:$(silo_health_port "$i")"
      else
        ports="http://127.0.0.1:$(gateway_http_port "$i")"
      fi
      if pid_alive "$pidfile"; then
        echo "$kind-$i: running (pid $(cat "$pidfile"), $ports)"
      else
        echo "$kind-$i: dead (pid file left by pid $(cat "$pidfile"); ./flashsale up or scale starts it again)"
        rc=3
      fi
    done
  done
  if url=$(live_gateway_url); then
    load_env
    FLASHSALE_GATEWAY_URL="$url" dotnet "$CLI_DLL" cluster || rc=3
  fi
  return $rc
}

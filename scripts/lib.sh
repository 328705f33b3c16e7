# shellcheck shell=bash
# Shared by scripts/{setup,services,run,test,bench}: messages, the instance
# (directory + ports), PID files, the private RabbitMQ and PostgreSQL, and the
# worker/bridge processes. Source it; it defines functions and BK_REPO only.
#
# An instance is one directory holding everything of one copy of the system:
#   <dir>/rabbitmq/   broker data, config, logs, rabbit.pid launcher.pid epmd.pid
#   <dir>/cluster/    instead of it, three clustered nodes (see bk_cluster_init)
#   <dir>/pg/         PostgreSQL (data/ sock/ log/ postgres.pid); may be a symlink
#                     to /var/tmp/backend-pg-<hash> when postgres cannot reach <dir>
#   <dir>/keys/       token keys (backendctl keygen)
#   <dir>/broker/     <identity>.password of each broker user the scripts create
#                     (dir 700, files 600; see bk_broker_identities)
#   <dir>/log/        <name>.log of each worker and the bridge
#   <dir>/mail/       mails of the file backend (mail_backend = file), one .eml each
#   <dir>/smtp/       test instance: the SMTP server's maildir (bk_smtp_start)
#   <dir>/<name>.pid  PID of each worker and the bridge (smtp.pid: the test SMTP server)
#   <dir>/instance.env  the ports the services were started with
# Two instances exist: "run" (scripts/run: <repo>/.run) and "test"
# (scripts/test: <repo>/.run/test, or $BK_TEST_DIR; ports + $BK_PORT_OFFSET).

BK_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BK_PG_BIN=/usr/lib/postgresql/15/bin
BK_RMQ_BIN=/usr/lib/rabbitmq/bin
# Processes scripts/run and scripts/test start, in start order.
BK_WORKERS=(auth-worker profile-worker order-worker payment-worker)
# Event subscribers (shared/subscriber.c): no command queue, no relay; each
# reads its own <name>.events queue, which backendctl broker-setup binds.
BK_SUBSCRIBERS=(notify-worker)
BK_PROCS=("${BK_WORKERS[@]}" "${BK_SUBSCRIBERS[@]}" bridge)
# The events the notify worker mails: the only ones its identity may bind
# (topic permission), the same list as notify.events' bindings in shared/amqp.c.
BK_NOTIFY_EVENTS=(user.password_reset_requested user.password_changed user.registered)
# Worker queues (<w>.commands and <w>.reads): at most this many ready commands
# each (a publish beyond is refused), and a command delivered this often is
# dead-lettered by the broker (a second guard behind the runtime's
# max_deliveries; quorum queues only: a classic <w>.reads counts no deliveries,
# the runtime does not run a read delivered again).
BK_QUEUE_MAX_LENGTH=${BK_QUEUE_MAX_LENGTH:-10000}
BK_QUEUE_DELIVERY_LIMIT=${BK_QUEUE_DELIVERY_LIMIT:-20}

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Under `set -e` a failing command ends the script; this names it, so that no
# script dies silently. errtrace carries the trap into functions and
# subshells. Commands tested by if/while/||/&& do not trigger it.
bk_on_err() {
    local rc=$? cmd=$BASH_COMMAND src=${BASH_SOURCE[1]:-$0} line=${BASH_LINENO[0]:-?}
    # the trap fires under `set +e` too, where a failure is expected and handled
    [[ $- == *e* ]] || return 0
    printf 'error: %s line %s: `%s` failed (exit %s)\n' "${src#"$BK_REPO"/}" "$line" "$cmd" "$rc" >&2
    printf '       the output above says why; fix that and run the script again (it resumes: finished steps are skipped)\n' >&2
}
set -o errtrace
trap bk_on_err ERR

# Seconds since the epoch with milliseconds, and the time since $1 as "1.234s".
bk_now() { date +%s.%N | cut -c1-14; }
bk_since() { awk -v a="$1" -v b="$(bk_now)" 'BEGIN { printf "%.1fs", b - a }'; }

# Last lines of a log file, indented, for error messages.
bk_tail() {
    local f=$1 n=${2:-20}
    if [ -f "$f" ]; then
        printf -- '---- last %s lines of %s ----\n' "$n" "$f" >&2
        tail -n "$n" "$f" >&2
        printf -- '----\n' >&2
    else
        printf '(no log at %s)\n' "$f" >&2
    fi
}

# ---------------------------------------------------------------- instance

# bk_instance run|test: sets BK_INSTANCE BK_RUN_DIR BK_LOG_DIR BK_KEY_DIR
# BK_RMQ_DIR BK_BROKER_DIR BK_PG_DIR BK_NODE BK_AMQP_PORT BK_DIST_PORT BK_EPMD_PORT
# BK_PG_PORT BK_HTTP_PORT BK_SMTP_PORT BK_MAIL_DIR BK_BUILD_DIR BK_BIN_DIR. When the instance's
# services run, the ports they were started with win (instance.env).
bk_instance() {
    local off=0
    BK_INSTANCE=$1
    case $1 in
    run)
        BK_RUN_DIR=$BK_REPO/.run
        BK_AMQP_PORT=5673 BK_DIST_PORT=25673 BK_EPMD_PORT=4370 BK_PG_PORT=5433 BK_HTTP_PORT=8000
        BK_SMTP_PORT= # the run instance writes mails to files (mail_backend = file)
        BK_NODE=backend_run@localhost
        BK_BUILD_DIR=$BK_REPO/build/release
        ;;
    test)
        off=${BK_PORT_OFFSET:-0}
        [[ $off =~ ^[0-9]+$ ]] || die "BK_PORT_OFFSET must be a non-negative integer, not '$off'"
        BK_RUN_DIR=${BK_TEST_DIR:-$BK_REPO/.run/test}
        BK_AMQP_PORT=$((5674 + off)) BK_DIST_PORT=$((25674 + off)) BK_EPMD_PORT=$((4371 + off))
        BK_PG_PORT=$((5435 + off)) BK_HTTP_PORT=$((8001 + off))
        BK_SMTP_PORT=$((2526 + off)) # the test SMTP server (bk_smtp_start)
        BK_NODE=backend_test@localhost
        [ "$off" = 0 ] || BK_NODE=backend_test$off@localhost
        BK_BUILD_DIR=$BK_REPO/build/test
        ;;
    *) die "unknown instance '$1' (expected run or test)" ;;
    esac
    case $BK_RUN_DIR in /*) ;; *) BK_RUN_DIR=$PWD/$BK_RUN_DIR ;; esac
    BK_RUN_DIR=${BK_RUN_DIR%/}
    BK_LOG_DIR=$BK_RUN_DIR/log
    BK_KEY_DIR=$BK_RUN_DIR/keys
    BK_RMQ_DIR=$BK_RUN_DIR/rabbitmq
    BK_BROKER_DIR=$BK_RUN_DIR/broker
    BK_PG_DIR=$BK_RUN_DIR/pg
    BK_MAIL_DIR=$BK_RUN_DIR/mail
    BK_BIN_DIR=$BK_BUILD_DIR/bin
    if [ -f "$BK_RUN_DIR/instance.env" ] && { bk_rmq_alive || bk_pg_alive; }; then
        local want="$BK_AMQP_PORT $BK_PG_PORT $BK_HTTP_PORT"
        # shellcheck disable=SC1091
        . "$BK_RUN_DIR/instance.env"
        [ "$want" = "$BK_AMQP_PORT $BK_PG_PORT $BK_HTTP_PORT" ] ||
            warn "the $BK_INSTANCE instance in $BK_RUN_DIR already runs on AMQP $BK_AMQP_PORT, PG $BK_PG_PORT, HTTP $BK_HTTP_PORT; using those (stop it to change ports)"
    fi
}

bk_write_instance_env() {
    mkdir -p "$BK_RUN_DIR"
    cat >"$BK_RUN_DIR/instance.env" <<EOF
BK_NODE=$BK_NODE
BK_AMQP_PORT=$BK_AMQP_PORT
BK_DIST_PORT=$BK_DIST_PORT
BK_EPMD_PORT=$BK_EPMD_PORT
BK_PG_PORT=$BK_PG_PORT
BK_HTTP_PORT=$BK_HTTP_PORT
EOF
}

bk_conninfo() {
    printf 'host=127.0.0.1 port=%s user=backend password=backend dbname=backend connect_timeout=5' "$BK_PG_PORT"
}

# The BACKEND_* overrides every binary of the instance reads (config/backend.conf).
bk_export_backend_env() {
    export BACKEND_AMQP_PORT=$BK_AMQP_PORT
    BACKEND_DB_CONNINFO=$(bk_conninfo)
    export BACKEND_DB_CONNINFO
    export BACKEND_HTTP_PORT=$BK_HTTP_PORT
    # links in replies point at this instance's own bridge
    export BACKEND_PUBLIC_BASE_URL=http://127.0.0.1:$BK_HTTP_PORT
    export BACKEND_KEY_DIR=$BK_KEY_DIR
    # the bridge's files (Swagger UI at /api/docs/), whatever the working directory
    export BACKEND_WEB_DIR=$BK_REPO/web
    # backendctl (and whatever runs beside it) is the admin; bk_start_procs
    # gives each component its own identity
    export BACKEND_AMQP_USER=admin
    export BACKEND_AMQP_PASSWORD_FILE=$BK_BROKER_DIR/admin.password
    export BACKEND_BROKER_CTL=$BK_RMQ_DIR/rabbitmqctl
    # CORS is off by default: the test instance allows one made-up origin so
    # that tests/integration/test_http_ops.py can check both answers
    if [ "$BK_INSTANCE" = test ]; then
        export BACKEND_CORS_ALLOWED_ORIGINS=${BACKEND_CORS_ALLOWED_ORIGINS:-http://frontend.test}
    fi
    # mails: files under the instance (scripts/run), or, for the test
    # instance, a real SMTP server on 127.0.0.1 (bk_smtp_start) that
    # tests/integration/test_notify.py reads and stops and starts; retries
    # back off to 2 s there so that an outage test does not wait a minute
    export BACKEND_MAIL_DIR=$BK_MAIL_DIR
    export BACKEND_RESET_URL_TEMPLATE="http://127.0.0.1:$BK_HTTP_PORT/reset/{uid}/{token}"
    if [ "$BK_INSTANCE" = test ]; then
        export BACKEND_MAIL_BACKEND=smtp BACKEND_SMTP_HOST=127.0.0.1 BACKEND_SMTP_PORT=$BK_SMTP_PORT
        export BACKEND_SMTP_SECURITY=none BACKEND_MAIL_RETRY_MAX_S=2
    fi
}

# ---------------------------------------------------------------- processes

bk_pid_of() { [ -s "$1" ] && head -n1 "$1" | tr -dc 0-9; }

# Is PID a live process (not a zombie)?
bk_proc_alive() {
    local st
    [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# bk_pid_alive FILE [PATTERN]: the PID in FILE is alive and its command line
# contains PATTERN (so a PID reused by another program after a reboot is not
# mistaken for ours). Prints nothing.
bk_pid_alive() {
    local pid
    pid=$(bk_pid_of "$1") || return 1
    bk_proc_alive "$pid" || return 1
    [ -z "${2:-}" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# bk_wait_exit PID SECONDS: 0 once PID is gone, 1 if still alive after SECONDS.
bk_wait_exit() {
    local pid=$1 i n=$(($2 * 10))
    for ((i = 0; i < n; i++)); do
        bk_proc_alive "$pid" || return 0
        sleep 0.1
    done
    ! bk_proc_alive "$pid"
}

# bk_stop_pid NAME FILE PATTERN SIGNAL SECONDS: send SIGNAL to the PID in FILE
# (if it is ours and alive), wait up to SECONDS, then SIGKILL its process
# group (we start everything with setsid, so the group is the process and the
# children it forked). Removes FILE.
bk_stop_pid() {
    local name=$1 file=$2 pat=$3 sig=$4 secs=$5 pid
    if ! bk_pid_alive "$file" "$pat"; then
        rm -f "$file"
        return 0
    fi
    pid=$(bk_pid_of "$file")
    kill "-$sig" "$pid" 2>/dev/null || true
    if ! bk_wait_exit "$pid" "$secs"; then
        warn "$name (pid $pid) did not stop within ${secs}s after SIG$sig; sending SIGKILL"
        if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then
            kill -KILL -- "-$pid" 2>/dev/null || true
        else
            kill -KILL "$pid" 2>/dev/null || true
        fi
        bk_wait_exit "$pid" 5 || warn "$name (pid $pid) survived SIGKILL"
    fi
    note "stopped $name (pid $pid)"
    rm -f "$file"
}

# Does something accept TCP connections on 127.0.0.1:PORT?
bk_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# bk_wait_port PORT SECONDS [PID]: until the port accepts; fails early if PID dies.
bk_wait_port() {
    local port=$1 n=$(($2 * 10)) pid=${3:-} i
    for ((i = 0; i < n; i++)); do
        bk_port_busy "$port" && return 0
        if [ -n "$pid" ] && ! bk_proc_alive "$pid"; then return 1; fi
        sleep 0.1
    done
    return 1
}

# bk_wait_http URL SECONDS: until GET URL answers 200.
bk_wait_http() {
    local url=$1 n=$(($2 * 5)) i
    for ((i = 0; i < n; i++)); do
        [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null)" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- RabbitMQ

# Environment for the private broker and its CLI; call in a subshell.
bk_rmq_env() {
    local R=$BK_RMQ_DIR
    export RABBITMQ_CONF_ENV_FILE="$R/rabbitmq-env.conf" # empty: keeps /etc/rabbitmq/rabbitmq-env.conf out
    export RABBITMQ_NODENAME=$BK_NODE
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$BK_AMQP_PORT
    export RABBITMQ_DIST_PORT=$BK_DIST_PORT
    export ERL_EPMD_PORT=$BK_EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_MNESIA_BASE="$R/mnesia" RABBITMQ_LOG_BASE="$R/log"
    export RABBITMQ_CONFIG_FILE="$R/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$R/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$R/enabled_plugins"
    export RABBITMQ_PLUGINS_EXPAND_DIR="$R/plugins-expand"
    export RABBITMQ_FEATURE_FLAGS_FILE="$R/feature_flags"
    export RABBITMQ_PID_FILE="$R/rabbit.pid"
    export HOME="$R/home"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_CTL_ERL_ARGS="-dist_listen false"
    if [ -n "${BK_CLUSTER_DIR:-}" ] && [ "$BK_RMQ_DIR" != "${BK_RMQ_DIR#"$BK_CLUSTER_DIR"/}" ]; then
        # on a cluster node, list_queues and friends stream answers from every
        # node back to the CLI, so it must listen: on loopback, a free port
        export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        export RABBITMQ_CTL_DIST_PORT_MIN=0 RABBITMQ_CTL_DIST_PORT_MAX=0
    fi
}

# rabbitmqctl / rabbitmq-diagnostics against this instance's node.
bk_rabbitmqctl() { (bk_rmq_env && cd "$BK_RMQ_DIR" && "$BK_RMQ_BIN/rabbitmqctl" -q -n "$BK_NODE" "$@"); }

bk_rmq_alive() { bk_pid_alive "$BK_RMQ_DIR/rabbit.pid" "$BK_RMQ_DIR/home"; }
# The nodes of a cluster share the cluster's epmd (BK_EPMD_PID_FILE).
bk_epmd_pid_file() { printf '%s' "${BK_EPMD_PID_FILE:-$BK_RMQ_DIR/epmd.pid}"; }
bk_epmd_alive() { bk_pid_alive "$(bk_epmd_pid_file)" "epmd"; }

bk_rmq_start() {
    bk_rmq_launch
    bk_rmq_wait
}

# bk_rmq_launch: start the broker (and our epmd) without waiting for it to
# boot, so that the nodes of a cluster boot side by side; bk_rmq_wait waits.
bk_rmq_launch() {
    local R=$BK_RMQ_DIR epmd_pid
    epmd_pid=$(bk_epmd_pid_file)
    if bk_rmq_alive; then
        note "RabbitMQ $BK_NODE already running (pid $(bk_pid_of "$R/rabbit.pid"), AMQP 127.0.0.1:$BK_AMQP_PORT)"
        return 0
    fi
    # a launcher still booting a broker that has not written rabbit.pid yet
    if bk_pid_alive "$R/launcher.pid" rabbitmq-server; then
        say "waiting for the RabbitMQ that is already booting (launcher pid $(bk_pid_of "$R/launcher.pid"))"
    else
        for p in "$BK_AMQP_PORT" "$BK_DIST_PORT"; do
            bk_port_busy "$p" && die "port $p (RabbitMQ of the $BK_INSTANCE instance) is used by another program; stop it or pick other ports (BK_PORT_OFFSET for the test instance)"
        done
        say "starting RabbitMQ $BK_NODE on 127.0.0.1:$BK_AMQP_PORT (dist $BK_DIST_PORT, epmd $BK_EPMD_PORT)"
        mkdir -p "$R"
        bk_now >"$R/launch.t0"
        mkdir -p "$R/home" "$R/mnesia" "$R/log" "$R/plugins-expand"
        : >"$R/rabbitmq-env.conf"
        if [ ! -s "$R/home/.erlang.cookie" ]; then
            (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$R/home/.erlang.cookie")
            chmod 400 "$R/home/.erlang.cookie"
        fi
        cat >"$R/rabbitmq.conf" <<EOF
# written by scripts/services at every start
listeners.tcp.1 = 127.0.0.1:$BK_AMQP_PORT
loopback_users.guest = true
log.console = false
log.file.level = info
${BK_RMQ_EXTRA_CONF:-}
EOF
        echo '[].' >"$R/enabled_plugins"
        # our own epmd, so that we know its PID and stop it with the broker
        if ! bk_epmd_alive; then
            bk_port_busy "$BK_EPMD_PORT" && die "port $BK_EPMD_PORT (epmd of the $BK_INSTANCE instance) is used by another program; stop it or pick other ports (BK_PORT_OFFSET for the test instance)"
            setsid epmd -port "$BK_EPMD_PORT" -address 127.0.0.1 >"$R/log/epmd.log" 2>&1 </dev/null &
            echo $! >"$epmd_pid"
            bk_wait_port "$BK_EPMD_PORT" 10 "$(bk_pid_of "$epmd_pid")" || {
                bk_tail "$R/log/epmd.log"
                die "epmd did not start on port $BK_EPMD_PORT; see $R/log/epmd.log"
            }
        fi
        rm -f "$R/rabbit.pid"
        (bk_rmq_env && cd "$R" && exec setsid "$BK_RMQ_BIN/rabbitmq-server" >"$R/log/stdout.log" 2>&1 </dev/null) &
        echo $! >"$R/launcher.pid"
    fi
}

bk_rmq_wait() {
    local R=$BK_RMQ_DIR t0="" pid
    [ -s "$R/launch.t0" ] && t0=$(cat "$R/launch.t0")
    rm -f "$R/launch.t0"
    if [ -z "$t0" ] && bk_rmq_alive; then return 0; fi
    pid=$(bk_pid_of "$R/launcher.pid")
    if ! bk_wait_port "$BK_AMQP_PORT" 120 "$pid"; then
        local log="$R/log/$BK_NODE.log"
        bk_tail "$R/log/stdout.log"
        bk_tail "$log" 30
        die "RabbitMQ did not start; read $log and $R/log/stdout.log"
    fi
    # the broker writes its own PID (beam.smp) while booting
    for _ in $(seq 50); do bk_rmq_alive && break; sleep 0.1; done
    bk_rmq_alive || die "RabbitMQ answers on $BK_AMQP_PORT but $R/rabbit.pid is missing; see $R/log/$BK_NODE.log"
    note "RabbitMQ $BK_NODE ready${t0:+ in $(bk_since "$t0")} (pid $(bk_pid_of "$R/rabbit.pid"), log $R/log/$BK_NODE.log)"
}

# The broker identities: name, tags, then configure, write and read
# permission (regexes over exchange and queue names) on our vhost. Least
# privilege: only admin declares, reads commands of every worker or the dead
# letters; a worker reads its own queue, replies through the default
# exchange, and republishes a failing command to backend.retry (a delayed
# retry) or backend.dlx (moved aside with the reason); the
# bridge publishes commands and reads its replies (direct reply-to needs no
# permission); the relay alone publishes events. admin is an impersonator so
# that replayed dead letters keep the user_id of whoever published them.
bk_broker_identities() {
    local w q
    printf '%s\n' "admin impersonator .* .* .*"
    printf '%s\n' 'bridge - ^$ ^backend\.commands$ ^$'
    printf '%s\n' 'relay - ^$ ^backend\.events$ ^$'
    # the staff's dead-letter commands (profile worker): read backend.dead,
    # republish to backend.commands; no impersonator (the workers take the
    # original publisher from its x-bk-publisher header)
    printf '%s\n' 'dead-letters - ^$ ^backend\.commands$ ^backend\.dead$'
    # a worker reads its queue <q>.commands; it declares <q>.reads (configure,
    # read, write on that queue only) and binds its read commands to it on
    # backend.commands: the topic read permission names exactly those, as the
    # worker's own command table lists them (<worker> --read-commands), so it
    # cannot bind another worker's commands (a login's password) to its queue
    local reads names
    for w in "${BK_WORKERS[@]}"; do
        q=${w%-worker}
        reads='^$' # no binary yet (services before a build): no binding; reads use <q>.commands
        if [ -x "$BK_BIN_DIR/$w" ]; then
            # env -i, timeout: a binary from before --read-commands would start
            # a worker instead; without the instance's settings it serves nothing
            names=$(env -i timeout 5 "$BK_BIN_DIR/$w" --read-commands 2>/dev/null |
                grep -E '^[a-z_]+(\.[a-z_]+)+$' | paste -sd '|') || true
            [ -z "$names" ] || reads="^(${names//./\\.})\$"
        fi
        printf '%s\n' "$w - ^$q\.reads\$ ^(amq\.default|backend\.retry|backend\.dlx|$q\.reads)\$ ^($q\.commands|$q\.reads|backend\.commands)\$ backend.commands=$reads"
    done
    # a subscriber reads its own queue and nothing else; the optional sixth
    # field is a topic read permission (exchange=regex over binding keys):
    # should it ever be granted read on backend.events, it still could bind
    # only the events it mails, each by its exact name
    local events
    events=$(IFS='|' && echo "${BK_NOTIFY_EVENTS[*]}")
    printf '%s\n' "notify-worker - ^\$ ^\$ ^notify\.events\$ backend.events=^(${events//./\\.})\$"
}

# bk_broker_setup: after RabbitMQ starts (idempotent): every identity of
# bk_broker_identities with its password from <instance>/broker/<name>.password
# (generated when missing), the worker queue policy, no guest, and
# <instance>/rabbitmq/rabbitmqctl (backendctl's broker_ctl). One
# import_definitions: rabbitmqctl gets hashes, never a password.
bk_broker_setup() {
    local name tags conf wr rd f w queues=() defs
    mkdir -p "$BK_BROKER_DIR"
    chmod 700 "$BK_BROKER_DIR"
    while read -r name tags conf wr rd _; do
        f=$BK_BROKER_DIR/$name.password
        if [ ! -s "$f" ]; then
            (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$f")
            note "broker identity $name: new password in $f"
        fi
        chmod 600 "$f"
    done < <(bk_broker_identities)
    for w in "${BK_WORKERS[@]}"; do queues+=("${w%-worker}"); done
    defs=$(bk_broker_identities | BK_BROKER_DIR=$BK_BROKER_DIR \
        BK_POLICY_PATTERN="^($(IFS='|' && echo "${queues[*]}"))\.(commands|reads)\$" \
        BK_QUEUE_MAX_LENGTH=$BK_QUEUE_MAX_LENGTH BK_QUEUE_DELIVERY_LIMIT=$BK_QUEUE_DELIVERY_LIMIT \
        /usr/bin/python3 -c '
import base64, hashlib, json, os, sys
users, perms, topics = [], [], []
for line in sys.stdin:
    name, tags, conf, write, read, *topic = line.split()
    for t in topic:
        exchange, regex = t.split("=", 1)
        topics.append({"user": name, "vhost": "/", "exchange": exchange, "write": "^$", "read": regex})
    with open(os.path.join(os.environ["BK_BROKER_DIR"], name + ".password")) as f:
        pw = f.read().strip().encode()
    salt = os.urandom(4)  # rabbit_password_hashing_sha256: base64(salt + sha256(salt + pw))
    users.append({"name": name, "tags": [] if tags == "-" else tags.split(","),
                  "password_hash": base64.b64encode(salt + hashlib.sha256(salt + pw).digest()).decode(),
                  "hashing_algorithm": "rabbit_password_hashing_sha256"})
    perms.append({"user": name, "vhost": "/", "configure": conf, "write": write, "read": read})
policy = {"vhost": "/", "name": "backend-worker-queues", "pattern": os.environ["BK_POLICY_PATTERN"],
          "apply-to": "queues", "priority": 0,
          "definition": {"max-length": int(os.environ["BK_QUEUE_MAX_LENGTH"]), "overflow": "reject-publish",
                         "delivery-limit": int(os.environ["BK_QUEUE_DELIVERY_LIMIT"])}}
print(json.dumps({"users": users, "permissions": perms, "topic_permissions": topics,
                  "policies": [policy]}))
') || die "could not build the broker definitions (python3 output above)"
    bk_rabbitmqctl import_definitions <<<"$defs" >/dev/null ||
        die "rabbitmqctl import_definitions failed (output above); log $BK_RMQ_DIR/log/$BK_NODE.log"
    if bk_rabbitmqctl list_users 2>/dev/null | awk '{ print $1 }' | grep -qx guest; then
        bk_rabbitmqctl delete_user guest >/dev/null
        note "deleted the broker user guest"
    fi
    # rabbitmqctl for this instance's node, for backendctl service-account
    {
        echo '#!/usr/bin/env bash'
        echo '# written by scripts/lib.sh (bk_broker_setup): rabbitmqctl for this instance'
        (
            bk_rmq_env
            for v in $(compgen -e | grep -E '^(RABBITMQ_|ERL_)') HOME; do printf 'export %s=%q\n' "$v" "${!v}"; done
        )
        printf 'cd %q && exec %q -q -n %q "$@"\n' "$BK_RMQ_DIR" "$BK_RMQ_BIN/rabbitmqctl" "$BK_NODE"
    } >"$BK_RMQ_DIR/rabbitmqctl"
    chmod 700 "$BK_RMQ_DIR/rabbitmqctl"
    note "broker identities: $(bk_broker_identities | awk '{ printf "%s%s", s, $1; s = " " }') (passwords in $BK_BROKER_DIR)"
}

bk_rmq_stop() {
    bk_rmq_stop_node
    bk_stop_pid epmd "$(bk_epmd_pid_file)" epmd TERM 5
}

bk_rmq_stop_node() {
    local R=$BK_RMQ_DIR
    bk_stop_pid "RabbitMQ $BK_NODE" "$R/rabbit.pid" "$R/home" TERM 60
    # the sh launcher exits with the broker; a broker that never booted leaves only it
    bk_stop_pid "RabbitMQ launcher" "$R/launcher.pid" rabbitmq-server TERM 10
}

# ---------------------------------------------------------------- RabbitMQ cluster

# Three nodes of our RabbitMQ on loopback, clustered, replacing the instance's
# single node (scripts/cluster, scripts/run --cluster, scripts/test cluster):
#   <dir>/cluster/node<i>/   each node as <dir>/rabbitmq/ holds one (same cookie)
#   <dir>/cluster/epmd.pid   the one epmd of the three (the instance's epmd port)
#   <dir>/cluster/nodes      "i name amqp_port dist_port dir" per node, for tests
#   <dir>/cluster/rabbitmqctl  rabbitmqctl against the first node that runs
# Ports: node i (1-3) of the run instance AMQP 5680+i, dist 25680+i; of the
# test instance AMQP 5674+i, dist 25674+i, + BK_PORT_OFFSET. Neither collides
# with a single node (5673, 5674+offset) nor with a test instance moved by an
# offset of 10, 20, ...
BK_CLUSTER_SIZE=3

# bk_cluster_init: after bk_instance; sets BK_CLUSTER_DIR, BK_CLUSTER_NAMES,
# BK_CLUSTER_AMQP, BK_CLUSTER_DIST (arrays, index 0 = node 1).
bk_cluster_init() {
    local i base dist prefix off=${BK_PORT_OFFSET:-0}
    BK_CLUSTER_DIR=$BK_RUN_DIR/cluster
    case $BK_INSTANCE in
    run) base=5680 dist=25680 prefix=backend_run_n ;;
    *)
        base=$((5674 + off)) dist=$((25674 + off)) prefix=backend_test_n
        [ "$off" = 0 ] || prefix=backend_test${off}_n
        ;;
    esac
    BK_CLUSTER_NAMES=() BK_CLUSTER_AMQP=() BK_CLUSTER_DIST=()
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        BK_CLUSTER_NAMES+=("$prefix$i@localhost")
        BK_CLUSTER_AMQP+=($((base + i)))
        BK_CLUSTER_DIST+=($((dist + i)))
    done
    # a running cluster keeps the ports it was started with
    if [ -s "$BK_CLUSTER_DIR/nodes" ] && bk_cluster_alive; then
        BK_CLUSTER_NAMES=() BK_CLUSTER_AMQP=() BK_CLUSTER_DIST=()
        local n name amqp d rest
        while read -r n name amqp d rest; do
            BK_CLUSTER_NAMES+=("$name") BK_CLUSTER_AMQP+=("$amqp") BK_CLUSTER_DIST+=("$d")
        done <"$BK_CLUSTER_DIR/nodes"
    fi
}

# bk_cluster_node I: make node I (1-based) the one bk_rmq_* act on. It
# overrides BK_RMQ_DIR, BK_NODE and the ports: call it in a subshell.
bk_cluster_node() {
    local i=$1
    BK_RMQ_DIR=$BK_CLUSTER_DIR/node$i
    BK_NODE=${BK_CLUSTER_NAMES[i - 1]}
    BK_AMQP_PORT=${BK_CLUSTER_AMQP[i - 1]}
    BK_DIST_PORT=${BK_CLUSTER_DIST[i - 1]}
    BK_EPMD_PID_FILE=$BK_CLUSTER_DIR/epmd.pid
    # pause_minority: a node cut off from the other two stops serving
    # instead of diverging (RabbitMQ's advice for three nodes)
    # balanced: the leaders of the quorum queues spread over the nodes
    BK_RMQ_EXTRA_CONF="cluster_name = backend_$BK_INSTANCE
cluster_partition_handling = pause_minority
queue_leader_locator = balanced"
}

bk_cluster_node_alive() { (bk_cluster_node "$1" && bk_rmq_alive); }

bk_cluster_alive() {
    local i
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        bk_cluster_node_alive "$i" && return 0
    done
    return 1
}

# amqp_nodes for the processes: host:port of every node.
bk_cluster_amqp_nodes() {
    local p out=""
    for p in "${BK_CLUSTER_AMQP[@]}"; do out+="${out:+,}127.0.0.1:$p"; done
    printf '%s' "$out"
}

# After bk_export_backend_env: point every process of the instance at the cluster.
bk_cluster_export_env() {
    BACKEND_AMQP_NODES=$(bk_cluster_amqp_nodes)
    export BACKEND_AMQP_NODES
    export BACKEND_BROKER_CTL=$BK_CLUSTER_DIR/rabbitmqctl
}

# bk_cluster_members I: the running nodes of the cluster, as node I sees them.
bk_cluster_members() {
    (bk_cluster_node "$1" && bk_rabbitmqctl cluster_status --formatter json) 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin).get("running_nodes", [])))'
}

bk_cluster_start() {
    local i t0 members
    bk_rmq_alive && die "the single RabbitMQ node of the $BK_INSTANCE instance runs ($BK_NODE, pid $(bk_pid_of "$BK_RMQ_DIR/rabbit.pid")); stop it first (scripts/run stop, or scripts/services stop $BK_INSTANCE), then start the cluster"
    t0=$(bk_now)
    mkdir -p "$BK_CLUSTER_DIR"
    chmod 700 "$BK_CLUSTER_DIR"
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        bk_cluster_node_alive "$i" && continue
        (
            bk_cluster_node "$i"
            for p in "$BK_AMQP_PORT" "$BK_DIST_PORT"; do
                bk_port_busy "$p" && die "port $p (cluster node $i of the $BK_INSTANCE instance) is used by another program; stop it or pick other ports (BK_PORT_OFFSET for the test instance)"
            done
            true
        ) || exit 1
    done
    # one Erlang cookie for the three nodes and their CLI
    if [ ! -s "$BK_CLUSTER_DIR/cookie" ]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$BK_CLUSTER_DIR/cookie")
    fi
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        mkdir -p "$BK_CLUSTER_DIR/node$i/home"
        if ! cmp -s "$BK_CLUSTER_DIR/cookie" "$BK_CLUSTER_DIR/node$i/home/.erlang.cookie"; then
            rm -f "$BK_CLUSTER_DIR/node$i/home/.erlang.cookie"
            cp "$BK_CLUSTER_DIR/cookie" "$BK_CLUSTER_DIR/node$i/home/.erlang.cookie"
            chmod 400 "$BK_CLUSTER_DIR/node$i/home/.erlang.cookie"
        fi
    done
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        printf '%s %s %s %s %s\n' "$i" "${BK_CLUSTER_NAMES[i - 1]}" "${BK_CLUSTER_AMQP[i - 1]}" \
            "${BK_CLUSTER_DIST[i - 1]}" "$BK_CLUSTER_DIR/node$i"
    done >"$BK_CLUSTER_DIR/nodes"
    # boot side by side (the first launch starts epmd), then wait for each
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        (bk_cluster_node "$i" && bk_rmq_launch) || die "could not launch cluster node $i (above)"
    done
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        (bk_cluster_node "$i" && bk_rmq_wait) || die "cluster node $i did not start (above)"
    done
    # join: nodes 2.. to node 1 (stop_app, join_cluster, start_app), unless
    # they are members already (a restart rejoins by itself)
    for ((i = 2; i <= BK_CLUSTER_SIZE; i++)); do
        members=$(bk_cluster_members 1) || die "rabbitmqctl cluster_status on ${BK_CLUSTER_NAMES[0]} failed; see $BK_CLUSTER_DIR/node1/log/"
        grep -qxF "${BK_CLUSTER_NAMES[i - 1]}" <<<"$members" && continue
        say "joining ${BK_CLUSTER_NAMES[i - 1]} to ${BK_CLUSTER_NAMES[0]}"
        (
            bk_cluster_node "$i"
            bk_rabbitmqctl stop_app >/dev/null &&
                bk_rabbitmqctl join_cluster "${BK_CLUSTER_NAMES[0]}" >/dev/null &&
                bk_rabbitmqctl start_app >/dev/null
        ) || die "joining cluster node $i failed (rabbitmqctl output above); read $BK_CLUSTER_DIR/node$i/log/ — or scripts/cluster stop, remove $BK_CLUSTER_DIR and start again"
    done
    # every node sees all of them before anything is declared, so that each
    # quorum queue gets a member on every node
    for _ in $(seq 120); do
        [ "$(bk_cluster_members 1 | wc -l)" -ge "$BK_CLUSTER_SIZE" ] && break
        sleep 0.5
    done
    [ "$(bk_cluster_members 1 | wc -l)" -ge "$BK_CLUSTER_SIZE" ] ||
        die "the cluster did not come up with $BK_CLUSTER_SIZE running nodes: $(bk_cluster_members 1 | tr '\n' ' '); read $BK_CLUSTER_DIR/node*/log/"
    (bk_cluster_node 1 && bk_broker_setup)
    bk_cluster_write_ctl
    note "cluster of $BK_CLUSTER_SIZE nodes ready in $(bk_since "$t0") (amqp_nodes $(bk_cluster_amqp_nodes))"
}

# <dir>/cluster/rabbitmqctl: the rabbitmqctl wrapper of the first node that
# runs (backendctl's broker_ctl; users and policies are the cluster's).
bk_cluster_write_ctl() {
    local i
    {
        echo '#!/usr/bin/env bash'
        echo '# written by scripts/lib.sh (bk_cluster_write_ctl): rabbitmqctl against a running node of the cluster'
        printf 'for n in'
        for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do printf ' %q' "$BK_CLUSTER_DIR/node$i"; done
        printf '; do\n'
        echo '    p=$(head -n1 "$n/rabbit.pid" 2>/dev/null) || continue'
        echo '    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ -x "$n/rabbitmqctl" ] && exec "$n/rabbitmqctl" "$@"'
        echo 'done'
        echo 'echo "no node of the cluster runs (scripts/cluster start)" >&2; exit 69'
    } >"$BK_CLUSTER_DIR/rabbitmqctl"
    chmod 700 "$BK_CLUSTER_DIR/rabbitmqctl"
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do (bk_cluster_node "$i" && bk_rmq_write_ctl); done
}

# <node dir>/rabbitmqctl: rabbitmqctl for the node bk_rmq_* act on (the same
# wrapper bk_broker_setup writes for the instance's single node).
bk_rmq_write_ctl() {
    {
        echo '#!/usr/bin/env bash'
        echo '# written by scripts/lib.sh (bk_rmq_write_ctl): rabbitmqctl for this node'
        (
            bk_rmq_env
            for v in $(compgen -e | grep -E '^(RABBITMQ_|ERL_)') HOME; do printf 'export %s=%q\n' "$v" "${!v}"; done
        )
        printf 'cd %q && exec %q -q -n %q "$@"\n' "$BK_RMQ_DIR" "$BK_RMQ_BIN/rabbitmqctl" "$BK_NODE"
    } >"$BK_RMQ_DIR/rabbitmqctl"
    chmod 700 "$BK_RMQ_DIR/rabbitmqctl"
}

# Stops the nodes side by side (each by its PID), then their epmd.
bk_cluster_stop() {
    local i pids=()
    [ -n "${BK_CLUSTER_DIR:-}" ] || bk_cluster_init
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        (bk_cluster_node "$i" && bk_rmq_stop_node) &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    bk_stop_pid epmd "$BK_CLUSTER_DIR/epmd.pid" epmd TERM 5
}

# bk_cluster_kill I: SIGKILL node I by its PID (a crash, for trying failover).
bk_cluster_kill() {
    local i=$1 pid
    (bk_cluster_node "$i" && bk_rmq_alive) || die "cluster node $i does not run"
    pid=$(bk_pid_of "$BK_CLUSTER_DIR/node$i/rabbit.pid")
    kill -KILL "$pid"
    bk_wait_exit "$pid" 10 || die "node $i (pid $pid) survived SIGKILL"
    note "killed ${BK_CLUSTER_NAMES[i - 1]} (pid $pid) with SIGKILL; scripts/cluster start brings it back"
}

bk_cluster_status() {
    local i rc=0 up=0
    for ((i = 1; i <= BK_CLUSTER_SIZE; i++)); do
        if bk_cluster_node_alive "$i"; then
            up=$((up + 1))
            note "node $i  ${BK_CLUSTER_NAMES[i - 1]}  running  pid $(bk_pid_of "$BK_CLUSTER_DIR/node$i/rabbit.pid")  AMQP 127.0.0.1:${BK_CLUSTER_AMQP[i - 1]}  dist ${BK_CLUSTER_DIST[i - 1]}  log $BK_CLUSTER_DIR/node$i/log/"
        else
            note "node $i  ${BK_CLUSTER_NAMES[i - 1]}  stopped  (AMQP ${BK_CLUSTER_AMQP[i - 1]}, dist ${BK_CLUSTER_DIST[i - 1]})"
            rc=1
        fi
    done
    note "epmd 127.0.0.1:$BK_EPMD_PORT  amqp_nodes $(bk_cluster_amqp_nodes)"
    if [ "$up" -gt 0 ] && [ -x "$BK_CLUSTER_DIR/rabbitmqctl" ]; then
        note "quorum queues (name type leader members):"
        "$BK_CLUSTER_DIR/rabbitmqctl" list_queues name type leader members 2>&1 | sed 's/^/      /' || true
    fi
    return $rc
}

# ---------------------------------------------------------------- PostgreSQL

# Where the cluster really lives. <instance>/pg if postgres can reach it and
# the socket path fits in 107 bytes, else /var/tmp/backend-pg-<hash> with
# <instance>/pg a symlink to it. Sets BK_PG_REAL; creates it when create=1.
bk_pg_locate() {
    local create=${1:-0} hash
    if [ -L "$BK_PG_DIR" ]; then
        BK_PG_REAL=$(readlink -f "$BK_PG_DIR")
    elif [ -d "$BK_PG_DIR" ] || [ "$create" != 1 ]; then
        BK_PG_REAL=$BK_PG_DIR
    else
        mkdir -p "$BK_RUN_DIR"
        if runuser -u postgres -- test -x "$BK_RUN_DIR" 2>/dev/null &&
            [ ${#BK_PG_DIR} -le 80 ]; then # 80 + /sock/.s.PGSQL.NNNNN stays under 107
            BK_PG_REAL=$BK_PG_DIR
        else
            hash=$(printf '%s' "$BK_RUN_DIR" | sha256sum | cut -c1-12)
            BK_PG_REAL=/var/tmp/backend-pg-$hash
            note "postgres cannot use $BK_PG_DIR (unreachable or too long a path): data in $BK_PG_REAL"
            mkdir -p "$BK_PG_REAL"
            ln -sfn "$BK_PG_REAL" "$BK_PG_DIR"
        fi
    fi
    if [ "$create" = 1 ]; then
        mkdir -p "$BK_PG_REAL/sock" "$BK_PG_REAL/log"
        chown -R postgres:postgres "$BK_PG_REAL"
        chmod 700 "$BK_PG_REAL"
    fi
}

bk_pg_alive() {
    local real
    real=$(readlink -f "$BK_PG_DIR" 2>/dev/null) || return 1
    bk_pid_alive "$real/postgres.pid" "-D $real/data"
}

# psql as the superuser over the private socket.
bk_psql_admin() {
    (cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 \
        -h "$BK_PG_REAL/sock" -p "$BK_PG_PORT" -U postgres -d postgres "$@")
}

bk_pg_start() {
    local D t0 log
    bk_pg_locate 1
    D=$BK_PG_REAL/data
    log=$BK_PG_REAL/log/postgres.log
    if bk_pg_alive; then
        note "PostgreSQL already running (pid $(bk_pid_of "$BK_PG_REAL/postgres.pid"), 127.0.0.1:$BK_PG_PORT)"
        return 0
    fi
    bk_port_busy "$BK_PG_PORT" && die "port $BK_PG_PORT (PostgreSQL of the $BK_INSTANCE instance) is used by another program; stop it or pick other ports (BK_PORT_OFFSET for the test instance)"
    say "starting PostgreSQL 15 on 127.0.0.1:$BK_PG_PORT (data $D)"
    t0=$(bk_now)
    if [ ! -s "$D/PG_VERSION" ]; then
        note "initdb $D"
        (cd / && runuser -u postgres -- "$BK_PG_BIN/initdb" -D "$D" -U postgres \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            --no-instructions) >"$BK_PG_REAL/log/initdb.log" 2>&1 || {
            bk_tail "$BK_PG_REAL/log/initdb.log"
            die "initdb failed; see $BK_PG_REAL/log/initdb.log"
        }
        printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$D/pg_hba.conf"
        printf "\n# instance settings, rewritten by scripts/services at every start\ninclude_if_exists 'backend.conf'\n" >>"$D/postgresql.conf"
        chown postgres:postgres "$D/pg_hba.conf"
    fi
    {
        echo "# written by scripts/services at every start ($BK_INSTANCE instance)"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $BK_PG_PORT"
        echo "unix_socket_directories = '$BK_PG_REAL/sock'"
        echo "max_connections = 200"
        if [ "$BK_INSTANCE" = test ]; then
            echo "# test instance only: a crash may corrupt the cluster (then rm -rf it)"
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >"$D/backend.conf"
    chown postgres:postgres "$D/backend.conf"
    if ! (cd / && runuser -u postgres -- "$BK_PG_BIN/pg_ctl" -D "$D" -l "$log" -w -t 60 start) >/dev/null 2>&1; then
        bk_tail "$log"
        die "PostgreSQL did not start; read $log"
    fi
    head -n1 "$D/postmaster.pid" >"$BK_PG_REAL/postgres.pid"
    if [ -z "$(bk_psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'backend'")" ]; then
        bk_psql_admin -c "CREATE ROLE backend LOGIN PASSWORD 'backend'"
        note "created role backend"
    fi
    if [ -z "$(bk_psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'backend'")" ]; then
        bk_psql_admin -c "CREATE DATABASE backend OWNER backend"
        note "created database backend"
    fi
    note "PostgreSQL ready in $(bk_since "$t0") (pid $(bk_pid_of "$BK_PG_REAL/postgres.pid"), log $log)"
}

bk_pg_stop() {
    local real
    real=$(readlink -f "$BK_PG_DIR" 2>/dev/null) || return 0
    # SIGINT = fast shutdown; SIGQUIT-free fallback is bk_stop_pid's SIGKILL
    bk_stop_pid PostgreSQL "$real/postgres.pid" "-D $real/data" INT 60
}

# ---------------------------------------------------------------- services

bk_services_start() {
    mkdir -p "$BK_RUN_DIR" "$BK_LOG_DIR"
    bk_rmq_alive || bk_pg_alive || bk_write_instance_env
    bk_rmq_start
    bk_broker_setup
    bk_pg_start
}

bk_services_stop() {
    say "stopping the services of the $BK_INSTANCE instance ($BK_RUN_DIR)"
    bk_rmq_stop
    bk_pg_stop
}

bk_services_status() {
    local rc=0
    if bk_rmq_alive; then
        note "RabbitMQ   running  pid $(bk_pid_of "$BK_RMQ_DIR/rabbit.pid")  AMQP 127.0.0.1:$BK_AMQP_PORT  node $BK_NODE  epmd $BK_EPMD_PORT  log $BK_RMQ_DIR/log/$BK_NODE.log"
    else
        note "RabbitMQ   stopped"
        rc=1
    fi
    if bk_pg_alive; then
        note "PostgreSQL running  pid $(bk_pid_of "$BK_PG_DIR/postgres.pid")  127.0.0.1:$BK_PG_PORT  log $(readlink -f "$BK_PG_DIR")/log/postgres.log"
    else
        note "PostgreSQL stopped"
        rc=1
    fi
    return $rc
}

# ---------------------------------------------------------------- build

# bk_build: configure (once) and build the instance's build dir.
bk_build() {
    local t0 lock args=(-DCMAKE_BUILD_TYPE=Release)
    [ "$BK_INSTANCE" = test ] && args=(-DBK_TEST_BUILD=ON -DCMAKE_BUILD_TYPE=Debug)
    t0=$(bk_now)
    # copies of scripts/test running side by side share the build dir: one builds at a time
    mkdir -p "$BK_BUILD_DIR"
    exec {lock}>"$BK_BUILD_DIR/.build.lock"
    flock "$lock"
    if [ ! -f "$BK_BUILD_DIR/CMakeCache.txt" ]; then
        say "configuring $BK_BUILD_DIR (${args[*]})"
        cmake -S "$BK_REPO" -B "$BK_BUILD_DIR" "${args[@]}" >/dev/null ||
            die "cmake configure failed (output above); fix it, or rm -rf $BK_BUILD_DIR and retry"
    fi
    say "building $BK_BUILD_DIR"
    cmake --build "$BK_BUILD_DIR" -j2 || die "the build failed (compiler output above)"
    exec {lock}>&-
    note "built in $(bk_since "$t0")"
}

# ---------------------------------------------------------------- workers

# backendctl against the instance (env must be exported).
bk_ctl() { (cd "$BK_REPO" && "$BK_BIN_DIR/backendctl" "$@"); }

bk_migrate_keygen() {
    [ -x "$BK_BIN_DIR/backendctl" ] || die "$BK_BIN_DIR/backendctl is missing: the build did not produce it"
    say "applying migrations (backendctl migrate)"
    bk_ctl migrate || die "backendctl migrate failed (its log lines are above); database 127.0.0.1:$BK_PG_PORT, log $(readlink -f "$BK_PG_DIR")/log/postgres.log"
    mkdir -p "$BK_KEY_DIR"
    chmod 700 "$BK_KEY_DIR"
    say "token keys in $BK_KEY_DIR (backendctl keygen)"
    bk_ctl keygen || die "backendctl keygen failed (its log lines are above)"
    say "broker topology (backendctl broker-setup as admin)"
    bk_ctl broker-setup || die "backendctl broker-setup failed (its log lines are above)"
}

# bk_proc_identity NAME: export the broker identity of process NAME (its
# own, named like it; a worker's outbox relay logs in as relay; a subscriber
# learns the relay's name, to check who published an event, not its password).
bk_proc_identity() {
    export BACKEND_AMQP_USER=$1 BACKEND_AMQP_PASSWORD_FILE=$BK_BROKER_DIR/$1.password
    case " ${BK_WORKERS[*]} " in
    *" $1 "*) export BACKEND_RELAY_AMQP_USER=relay BACKEND_RELAY_AMQP_PASSWORD_FILE=$BK_BROKER_DIR/relay.password ;;
    esac
    # only the profile worker runs the staff's dead-letter commands
    [ "$1" != profile-worker ] ||
        export BACKEND_DEAD_LETTERS_AMQP_PASSWORD_FILE=$BK_BROKER_DIR/dead-letters.password
    case " ${BK_SUBSCRIBERS[*]} " in
    *" $1 "*) export BACKEND_RELAY_AMQP_USER=relay ;;
    esac
}

bk_proc_alive_named() { bk_pid_alive "$BK_RUN_DIR/$1.pid" "$1"; }

# bk_start_procs [truncate]: start every worker and the bridge that is not
# running already, each in its own session, logging to <instance>/log/<name>.log.
bk_start_procs() {
    local truncate=${1:-0} name started=()
    mkdir -p "$BK_LOG_DIR"
    for name in "${BK_PROCS[@]}"; do
        if bk_proc_alive_named "$name"; then
            note "$name already running (pid $(bk_pid_of "$BK_RUN_DIR/$name.pid"))"
            continue
        fi
        [ -x "$BK_BIN_DIR/$name" ] || die "$BK_BIN_DIR/$name is missing: the build did not produce it"
        [ "$truncate" = 1 ] && : >"$BK_LOG_DIR/$name.log"
        say "starting $name (log $BK_LOG_DIR/$name.log)"
        (
            cd "$BK_REPO"
            bk_proc_identity "$name"
            exec setsid "$BK_BIN_DIR/$name" >>"$BK_LOG_DIR/$name.log" 2>&1 </dev/null
        ) &
        echo $! >"$BK_RUN_DIR/$name.pid"
        started+=("$name")
    done
    [ ${#started[@]} -gt 0 ] || return 0
    sleep 0.5
    for name in "${started[@]}"; do
        if ! bk_proc_alive_named "$name"; then
            bk_tail "$BK_LOG_DIR/$name.log"
            die "$name exited right after starting; read $BK_LOG_DIR/$name.log"
        fi
    done
}

bk_stop_procs() {
    local name i
    for ((i = ${#BK_PROCS[@]} - 1; i >= 0; i--)); do # the bridge first
        name=${BK_PROCS[i]}
        bk_stop_pid "$name" "$BK_RUN_DIR/$name.pid" "$name" TERM 10
    done
}

bk_procs_status() {
    local name rc=0
    for name in "${BK_PROCS[@]}"; do
        if bk_proc_alive_named "$name"; then
            printf '    %-15s running  pid %-8s log %s\n' "$name" "$(bk_pid_of "$BK_RUN_DIR/$name.pid")" "$BK_LOG_DIR/$name.log"
        else
            printf '    %-15s stopped\n' "$name"
            rc=1
        fi
    done
    return $rc
}

# ---------------------------------------------------------------- test SMTP server

# A real SMTP server for the test instance: Debian's python3-aiosmtpd with its
# Mailbox handler, every mail it accepts in the maildir <instance>/smtp/
# (new/ holds one file per mail). tests/integration/test_notify.py stops and
# starts it (same command, same smtp.pid) to show that mails wait.
bk_smtp_cmd() {
    printf '%s\n' /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$BK_SMTP_PORT" \
        -c aiosmtpd.handlers.Mailbox "$BK_RUN_DIR/smtp"
}

bk_smtp_start() {
    local pid cmd
    if bk_pid_alive "$BK_RUN_DIR/smtp.pid" aiosmtpd; then
        note "SMTP server already running (pid $(bk_pid_of "$BK_RUN_DIR/smtp.pid"), 127.0.0.1:$BK_SMTP_PORT)"
        return 0
    fi
    bk_port_busy "$BK_SMTP_PORT" && die "port $BK_SMTP_PORT (the test SMTP server) is used by another program; stop it or pick other ports (BK_PORT_OFFSET)"
    mkdir -p "$BK_LOG_DIR"
    mapfile -t cmd < <(bk_smtp_cmd)
    say "starting the test SMTP server on 127.0.0.1:$BK_SMTP_PORT (maildir $BK_RUN_DIR/smtp)"
    (exec setsid "${cmd[@]}" >>"$BK_LOG_DIR/smtp.log" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$BK_RUN_DIR/smtp.pid"
    bk_wait_port "$BK_SMTP_PORT" 15 "$pid" || {
        bk_tail "$BK_LOG_DIR/smtp.log"
        die "the SMTP server did not start on $BK_SMTP_PORT; see $BK_LOG_DIR/smtp.log"
    }
}

bk_smtp_stop() { bk_stop_pid "SMTP server" "$BK_RUN_DIR/smtp.pid" aiosmtpd TERM 10; }

bk_health_url() { printf 'http://127.0.0.1:%s/api/health/' "$BK_HTTP_PORT"; }

bk_wait_health() {
    local t0
    t0=$(bk_now)
    say "waiting for $(bk_health_url)"
    if ! bk_wait_http "$(bk_health_url)" "${1:-30}"; then
        bk_tail "$BK_LOG_DIR/bridge.log"
        die "the bridge did not answer 200 on $(bk_health_url) within ${1:-30}s; read $BK_LOG_DIR/bridge.log (and the worker logs in $BK_LOG_DIR)"
    fi
    note "healthy after $(bk_since "$t0")"
}

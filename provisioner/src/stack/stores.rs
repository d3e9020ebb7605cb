//! How each kind of data store runs on a box: its user, its server command
//! line and how to tell that it is ready. The supervisord renderer and the
//! seeder both build on these, so a store is described in one place.
//!
//! Every store listens on the box's loopback only; services reach it there
//! and the laptop through SSH.

use crate::manifest::{Store, StoreKind};
use crate::stack::layout::{sh, Layout, QueueHost, StoreRunner};

/// The unprivileged account a store's server runs as (the names Debian and
/// NixOS packages create). PostgreSQL and OpenSearch refuse to run as root.
pub fn user(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Redis => "redis",
        StoreKind::Postgres => "postgres",
        StoreKind::Mongodb => "mongodb",
        StoreKind::Opensearch => "opensearch",
        StoreKind::Mysql => "mysql",
        // moto's server has no account of its own on Debian.
        StoreKind::Sqs => "nobody",
    }
}

/// Who runs the store's server: the box's runner; for an sqs store, the
/// server beside the services (supervisord) or none at all on a box in
/// AWS, whose queues are SQS's.
pub fn runner(store: &Store, layout: &Layout) -> Option<StoreRunner> {
    match (store.kind, layout.queues) {
        (StoreKind::Sqs, QueueHost::Beside) => Some(StoreRunner::Supervisord),
        (StoreKind::Sqs, QueueHost::Aws) => None,
        _ => Some(layout.stores),
    }
}

/// The systemd unit nixpkgs' module runs a store as (images/lib.nix
/// `storeUnits` names the same): redis servers are per store, the others
/// one per box.
pub fn system_unit(name: &str, kind: StoreKind) -> String {
    match kind {
        StoreKind::Redis => format!("redis-{name}.service"),
        StoreKind::Postgres => "postgresql.service".into(),
        StoreKind::Mongodb => "mongodb.service".into(),
        StoreKind::Opensearch => "opensearch.service".into(),
        StoreKind::Mysql => "mysql.service".into(),
        // Never asked: nothing runs an sqs store on such a box ([`runner`]).
        StoreKind::Sqs => "sqs.service".into(),
    }
}

/// The account a store runs as under `runner` (nixpkgs gives each redis
/// server its own).
pub fn runner_user(name: &str, kind: StoreKind, runner: StoreRunner) -> String {
    match (runner, kind) {
        (StoreRunner::Systemd, StoreKind::Redis) => format!("redis-{name}"),
        _ => user(kind).into(),
    }
}

/// Where redis keeps `dump.rdb`.
pub fn redis_dir(name: &str, layout: &Layout) -> String {
    match layout.stores {
        StoreRunner::Supervisord => layout.store_dir(name),
        StoreRunner::Systemd => format!("/var/lib/redis-{name}"),
    }
}

/// The shell lines that start the server in the foreground (supervisord
/// supervises it), run as [`user`] in the store's own directory.
pub fn server_script(name: &str, store: &Store, layout: &Layout) -> String {
    let dir = sh(&layout.store_dir(name));
    let port = store.port();
    match store.kind {
        // `save` keeps a stop/start of the box from losing data; the staging
        // database used by seeding is one of the 16.
        StoreKind::Redis => format!(
            "exec redis-server --bind 127.0.0.1 --port {port} --dir {dir} --dbfilename dump.rdb \
             --save '60 1000' --appendonly no --databases 16 --daemonize no --protected-mode yes"
        ),
        // The cluster is made by `init_script` first. No Unix socket: its
        // path must fit in 108 bytes, and clients all use 127.0.0.1.
        StoreKind::Postgres => format!("exec postgres -D {dir}/data -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"),
        StoreKind::Mongodb => format!("exec mongod --bind_ip 127.0.0.1 --port {port} --dbpath {dir}"),
        StoreKind::Opensearch => format!(
            "exec opensearch -Ehttp.port={port} -Enetwork.host=127.0.0.1 -Ediscovery.type=single-node \
             -Epath.data={dir}/data -Epath.logs={dir}/logs -Eplugins.security.disabled=true"
        ),
        // MariaDB; none of the machine's option files (`--no-defaults`).
        // Its Unix socket is abstract (a name in the box's network
        // namespace, not a path that must fit in 108 bytes); clients use
        // 127.0.0.1. LOAD DATA LOCAL is how CSV seeds arrive.
        StoreKind::Mysql => format!(
            "exec mariadbd --no-defaults --datadir={dir}/data --port={port} --bind-address=127.0.0.1 --socket=@workstation-mysql-{port} \
             --pid-file={dir}/mariadbd.pid --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
             --local-infile=1 --max-allowed-packet=256M"
        ),
        // moto's server keeps queues in memory: each start makes them
        // again (`workstation box queues`), then waits on the server.
        // moto's server keeps queues in memory: each start makes them
        // again (`workstation box queues`), then waits on the server. Run
        // as root (`box queues` is the laptop's binary, which nobody may
        // not reach), the server as nobody. A stop ends the server before
        // the launcher, and the launcher exits with the server's status.
        StoreKind::Sqs => format!(
            "setpriv --reuid=nobody --regid=\"$(id -g nobody)\" --clear-groups moto_server -H 127.0.0.1 -p {port} & server=$!\n\
             trap 'kill $server 2>/dev/null; wait $server; exit 143' TERM INT HUP\n\
             {bin} box queues --endpoint {endpoint}{queues} || {{ kill $server; wait $server; exit 1; }}\n\
             wait $server",
            bin = sh(&layout.bin),
            endpoint = sh(&store.url(name)),
            queues = queue_args(store),
        ),
    }
}

/// The store's one-time initialisation, if it has one (postgres' initdb,
/// mysql's mariadb-install-db),
/// run as [`user`] before the server. The bring-up starts it in the
/// background before supervisord, so the two start-ups overlap, and the
/// launcher runs it again: a lock makes the second wait for the first, the
/// cluster is made aside and renamed into place (a killed initdb leaves no
/// half cluster; the re-check under the lock keeps a finished one).
/// Trust on loopback only: the box is single-user and the port is not
/// reachable from outside (mysql: `root@127.0.0.1` without a password).
pub fn init_script(name: &str, store: &Store, layout: &Layout) -> Option<String> {
    let dir = sh(&layout.store_dir(name));
    let made_aside = |done: &str, make: &str| {
        format!(
            "[ -e {dir}/data/{done} ] && exit 0\n\
             exec 9>{dir}/init.lock && flock 9 || exit 1\n\
             [ -e {dir}/data/{done} ] && exit 0\n\
             rm -rf {dir}/data.new\n\
             {make} >{dir}/init.log 2>&1 \\\n  \
             || {{ cat {dir}/init.log >&2; exit 1; }}\n\
             exec mv -T {dir}/data.new {dir}/data"
        )
    };
    match store.kind {
        StoreKind::Postgres => Some(made_aside(
            "PG_VERSION",
            &format!("initdb --pgdata={dir}/data.new --username=postgres --auth-local=peer --auth-host=trust --encoding=UTF8 --no-sync"),
        )),
        StoreKind::Mysql => Some(made_aside(
            "mysql",
            &format!("mariadb-install-db --no-defaults --datadir={dir}/data.new --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve"),
        )),
        StoreKind::Redis | StoreKind::Mongodb | StoreKind::Opensearch | StoreKind::Sqs => None,
    }
}

/// A command on the box that exits 0 once the store answers queries.
pub fn ready_command(name: &str, store: &Store, layout: &Layout) -> String {
    let port = store.port();
    match store.kind {
        StoreKind::Redis => format!("[ \"$(redis-cli -h 127.0.0.1 -p {port} ping 2>/dev/null)\" = PONG ]"),
        StoreKind::Postgres => format!("pg_isready -q -h 127.0.0.1 -p {port} -U postgres"),
        StoreKind::Mongodb => {
            format!("mongosh --quiet --host 127.0.0.1 --port {port} --eval 'quit(db.adminCommand({{ping: 1}}).ok ? 0 : 1)'")
        }
        StoreKind::Opensearch => {
            format!("curl -fsS -o /dev/null 'http://127.0.0.1:{port}/_cluster/health?wait_for_status=yellow&timeout=1s'")
        }
        // A query, not `mariadb-admin ping`, which says alive even to an
        // account it refuses.
        StoreKind::Mysql => format!("{} -N -e 'SELECT 1' >/dev/null 2>&1", mysql_client(store, "root")),
        // Every queue there, asked with the SDK (moto's server routes a
        // request by its signature): a restarted server makes them again
        // before they answer.
        StoreKind::Sqs => format!("{} box queues --check --endpoint {}{} >/dev/null 2>&1", sh(&layout.bin), sh(&store.url(name)), queue_args(store)),
    }
}

/// ` --queue NAME` for each of an sqs store's queues.
fn queue_args(store: &Store) -> String {
    store.queues.iter().map(|q| format!(" --queue {}", sh(q))).collect()
}

/// The mariadb client on the box, connected over loopback as `user`.
pub fn mysql_client(store: &Store, user: &str) -> String {
    format!("mariadb --no-defaults -h 127.0.0.1 -P {} -u {user}", store.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(kind: &str) -> Store {
        toml::from_str(&format!("kind = \"{kind}\"")).unwrap()
    }

    // MongoDB and OpenSearch are not installable on the test machines: these
    // pin their command lines; redis and postgres run for real end to end.
    #[test]
    fn mongodb_and_opensearch_command_lines() {
        let layout = Layout::new("/var/lib/workstation", None).unwrap();
        assert_eq!(server_script("docs", &store("mongodb"), &layout), "exec mongod --bind_ip 127.0.0.1 --port 27017 --dbpath /var/lib/workstation/stores/docs");
        assert_eq!(
            ready_command("docs", &store("mongodb"), &layout),
            "mongosh --quiet --host 127.0.0.1 --port 27017 --eval 'quit(db.adminCommand({ping: 1}).ok ? 0 : 1)'"
        );
        let os = server_script("search", &store("opensearch"), &layout);
        assert!(os.starts_with("exec opensearch -Ehttp.port=9200 -Enetwork.host=127.0.0.1 -Ediscovery.type=single-node"), "{os}");
        assert!(os.contains("-Epath.data=/var/lib/workstation/stores/search/data"), "{os}");
        assert_eq!(
            ready_command("search", &store("opensearch"), &layout),
            "curl -fsS -o /dev/null 'http://127.0.0.1:9200/_cluster/health?wait_for_status=yellow&timeout=1s'"
        );
        assert_eq!(user(StoreKind::Opensearch), "opensearch");
    }

    /// An sqs store is a server only beside a local box's services.
    #[test]
    fn an_sqs_store_runs_only_beside_a_local_boxs_services() {
        let jobs: Store = toml::from_str("kind = \"sqs\"\nqueues = [\"emails\", \"pay.fifo\"]").unwrap();
        let aws = Layout::new("/var/lib/workstation", None).unwrap().with_stores(StoreRunner::Systemd);
        assert_eq!(runner(&jobs, &aws), None);
        assert_eq!(runner(&store("redis"), &aws), Some(StoreRunner::Systemd));
        let local = Layout::new("/srv/box", None).unwrap().with_bin("/opt/ws").with_queues(QueueHost::Beside);
        assert_eq!(runner(&jobs, &local), Some(StoreRunner::Supervisord));
        let script = server_script("jobs", &jobs, &local);
        assert!(script.starts_with("setpriv --reuid=nobody"), "{script}");
        assert!(script.contains("moto_server -H 127.0.0.1 -p 9324 & server=$!\n"), "{script}");
        assert!(script.contains("\n/opt/ws box queues --endpoint http://127.0.0.1:9324 --queue emails --queue pay.fifo || "), "{script}");
        assert_eq!(
            ready_command("jobs", &jobs, &local),
            "/opt/ws box queues --check --endpoint http://127.0.0.1:9324 --queue emails --queue pay.fifo >/dev/null 2>&1"
        );
    }
}

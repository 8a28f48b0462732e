//! A real PgBouncer (Debian's `pgbouncer`) in **transaction** mode in front of the test server,
//! with 2 server connections per database, so a service's 10 client connections really are
//! swapped between transactions. One per test binary, listening on a Unix socket in a temp dir
//! of its own (no port to pick); it runs as `nobody` (PgBouncer refuses root) and dies with the
//! test process. Idle server connections are closed after 1 s (PgBouncer's default keeps them
//! 10 minutes): every test has a database of its own, and the connections of the finished ones
//! would otherwise add up past the server's max_connections ("sorry, too many clients already").

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::OnceCell;

/// The socket's "port" (it only names the socket file).
const PORT: u16 = 6432;
/// Server connections per database and user.
pub const SERVER_CONNECTIONS: u32 = 2;

pub struct PgBouncer {
    dir: PathBuf,
}

static BOUNCER: OnceCell<PgBouncer> = OnceCell::const_new();

impl PgBouncer {
    /// The binary's PgBouncer, started on first use in front of `server` (any database name is
    /// forwarded to the same name there).
    pub async fn shared(server: &PgConnectOptions, password: &str) -> &'static PgBouncer {
        BOUNCER
            .get_or_init(|| async { Self::start(server, password).await })
            .await
    }

    async fn start(server: &PgConnectOptions, password: &str) -> Self {
        let Some(program) = which("pgbouncer") else {
            panic!(
                "The pooler tests need PgBouncer: install Debian's package with `apt-get install \
                 pgbouncer` (scripts/test.sh and .ci/run do it)."
            );
        };
        let dir = std::env::temp_dir().join(format!(
            "atomic-signup-pgbouncer-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o777);
        let host = server.get_host();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={port} user={user} password={password}\n\
             [pgbouncer]\n\
             listen_addr =\n\
             unix_socket_dir = {dir}\n\
             listen_port = {PORT}\n\
             auth_type = any\n\
             pool_mode = transaction\n\
             default_pool_size = {SERVER_CONNECTIONS}\n\
             min_pool_size = 0\n\
             reserve_pool_size = 0\n\
             max_client_conn = 500\n\
             max_db_connections = {SERVER_CONNECTIONS}\n\
             server_idle_timeout = 1\n\
             server_reset_query =\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            port = server.get_port(),
            user = server.get_username(),
            dir = dir.display(),
        );
        let config = dir.join("pgbouncer.ini");
        std::fs::write(&config, ini).unwrap();
        set_mode(&config, 0o644);
        let mut command = std::process::Command::new(program);
        command
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .uid(65534) // nobody
            .gid(65534);
        // SAFETY: prctl in the forked child, before exec: PgBouncer gets SIGTERM when this test
        // process ends (a static is never dropped).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        // PR_SET_PDEATHSIG fires when the *thread* that forked ends, and each test's thread ends
        // with the test: fork from a thread that lives as long as the process.
        let (started, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let spawned = command.spawn().map(|_child| ());
            let _ = started.send(spawned);
            loop {
                std::thread::park();
            }
        });
        result
            .recv()
            .expect("the PgBouncer thread answers")
            .unwrap_or_else(|e| panic!("PgBouncer did not start: {e}"));
        let socket = dir.join(format!(".s.PGSQL.{PORT}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "PgBouncer never opened its socket: {}",
                std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { dir }
    }

    /// Options that reach `database` through PgBouncer.
    pub fn options(&self, user: &str, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(PORT)
            .username(user)
            .database(database)
    }

    /// The same as a URL (for the real binary).
    pub fn url(&self, user: &str, database: &str) -> String {
        format!(
            "postgres://{user}@localhost/{database}?host={}&port={PORT}",
            self.dir.display()
        )
    }
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

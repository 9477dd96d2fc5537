//! Starting server processes that cannot outlive the test process that started them.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago. Servers are started on it right away; the small race
/// with another process picking it is handled by the callers retrying on a start failure.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 works")
}

/// The supervisor: runs the program in the background, writes its pid, and stops it with
/// `SIGINT` (a fast shutdown for both PostgreSQL and Redis) when asked to (`SIGTERM` to the
/// supervisor) or when the test process is gone. In the second case nobody is left to clean
/// up, so it also removes the server's directory.
const SUPERVISOR: &str = r#"
parent=$1; pidfile=$2; remove_dir=$3; shift 3
"$@" &
child=$!
echo "$child" > "$pidfile"
trap 'kill -INT "$child" 2>/dev/null' TERM INT
( while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.2; done
  kill -INT "$child" 2>/dev/null ) &
watcher=$!
status=0
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
kill "$watcher" 2>/dev/null
if [ -n "$remove_dir" ] && ! kill -0 "$parent" 2>/dev/null; then rm -rf "$remove_dir"; fi
exit $status
"#;

/// A server process under the supervisor.
#[derive(Debug)]
pub(crate) struct Supervised {
    supervisor: Child,
    pidfile: PathBuf,
}

impl Supervised {
    /// Starts `program args...` (optionally as `run_as`); `dir` is removed if the server
    /// outlives the test process.
    pub(crate) fn spawn(
        program: &Path,
        args: &[String],
        run_as: Option<&str>,
        pidfile: PathBuf,
        dir: &Path,
        log: &Path,
    ) -> Result<Self> {
        let _ = fs::remove_file(&pidfile);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&pidfile)
            .arg(dir);
        if let Some(user) = run_as {
            cmd.args([
                "setpriv",
                "--reuid",
                user,
                "--regid",
                user,
                "--init-groups",
                "--",
            ]);
        }
        let log_file =
            fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let supervisor = cmd.spawn().context("starting the supervisor shell")?;
        Ok(Self {
            supervisor,
            pidfile,
        })
    }

    /// The server's own pid (not the supervisor's), for `kill -9` in crash tests.
    pub(crate) fn server_pid(&self) -> Option<u32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(s) = fs::read_to_string(&self.pidfile) {
                if let Ok(pid) = s.trim().parse() {
                    return Some(pid);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.supervisor.try_wait(), Ok(None))
    }

    /// Asks for a fast shutdown and waits for it (then `SIGKILL` after `grace`).
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.has_exited() {
            return;
        }
        signal(self.supervisor.id(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.has_exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = self.server_pid() {
            signal(pid, "KILL");
        }
        let _ = self.supervisor.wait();
    }

    /// `kill -9` of the server itself, as a crash would; the supervisor then exits too.
    pub(crate) fn kill(&mut self) {
        if let Some(pid) = self.server_pid() {
            signal(pid, "KILL");
        }
        let _ = self.supervisor.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether this process runs as root (PostgreSQL refuses to, so the harness drops to the
/// `postgres` user). Read from /proc to avoid `unsafe` calls to `geteuid`.
pub(crate) fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A new directory for one server, under the system temp dir.
pub(crate) fn scratch_dir(kind: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "scoreboard-{kind}-{}-{}",
        std::process::id(),
        crate::random_suffix(8)
    ));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Runs a command to completion, failing with its output when it fails.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The descendants of `pid` whose command name is `name` (e.g. the `workerd` processes that
/// `wrangler dev` starts), oldest first, found by walking `/proc`.
pub(crate) fn descendants_named(pid: u32, name: &str) -> Vec<u32> {
    let mut parents: HashMap<u32, (u32, String)> = HashMap::new();
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in proc.flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        parents.insert(p, (ppid, comm));
    }
    let descends = |mut p: u32| {
        for _ in 0..64 {
            match parents.get(&p) {
                Some((pp, _)) if *pp == pid => return true,
                Some((pp, _)) if *pp > 1 => p = *pp,
                _ => return false,
            }
        }
        false
    };
    let mut found: Vec<u32> = parents
        .iter()
        .filter(|(p, (_, comm))| comm == name && descends(**p))
        .map(|(p, _)| *p)
        .collect();
    found.sort_unstable();
    found
}

//! A name that a test can move from one address to another, as an operator's DNS change moves
//! a region's host name: a hosts file of the test's own, bind-mounted over `/etc/hosts` in a
//! private mount namespace of the edge process only (see [`crate::EdgeServer::start_for_load`]).

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The hosts file the edge resolves names with.
#[derive(Debug)]
pub struct HostsFile {
    path: PathBuf,
    name: String,
}

impl HostsFile {
    /// A copy of this machine's `/etc/hosts` (so `localhost` still resolves) plus `name` →
    /// `address`.
    pub fn new(name: &str, address: &str) -> Result<Self> {
        let dir = crate::process::scratch_dir("hosts")?;
        let hosts = Self {
            path: dir.join("hosts"),
            name: name.to_owned(),
        };
        hosts.point(address)?;
        Ok(hosts)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the name to `address`. The file is rewritten in place, never replaced: a bind
    /// mount follows the inode, so a new file would go unseen.
    pub fn point(&self, address: &str) -> Result<()> {
        let system = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        let ours = system
            .lines()
            .filter(|l| !l.split_whitespace().skip(1).any(|n| n == self.name))
            .collect::<Vec<_>>()
            .join("\n");
        write!(file, "{ours}\n{address} {}\n", self.name)?;
        file.sync_all()?;
        Ok(())
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

//! A throwaway Redis Cluster: three masters and three replicas from Debian's `redis-server` on
//! random ports, joined by `redis-cli --cluster create`, with a short node timeout so a
//! killed master's replica takes over within seconds.

use crate::redis_server::RedisServer;
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a master may be silent before its replica is promoted.
const NODE_TIMEOUT_MS: u32 = 1000;

/// The nodes of one test's cluster; a killed node stays in the list, stopped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// One node's line of `CLUSTER NODES`: its port, whether it is a live master, its slot ranges.
struct NodeLine {
    port: u16,
    live_master: bool,
    slots: Vec<(u16, u16)>,
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f
                .get(1)?
                .split(['@', ','])
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let flags = f.get(2)?;
            let live_master = flags.contains("master") && !flags.contains("fail");
            let slots = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeLine {
                port,
                live_master,
                slots,
            })
        })
        .collect()
}

impl RedisCluster {
    /// Six nodes, one replica per master, every slot covered and every replica in sync.
    pub async fn start() -> Result<Self> {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
                // Each node writes its own nodes.conf into its own dir.
                "--cluster-config-file",
                "nodes.conf",
                // The bus port is the port + 10000 unless named: past 65535 for a high one.
                "--cluster-port",
                &crate::free_port().to_string(),
            ]
            .map(String::from)
            .to_vec();
            nodes.push(RedisServer::start_with(extra).await?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .context("running redis-cli --cluster create (Debian's redis-tools)")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let cluster = Self { nodes };
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// `REDIS_CLUSTER_NODES` for the aggregator: every node, as `host:port`.
    pub fn nodes_setting(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A `redis://` URL of each node, killed ones included.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    async fn ask(port: u16, args: &[&str]) -> Result<redis::Value> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
        let mut c = client.get_multiplexed_async_connection().await?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        Ok(cmd.query_async(&mut c).await?)
    }

    async fn text(port: u16, args: &[&str]) -> Result<String> {
        let v = Self::ask(port, args).await?;
        Ok(redis::from_redis_value(&v)?)
    }

    fn live_ports(&mut self) -> Vec<u16> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then(|| n.port()))
            .collect()
    }

    /// Waits until every live node says `cluster_state:ok`, agrees on three live masters, and
    /// every master with a live replica has it in sync.
    pub async fn wait_healthy(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            match self.healthy().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn healthy(&self) -> Result<()> {
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.port()).collect();
        let mut live = 0;
        for port in ports {
            let Ok(info) = Self::text(port, &["CLUSTER", "INFO"]).await else {
                continue; // a killed node
            };
            live += 1;
            if !info.contains("cluster_state:ok") {
                bail!("node {port}: {info}");
            }
            let masters = parse_nodes(&Self::text(port, &["CLUSTER", "NODES"]).await?)
                .into_iter()
                .filter(|n| n.live_master && !n.slots.is_empty())
                .count();
            if masters != 3 {
                bail!("node {port} sees {masters} live masters with slots");
            }
            let replication = Self::text(port, &["INFO", "replication"]).await?;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                bail!("replica {port} is not in sync yet");
            }
        }
        if live == 0 {
            bail!("no node answers");
        }
        Ok(())
    }

    /// The index of the live master that serves `key`'s slot.
    pub async fn master_of(&mut self, key: &str) -> Result<usize> {
        let ports = self.live_ports();
        let port = *ports.first().context("no live node")?;
        let slot: i64 =
            redis::from_redis_value(&Self::ask(port, &["CLUSTER", "KEYSLOT", key]).await?)?;
        let slot = slot as u16;
        let lines = parse_nodes(&Self::text(port, &["CLUSTER", "NODES"]).await?);
        let owner = lines
            .iter()
            .find(|n| n.live_master && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .context("no master serves the slot")?;
        self.nodes
            .iter()
            .position(|n| n.port() == owner.port)
            .context("the owner is not one of ours")
    }

    /// The number of keys on each live master, in node order (killed nodes and replicas 0).
    pub async fn keys_per_master(&mut self) -> Result<Vec<u64>> {
        let mut counts = Vec::new();
        for i in 0..self.nodes.len() {
            let port = self.nodes[i].port();
            let master = match Self::ask(port, &["ROLE"]).await {
                Ok(redis::Value::Array(v)) => {
                    matches!(v.first(), Some(redis::Value::BulkString(b)) if b == b"master")
                }
                _ => false,
            };
            counts.push(if master {
                redis::from_redis_value(&Self::ask(port, &["DBSIZE"]).await?)?
            } else {
                0
            });
        }
        Ok(counts)
    }

    /// `kill -9` of node `i`, as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }
}

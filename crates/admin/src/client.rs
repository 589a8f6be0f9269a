//! One connection to a flare process (index or node), the way flare-tools
//! talks to it: `version` first, one request at a time, every request
//! bounded by the timeout, `quit` at the end. Built on the workspace's one
//! peer client ([`flare_net::PeerConn`]), so replies are framed by their
//! bytes and keys are never decoded as text.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use flare_net::{PeerConfig, PeerConn};
use flare_proto::client::{DumpItem, ReplyKind, ReplyLimits};
use flare_proto::node::{NodeLine, Role, State};

use crate::error::AdminError;

/// A connection to `addr` (`host:port`).
pub struct Client {
    addr: String,
    conn: PeerConn,
    timeout: Duration,
    /// What `version` answered (`flare-1.3.4`, or a plain memcached version).
    pub version: String,
}

/// `STAT name value` lines of a `stats` reply, in order.
pub type Stats = BTreeMap<String, String>;

impl Client {
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client, AdminError> {
        let mut cfg = PeerConfig::new(timeout);
        // Dumps carry values up to the nodes' item size limit.
        cfg.limits = ReplyLimits {
            max_line: 64 << 10,
            max_reply: 1 << 30,
        };
        let conn = PeerConn::connect(addr, cfg).await?;
        let mut c = Client {
            addr: addr.to_string(),
            conn,
            timeout,
            version: String::new(),
        };
        let line = c.line("version").await?;
        c.version = line
            .strip_prefix("VERSION ")
            .ok_or_else(|| c.refused("version", &line))?
            .to_string();
        Ok(c)
    }

    fn refused(&self, command: &str, reply: &str) -> AdminError {
        AdminError::Refused {
            addr: self.addr.clone(),
            command: command.to_string(),
            reply: reply.to_string(),
        }
    }

    /// Send `command` and return its one-line answer.
    pub async fn line(&mut self, command: &str) -> Result<String, AdminError> {
        let req = format!("{command}\r\n");
        let reply = self
            .conn
            .call_within(req.as_bytes(), ReplyKind::Line, self.timeout)
            .await?;
        Ok(PeerConn::line(&reply))
    }

    /// Send `command`; anything but `OK` is an error naming the reply.
    pub async fn ok(&mut self, command: &str) -> Result<(), AdminError> {
        let line = self.line(command).await?;
        if line == "OK" {
            Ok(())
        } else {
            Err(self.refused(command, &line))
        }
    }

    /// The lines of a block reply up to `END` (without it). An error line
    /// instead of the block is an error.
    pub async fn block(&mut self, command: &str) -> Result<Vec<String>, AdminError> {
        let req = format!("{command}\r\n");
        let reply = self
            .conn
            .call_within(req.as_bytes(), ReplyKind::Block, self.timeout)
            .await?;
        let text = String::from_utf8_lossy(&reply);
        let mut lines: Vec<String> = text.lines().map(|l| l.to_string()).collect();
        match lines.last().map(String::as_str) {
            Some("END") => {
                lines.pop();
                Ok(lines)
            }
            Some(other) => Err(self.refused(command, other)),
            None => Err(self.refused(command, "")),
        }
    }

    /// `stats [sub]` as name → value.
    pub async fn stats(&mut self, sub: &str) -> Result<Stats, AdminError> {
        let command = if sub.is_empty() {
            "stats".to_string()
        } else {
            format!("stats {sub}")
        };
        let mut out = Stats::new();
        for l in self.block(&command).await? {
            if let Some(rest) = l.strip_prefix("STAT ") {
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
        Ok(out)
    }

    /// `stats nodes`: the node map as this process knows it.
    pub async fn nodes(&mut self) -> Result<Vec<NodeLine>, AdminError> {
        let stats = self.stats("nodes").await?;
        let mut by_key: BTreeMap<String, NodeLine> = BTreeMap::new();
        for (k, v) in &stats {
            // `<host>:<port>:<field>`; split from the right so that a host
            // name with colons (IPv6) stays whole.
            let mut it = k.rsplitn(3, ':');
            let (Some(field), Some(port), Some(host)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let n = by_key
                .entry(format!("{host}:{port}"))
                .or_insert_with(|| NodeLine {
                    name: host.to_string(),
                    port,
                    role: Role::Proxy,
                    state: State::Active,
                    partition: -1,
                    balance: 0,
                    thread_type: 0,
                });
            match field {
                "role" => {
                    n.role = Role::from_word(v.as_bytes()).ok_or_else(|| self.bad(k, v))?;
                }
                "state" => {
                    n.state = State::from_word(v.as_bytes()).ok_or_else(|| self.bad(k, v))?;
                }
                "partition" => n.partition = v.parse().map_err(|_| self.bad(k, v))?,
                "balance" => n.balance = v.parse().map_err(|_| self.bad(k, v))?,
                "thread_type" => n.thread_type = v.parse().map_err(|_| self.bad(k, v))?,
                _ => {}
            }
        }
        Ok(by_key.into_values().collect())
    }

    fn bad(&self, name: &str, value: &str) -> AdminError {
        AdminError::Protocol {
            addr: self.addr.clone(),
            what: format!("STAT {name} {value}"),
        }
    }

    /// `meta`: `META name value` lines as name → value.
    pub async fn meta(&mut self) -> Result<BTreeMap<String, String>, AdminError> {
        let mut out = BTreeMap::new();
        for l in self.block("meta").await? {
            if let Some(rest) = l.strip_prefix("META ") {
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
        Ok(out)
    }

    /// Start a `dump`/`dump_key` stream; read it with [`Client::dump_item`].
    pub async fn start_stream(&mut self, command: &str) -> Result<(), AdminError> {
        let req = format!("{command}\r\n");
        Ok(self.conn.send(req.as_bytes()).await?)
    }

    /// The next record of a `dump` stream (`None` at `END`).
    pub async fn dump_item(&mut self, command: &str) -> Result<Option<Record>, AdminError> {
        match Record::from_item(self.conn.dump_item().await?) {
            Ok(r) => Ok(Some(r)),
            Err(DumpItem::Refused(line)) => {
                Err(self.refused(command, &String::from_utf8_lossy(&line)))
            }
            Err(_) => Ok(None),
        }
    }

    /// The next key of a `dump_key` stream (`None` at `END`).
    pub async fn key_item(&mut self, command: &str) -> Result<Option<Bytes>, AdminError> {
        let reply = self.conn.reply(ReplyKind::Line).await?;
        let line = reply.strip_suffix(b"\r\n").unwrap_or(&reply);
        if line == b"END" {
            return Ok(None);
        }
        match line.strip_prefix(b"KEY ") {
            Some(k) => Ok(Some(Bytes::copy_from_slice(k))),
            None => Err(self.refused(command, &String::from_utf8_lossy(line))),
        }
    }

    /// A storage command (`set`, …) with its data block; the one-line answer.
    pub async fn store(&mut self, header: &[u8], data: &[u8]) -> Result<String, AdminError> {
        self.send_store(header, data).await?;
        self.answer().await
    }

    /// Send a storage command without waiting for its answer (pipelining:
    /// read the answers in order with [`Client::answer`]).
    pub async fn send_store(&mut self, header: &[u8], data: &[u8]) -> Result<(), AdminError> {
        let mut req = Vec::with_capacity(header.len() + data.len() + 4);
        req.extend_from_slice(header);
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(data);
        req.extend_from_slice(b"\r\n");
        Ok(self.conn.send(&req).await?)
    }

    /// The next one-line answer, within the timeout.
    pub async fn answer(&mut self) -> Result<String, AdminError> {
        match tokio::time::timeout(self.timeout, self.conn.reply(ReplyKind::Line)).await {
            Ok(r) => Ok(PeerConn::line(&r?)),
            Err(_) => Err(AdminError::Peer(flare_net::PeerError::Timeout {
                addr: self.addr.clone(),
                after: self.timeout,
            })),
        }
    }

    /// A raw request whose answer is one line (used for `get`-less probes).
    pub async fn raw_line(&mut self, req: &[u8]) -> Result<String, AdminError> {
        let reply = self
            .conn
            .call_within(req, ReplyKind::Line, self.timeout)
            .await?;
        Ok(PeerConn::line(&reply))
    }

    /// `quit`, as flare-tools ends a session; failures do not matter.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.conn.send(b"quit\r\n")).await;
    }
}

/// One record of a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Bytes,
    pub flags: u32,
    pub version: u64,
    pub expire: i64,
    pub value: Bytes,
}

impl Record {
    /// The record of a `dump` item; other items are given back.
    pub fn from_item(item: DumpItem) -> Result<Record, DumpItem> {
        match item {
            DumpItem::Record {
                key,
                flags,
                version,
                expire,
                value,
                ..
            } => Ok(Record {
                key,
                flags,
                version,
                expire,
                value,
            }),
            other => Err(other),
        }
    }
}

/// flare-tools' order of nodes: partition, role word, node key.
pub fn sort_nodes(nodes: &mut [NodeLine]) {
    nodes.sort_by(|a, b| {
        (a.partition, a.role.word(), a.key()).cmp(&(b.partition, b.role.word(), b.key()))
    });
}

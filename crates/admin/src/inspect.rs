//! Sub-commands that only read: list, stats, ping, threads, index, summary,
//! part. Text output keeps flare-tools' columns (scripts parse them);
//! `--json` gives the same data for programs.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use flare_cluster::{HashAlgorithm, ModularTable, PartitionMaps};
use flare_proto::node::{NodeLine, Role};
use serde_json::{json, Value};

use crate::cli::{IndexArgs, ListArgs, PartArgs, PingArgs, StatsArgs, SummaryArgs, ThreadsArgs};
use crate::client::Stats;
use crate::error::AdminError;
use crate::ui::Ctx;

/// flare-tools' uptime: the largest whole unit (`45s`, `12m`, `3h`, `2d`).
pub fn short_uptime(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if d > 0 {
        format!("{d}d")
    } else if h > 0 {
        format!("{h}h")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}

/// `%-W.Ws` / `%W.Ws` of Ruby: pad to `width`, cut at `max` characters.
fn col(s: &str, width: usize, max: Option<usize>, left: bool) -> String {
    let cut: String = match max {
        Some(m) => s.chars().take(m).collect(),
        None => s.to_string(),
    };
    if left {
        format!("{cut:<width$}")
    } else {
        format!("{cut:>width$}")
    }
}

/// A float as Ruby's `to_s` writes it (`52.1`, `100.0`).
fn ruby_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// `stats` of every node, asked concurrently.
async fn all_stats(ctx: &Ctx, nodes: &[NodeLine]) -> Vec<Option<Stats>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let key = n.key();
        let timeout = ctx.timeout;
        set.spawn(async move {
            let s = async {
                let mut c = crate::client::Client::connect(&key, timeout).await.ok()?;
                let s = c.stats("").await.ok();
                c.close().await;
                s
            }
            .await;
            (i, s)
        });
    }
    let mut out = vec![None; nodes.len()];
    while let Some(r) = set.join_next().await {
        if let Ok((i, s)) = r {
            out[i] = s;
        }
    }
    out
}

fn num(s: Option<&Stats>, name: &str) -> Option<u64> {
    s?.get(name)?.parse().ok()
}

pub async fn list(ctx: &Ctx, a: ListArgs) -> Result<u8, AdminError> {
    let nodes = ctx.nodes().await?;
    let stats = if a.long || ctx.json {
        all_stats(ctx, &nodes).await
    } else {
        vec![None; nodes.len()]
    };
    let mut hosts = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let mut host = n.name.clone();
        if a.numeric_hosts {
            if let Ok(mut it) = tokio::net::lookup_host((n.name.as_str(), n.port)).await {
                if let Some(addr) = it.next() {
                    host = addr.ip().to_string();
                }
            }
        }
        hosts.push(format!("{host}:{}", n.port));
    }
    if ctx.json {
        let rows: Vec<Value> = nodes
            .iter()
            .zip(&hosts)
            .zip(&stats)
            .map(|((n, h), s)| {
                json!({
                    "node": h,
                    "host": n.name,
                    "port": n.port,
                    "partition": (n.partition >= 0).then_some(n.partition),
                    "role": n.role.word(),
                    "state": n.state.word(),
                    "balance": n.balance,
                    "thread_type": n.thread_type,
                    "items": num(s.as_ref(), "curr_items"),
                    "uptime": num(s.as_ref(), "uptime"),
                })
            })
            .collect();
        println!("{}", Value::Array(rows));
        return Ok(0);
    }
    let mut header = format!(
        "{:<32} {:>9} {:>6} {:>6} {:>7}",
        "node", "partition", "role", "state", "balance"
    );
    if a.long {
        header.push_str(&format!(" {:>8} {:>6}", "items", "uptime"));
    }
    println!("{header}");
    for ((n, h), s) in nodes.iter().zip(&hosts).zip(&stats) {
        let partition = if n.partition == -1 {
            "-".to_string()
        } else {
            n.partition.to_string()
        };
        let mut line = format!(
            "{:<32} {:>9} {:>6} {:>6} {:>7}",
            h,
            partition,
            n.role.word(),
            n.state.word(),
            n.balance
        );
        if a.long {
            let items = num(s.as_ref(), "curr_items").map_or("-".into(), |v| v.to_string());
            let up = num(s.as_ref(), "uptime").map_or("-".into(), short_uptime);
            line.push_str(&format!(" {items:>8} {up:>6}"));
        }
        println!("{line}");
    }
    Ok(0)
}

/// `behind` per node from the index's `stats threads` (its monitor entries).
async fn behind_by_peer(idx: &mut crate::client::Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(threads) = idx.stats("threads").await {
        for (_, fields) in group_threads(&threads) {
            if let (Some(p), Some(b)) = (fields.get("peer"), fields.get("behind")) {
                out.insert(p.clone(), b.clone());
            }
        }
    }
    out
}

/// `stats threads` lines grouped by thread id (in id order).
fn group_threads(stats: &Stats) -> Vec<(u64, BTreeMap<String, String>)> {
    let mut by_id: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    for (k, v) in stats {
        if let Some((id, field)) = k.split_once(':') {
            if let Ok(id) = id.parse::<u64>() {
                by_id
                    .entry(id)
                    .or_default()
                    .insert(field.to_string(), v.clone());
            }
        }
    }
    by_id.into_iter().collect()
}

struct Prev {
    at: Instant,
    get: u64,
    set: u64,
}

pub async fn stats(ctx: &Ctx, a: StatsArgs) -> Result<u8, AdminError> {
    if a.count == 0 {
        return Err(AdminError::Usage("--count must be at least 1".into()));
    }
    let mut prev: BTreeMap<String, Prev> = BTreeMap::new();
    for round in 0..a.count {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(a.wait)).await;
        }
        // the map and the agents' `behind`, on one connection to the index
        let (nodes, behind) = {
            let mut idx = ctx.index().await?;
            let mut n = idx.nodes().await?;
            let behind = behind_by_peer(&mut idx).await;
            idx.close().await;
            crate::client::sort_nodes(&mut n);
            n.retain(|n| a.nodes.is_empty() || a.nodes.contains(&n.key()));
            (n, behind)
        };
        let stats = all_stats(ctx, &nodes).await;
        let now = Instant::now();
        let width = nodes
            .iter()
            .map(|n| n.key().len())
            .max()
            .unwrap_or(0)
            .max(25);
        let mut rows = Vec::new();
        let mut json_rows = Vec::new();
        for (n, s) in nodes.iter().zip(&stats) {
            let key = n.key();
            let s = s.as_ref();
            let get = num(s, "cmd_get");
            let set = num(s, "cmd_set");
            let hit = match (get, num(s, "get_hits")) {
                (Some(g), Some(h)) if g > 0 => {
                    Some(((h as f64) / (g as f64) * 100.0).round() as u64)
                }
                _ => None,
            };
            let bytes = num(s, "bytes");
            let qps = match (get, set) {
                (Some(g), Some(w)) => {
                    let r = match prev.get(&key) {
                        Some(p) => {
                            let d = now.duration_since(p.at).as_secs_f64().max(1e-3);
                            let rate = |new: u64, old: u64| {
                                if new > old {
                                    (new - old) as f64 / d
                                } else {
                                    0.0
                                }
                            };
                            Some((rate(g + w, p.get + p.set), rate(g, p.get), rate(w, p.set)))
                        }
                        None => None,
                    };
                    prev.insert(
                        key.clone(),
                        Prev {
                            at: now,
                            get: g,
                            set: w,
                        },
                    );
                    r
                }
                _ => None,
            };
            let behind_v = behind.get(&key).cloned();
            if ctx.json {
                json_rows.push(json!({
                    "node": key,
                    "state": n.state.word(),
                    "role": n.role.word(),
                    "partition": n.partition,
                    "balance": n.balance,
                    "reachable": s.is_some(),
                    "items": num(s, "curr_items"),
                    "conn": num(s, "curr_connections"),
                    "behind": behind_v.as_ref().and_then(|b| b.parse::<u64>().ok()),
                    "hit": hit,
                    "bytes": bytes,
                    "uptime": num(s, "uptime"),
                    "version": s.and_then(|s| s.get("version")),
                    "cmd_get": get,
                    "cmd_set": set,
                    "qps": a.qps.then(|| qps.map_or(0.0, |q| q.0)),
                    "qps_r": a.qps.then(|| qps.map_or(0.0, |q| q.1)),
                    "qps_w": a.qps.then(|| qps.map_or(0.0, |q| q.2)),
                }));
                continue;
            }
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            let mut cols = vec![
                col(&key, width, Some(width), true),
                col(n.state.word(), 6, None, false),
                col(n.role.word(), 6, None, false),
                col(&n.partition.to_string(), 9, None, false),
                col(&n.balance.to_string(), 7, None, false),
                col(&opt(num(s, "curr_items")), 8, Some(8), false),
                col(&opt(num(s, "curr_connections")), 4, None, false),
                col(behind_v.as_deref().unwrap_or("-"), 6, Some(6), false),
                col(
                    &match (s, hit) {
                        (None, _) => String::new(),
                        (Some(_), Some(h)) => h.to_string(),
                        (Some(_), None) => "-".into(),
                    },
                    3,
                    Some(3),
                    false,
                ),
                col(
                    &match bytes {
                        None => String::new(),
                        Some(0) => "-".into(),
                        Some(b) => (b >> 30).to_string(),
                    },
                    4,
                    Some(4),
                    false,
                ),
                col(
                    &num(s, "uptime").map(short_uptime).unwrap_or_default(),
                    6,
                    Some(6),
                    false,
                ),
                col(
                    s.and_then(|s| s.get("version")).map_or("", String::as_str),
                    7,
                    None,
                    false,
                ),
            ];
            if a.qps {
                let q = |f: fn(&(f64, f64, f64)) -> f64| match &qps {
                    Some(t) if f(t) > 0.0 => ruby_float(f(t)),
                    _ => "0".to_string(),
                };
                cols.push(col(&q(|t| t.0), 5, Some(5), false));
                cols.push(col(&q(|t| t.1), 5, Some(5), false));
                cols.push(col(&q(|t| t.2), 5, Some(5), false));
            }
            rows.push(cols.join(&a.delimiter));
        }
        if ctx.json {
            println!("{}", Value::Array(json_rows));
            continue;
        }
        let mut header = vec![
            col("hostname:port", width, Some(width), true),
            col("state", 6, None, false),
            col("role", 6, None, false),
            col("partition", 9, None, false),
            col("balance", 7, None, false),
            col("items", 8, Some(8), false),
            col("conn", 4, None, false),
            col("behind", 6, Some(6), false),
            col("hit", 3, Some(3), false),
            col("size", 4, Some(4), false),
            col("uptime", 6, Some(6), false),
            col("version", 7, None, false),
        ];
        if a.qps {
            for h in ["qps", "qps-r", "qps-w"] {
                header.push(col(h, 5, Some(5), false));
            }
        }
        println!("{}", header.join(&a.delimiter));
        for r in rows {
            println!("{r}");
        }
    }
    Ok(0)
}

pub async fn ping(ctx: &Ctx, a: PingArgs) -> Result<u8, AdminError> {
    let targets = if a.nodes.is_empty() {
        vec![ctx.index.clone()]
    } else {
        for n in &a.nodes {
            crate::spec::NodeSpec::parse(n, 2)?;
        }
        a.nodes.clone()
    };
    loop {
        let mut results = Vec::new();
        for t in &targets {
            let r = async {
                let mut c = ctx.connect(t).await?;
                c.ok("ping").await?;
                c.close().await;
                Ok::<(), AdminError>(())
            }
            .await;
            results.push((t.clone(), r));
        }
        let alive = results.iter().all(|(_, r)| r.is_ok());
        if alive || !a.wait {
            if ctx.json {
                let rows: Vec<Value> = results
                    .iter()
                    .map(|(t, r)| {
                        json!({"node": t, "alive": r.is_ok(),
                               "error": r.as_ref().err().map(|e| e.to_string())})
                    })
                    .collect();
                println!("{}", Value::Array(rows));
            } else if alive {
                println!("alive");
            } else {
                for (t, r) in &results {
                    if let Err(e) = r {
                        println!("{t} dead: {e}");
                    }
                }
            }
            return Ok(if alive { 0 } else { 1 });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn threads(ctx: &Ctx, a: ThreadsArgs) -> Result<u8, AdminError> {
    let target = match &a.node {
        Some(n) => crate::spec::NodeSpec::parse(n, 2)?.key(),
        None => ctx.index.clone(),
    };
    let mut c = ctx.connect(&target).await?;
    let threads = c.stats("threads").await?;
    c.close().await;
    let groups = group_threads(&threads);
    let field = |f: &BTreeMap<String, String>, k: &str| f.get(k).cloned().unwrap_or_default();
    if ctx.json {
        let rows: Vec<Value> = groups
            .iter()
            .map(|(id, f)| {
                let mut o = serde_json::Map::new();
                o.insert("id".into(), json!(id));
                for (k, v) in f {
                    o.insert(k.clone(), json!(v));
                }
                Value::Object(o)
            })
            .collect();
        println!("{}", Value::Array(rows));
        return Ok(0);
    }
    println!(
        "{:>8} {:<32} {:<12} {:>4} {:>6} {:>6} {:>8}",
        "id", "peer", "op", "type", "queue", "behind", "uptime"
    );
    for (id, f) in &groups {
        println!(
            "{:>8} {:<32} {:<12} {:>4} {:>6} {:>6} {:>8}",
            id,
            field(f, "peer"),
            field(f, "op"),
            field(f, "type"),
            field(f, "queue"),
            field(f, "behind"),
            field(f, "uptime")
        );
    }
    Ok(0)
}

pub async fn index(ctx: &Ctx, a: IndexArgs) -> Result<u8, AdminError> {
    let mut idx = ctx.index().await?;
    let mut nodes = idx.nodes().await?;
    let stats = idx.stats("").await?;
    idx.close().await;
    let version: u64 = stats
        .get("node_map_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AdminError::Protocol {
            addr: ctx.index.clone(),
            what: "no node_map_version in `stats` (an index older than 1.3.1?)".into(),
        })?;
    nodes.sort_by_key(|n| n.key());
    let next_thread_type = nodes
        .iter()
        .map(|n| n.thread_type + 1)
        .max()
        .unwrap_or(16)
        .max(16);
    let lines: Vec<_> = nodes.to_vec();
    let doc = flare_cluster::flare_xml::render(version + a.increment, &lines, next_thread_type);
    match a.output {
        Some(path) => std::fs::write(&path, doc).map_err(AdminError::file(&path))?,
        None => print!("{doc}"),
    }
    Ok(0)
}

pub async fn summary(ctx: &Ctx, _a: SummaryArgs) -> Result<u8, AdminError> {
    let nodes = ctx.nodes().await?;
    let stats = all_stats(ctx, &nodes).await;
    let count = |r: Role| nodes.iter().filter(|n| n.role == r).count();
    let mut items = 0u64;
    let mut bytes = 0u64;
    let mut unreachable = Vec::new();
    for (n, s) in nodes.iter().zip(&stats) {
        if s.is_none() {
            unreachable.push(n.key());
        }
        if n.role == Role::Master {
            items += num(s.as_ref(), "curr_items").unwrap_or(0);
            bytes += num(s.as_ref(), "bytes").unwrap_or(0);
        }
    }
    let partitions = nodes
        .iter()
        .filter(|n| n.role == Role::Master)
        .map(|n| n.partition)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if ctx.json {
        println!(
            "{}",
            json!({
                "partitions": partitions,
                "nodes": nodes.len(),
                "masters": count(Role::Master),
                "slaves": count(Role::Slave),
                "proxies": count(Role::Proxy),
                "items": items,
                "bytes": bytes,
                "unreachable": unreachable,
            })
        );
        return Ok(0);
    }
    println!("partitions:  {partitions}");
    println!("nodes:       {}", nodes.len());
    println!("masters:     {}", count(Role::Master));
    println!("slaves:      {}", count(Role::Slave));
    println!("proxies:     {}", count(Role::Proxy));
    println!("items:       {items}");
    println!("bytes:       {bytes}");
    if !unreachable.is_empty() {
        println!("unreachable: {}", unreachable.join(" "));
    }
    Ok(0)
}

/// The key → partition function of a cluster: its `meta` and the number of
/// active partitions in its map.
pub struct Resolver {
    table: ModularTable,
    hash: HashAlgorithm,
    pub count: u32,
    pub maps: PartitionMaps,
}

impl Resolver {
    pub async fn load(ctx: &Ctx, nodes: &[NodeLine]) -> Result<Resolver, AdminError> {
        let mut idx = ctx.index().await?;
        let meta = idx.meta().await?;
        idx.close().await;
        let get = |name: &str| -> Result<&String, AdminError> {
            meta.get(name).ok_or_else(|| AdminError::Protocol {
                addr: ctx.index.clone(),
                what: format!("no `META {name}` in the answer to `meta`"),
            })
        };
        let n = |name: &str| -> Result<u32, AdminError> {
            get(name)?.parse().map_err(|_| AdminError::Protocol {
                addr: ctx.index.clone(),
                what: format!("META {name} is not a number"),
            })
        };
        let hash = HashAlgorithm::from_name(get("key-hash-algorithm")?).ok_or_else(|| {
            AdminError::Protocol {
                addr: ctx.index.clone(),
                what: "unknown key-hash-algorithm".into(),
            }
        })?;
        let table = ModularTable::new(
            n("partition-modular-hint")?,
            n("partition-modular-virtual")?,
            n("partition-size")?,
        )
        .map_err(|e| AdminError::Failed(format!("the index's meta: {e}")))?;
        let lines: Vec<_> = nodes.to_vec();
        let (maps, _) = PartitionMaps::build(&lines)
            .map_err(|e| AdminError::Failed(format!("the index's node map: {e}")))?;
        Ok(Resolver {
            table,
            hash,
            count: maps.active_count() as u32,
            maps,
        })
    }

    pub fn partition(&self, key: &[u8]) -> Option<u32> {
        if self.count == 0 {
            return None;
        }
        self.table.partition_of_key(self.hash, key, self.count)
    }
}

pub async fn part(ctx: &Ctx, a: PartArgs) -> Result<u8, AdminError> {
    let nodes = ctx.nodes().await?;
    let r = Resolver::load(ctx, &nodes).await?;
    if r.count == 0 {
        return Err(AdminError::Failed(
            "the cluster has no active partition: make a master first (flare-admin master)".into(),
        ));
    }
    let mut rows = Vec::new();
    for k in &a.keys {
        let key = k.as_bytes();
        let p = r.partition(key);
        let master = p
            .and_then(|p| r.maps.active.get(p as usize))
            .and_then(|p| p.master_key().map(str::to_string));
        rows.push((key.to_vec(), p, master));
    }
    if ctx.json {
        let out: Vec<Value> = rows
            .iter()
            .map(
                |(k, p, m)| json!({"key": String::from_utf8_lossy(k), "partition": p, "master": m}),
            )
            .collect();
        println!("{}", Value::Array(out));
        return Ok(0);
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (k, p, m) in rows {
        let _ = out.write_all(&k);
        let _ = writeln!(
            out,
            " {} {}",
            p.map_or("-".into(), |p| p.to_string()),
            m.unwrap_or_else(|| "-".into())
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_in_the_largest_whole_unit() {
        assert_eq!(short_uptime(0), "0s");
        assert_eq!(short_uptime(59), "59s");
        assert_eq!(short_uptime(60), "1m");
        assert_eq!(short_uptime(3599), "59m");
        assert_eq!(short_uptime(3600), "1h");
        assert_eq!(short_uptime(86399), "23h");
        assert_eq!(short_uptime(2 * 86400 + 5), "2d");
    }

    #[test]
    fn ruby_columns() {
        assert_eq!(col("1.0.14", 7, None, false), " 1.0.14");
        assert_eq!(col("123456789", 8, Some(8), false), "12345678");
        assert_eq!(col("a", 4, None, true), "a   ");
        assert_eq!(ruby_float(100.0), "100.0");
        assert_eq!(ruby_float(52.5), "52.5");
        assert_eq!(col(&ruby_float(33.333333), 5, Some(5), false), "33.33");
    }
}

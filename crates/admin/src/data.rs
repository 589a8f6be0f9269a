//! Sub-commands that move or check data: dump, dumpkey, restore, verify.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flare_proto::node::{NodeLine, Role, State};
use serde_json::json;

use crate::cli::{DumpArgs, DumpkeyArgs, RestoreArgs, VerifyArgs};
use crate::client::{Client, Record};
use crate::dumpfile::{Reader, Writer};
use crate::error::AdminError;
use crate::inspect::Resolver;
use crate::spec::NodeSpec;
use crate::ui::{bytes_and_rate, human_bytes, Ctx, Pace};

/// The active master of each partition to read (all, or `only`).
fn sources(
    nodes: &[NodeLine],
    count: u32,
    only: Option<i32>,
) -> Result<Vec<(u32, String)>, AdminError> {
    if count == 0 {
        return Err(AdminError::Failed(
            "the cluster has no active partition: nothing to read".into(),
        ));
    }
    let wanted: Vec<u32> = match only {
        Some(p) if p < 0 || p as u32 >= count => {
            return Err(AdminError::Usage(format!(
                "partition {p} does not exist (the cluster has {count})"
            )))
        }
        Some(p) => vec![p as u32],
        None => (0..count).collect(),
    };
    wanted
        .into_iter()
        .map(|p| {
            nodes
                .iter()
                .find(|n| {
                    n.role == Role::Master && n.state == State::Active && n.partition == p as i32
                })
                .map(|n| (p, n.key()))
                .ok_or_else(|| {
                    AdminError::Failed(format!(
                        "partition {p} has no active master: wait for its failover, then retry"
                    ))
                })
        })
        .collect()
}

async fn curr_items(ctx: &Ctx, key: &str) -> u64 {
    match ctx.connect(key).await {
        Ok(mut c) => {
            let n = c
                .stats("")
                .await
                .ok()
                .and_then(|s| s.get("curr_items").and_then(|v| v.parse().ok()))
                .unwrap_or(0);
            c.close().await;
            n
        }
        Err(_) => 0,
    }
}

pub async fn dump(ctx: &Ctx, a: DumpArgs) -> Result<u8, AdminError> {
    let nodes = ctx.nodes().await?;
    let r = Resolver::load(ctx, &nodes).await?;
    let srcs = sources(&nodes, r.count, a.partition)?;
    let mut total = 0;
    for (_, key) in &srcs {
        total += curr_items(ctx, key).await;
    }
    let to_stdout = a.output == std::path::Path::new("-");
    let mut w = Writer::create(&a.output)?;
    let bar = ctx.progress(total, "dump");
    let started = std::time::Instant::now();
    for (p, key) in &srcs {
        let mut c = ctx.connect(key).await?;
        let cmd = format!("dump 0 {p} {} {}", r.count, a.bwlimit);
        c.start_stream(&cmd).await?;
        while let Some(rec) = c.dump_item(&cmd).await? {
            w.write(&rec)?;
            bar.inc(1);
            bar.set_message(bytes_and_rate(w.bytes, started));
        }
        c.close().await;
        ctx.log(&format!("dump: partition {p} from {key}: done"));
    }
    bar.finish_and_clear();
    let (records, bytes) = (w.records, w.bytes);
    w.finish()?;
    let msg = format!(
        "{records} records ({}) from {} partition(s) written to {}",
        human_bytes(bytes),
        srcs.len(),
        a.output.display()
    );
    if to_stdout {
        eprintln!("{msg}");
    } else {
        ctx.say(&msg);
    }
    Ok(0)
}

pub async fn dumpkey(ctx: &Ctx, a: DumpkeyArgs) -> Result<u8, AdminError> {
    let nodes = ctx.nodes().await?;
    let r = Resolver::load(ctx, &nodes).await?;
    let srcs = sources(&nodes, r.count, a.partition)?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(AdminError::file(p))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let path = a
        .output
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("-"));
    for (p, key) in &srcs {
        let mut c = ctx.connect(key).await?;
        let cmd = format!("dump_key {p} {} {}", r.count, a.bwlimit);
        c.start_stream(&cmd).await?;
        while let Some(k) = c.key_item(&cmd).await? {
            out.write_all(&k).map_err(AdminError::file(&path))?;
            out.write_all(b"\n").map_err(AdminError::file(&path))?;
        }
        c.close().await;
    }
    out.flush().map_err(AdminError::file(&path))?;
    Ok(0)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sets `restore` keeps written but unanswered (one round trip per window,
/// not per record).
const WINDOW: usize = 128;

#[derive(Default)]
struct Tally {
    stored: u64,
    failed: Vec<(Bytes, String)>,
}

impl Tally {
    /// Read the answer to the oldest pending set.
    async fn answer(
        &mut self,
        ctx: &Ctx,
        c: &mut Client,
        pending: &mut VecDeque<Bytes>,
        print_keys: bool,
    ) -> Result<(), AdminError> {
        let reply = c.answer().await?;
        let Some(key) = pending.pop_front() else {
            return Ok(());
        };
        if reply == "STORED" {
            self.stored += 1;
            if print_keys {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&key);
                let _ = out.write_all(b"\n");
            }
        } else {
            ctx.log(&format!(
                "restore: {}: {reply}",
                String::from_utf8_lossy(&key)
            ));
            self.failed.push((key, reply));
        }
        Ok(())
    }
}

pub async fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<u8, AdminError> {
    let target = NodeSpec::parse(&a.node, 2)?.key();
    let include = match &a.include {
        Some(re) => Some(
            regex::bytes::Regex::new(re)
                .map_err(|e| AdminError::Usage(format!("--include: {e}")))?,
        ),
        None => None,
    };
    let from_stdin = a.input == std::path::Path::new("-");
    if from_stdin && !ctx.force && !ctx.dry_run {
        return Err(AdminError::Usage(
            "restore -i - reads the records from stdin, so it cannot ask there: add --force".into(),
        ));
    }
    let size = if from_stdin {
        0
    } else {
        std::fs::metadata(&a.input)
            .map_err(AdminError::file(&a.input))?
            .len()
    };
    let mut reader = Reader::open(&a.input)?;
    let plan = vec![format!(
        "write the records of {} ({}) through {target} with `set`{}",
        a.input.display(),
        human_bytes(size),
        if a.keep_versions {
            ", keeping their versions"
        } else {
            ""
        }
    )];
    if !ctx.confirm(&plan)? {
        return Ok(0);
    }
    let mut c = ctx.connect(&target).await?;
    let bar = ctx.progress(0, "restore");
    let started = std::time::Instant::now();
    let mut pace = Pace::new(a.bwlimit);
    let (mut skipped, mut expired) = (0u64, 0u64);
    let mut tally = Tally::default();
    let mut pending: VecDeque<Bytes> = VecDeque::with_capacity(WINDOW);
    let now = now_secs();
    while let Some(rec) = reader.next()? {
        let key = &rec.key;
        let wanted = a
            .prefix_include
            .as_ref()
            .is_none_or(|p| key.starts_with(p.as_bytes()))
            && a.exclude
                .as_ref()
                .is_none_or(|p| !key.starts_with(p.as_bytes()))
            && include.as_ref().is_none_or(|re| re.is_match(key));
        if !wanted {
            skipped += 1;
            continue;
        }
        if rec.expire != 0 && rec.expire <= now {
            expired += 1;
            continue;
        }
        let mut header = Vec::with_capacity(key.len() + 64);
        header.extend_from_slice(b"set ");
        header.extend_from_slice(key);
        header.extend_from_slice(
            format!(" {} {} {}", rec.flags, rec.expire, rec.value.len()).as_bytes(),
        );
        if a.keep_versions {
            header.extend_from_slice(format!(" {}", rec.version).as_bytes());
        }
        c.send_store(&header, &rec.value).await?;
        pending.push_back(key.clone());
        if pending.len() >= WINDOW {
            tally
                .answer(ctx, &mut c, &mut pending, a.print_keys)
                .await?;
        }
        bar.inc(1);
        bar.set_message(bytes_and_rate(reader.consumed, started));
        pace.add(rec.value.len() as u64 + key.len() as u64).await;
    }
    while !pending.is_empty() {
        tally
            .answer(ctx, &mut c, &mut pending, a.print_keys)
            .await?;
    }
    c.close().await;
    bar.finish_and_clear();
    let Tally { stored, failed } = tally;
    let summary = format!(
        "{stored} records restored through {target}, {skipped} skipped by the filters, {expired} already expired, {} refused",
        failed.len()
    );
    if a.print_keys {
        eprintln!("{summary}");
    } else {
        ctx.say(&summary);
    }
    for (k, reply) in failed.iter().take(10) {
        eprintln!("  {}: {reply}", String::from_utf8_lossy(k));
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// A record's content without its key, for comparing copies.
fn digest(r: &Record) -> u64 {
    let mut h = DefaultHasher::new();
    (r.flags, r.version, r.expire, &r.value[..]).hash(&mut h);
    h.finish()
}

/// Every record of `key`'s store (no partition filter) as key → digest.
async fn snapshot(
    ctx: &Ctx,
    key: &str,
    bar: &indicatif::ProgressBar,
) -> Result<HashMap<Bytes, u64>, AdminError> {
    let mut c: Client = ctx.connect(key).await?;
    c.start_stream("dump").await?;
    let mut out = HashMap::new();
    while let Some(rec) = c.dump_item("dump").await? {
        out.insert(rec.key.clone(), digest(&rec));
        bar.inc(1);
    }
    c.close().await;
    Ok(out)
}

#[derive(Default)]
struct Findings {
    /// (node, key, partition the key belongs to)
    misplaced: Vec<(String, Bytes, Option<u32>)>,
    /// (slave, key)
    missing: Vec<(String, Bytes)>,
    extra: Vec<(String, Bytes)>,
    differs: Vec<(String, Bytes)>,
}

fn show(k: &Bytes) -> String {
    String::from_utf8_lossy(k).into_owned()
}

pub async fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<u8, AdminError> {
    let nodes = ctx.nodes().await?;
    let r = Resolver::load(ctx, &nodes).await?;
    let srcs = sources(&nodes, r.count, None)?;
    let test_keys: Vec<String> = if a.use_test_data {
        (0..1000)
            .map(|i| format!(".test.flare-admin.{i}"))
            .collect()
    } else {
        Vec::new()
    };
    if !test_keys.is_empty() {
        let via = &srcs[0].1;
        let mut c = ctx.connect(via).await?;
        for k in &test_keys {
            let reply = c
                .store(format!("set {k} 0 0 {}", k.len()).as_bytes(), k.as_bytes())
                .await?;
            if reply != "STORED" {
                return Err(AdminError::Failed(format!(
                    "test key {k}: {via} answered [{reply}]"
                )));
            }
        }
        c.close().await;
    }
    let mut total = 0;
    for n in nodes
        .iter()
        .filter(|n| n.role != Role::Proxy && n.state == State::Active)
    {
        total += curr_items(ctx, &n.key()).await;
    }
    let bar = ctx.progress(total, "verify");
    let mut f = Findings::default();
    let mut checked = 0u64;
    for (p, master) in &srcs {
        let m = snapshot(ctx, master, &bar).await?;
        checked += m.len() as u64;
        for k in m.keys() {
            let want = r.partition(k);
            if want != Some(*p) {
                f.misplaced.push((master.clone(), k.clone(), want));
            }
        }
        if a.keys_only {
            continue;
        }
        for s in nodes.iter().filter(|n| {
            n.role == Role::Slave && n.state == State::Active && n.partition == *p as i32
        }) {
            let sk = s.key();
            let copy = snapshot(ctx, &sk, &bar).await?;
            for (k, d) in &m {
                match copy.get(k) {
                    None => f.missing.push((sk.clone(), k.clone())),
                    Some(x) if x != d => f.differs.push((sk.clone(), k.clone())),
                    Some(_) => {}
                }
            }
            for k in copy.keys() {
                if !m.contains_key(k) {
                    f.extra.push((sk.clone(), k.clone()));
                }
            }
        }
    }
    bar.finish_and_clear();
    if !test_keys.is_empty() {
        let via = &srcs[0].1;
        let mut c = ctx.connect(via).await?;
        for k in &test_keys {
            let _ = c.raw_line(format!("delete {k}\r\n").as_bytes()).await?;
        }
        c.close().await;
    }
    let problems = f.misplaced.len() + f.missing.len() + f.extra.len() + f.differs.len();
    if ctx.json {
        let pairs = |v: &[(String, Bytes)]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|(n, k)| json!({"node": n, "key": show(k)}))
                .collect()
        };
        println!(
            "{}",
            json!({
                "ok": problems == 0,
                "partitions": srcs.len(),
                "records": checked,
                "misplaced": f.misplaced.iter().map(|(n, k, p)| json!({"node": n, "key": show(k), "partition": p})).collect::<Vec<_>>(),
                "missing_on_slave": pairs(&f.missing),
                "extra_on_slave": pairs(&f.extra),
                "differs_on_slave": pairs(&f.differs),
            })
        );
    } else {
        for (n, k, p) in f.misplaced.iter().take(20) {
            println!(
                "misplaced: {} on {n} belongs to partition {}",
                show(k),
                p.map_or("-".into(), |p| p.to_string())
            );
        }
        for (what, v) in [
            ("missing on slave", &f.missing),
            ("extra on slave", &f.extra),
            ("differs on slave", &f.differs),
        ] {
            for (n, k) in v.iter().take(20) {
                println!("{what}: {} on {n}", show(k));
            }
        }
        println!(
            "{} partition(s), {checked} records on masters: {} misplaced, {} missing on slaves, {} extra on slaves, {} different on slaves",
            srcs.len(),
            f.misplaced.len(),
            f.missing.len(),
            f.extra.len(),
            f.differs.len()
        );
        println!("{}", if problems == 0 { "OK" } else { "NG" });
    }
    Ok(if problems == 0 { 0 } else { 1 })
}

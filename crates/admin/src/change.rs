//! Sub-commands that change the cluster: master, slave, balance, down,
//! activate, remove, reconstruct. Each checks its preconditions on the
//! index's map, prints its plan and asks before the first change; a failure
//! after the first change says what state the cluster is in and which
//! command resumes.

use std::time::Duration;

use flare_proto::node::{NodeLine, Role, State};

use crate::cli::{
    BalanceArgs, CopyArgs, MasterArgs, NodesArgs, ReconstructArgs, RemoveArgs, SlaveArgs,
};
use crate::error::AdminError;
use crate::spec::NodeSpec;
use crate::ui::{bytes_and_rate, Ctx, POLL};

fn find<'a>(nodes: &'a [NodeLine], key: &str) -> Result<&'a NodeLine, AdminError> {
    nodes.iter().find(|n| n.key() == key).ok_or_else(|| {
        AdminError::Precondition(format!(
            "{key} is not in the cluster (`flare-admin list` shows its nodes; start its flared first)"
        ))
    })
}

fn describe(n: &NodeLine) -> String {
    if n.role == Role::Proxy {
        format!("{} is proxy/{}", n.key(), n.state.word())
    } else {
        format!(
            "{} is {}/{} of partition {} (balance {})",
            n.key(),
            n.role.word(),
            n.state.word(),
            n.partition,
            n.balance
        )
    }
}

/// The node as the index sees it now (`None`: not in the map).
async fn current(ctx: &Ctx, key: &str) -> Result<Option<NodeLine>, AdminError> {
    Ok(ctx.nodes().await?.into_iter().find(|n| n.key() == key))
}

/// A description of `key` for a midway report, or why it is unknown.
async fn state_of(ctx: &Ctx, key: &str) -> String {
    match current(ctx, key).await {
        Ok(Some(n)) => describe(&n),
        Ok(None) => format!("{key} is not in the node map"),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Send `command` to the index until it answers `OK`, at most `attempts`
/// times, waiting a little longer after each refusal.
async fn index_ok(ctx: &Ctx, command: &str, attempts: u32) -> Result<(), AdminError> {
    let mut last = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500) * attempt).await;
        }
        let r = async {
            let mut idx = ctx.index().await?;
            let r = idx.ok(command).await;
            idx.close().await;
            r
        }
        .await;
        match r {
            Ok(()) => {
                ctx.log(&format!("index: {command}: OK"));
                return Ok(());
            }
            Err(e) => {
                ctx.log(&format!("index: {command}: {e}"));
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(AdminError::Aborted))
}

async fn node_ok(ctx: &Ctx, key: &str, command: &str) -> Result<(), AdminError> {
    let mut c = ctx.connect(key).await?;
    let r = c.ok(command).await;
    c.close().await;
    ctx.log(&format!(
        "{key}: {command}: {}",
        if r.is_ok() { "OK" } else { "failed" }
    ));
    r
}

fn stat(s: &crate::client::Stats, name: &str) -> u64 {
    s.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Wait until `key` satisfies `done`, showing the copy's progress from the
/// node's `stats` (records and bytes against the source's `curr_items`).
/// Fails when `broken` holds for the node (it went down, …).
async fn wait_copy(
    ctx: &Ctx,
    key: &str,
    source: Option<&str>,
    what: &str,
    done: impl Fn(&NodeLine) -> bool,
    broken: impl Fn(&NodeLine) -> Option<String>,
) -> Result<NodeLine, AdminError> {
    let total = match source {
        Some(src) => match ctx.connect(src).await {
            Ok(mut c) => {
                let s = c.stats("").await.ok();
                c.close().await;
                s.map_or(0, |s| stat(&s, "curr_items"))
            }
            Err(_) => 0,
        },
        None => 0,
    };
    let bar = ctx.progress(total, key);
    let started = std::time::Instant::now();
    let mut last_report = std::time::Instant::now();
    loop {
        let now = current(ctx, key).await?;
        let Some(n) = now else {
            bar.abandon();
            return Err(AdminError::Failed(format!(
                "{key} left the node map while {what}"
            )));
        };
        if done(&n) {
            bar.finish_and_clear();
            return Ok(n);
        }
        if let Some(why) = broken(&n) {
            bar.abandon();
            return Err(AdminError::Failed(why));
        }
        if let Ok(mut c) = ctx.connect(key).await {
            if let Ok(s) = c.stats("").await {
                let records = stat(&s, "reconstruction_records");
                bar.set_position(records);
                bar.set_message(bytes_and_rate(stat(&s, "reconstruction_bytes"), started));
                if !ctx.tty && last_report.elapsed() >= Duration::from_secs(10) {
                    println!("{key}: {what}: {records} records copied");
                    last_report = std::time::Instant::now();
                }
            }
            c.close().await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The `HOST:PORT:BALANCE:PARTITION` arguments of `master`/`slave`, each
/// a proxy of the index's map, and that map.
async fn proxies(
    ctx: &Ctx,
    a: &CopyArgs,
    becomes: Role,
) -> Result<(Vec<NodeSpec>, Vec<NodeLine>), AdminError> {
    let specs = NodeSpec::parse_all(&a.nodes, 4)?;
    let nodes = ctx.nodes().await?;
    for s in &specs {
        let n = find(&nodes, &s.key())?;
        if n.role != Role::Proxy {
            return Err(AdminError::Precondition(format!(
                "{}: only a proxy can become a {becomes}",
                describe(n)
            )));
        }
    }
    Ok((specs, nodes))
}

fn clean_plan(s: &NodeSpec, a: &CopyArgs) -> Option<String> {
    (!a.without_clean).then(|| format!("flush_all on {} (removes every record it holds)", s.key()))
}

pub async fn master(ctx: &Ctx, a: MasterArgs) -> Result<u8, AdminError> {
    let (specs, nodes) = proxies(ctx, &a.copy, Role::Master).await?;
    let mut plan = Vec::new();
    for s in &specs {
        let part = s.partition.unwrap_or(0);
        if let Some(m) = nodes
            .iter()
            .find(|m| m.role == Role::Master && m.partition == part)
        {
            return Err(AdminError::Precondition(format!(
                "partition {part} already has a master ({})",
                m.key()
            )));
        }
        plan.extend(clean_plan(s, &a.copy));
        plan.push(format!(
            "node role {} {} master {} {part}",
            s.host,
            s.port,
            s.balance.unwrap_or(0)
        ));
        plan.push(format!("wait until {} is master/ready", s.key()));
        if a.activate {
            plan.push(format!("node state {} {} active", s.host, s.port));
        }
    }
    if !ctx.confirm(&plan)? {
        return Ok(0);
    }
    for s in &specs {
        let key = s.key();
        let part = s.partition.unwrap_or(0);
        let balance = s.balance.unwrap_or(0);
        if !a.copy.without_clean {
            node_ok(ctx, &key, "flush_all").await?;
        }
        index_ok(
            ctx,
            &format!("node role {} {} master {balance} {part}", s.host, s.port),
            a.copy.retry,
        )
        .await?;
        ctx.say(&format!(
            "{key}: master of partition {part}, copying its keys"
        ));
        let waited = wait_copy(
            ctx,
            &key,
            None,
            "preparing the partition",
            |n| n.role == Role::Master && matches!(n.state, State::Ready | State::Active),
            |n| {
                (n.role != Role::Master || n.state == State::Down)
                    .then(|| format!("{key} stopped being a preparing master: {}", describe(n)))
            },
        )
        .await;
        let n = match waited {
            Ok(n) => n,
            Err(e) => {
                return Err(AdminError::Midway {
                    what: e.to_string(),
                    state: state_of(ctx, &key).await,
                    resume: format!(
                        "when {key} is up again: flare-admin down {key}; then flare-admin master {} (`flare-admin list` shows the partitions)",
                        a.copy.nodes.join(" ")
                    ),
                })
            }
        };
        ctx.say(&format!("{key}: {}", n.state.word()));
        if a.activate && n.state == State::Ready {
            if let Err(e) = index_ok(
                ctx,
                &format!("node state {} {} active", s.host, s.port),
                a.copy.retry,
            )
            .await
            {
                return Err(AdminError::Midway {
                    what: e.to_string(),
                    state: state_of(ctx, &key).await,
                    resume: format!("flare-admin activate {key}"),
                });
            }
            ctx.say(&format!("{key}: active"));
        } else if n.state == State::Ready {
            ctx.say(&format!(
                "{key} is ready; clients use it once you run: flare-admin activate {key}"
            ));
        }
    }
    Ok(0)
}

pub async fn slave(ctx: &Ctx, a: SlaveArgs) -> Result<u8, AdminError> {
    let (specs, nodes) = proxies(ctx, &a.copy, Role::Slave).await?;
    let mut plan = Vec::new();
    for s in &specs {
        let part = s.partition.unwrap_or(0);
        if !nodes
            .iter()
            .any(|m| m.role == Role::Master && m.partition == part)
        {
            return Err(AdminError::Precondition(format!(
                "partition {part} has no master (flare-admin master makes one)"
            )));
        }
        plan.extend(clean_plan(s, &a.copy));
        plan.push(format!("node role {} {} slave 0 {part}", s.host, s.port));
        plan.push(format!(
            "wait until {} has copied partition {part} and is active",
            s.key()
        ));
        plan.push(format!(
            "node role {} {} slave {} {part}",
            s.host,
            s.port,
            s.balance.unwrap_or(0)
        ));
    }
    if !ctx.confirm(&plan)? {
        return Ok(0);
    }
    for s in &specs {
        let part = s.partition.unwrap_or(0);
        make_slave(
            ctx,
            s,
            part,
            s.balance.unwrap_or(0),
            !a.copy.without_clean,
            a.copy.retry,
        )
        .await?;
    }
    Ok(0)
}

/// flush (optional) → slave with balance 0 → wait active → slave with `balance`.
async fn make_slave(
    ctx: &Ctx,
    s: &NodeSpec,
    part: i32,
    balance: i32,
    clean: bool,
    retry: u32,
) -> Result<(), AdminError> {
    let key = s.key();
    if clean {
        node_ok(ctx, &key, "flush_all").await?;
    }
    index_ok(
        ctx,
        &format!("node role {} {} slave 0 {part}", s.host, s.port),
        retry,
    )
    .await?;
    ctx.say(&format!("{key}: slave of partition {part}, copying"));
    let master = ctx
        .nodes()
        .await?
        .into_iter()
        .find(|m| m.role == Role::Master && m.partition == part)
        .map(|m| m.key());
    let waited = wait_copy(
        ctx,
        &key,
        master.as_deref(),
        "copying its partition",
        |n| n.role == Role::Slave && n.state == State::Active,
        |n| {
            (n.role != Role::Slave || n.state == State::Down)
                .then(|| format!("{key} stopped being a preparing slave: {}", describe(n)))
        },
    )
    .await;
    let spec = format!("{key}:{balance}:{part}");
    if let Err(e) = waited {
        return Err(AdminError::Midway {
            what: e.to_string(),
            state: state_of(ctx, &key).await,
            resume: format!("when {key} is up again (a proxy): flare-admin slave {spec}"),
        });
    }
    if balance != 0 {
        if let Err(e) = index_ok(
            ctx,
            &format!("node role {} {} slave {balance} {part}", s.host, s.port),
            retry,
        )
        .await
        {
            return Err(AdminError::Midway {
                what: e.to_string(),
                state: state_of(ctx, &key).await,
                resume: format!("flare-admin balance {key}:{balance}"),
            });
        }
    }
    ctx.say(&format!(
        "{key}: active slave of partition {part}, balance {balance}"
    ));
    Ok(())
}

pub async fn balance(ctx: &Ctx, a: BalanceArgs) -> Result<u8, AdminError> {
    let specs = NodeSpec::parse_all(&a.nodes, 3)?;
    let nodes = ctx.nodes().await?;
    let mut cmds = Vec::new();
    for s in &specs {
        let n = find(&nodes, &s.key())?;
        cmds.push(format!(
            "node role {} {} {} {} {}",
            s.host,
            s.port,
            n.role.word(),
            s.balance.unwrap_or(0),
            n.partition
        ));
    }
    simple(ctx, cmds).await
}

/// Print the index commands, confirm, send them in order.
async fn simple(ctx: &Ctx, cmds: Vec<String>) -> Result<u8, AdminError> {
    if !ctx.confirm(&cmds)? {
        return Ok(0);
    }
    for (i, c) in cmds.iter().enumerate() {
        if let Err(e) = index_ok(ctx, c, 1).await {
            if i == 0 {
                return Err(e);
            }
            return Err(AdminError::Midway {
                what: e.to_string(),
                state: format!("done: {}", cmds[..i].join("; ")),
                resume: format!("the remaining commands: {}", cmds[i..].join("; ")),
            });
        }
        ctx.say(&format!("{c}: OK"));
    }
    Ok(0)
}

pub async fn down(ctx: &Ctx, a: NodesArgs) -> Result<u8, AdminError> {
    state_change(ctx, a, State::Down).await
}

pub async fn activate(ctx: &Ctx, a: NodesArgs) -> Result<u8, AdminError> {
    state_change(ctx, a, State::Active).await
}

async fn state_change(ctx: &Ctx, a: NodesArgs, to: State) -> Result<u8, AdminError> {
    let specs = NodeSpec::parse_all(&a.nodes, 2)?;
    let nodes = ctx.nodes().await?;
    for s in &specs {
        find(&nodes, &s.key())?;
    }
    let cmds = specs
        .iter()
        .map(|s| format!("node state {} {} {}", s.host, s.port, to.word()))
        .collect();
    simple(ctx, cmds).await
}

pub async fn remove(ctx: &Ctx, a: RemoveArgs) -> Result<u8, AdminError> {
    let specs = NodeSpec::parse_all(&a.nodes, 2)?;
    let nodes = ctx.nodes().await?;
    for s in &specs {
        let n = find(&nodes, &s.key())?;
        if n.state != State::Down && !a.wait {
            return Err(AdminError::Precondition(format!(
                "{}: only a down node can be removed; stop its flared (SIGTERM) first, or add --wait to wait for that",
                describe(n)
            )));
        }
    }
    let mut plan = Vec::new();
    for s in &specs {
        if a.wait {
            plan.push(format!("wait until {} is down (stop its flared)", s.key()));
        }
        plan.push(format!("node remove {} {}", s.host, s.port));
    }
    if !ctx.confirm(&plan)? {
        return Ok(0);
    }
    for s in &specs {
        let key = s.key();
        let mut announced = false;
        let bar = ctx.spinner(&key, "waiting until it is down");
        loop {
            match current(ctx, &key).await? {
                None => break,
                Some(n) if n.state == State::Down => {
                    let cmd = format!("node remove {} {}", s.host, s.port);
                    match index_ok(ctx, &cmd, a.retry).await {
                        Ok(()) => break,
                        // A down node that still answers pings comes back
                        // as a proxy: keep waiting when told to.
                        Err(e) if !a.wait => return Err(e),
                        Err(_) => {}
                    }
                }
                Some(_) => {
                    if !announced {
                        ctx.say(&format!(
                            "{key}: waiting until it is down (stop its flared)"
                        ));
                        announced = true;
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
        if a.wait {
            bar.set_message("removed; waiting until it is gone from the map");
            while current(ctx, &key).await?.is_some() {
                tokio::time::sleep(POLL).await;
            }
        }
        bar.finish_and_clear();
        ctx.say(&format!("{key}: removed"));
    }
    Ok(0)
}

/// flare-tools' rule for a reconstruction that keeps the partition
/// readable: a slave needs another active slave, a master two.
fn safely_reconstructable(nodes: &[NodeLine], n: &NodeLine) -> bool {
    let others = nodes
        .iter()
        .filter(|o| {
            o.role == Role::Slave
                && o.state == State::Active
                && o.partition == n.partition
                && o.key() != n.key()
        })
        .count();
    match n.role {
        Role::Slave => others >= 1,
        Role::Master => others >= 2,
        Role::Proxy => false,
    }
}

pub async fn reconstruct(ctx: &Ctx, a: ReconstructArgs) -> Result<u8, AdminError> {
    let nodes = ctx.nodes().await?;
    let targets: Vec<NodeLine> = if a.all {
        if !a.nodes.is_empty() {
            return Err(AdminError::Usage(
                "give either --all or nodes, not both".into(),
            ));
        }
        nodes
            .iter()
            .filter(|n| n.role != Role::Proxy)
            .cloned()
            .collect()
    } else {
        if a.nodes.is_empty() {
            return Err(AdminError::Usage(
                "give the nodes to reconstruct, or --all".into(),
            ));
        }
        let mut t = Vec::new();
        for s in NodeSpec::parse_all(&a.nodes, 2)? {
            t.push(find(&nodes, &s.key())?.clone());
        }
        t
    };
    for n in &targets {
        if n.role == Role::Proxy || n.state != State::Active {
            return Err(AdminError::Precondition(format!(
                "{}: only an active master or slave can be reconstructed",
                describe(n)
            )));
        }
        if !a.unsafe_ && !safely_reconstructable(&nodes, n) {
            return Err(AdminError::Precondition(format!(
                "{}: its partition would be left without enough active members \
                 (a slave needs another active slave, a master two); add slaves first, or use --unsafe",
                describe(n)
            )));
        }
    }
    let mut plan = Vec::new();
    for n in &targets {
        plan.push(format!(
            "{}: node state down{}, flush_all, node role slave 0 {}, wait until active, node role slave {} {}",
            n.key(),
            if n.role == Role::Master {
                " (a slave takes over the partition)"
            } else {
                ""
            },
            n.partition,
            n.balance,
            n.partition
        ));
    }
    if !ctx.confirm(&plan)? {
        return Ok(0);
    }
    for n in &targets {
        let key = n.key();
        index_ok(
            ctx,
            &format!("node state {} {} down", n.name, n.port),
            a.retry,
        )
        .await?;
        ctx.say(&format!("{key}: down"));
        let spec = NodeSpec {
            host: n.name.clone(),
            port: n.port,
            balance: Some(n.balance),
            partition: Some(n.partition),
        };
        // The monitor brings a down node that answers pings back as a
        // proxy; `node role … slave` is retried until the index takes it.
        if let Err(e) = make_slave(ctx, &spec, n.partition, n.balance, true, a.retry.max(10)).await
        {
            return Err(match e {
                AdminError::Midway { .. } => e,
                e => AdminError::Midway {
                    what: e.to_string(),
                    state: state_of(ctx, &key).await,
                    resume: format!(
                        "when {key} is a proxy again: flare-admin slave {key}:{}:{}",
                        n.balance, n.partition
                    ),
                },
            });
        }
    }
    Ok(0)
}

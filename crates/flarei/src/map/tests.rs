//! The §8.3 rules, one test per transition family.

use super::*;

const H: &str = "127.0.0.1";

fn key(port: u16) -> String {
    format!("{H}:{port}")
}

/// A map with nodes 12121.. registered in order (thread types 16..).
fn cluster(n: u16) -> NodeMap {
    let mut m = NodeMap::default();
    for i in 0..n {
        m.apply(&Op::Add {
            name: H.into(),
            port: i32::from(12121 + i),
        })
        .expect("add");
    }
    m
}

fn role(
    m: &mut NodeMap,
    port: u16,
    role: Role,
    balance: i32,
    partition: i32,
) -> Result<Outcome, OpError> {
    m.apply(&Op::Role {
        key: key(port),
        role,
        balance,
        partition,
    })
}

fn ok(r: Result<Outcome, OpError>) -> Outcome {
    r.expect("operation should succeed")
}

fn state_op(m: &mut NodeMap, op: fn(String) -> Op, port: u16) -> Result<Outcome, OpError> {
    m.apply(&op(key(port)))
}

fn up(k: String) -> Op {
    Op::Up { key: k }
}
fn ready(k: String) -> Op {
    Op::Ready { key: k }
}
fn remove(k: String) -> Op {
    Op::Remove { key: k }
}
fn recover(k: String) -> Op {
    Op::Recover { key: k }
}
fn down_manual(k: String) -> Op {
    Op::Down {
        key: k,
        mode: DownMode::Manual,
    }
}
fn down_monitor(k: String) -> Op {
    Op::Down {
        key: k,
        mode: DownMode::Monitor,
    }
}
fn down_shutdown(k: String) -> Op {
    Op::Down {
        key: k,
        mode: DownMode::Shutdown,
    }
}

/// (role, state, partition, balance, thread_type) of a node.
fn rec(m: &NodeMap, port: u16) -> (Role, State, i32, i32, i32) {
    let n = m.get(&key(port)).expect("node exists");
    (n.role, n.state, n.partition, n.balance, n.thread_type)
}

use Role::{Master as M, Proxy as P, Slave as S};
use State::{Active as A, Down as D, Prepare as PR, Ready as R};

/// N1 master p0 b1 (active at once), then slaves as given (ports, balances),
/// activated.
fn with_master_and_slaves(nodes: u16, slaves: &[(u16, i32)]) -> NodeMap {
    let mut m = cluster(nodes);
    ok(role(&mut m, 12121, M, 1, 0));
    for &(port, b) in slaves {
        ok(role(&mut m, port, S, 0, 0));
        ok(state_op(&mut m, up, port));
        if b != 0 {
            ok(role(&mut m, port, S, b, 0));
        }
    }
    m
}

#[test]
fn add_registers_proxies_with_fresh_thread_types() {
    let m = cluster(2);
    assert_eq!(m.version, 2);
    assert_eq!(m.next_thread_type, 18);
    assert_eq!(rec(&m, 12121), (P, A, -1, 0, 16));
    assert_eq!(rec(&m, 12122), (P, A, -1, 0, 17));
}

#[test]
fn add_existing() {
    let mut m = cluster(1);
    let add = Op::Add {
        name: H.into(),
        port: 12121,
    };
    assert_eq!(m.apply(&add), Err(OpError::NotDown(key(12121))));
    assert_eq!(m.version, 1);
    ok(state_op(&mut m, down_monitor, 12121));
    let before = rec(&m, 12121);
    assert_eq!(ok(m.apply(&add)), Outcome::Changed(Change::default()));
    assert_eq!(rec(&m, 12121), before, "a down node keeps its record");
    assert_eq!(m.version, 3);
    assert_eq!(m.next_thread_type, 17);
    let bad = Op::Add {
        name: H.into(),
        port: 70000,
    };
    assert_eq!(m.apply(&bad), Err(OpError::BadPort(70000)));
}

#[test]
fn removed_thread_type_is_never_reused() {
    let mut m = cluster(2);
    ok(state_op(&mut m, down_manual, 12122));
    ok(state_op(&mut m, remove, 12122));
    assert!(m.get(&key(12122)).is_none());
    m.apply(&Op::Add {
        name: H.into(),
        port: 12122,
    })
    .expect("re-add");
    assert_eq!(rec(&m, 12122), (P, A, -1, 0, 18));
}

#[test]
fn down_unknown_and_already_down() {
    let mut m = cluster(1);
    assert_eq!(
        state_op(&mut m, down_manual, 12199),
        Err(OpError::UnknownNode(key(12199)))
    );
    ok(state_op(&mut m, down_manual, 12121));
    let v = m.version;
    assert_eq!(
        ok(state_op(&mut m, down_monitor, 12121)),
        Outcome::Unchanged
    );
    assert_eq!(m.version, v);
}

#[test]
fn down_notify_rules() {
    let mut m = cluster(3);
    let Outcome::Changed(c) = ok(state_op(&mut m, down_manual, 12121)) else {
        panic!("changed")
    };
    assert_eq!(c.notify_down, Some(key(12121)));
    let Outcome::Changed(c) = ok(state_op(&mut m, down_monitor, 12122)) else {
        panic!("changed")
    };
    assert_eq!(c.notify_down, None);
    let Outcome::Changed(c) = ok(state_op(&mut m, down_shutdown, 12123)) else {
        panic!("changed")
    };
    assert_eq!(c.notify_down, None, "a proxy shutting down is not told");
    assert_eq!(rec(&m, 12123), (P, D, -1, 0, 18));

    let mut m = with_master_and_slaves(2, &[]);
    let Outcome::Changed(c) = ok(state_op(&mut m, down_shutdown, 12121)) else {
        panic!("changed")
    };
    assert_eq!(c.notify_down, Some(key(12121)), "an active master is told");
}

#[test]
fn master_without_slaves_is_preserved() {
    let mut m = with_master_and_slaves(2, &[]);
    ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(rec(&m, 12121), (M, D, 0, 1, 16));
    let maps = m.partition_maps();
    assert_eq!(maps.active.len(), 1);
    assert_eq!(maps.active[0].master, None);
    // preserved: cannot be removed, cannot change role
    assert!(state_op(&mut m, remove, 12121).is_err());
    assert!(role(&mut m, 12121, P, -1, -1).is_err());
    // comes back as master of its partition
    ok(state_op(&mut m, up, 12121));
    assert_eq!(rec(&m, 12121), (M, A, 0, 1, 16));
}

#[test]
fn failover_highest_balance() {
    // S8: N3 slave b1, N5 slave b2 -> N5 promoted, balance kept
    let mut m = with_master_and_slaves(5, &[(12123, 1), (12125, 2)]);
    let v = m.version;
    let out = ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(
        out,
        Outcome::Changed(Change {
            prior: vec![key(12125)],
            notify_down: None
        })
    );
    assert_eq!(m.version, v + 1);
    assert_eq!(rec(&m, 12121), (P, D, -1, 0, 16));
    assert_eq!(rec(&m, 12123), (S, A, 0, 1, 18));
    assert_eq!(rec(&m, 12125), (M, A, 0, 2, 20));
    let maps = m.partition_maps();
    assert_eq!(maps.active[0].master_key(), Some(key(12125).as_str()));
}

#[test]
fn failover_tie_break_and_balance_bump() {
    // S9: N3 and N5 balance 0 -> N3 (first in key order), balance 0 -> 1
    let mut m = with_master_and_slaves(5, &[(12123, 0), (12125, 0)]);
    ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(rec(&m, 12123), (M, A, 0, 1, 18));
    assert_eq!(rec(&m, 12125), (S, A, 0, 0, 20));
}

#[test]
fn failover_tie_between_equal_nonzero_balances() {
    let mut m = with_master_and_slaves(5, &[(12123, 2), (12125, 2)]);
    ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(
        rec(&m, 12123),
        (M, A, 0, 2, 18),
        "no bump: balances sum to 4"
    );
    assert_eq!(rec(&m, 12125), (S, A, 0, 2, 20));
}

#[test]
fn failover_skips_preparing_slaves() {
    // N3 still prepare, N5 active b0 -> N5 promoted; N3 counts 0 -> bump
    let mut m = with_master_and_slaves(5, &[(12125, 0)]);
    ok(role(&mut m, 12123, S, 5, 0));
    assert_eq!(rec(&m, 12123), (S, PR, 0, 0, 18));
    ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(rec(&m, 12125), (M, A, 0, 1, 20));
    assert_eq!(rec(&m, 12123), (S, PR, 0, 0, 18));

    // only a preparing slave: the master is preserved
    let mut m = with_master_and_slaves(3, &[]);
    ok(role(&mut m, 12123, S, 0, 0));
    ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(rec(&m, 12121), (M, D, 0, 1, 16));
    assert_eq!(rec(&m, 12123), (S, PR, 0, 0, 18));
}

#[test]
fn down_of_preparing_master_cancels_its_slaves() {
    let mut m = with_master_and_slaves(5, &[]);
    ok(role(&mut m, 12124, M, 1, 1));
    assert_eq!(rec(&m, 12124), (M, PR, 1, 1, 19));
    ok(role(&mut m, 12125, S, 1, 1));
    assert_eq!(
        rec(&m, 12125),
        (S, PR, 1, 1, 20),
        "balance kept: preparing partition"
    );
    ok(state_op(&mut m, down_monitor, 12124));
    assert_eq!(rec(&m, 12124), (P, D, -1, 0, 19));
    assert_eq!(rec(&m, 12125), (P, A, -1, 0, 20));
}

#[test]
fn down_of_slave_and_proxy() {
    let mut m = with_master_and_slaves(3, &[(12123, 1)]);
    ok(state_op(&mut m, down_manual, 12123));
    assert_eq!(rec(&m, 12123), (P, D, -1, 0, 18));
    assert_eq!(rec(&m, 12121), (M, A, 0, 1, 16));
    ok(state_op(&mut m, down_manual, 12122));
    assert_eq!(rec(&m, 12122), (P, D, -1, 0, 17));
}

#[test]
fn up_rules() {
    let mut m = cluster(5);
    assert!(state_op(&mut m, up, 12199).is_err());
    let v = m.version;
    assert_eq!(ok(state_op(&mut m, up, 12121)), Outcome::Unchanged);
    assert_eq!(m.version, v);

    ok(role(&mut m, 12121, M, 1, 0));
    ok(role(&mut m, 12124, M, 1, 1));
    assert!(
        state_op(&mut m, up, 12124).is_err(),
        "preparing master not ready"
    );
    ok(role(&mut m, 12125, S, 2, 1));
    ok(state_op(&mut m, ready, 12124));
    assert_eq!(rec(&m, 12124), (M, R, 1, 1, 19));
    let out = ok(state_op(&mut m, up, 12124));
    assert_eq!(
        out,
        Outcome::Changed(Change {
            prior: vec![key(12124), key(12125)],
            notify_down: None
        })
    );
    assert_eq!(rec(&m, 12124), (M, A, 1, 1, 19));
    assert_eq!(m.partition_maps().active.len(), 2);
    // the preparing slave of the now active partition
    assert_eq!(rec(&m, 12125), (S, PR, 1, 2, 20));
    ok(state_op(&mut m, up, 12125));
    assert_eq!(rec(&m, 12125), (S, A, 1, 2, 20));

    // down slave comes back as proxy
    ok(state_op(&mut m, down_monitor, 12125));
    ok(state_op(&mut m, up, 12125));
    assert_eq!(rec(&m, 12125), (P, A, -1, 0, 20));
}

#[test]
fn preserved_master_replaced_comes_back_as_proxy() {
    // S15
    let mut m = with_master_and_slaves(5, &[]);
    ok(state_op(&mut m, down_monitor, 12121));
    ok(role(&mut m, 12125, M, 1, 0));
    assert_eq!(
        rec(&m, 12125),
        (M, A, 0, 1, 20),
        "replacement is active at once"
    );
    ok(state_op(&mut m, up, 12121));
    assert_eq!(rec(&m, 12121), (P, A, -1, 0, 16));
}

#[test]
fn preserved_master_with_a_preparing_slave_stays_master() {
    let mut m = with_master_and_slaves(3, &[]);
    ok(role(&mut m, 12123, S, 0, 0));
    ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(rec(&m, 12121), (M, D, 0, 1, 16));
    ok(state_op(&mut m, up, 12121));
    assert_eq!(rec(&m, 12121), (M, A, 0, 1, 16));
    assert_eq!(rec(&m, 12123), (S, PR, 0, 0, 18));
}

#[test]
fn remove_of_preserved_master_must_keep_the_map_consistent() {
    // the only other live node of partition 0 is a preparing slave: removing
    // the master would leave it without a partition
    let mut m = with_master_and_slaves(3, &[]);
    ok(role(&mut m, 12123, S, 0, 0));
    ok(state_op(&mut m, down_monitor, 12121));
    assert!(matches!(
        state_op(&mut m, remove, 12121),
        Err(OpError::Inconsistent(_))
    ));
}

#[test]
fn remove_rules() {
    let mut m = with_master_and_slaves(5, &[]);
    assert!(state_op(&mut m, remove, 12199).is_err());
    assert!(state_op(&mut m, remove, 12122).is_err(), "not down");
    ok(state_op(&mut m, down_monitor, 12121));
    assert!(state_op(&mut m, remove, 12121).is_err(), "preserved");
    ok(role(&mut m, 12125, M, 1, 0));
    let v = m.version;
    ok(state_op(&mut m, remove, 12121));
    assert_eq!(m.version, v + 1);
    assert!(m.get(&key(12121)).is_none());
    ok(state_op(&mut m, down_manual, 12122));
    ok(state_op(&mut m, remove, 12122));
    assert_eq!(m.len(), 3);
}

#[test]
fn ready_rules() {
    let mut m = with_master_and_slaves(3, &[]);
    assert!(state_op(&mut m, ready, 12121).is_err());
    assert!(state_op(&mut m, ready, 12199).is_err());
    ok(role(&mut m, 12123, S, 0, 0));
    ok(state_op(&mut m, ready, 12123));
    assert_eq!(rec(&m, 12123), (S, R, 0, 0, 18));
    ok(state_op(&mut m, up, 12123));
    assert_eq!(rec(&m, 12123), (S, A, 0, 0, 18));
}

#[test]
fn recover_only_acts_on_down_nodes() {
    let mut m = with_master_and_slaves(3, &[]);
    ok(role(&mut m, 12123, S, 0, 0));
    let v = m.version;
    assert_eq!(ok(state_op(&mut m, recover, 12123)), Outcome::Unchanged);
    assert_eq!(
        rec(&m, 12123),
        (S, PR, 0, 0, 18),
        "a preparing slave stays preparing"
    );
    assert_eq!(m.version, v);
    ok(state_op(&mut m, down_monitor, 12122));
    ok(state_op(&mut m, recover, 12122));
    assert_eq!(rec(&m, 12122), (P, A, -1, 0, 17));
    assert!(state_op(&mut m, recover, 12199).is_err());
}

#[test]
fn role_of_down_node_is_refused() {
    let mut m = cluster(1);
    ok(state_op(&mut m, down_manual, 12121));
    for r in [M, S, P] {
        assert!(role(&mut m, 12121, r, 1, 0).is_err());
    }
}

#[test]
fn role_of_preparing_master() {
    let mut m = with_master_and_slaves(5, &[]);
    ok(role(&mut m, 12124, M, 1, 1));
    ok(role(&mut m, 12124, M, 3, 7));
    assert_eq!(
        rec(&m, 12124),
        (M, PR, 1, 3, 19),
        "partition argument ignored"
    );
    assert!(role(&mut m, 12124, M, 0, 1).is_err(), "zero-sum partition");
    assert!(role(&mut m, 12124, M, -1, 1).is_err());
    assert!(role(&mut m, 12124, S, 1, 1).is_err());
    ok(role(&mut m, 12125, S, 1, 1));
    ok(state_op(&mut m, ready, 12124));
    ok(role(&mut m, 12124, M, 2, 1));
    assert_eq!(rec(&m, 12124), (M, R, 1, 2, 19));
    // cancel (S13)
    ok(role(&mut m, 12124, P, -1, -1));
    assert_eq!(rec(&m, 12124), (P, A, -1, 0, 19));
    assert_eq!(rec(&m, 12125), (P, A, -1, 0, 20));
    assert_eq!(m.partition_maps().active.len(), 1);
    assert!(m.partition_maps().prepare.is_none());
}

#[test]
fn role_of_preparing_slave() {
    let mut m = with_master_and_slaves(5, &[]);
    // slave of an active partition: balance forced to 0 and fixed while preparing
    ok(role(&mut m, 12123, S, 1, 0));
    assert_eq!(rec(&m, 12123), (S, PR, 0, 0, 18));
    assert!(role(&mut m, 12123, S, 1, 0).is_err());
    assert!(role(&mut m, 12123, M, 1, 0).is_err());
    ok(role(&mut m, 12123, P, 0, -1));
    assert_eq!(rec(&m, 12123), (P, A, -1, 0, 18));
    // slave of a preparing partition: balance may change
    ok(role(&mut m, 12124, M, 1, 1));
    ok(role(&mut m, 12125, S, -4, 1));
    assert_eq!(rec(&m, 12125), (S, PR, 1, 0, 20), "negative balance -> 0");
    ok(role(&mut m, 12125, S, 3, 1));
    assert_eq!(rec(&m, 12125), (S, PR, 1, 3, 20));
    assert!(role(&mut m, 12125, S, -1, 1).is_err());
}

#[test]
fn role_of_active_master() {
    let mut m = with_master_and_slaves(3, &[]);
    assert!(role(&mut m, 12121, M, 0, 0).is_err(), "lone master to 0");
    assert!(role(&mut m, 12121, M, -1, -1).is_err());
    assert!(role(&mut m, 12121, S, 1, 0).is_err());
    assert!(role(&mut m, 12121, P, -1, -1).is_err());
    ok(role(&mut m, 12121, M, 4, 9));
    assert_eq!(
        rec(&m, 12121),
        (M, A, 0, 4, 16),
        "partition argument ignored"
    );
    // with an active slave of balance 1 the master may go to 0 (S5 step 5)
    ok(role(&mut m, 12123, S, 0, 0));
    ok(state_op(&mut m, up, 12123));
    ok(role(&mut m, 12123, S, 1, 0));
    ok(role(&mut m, 12121, M, 0, 0));
    assert_eq!(rec(&m, 12121), (M, A, 0, 0, 16));
}

#[test]
fn role_of_active_slave() {
    let mut m = with_master_and_slaves(3, &[(12123, 1)]);
    assert!(role(&mut m, 12123, M, 1, 0).is_err());
    ok(role(&mut m, 12123, S, 1, 7));
    assert_eq!(rec(&m, 12123), (S, A, 0, 1, 18), "slaves cannot move");
    ok(role(&mut m, 12123, S, 5, -1));
    assert_eq!(rec(&m, 12123), (S, A, 0, 5, 18));
    // master balance 0: the slave holds the whole balance
    ok(role(&mut m, 12121, M, 0, 0));
    assert!(role(&mut m, 12123, S, 0, 0).is_err());
    assert!(role(&mut m, 12123, P, -1, -1).is_err());
    ok(role(&mut m, 12121, M, 1, 0));
    ok(role(&mut m, 12123, P, -1, -1));
    assert_eq!(rec(&m, 12123), (P, A, -1, 0, 18));
}

#[test]
fn role_of_active_proxy_master() {
    let mut m = cluster(5);
    assert!(
        role(&mut m, 12121, M, 1, 1).is_err(),
        "partition 1 before 0"
    );
    assert!(role(&mut m, 12121, M, 0, 0).is_err(), "balance 0");
    assert!(role(&mut m, 12121, M, 1, -1).is_err());
    ok(role(&mut m, 12121, M, 1, 0));
    assert_eq!(
        rec(&m, 12121),
        (M, A, 0, 1, 16),
        "partition 0 is active at once"
    );
    assert!(
        role(&mut m, 12122, M, 1, 0).is_err(),
        "partition 0 has an active master"
    );
    assert!(role(&mut m, 12122, M, 1, 2).is_err(), "only partition <= 1");
    ok(role(&mut m, 12122, M, 2, 1));
    assert_eq!(rec(&m, 12122), (M, PR, 1, 2, 17));
    assert!(
        role(&mut m, 12123, M, 1, 1).is_err(),
        "partition 1 is being prepared"
    );
    assert!(
        role(&mut m, 12123, M, 1, 2).is_err(),
        "only one partition in preparation"
    );
}

#[test]
fn role_of_active_proxy_slave() {
    let mut m = cluster(5);
    assert!(role(&mut m, 12122, S, 0, 0).is_err(), "no master yet");
    ok(role(&mut m, 12121, M, 1, 0));
    assert!(role(&mut m, 12122, S, 1, -1).is_err());
    assert!(role(&mut m, 12122, S, 1, 3).is_err());
    ok(role(&mut m, 12122, S, 1, 0));
    assert_eq!(rec(&m, 12122), (S, PR, 0, 0, 17));
    // the master of the partition is down: no slave can be added
    ok(state_op(&mut m, down_monitor, 12121));
    assert_eq!(rec(&m, 12121), (M, D, 0, 1, 16));
    assert!(role(&mut m, 12123, S, 0, 0).is_err());
}

#[test]
fn role_proxy_on_active_proxy_is_saved() {
    let mut m = cluster(2);
    let v = m.version;
    assert_eq!(
        ok(role(&mut m, 12122, P, -1, -1)),
        Outcome::Changed(Change::default())
    );
    assert_eq!(m.version, v + 1);
    assert_eq!(rec(&m, 12122), (P, A, -1, 0, 17));
}

#[test]
fn scenario_s4_rejections_change_nothing() {
    let mut m = cluster(2);
    ok(role(&mut m, 12121, M, 1, 0));
    let before = m.clone();
    assert!(role(&mut m, 12121, M, 0, -1).is_err());
    assert!(role(&mut m, 12121, P, -1, -1).is_err());
    assert!(role(&mut m, 12121, S, 0, 0).is_err());
    assert!(role(&mut m, 12122, M, 1, 2).is_err());
    assert!(role(&mut m, 12122, M, 0, 1).is_err());
    assert!(role(&mut m, 12122, M, 1, 0).is_err());
    assert!(role(&mut m, 12122, S, 0, 3).is_err());
    assert!(role(&mut m, 12122, S, -1, -1).is_err());
    assert!(m
        .apply(&Op::Role {
            key: key(12199),
            role: P,
            balance: -1,
            partition: -1
        })
        .is_err());
    assert!(state_op(&mut m, remove, 12122).is_err());
    assert!(m
        .apply(&Op::Add {
            name: H.into(),
            port: 12121
        })
        .is_err());
    assert_eq!(m, before);
    ok(role(&mut m, 12122, P, -1, -1));
    assert_eq!(m.version, before.version + 1);
}

#[test]
fn check_detects_inconsistent_maps() {
    let line = |port: u16, role, state, partition, tt| NodeLine {
        name: H.into(),
        port,
        role,
        state,
        partition,
        balance: 1,
        thread_type: tt,
    };
    let m = NodeMap::from_parts(vec![line(1, M, A, 0, 16)], 1, 17);
    assert_eq!(m.check(), Ok(()));
    let m = NodeMap::from_parts(vec![line(1, M, A, 0, 17)], 1, 17);
    assert!(m.check().is_err(), "thread type not below the counter");
    let m = NodeMap::from_parts(vec![line(1, M, A, 0, 16), line(2, M, A, 0, 17)], 1, 18);
    assert!(m.check().is_err(), "two active masters");
    let m = NodeMap::from_parts(vec![line(1, M, A, 1, 16)], 1, 17);
    assert!(m.check().is_err(), "gap");
    let m = NodeMap::from_parts(vec![line(1, S, A, 0, 16)], 1, 17);
    assert!(m.check().is_err(), "slave without partition");
}

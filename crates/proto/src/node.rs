//! Node roles, states and the `NODE` line carried by `node add` / `node sync`.

use std::fmt;

/// A node's role. Numbers travel in `node sync` and `flare.xml`, words in `stats nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Master = 0,
    Slave = 1,
    Proxy = 2,
}

impl Role {
    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            0 => Some(Role::Master),
            1 => Some(Role::Slave),
            2 => Some(Role::Proxy),
            _ => None,
        }
    }
    pub fn from_word(w: &[u8]) -> Option<Self> {
        match w {
            b"master" => Some(Role::Master),
            b"slave" => Some(Role::Slave),
            b"proxy" => Some(Role::Proxy),
            _ => None,
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Slave => "slave",
            Role::Proxy => "proxy",
        }
    }
    pub fn number(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A node's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Active = 0,
    Prepare = 1,
    Down = 2,
    Ready = 3,
}

impl State {
    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            0 => Some(State::Active),
            1 => Some(State::Prepare),
            2 => Some(State::Down),
            3 => Some(State::Ready),
            _ => None,
        }
    }
    pub fn from_word(w: &[u8]) -> Option<Self> {
        match w {
            b"active" => Some(State::Active),
            b"prepare" => Some(State::Prepare),
            b"down" => Some(State::Down),
            b"ready" => Some(State::Ready),
            _ => None,
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Prepare => "prepare",
            State::Down => "down",
            State::Ready => "ready",
        }
    }
    pub fn number(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// Largest node balance accepted anywhere (`node role`, `node sync`,
/// `flare.xml`). The original has no maximum and allocates one entry per unit
/// of balance, so a single `node role ... 200000000` exhausts its memory.
pub const MAX_BALANCE: i32 = 65_535;

/// One `NODE <name> <port> <role> <state> <partition> <balance> <thread_type>` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub name: String,
    pub port: u16,
    pub role: Role,
    pub state: State,
    pub partition: i32,
    pub balance: i32,
    pub thread_type: i32,
}

impl NodeLine {
    /// Parse the line (without CRLF). `None` when it is not a valid `NODE` line.
    pub fn parse(line: &[u8]) -> Option<NodeLine> {
        let text = std::str::from_utf8(line).ok()?;
        let mut it = text.split(' ').filter(|w| !w.is_empty());
        if it.next()? != "NODE" {
            return None;
        }
        let name = it.next()?.to_string();
        let port: u16 = it.next()?.parse().ok()?;
        let role = Role::from_number(it.next()?.parse().ok()?)?;
        let state = State::from_number(it.next()?.parse().ok()?)?;
        let partition: i32 = it.next()?.parse().ok()?;
        let balance: i32 = it.next()?.parse().ok()?;
        if balance > MAX_BALANCE {
            return None;
        }
        let thread_type: i32 = it.next()?.parse().ok()?;
        Some(NodeLine {
            name,
            port,
            role,
            state,
            partition,
            balance,
            thread_type,
        })
    }

    /// `host:port`, the node key.
    pub fn key(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }
}

impl fmt::Display for NodeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NODE {} {} {} {} {} {} {}",
            self.name,
            self.port,
            self.role.number(),
            self.state.number(),
            self.partition,
            self.balance,
            self.thread_type
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_line_round_trip() {
        let l = NodeLine::parse(b"NODE 127.0.0.1 12121 0 0 0 1 16").expect("valid");
        assert_eq!(l.role, Role::Master);
        assert_eq!(l.state, State::Active);
        assert_eq!(l.to_string(), "NODE 127.0.0.1 12121 0 0 0 1 16");
        assert_eq!(l.key(), "127.0.0.1:12121");
        assert!(NodeLine::parse(b"NODE bad").is_none());
        assert!(NodeLine::parse(b"NODE h 1 7 0 0 0 16").is_none());
        assert!(NodeLine::parse(b"NODE h 1 0 0 0 0").is_none());
        assert!(NodeLine::parse(b"NODE h 1 0 0 0 65535 16").is_some());
        assert!(NodeLine::parse(b"NODE h 1 0 0 0 65536 16").is_none());
        assert!(NodeLine::parse(b"NODE h 1 0 0 0 200000000 16").is_none());
    }
}

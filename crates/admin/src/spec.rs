//! Node arguments: `HOST:PORT`, `HOST:PORT:BALANCE`,
//! `HOST:PORT:BALANCE:PARTITION`, as flare-tools takes them.

use crate::error::AdminError;

/// A parsed node argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub host: String,
    pub port: u16,
    pub balance: Option<i32>,
    pub partition: Option<i32>,
}

impl NodeSpec {
    pub fn key(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Parse `arg` with exactly `fields` colon-separated fields (2, 3 or 4).
    pub fn parse(arg: &str, fields: usize) -> Result<NodeSpec, AdminError> {
        let form = match fields {
            2 => "HOST:PORT",
            3 => "HOST:PORT:BALANCE",
            _ => "HOST:PORT:BALANCE:PARTITION",
        };
        let bad =
            |why: &str| AdminError::Usage(format!("invalid node `{arg}`: {why} (expected {form})"));
        let parts: Vec<&str> = arg.split(':').collect();
        if parts.len() != fields {
            return Err(bad("wrong number of fields"));
        }
        if parts[0].is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = parts[1]
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("port must be 1-65535"))?;
        let number = |s: &str, what: &str| -> Result<i32, AdminError> {
            s.parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad(&format!("{what} must be a number ≥ 0")))
        };
        let balance = parts.get(2).map(|s| number(s, "balance")).transpose()?;
        let partition = parts.get(3).map(|s| number(s, "partition")).transpose()?;
        Ok(NodeSpec {
            host: parts[0].to_string(),
            port,
            balance,
            partition,
        })
    }

    pub fn parse_all(args: &[String], fields: usize) -> Result<Vec<NodeSpec>, AdminError> {
        args.iter().map(|a| NodeSpec::parse(a, fields)).collect()
    }
}

/// `HOST` or `HOST:PORT` (the index server), with `port` as the default.
pub fn host_port(arg: &str, port: u16) -> String {
    match arg.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => arg.to_string(),
        _ => format!("{arg}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        assert_eq!(
            NodeSpec::parse("n1:12121:3:1", 4).expect("valid"),
            NodeSpec {
                host: "n1".into(),
                port: 12121,
                balance: Some(3),
                partition: Some(1)
            }
        );
        assert_eq!(
            NodeSpec::parse("n1:12121", 2).expect("valid").key(),
            "n1:12121"
        );
        assert_eq!(
            NodeSpec::parse("n1:1:0", 3).expect("valid").balance,
            Some(0)
        );
    }

    #[test]
    fn rejects_bad_arguments_as_usage_errors() {
        for (arg, fields) in [
            ("n1", 2),
            ("n1:0", 2),
            ("n1:70000", 2),
            (":1", 2),
            ("n1:1:x", 3),
            ("n1:1:-1:0", 4),
            ("n1:1:1", 4),
            ("n1:1:1:1:1", 4),
        ] {
            let e = NodeSpec::parse(arg, fields).expect_err(arg);
            assert_eq!(e.exit_code(), 2, "{arg}");
            assert!(e.to_string().contains(arg), "{e}");
        }
    }

    #[test]
    fn index_server_with_or_without_port() {
        assert_eq!(host_port("idx", 12120), "idx:12120");
        assert_eq!(host_port("idx:13130", 12120), "idx:13130");
    }
}

//! Parsing of flared's `index-servers` option (operations.md §2.4).
//!
//! The string is scanned left to right for tokens `NAME:PORT`, where NAME is a run of
//! characters other than `,`, `:` and whitespace, and PORT is a run of decimal digits.
//! Text between tokens that does not form a token is skipped silently, so `a:1 b:2` works
//! and `a:1,b:2 ;c:3` yields the hosts `a`, `b` and `;c` (as 1.3.4 did).
//!
//! Errors: no token at all ([`ConfigError::InvalidIndexServers`]), or a port above 65535
//! ([`ConfigError::InvalidPort`]; 1.3.4 only rejected values that overflowed its integer
//! type).

use crate::error::ConfigError;

fn is_name_char(c: char) -> bool {
    c != ',' && c != ':' && !c.is_whitespace()
}

/// Parses an `index-servers` value into `(host, port)` pairs, in order.
pub fn parse_index_servers(s: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_name_char(chars[i]) {
            i += 1;
            continue;
        }
        // Every start position inside this run of name characters ends the name at the
        // same place, so a failed match skips the whole run.
        let name_start = i;
        let mut j = i;
        while j < chars.len() && is_name_char(chars[j]) {
            j += 1;
        }
        if j < chars.len() && chars[j] == ':' && chars.get(j + 1).is_some_and(char::is_ascii_digit)
        {
            let port_start = j + 1;
            let mut k = port_start;
            while k < chars.len() && chars[k].is_ascii_digit() {
                k += 1;
            }
            let name: String = chars[name_start..j].iter().collect();
            let digits: String = chars[port_start..k].iter().collect();
            let port = digits
                .parse::<u16>()
                .map_err(|_| ConfigError::InvalidPort(digits.clone()))?;
            out.push((name, port));
            i = k;
        } else {
            i = j;
        }
    }
    if out.is_empty() {
        return Err(ConfigError::InvalidIndexServers);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(s: &str) -> Vec<(String, u16)> {
        parse_index_servers(s).expect("valid")
    }

    fn h(n: &str, p: u16) -> (String, u16) {
        (n.to_string(), p)
    }

    #[test]
    fn single_and_lists() {
        assert_eq!(hosts("idx:12120"), vec![h("idx", 12120)]);
        assert_eq!(
            hosts("a:1,b:2,c.example.com:12120"),
            vec![h("a", 1), h("b", 2), h("c.example.com", 12120)]
        );
        assert_eq!(hosts("a:1 b:2"), vec![h("a", 1), h("b", 2)]);
        assert_eq!(hosts("  a:1 ,\tb:2  "), vec![h("a", 1), h("b", 2)]);
    }

    #[test]
    fn junk_between_tokens_is_skipped() {
        assert_eq!(
            hosts("a:1,b:2 ;c:3"),
            vec![h("a", 1), h("b", 2), h(";c", 3)]
        );
        assert_eq!(hosts("x a:1 y"), vec![h("a", 1)]);
        assert_eq!(hosts("a:b:1"), vec![h("b", 1)]);
        assert_eq!(hosts("a:1x:2"), vec![h("a", 1), h("x", 2)]);
        assert_eq!(hosts("a:,b:7"), vec![h("b", 7)]);
        assert_eq!(hosts("a:0012"), vec![h("a", 12)]);
    }

    #[test]
    fn errors() {
        for s in ["", "   ", "a", "a:", ":1", "a:x", ",,,"] {
            assert!(
                matches!(
                    parse_index_servers(s),
                    Err(ConfigError::InvalidIndexServers)
                ),
                "{s:?}"
            );
        }
        let e = parse_index_servers("a:1,b:65536").expect_err("overflow");
        assert_eq!(e.to_string(), "invalid port number 65536");
        assert!(parse_index_servers("a:99999999999999999999999").is_err());
        assert_eq!(hosts("a:65535"), vec![h("a", 65535)]);
    }
}

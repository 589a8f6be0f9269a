//! Parsing and checking memcached text-protocol replies.
//!
//! The generator knows what each pipelined request expects; a reply is parsed
//! only once it is complete in the buffer, then checked:
//!
//! * `set`: exactly `STORED`; any other line is an error.
//! * `get k1 .. kn`: zero or more `VALUE <key> <flags> <bytes> [<cas>]` blocks
//!   then `END`. Each returned key must be one of the requested keys, in
//!   request order, and its value must verify; keys not returned are misses. A
//!   line other than `VALUE` or `END` (`ERROR`, `SERVER_ERROR ...`, ...) ends
//!   the reply and counts as an error.

/// Lines longer than this without a newline are garbage.
const MAX_LINE: usize = 64 << 10;
/// Largest value block accepted in a reply.
const MAX_VALUE: usize = 1 << 30;

/// One item of a reply stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Value {
        key: &'a [u8],
        flags: u32,
        data: &'a [u8],
    },
    /// A `VALUE` block whose data is not followed by `\r\n`.
    BadValue {
        header: &'a [u8],
    },
    End,
    Stored,
    /// Any other line (without its line end).
    Other(&'a [u8]),
}

/// The item at the start of `buf` and its length, or `None` if incomplete.
pub fn next_item(buf: &[u8]) -> Option<(Item<'_>, usize)> {
    let Some(nl) = buf.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
        if buf.len() >= MAX_LINE {
            return Some((Item::Other(&buf[..MAX_LINE]), MAX_LINE));
        }
        return None;
    };
    let line = if nl > 0 && buf[nl - 1] == b'\r' {
        &buf[..nl - 1]
    } else {
        &buf[..nl]
    };
    let after = nl + 1;
    match line {
        b"END" => return Some((Item::End, after)),
        b"STORED" => return Some((Item::Stored, after)),
        _ => {}
    }
    let Some((key, flags, bytes)) = value_header(line) else {
        return Some((Item::Other(line), after));
    };
    let end = after + bytes + 2;
    if buf.len() < end {
        return None;
    }
    if &buf[after + bytes..end] != b"\r\n" {
        return Some((Item::BadValue { header: line }, end));
    }
    Some((
        Item::Value {
            key,
            flags,
            data: &buf[after..after + bytes],
        },
        end,
    ))
}

/// `VALUE <key> <flags> <bytes> [<cas>]` -> (key, flags, bytes).
fn value_header(line: &[u8]) -> Option<(&[u8], u32, usize)> {
    let mut parts = line.split(|&b| b == b' ');
    if parts.next()? != b"VALUE" {
        return None;
    }
    let key = parts.next().filter(|k| !k.is_empty())?;
    let flags = number(parts.next()?)?;
    let bytes = number(parts.next()?)?;
    if let Some(cas) = parts.next() {
        number(cas)?;
    }
    if parts.next().is_some() || bytes > MAX_VALUE as u64 {
        return None;
    }
    Some((key, u32::try_from(flags).ok()?, bytes as usize))
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn show(line: &[u8]) -> String {
    let cut = &line[..line.len().min(80)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

/// The reply to one `set`: `Ok` for `STORED`, else what came instead.
pub fn parse_store(buf: &[u8]) -> Option<(usize, Result<(), String>)> {
    let (item, len) = next_item(buf)?;
    let r = match item {
        Item::Stored => Ok(()),
        Item::Other(line) => Err(format!("set: unexpected line {}", show(line))),
        Item::BadValue { header } => Err(format!("set: unexpected {}", show(header))),
        Item::End => Err("set: unexpected END".to_string()),
        Item::Value { key, .. } => Err(format!("set: unexpected VALUE for {}", show(key))),
    };
    Some((len, r))
}

/// What one `get` reply held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GetOutcome {
    /// Requested keys returned with the right value.
    pub hits: u32,
    /// Requested keys not returned.
    pub misses: u32,
    /// Wrong values, unrequested or out-of-order keys, broken blocks,
    /// unexpected lines.
    pub errors: u32,
    /// The first error, described.
    pub first_error: Option<String>,
}

impl GetOutcome {
    fn error(&mut self, msg: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(msg());
        }
    }
}

/// The reply to `get` of `n` keys (`key(i)` is the i-th requested key;
/// `verify(i, flags, data)` checks a returned value). `None` while the reply
/// is incomplete; else its length and outcome.
pub fn parse_get<'k, K, V>(
    buf: &[u8],
    n: usize,
    key: K,
    mut verify: V,
) -> Option<(usize, GetOutcome)>
where
    K: Fn(usize) -> &'k [u8],
    V: FnMut(usize, u32, &[u8]) -> Result<(), String>,
{
    // Pass 1: is the reply complete? (headers only; values are skipped)
    let mut len = 0;
    loop {
        let (item, l) = next_item(&buf[len..])?;
        len += l;
        if !matches!(item, Item::Value { .. } | Item::BadValue { .. }) {
            break;
        }
    }
    // Pass 2: check it.
    let mut out = GetOutcome::default();
    let mut pos = 0;
    let mut next = 0; // first requested key not yet matched
    let mut returned = 0u32;
    while pos < len {
        let (item, l) = next_item(&buf[pos..len]).expect("complete in pass 1");
        pos += l;
        match item {
            Item::Value {
                key: got,
                flags,
                data,
            } => match (next..n).find(|&i| key(i) == got) {
                Some(i) => {
                    next = i + 1;
                    returned += 1;
                    match verify(i, flags, data) {
                        Ok(()) => out.hits += 1,
                        Err(e) => out.error(|| format!("get {}: {e}", show(got))),
                    }
                }
                None => out.error(|| format!("get: unrequested or out-of-order key {}", show(got))),
            },
            Item::BadValue { header } => {
                out.error(|| format!("get: value block not ended by CRLF after {}", show(header)))
            }
            Item::End => {}
            Item::Stored => out.error(|| "get: unexpected STORED".to_string()),
            Item::Other(line) => out.error(|| format!("get: unexpected line {}", show(line))),
        }
    }
    out.misses = n as u32 - returned;
    Some((len, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&[u8]; 3] = [b"a", b"bb", b"c"];

    fn key(i: usize) -> &'static [u8] {
        KEYS[i]
    }

    /// Accepts the value "v-<key>" with flags 5.
    fn verify(i: usize, flags: u32, data: &[u8]) -> Result<(), String> {
        let want = [b"v-", KEYS[i]].concat();
        if flags == 5 && data == want.as_slice() {
            Ok(())
        } else {
            Err("wrong value".into())
        }
    }

    fn get(buf: &[u8], n: usize) -> Option<(usize, GetOutcome)> {
        parse_get(buf, n, key, verify)
    }

    #[test]
    fn items() {
        assert_eq!(next_item(b"END\r\nrest"), Some((Item::End, 5)));
        assert_eq!(next_item(b"STORED\r\n"), Some((Item::Stored, 8)));
        assert_eq!(next_item(b"STORED\r"), None);
        assert_eq!(next_item(b""), None);
        assert_eq!(
            next_item(b"SERVER_ERROR out of memory\r\n"),
            Some((Item::Other(b"SERVER_ERROR out of memory"), 28))
        );
        assert_eq!(
            next_item(b"VALUE k 3 2\r\nab\r\n"),
            Some((
                Item::Value {
                    key: b"k",
                    flags: 3,
                    data: b"ab"
                },
                17
            ))
        );
        // with a cas unique (gets)
        assert_eq!(
            next_item(b"VALUE k 0 1 99\r\nx\r\n").map(|(_, l)| l),
            Some(19)
        );
        // incomplete data block
        assert_eq!(next_item(b"VALUE k 3 10\r\nabc"), None);
        // data not ended by CRLF
        assert_eq!(
            next_item(b"VALUE k 3 2\r\nabcd\r\n"),
            Some((
                Item::BadValue {
                    header: b"VALUE k 3 2"
                },
                17
            ))
        );
        // malformed headers are plain lines
        for bad in [
            &b"VALUE k x 2\r\n"[..],
            b"VALUE k 1\r\n",
            b"VALUE  1 2\r\n",
            b"VALUE k 1 2 3 4\r\n",
            b"VALUE k 99999999999 2\r\n",
        ] {
            assert!(
                matches!(next_item(bad), Some((Item::Other(_), _))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn store_replies() {
        assert_eq!(parse_store(b"STORED\r\n"), Some((8, Ok(()))));
        assert_eq!(parse_store(b"STO"), None);
        let (len, r) = parse_store(b"NOT_STORED\r\nSTORED\r\n").unwrap();
        assert_eq!(len, 12);
        assert!(r.unwrap_err().contains("NOT_STORED"));
        assert!(parse_store(b"END\r\n").unwrap().1.is_err());
    }

    #[test]
    fn get_hits_misses_and_incomplete() {
        let full = b"VALUE a 5 3\r\nv-a\r\nVALUE c 5 3\r\nv-c\r\nEND\r\nNEXT";
        let (len, o) = get(full, 3).unwrap();
        assert_eq!(len, full.len() - 4);
        assert_eq!(
            o,
            GetOutcome {
                hits: 2,
                misses: 1,
                errors: 0,
                first_error: None
            }
        );
        for cut in 0..len {
            assert_eq!(get(&full[..cut], 3), None, "cut at {cut}");
        }
        let (len, o) = get(b"END\r\n", 1).unwrap();
        assert_eq!((len, o.hits, o.misses, o.errors), (5, 0, 1, 0));
    }

    #[test]
    fn get_errors() {
        // wrong value
        let (_, o) = get(b"VALUE a 5 3\r\nv-x\r\nEND\r\n", 1).unwrap();
        assert_eq!((o.hits, o.misses, o.errors), (0, 0, 1));
        assert!(o.first_error.unwrap().contains("wrong value"));
        // wrong flags
        let (_, o) = get(b"VALUE a 6 3\r\nv-a\r\nEND\r\n", 1).unwrap();
        assert_eq!(o.errors, 1);
        // unrequested key
        let (_, o) = get(b"VALUE zz 5 4\r\nv-zz\r\nEND\r\n", 2).unwrap();
        assert_eq!((o.hits, o.misses, o.errors), (0, 2, 1));
        // out of order
        let (_, o) = get(b"VALUE bb 5 4\r\nv-bb\r\nVALUE a 5 3\r\nv-a\r\nEND\r\n", 3).unwrap();
        assert_eq!((o.hits, o.misses, o.errors), (1, 2, 1));
        // duplicate
        let (_, o) = get(b"VALUE a 5 3\r\nv-a\r\nVALUE a 5 3\r\nv-a\r\nEND\r\n", 2).unwrap();
        assert_eq!((o.hits, o.misses, o.errors), (1, 1, 1));
        // error line instead of the reply: consumed, reply over
        let (len, o) = get(b"SERVER_ERROR busy\r\nEND\r\n", 2).unwrap();
        assert_eq!((len, o.hits, o.misses, o.errors), (19, 0, 2, 1));
        // error line in the middle
        let (len, o) = get(b"VALUE a 5 3\r\nv-a\r\nERROR\r\n", 2).unwrap();
        assert_eq!((len, o.hits, o.misses, o.errors), (25, 1, 1, 1));
        // STORED where a get reply was expected
        let (_, o) = get(b"STORED\r\n", 1).unwrap();
        assert_eq!(o.errors, 1);
        // broken block: an error; the stream is out of step after it (the
        // leftover CRLF is an unexpected empty line, which ends the reply)
        let (len, o) = get(b"VALUE a 5 3\r\nv-aXX\r\nEND\r\n", 1).unwrap();
        assert_eq!((len, o.hits, o.errors), (20, 0, 2));
    }

    #[test]
    fn garbage_without_newline_is_bounded() {
        let junk = vec![b'x'; MAX_LINE + 10];
        let (item, len) = next_item(&junk).unwrap();
        assert!(matches!(item, Item::Other(_)));
        assert_eq!(len, MAX_LINE);
    }
}

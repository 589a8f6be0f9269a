//! `flare.xml`: the index state in the Boost.Serialization XML format of
//! flarei 1.x (cluster.md §1.5).
//!
//! * [`render`] writes byte for byte what flarei 1.3.4 (Boost 1.74) writes.
//! * [`parse`] reads it back the way Boost does, by position: the first
//!   element of the archive is the version (any tag name, e.g. `version` or
//!   `node_map_version`), unless the archive has only two elements (the
//!   legacy format without a version, which then is 0).
//! * [`save`] is crash-safe: `flare.xml.tmp` is written and fsynced, renamed
//!   over `flare.xml`, and the directory is fsynced.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flare_proto::node::{NodeLine, Role, State};

use crate::map::NodeMap;

/// File name of the state file inside the index-db directory.
pub const FILE_NAME: &str = "flare.xml";
const TMP_NAME: &str = "flare.xml.tmp";

/// Problems reading or writing `flare.xml`.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// The document for `map` ([`flare_cluster::flare_xml::render`]).
pub fn render(map: &NodeMap) -> String {
    flare_cluster::flare_xml::render(map.version, map.nodes(), map.next_thread_type)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| format!("unterminated entity in {s:?}"))?;
        let ent = &after[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = ent.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = ent.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{ent};"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// An XML element: name, child elements, text (only for leaves).
#[derive(Debug)]
struct Element {
    name: String,
    children: Vec<Element>,
    text: String,
}

/// A minimal XML reader: declarations, DOCTYPE, comments, attributes
/// (skipped), nested elements and text. Enough for Boost archives.
struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    /// Skip `<?...?>`, `<!...>` and comments and whitespace.
    fn skip_misc(&mut self) -> Result<(), String> {
        loop {
            self.skip_ws();
            let r = self.rest();
            let end = if r.starts_with("<!--") {
                r.find("-->").map(|e| e + 3)
            } else if r.starts_with("<?") {
                r.find("?>").map(|e| e + 2)
            } else if r.starts_with("<!") {
                r.find('>').map(|e| e + 1)
            } else {
                return Ok(());
            };
            self.pos += end.ok_or("unterminated declaration")?;
        }
    }

    /// Parse one element starting at `<name`.
    fn element(&mut self, depth: usize) -> Result<Element, String> {
        if depth > 16 {
            return Err("elements nested too deeply".into());
        }
        let r = self.rest();
        if !r.starts_with('<') {
            return Err(format!("expected an element at byte {}", self.pos));
        }
        // the start tag, honouring quoted attribute values
        let bytes = r.as_bytes();
        let mut i = 1;
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'>' => break,
                None => {}
            }
            i += 1;
        }
        if i >= bytes.len() {
            return Err("unterminated start tag".into());
        }
        let tag = &r[1..i];
        self.pos += i + 1;
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag
            .split(|c: char| c.is_ascii_whitespace())
            .next()
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            return Err("empty element name".into());
        }
        let mut el = Element {
            name,
            children: Vec::new(),
            text: String::new(),
        };
        if self_closing {
            return Ok(el);
        }
        let mut text = String::new();
        loop {
            let r = self.rest();
            let lt = r
                .find('<')
                .ok_or_else(|| format!("element <{}> is not closed", el.name))?;
            text.push_str(&r[..lt]);
            self.pos += lt;
            let r = self.rest();
            if let Some(close) = r.strip_prefix("</") {
                let gt = close.find('>').ok_or("unterminated end tag")?;
                let cname = close[..gt].trim();
                if cname != el.name {
                    return Err(format!("<{}> closed by </{cname}>", el.name));
                }
                self.pos += 2 + gt + 1;
                break;
            }
            if r.starts_with("<!--") {
                let e = r.find("-->").ok_or("unterminated comment")?;
                self.pos += e + 3;
                continue;
            }
            let child = self.element(depth + 1)?;
            el.children.push(child);
        }
        if el.children.is_empty() {
            el.text = unescape(text.trim())?;
        }
        Ok(el)
    }
}

fn parse_tree(s: &str) -> Result<Element, String> {
    let mut r = Reader { s, pos: 0 };
    r.skip_misc()?;
    let root = r.element(0)?;
    r.skip_misc()?;
    if !r.rest().trim().is_empty() {
        return Err("content after the root element".into());
    }
    Ok(root)
}

fn number<T: std::str::FromStr>(el: &Element, what: &str) -> Result<T, String> {
    el.text.trim().parse().map_err(|_| {
        format!(
            "<{}> ({what}): {:?} is not a valid number",
            el.name, el.text
        )
    })
}

fn leaf<'e>(els: &'e [Element], i: usize, what: &str) -> Result<&'e Element, String> {
    let el = els
        .get(i)
        .ok_or_else(|| format!("missing element for {what}"))?;
    if !el.children.is_empty() {
        return Err(format!(
            "<{}> ({what}) must not have child elements",
            el.name
        ));
    }
    Ok(el)
}

fn parse_node(item: &Element) -> Result<(String, NodeLine), String> {
    let [first, second] = item.children.as_slice() else {
        return Err("an <item> needs exactly <first> and <second>".into());
    };
    let key = first.text.clone();
    let f = &second.children;
    if f.len() != 7 {
        return Err(format!(
            "node [{key}]: expected 7 fields, found {}",
            f.len()
        ));
    }
    let name = leaf(f, 0, "node_server_name")?.text.clone();
    let port: u16 = number(leaf(f, 1, "node_server_port")?, "node_server_port")?;
    let role_n: i64 = number(leaf(f, 2, "node_role")?, "node_role")?;
    let state_n: i64 = number(leaf(f, 3, "node_state")?, "node_state")?;
    let role =
        Role::from_number(role_n).ok_or_else(|| format!("node [{key}]: bad role {role_n}"))?;
    let state =
        State::from_number(state_n).ok_or_else(|| format!("node [{key}]: bad state {state_n}"))?;
    let node = NodeLine {
        name,
        port,
        role,
        state,
        partition: number(leaf(f, 4, "node_partition")?, "node_partition")?,
        balance: number(leaf(f, 5, "node_balance")?, "node_balance")?,
        thread_type: number(leaf(f, 6, "node_thread_type")?, "node_thread_type")?,
    };
    if node.balance > flare_proto::node::MAX_BALANCE {
        return Err(format!(
            "node [{key}]: balance {} is above the maximum {}",
            node.balance,
            flare_proto::node::MAX_BALANCE
        ));
    }
    if node.key() != key {
        return Err(format!(
            "item [{key}] holds the record of node [{}]",
            node.key()
        ));
    }
    Ok((key, node))
}

/// Read a document. Does not run [`NodeMap::check`].
pub fn parse(text: &str) -> Result<NodeMap, String> {
    let root = parse_tree(text)?;
    if root.name != "boost_serialization" {
        return Err(format!(
            "root element is <{}>, not <boost_serialization>",
            root.name
        ));
    }
    let (version, node_map, thread_type) = match root.children.as_slice() {
        [_, m, t] => (
            number::<u64>(leaf(&root.children, 0, "version")?, "version")?,
            m,
            t,
        ),
        [m, t] => (0, m, t),
        other => {
            return Err(format!(
                "expected version, node_map and thread_type, found {} elements",
                other.len()
            ))
        }
    };
    let next_thread_type: i32 = number(thread_type, "thread_type")?;
    let items = &node_map.children;
    let count: usize = number(leaf(items, 0, "count")?, "count")?;
    // Boost writes <item_version> after <count>; very old archives did not.
    let skip = match items.len().checked_sub(count) {
        Some(2) => 2,
        Some(1) => 1,
        _ => {
            return Err(format!(
                "<count> says {count} nodes, but the node map has {} elements",
                items.len()
            ))
        }
    };
    let mut nodes = Vec::with_capacity(count);
    let mut seen = std::collections::BTreeSet::new();
    for item in &items[skip..] {
        let (key, node) = parse_node(item)?;
        if !seen.insert(key.clone()) {
            return Err(format!("node [{key}] appears twice"));
        }
        nodes.push(node);
    }
    Ok(NodeMap::from_parts(nodes, version, next_thread_type))
}

/// `<dir>/flare.xml`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Load the state from `<dir>/flare.xml`: `Ok(None)` when the file does not
/// exist; an error when it cannot be read, parsed, or fails the sanity checks.
pub fn load(dir: &Path) -> Result<Option<NodeMap>, PersistError> {
    let path = state_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    let format = |reason: String| PersistError::Format {
        path: path.clone(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| format("not valid UTF-8".into()))?;
    let map = parse(&text).map_err(format)?;
    map.check().map_err(format)?;
    Ok(Some(map))
}

/// Write `map` to `<dir>/flare.xml` crash-safely.
pub fn save(dir: &Path, map: &NodeMap) -> Result<(), PersistError> {
    let tmp = dir.join(TMP_NAME);
    let path = state_path(dir);
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PersistError::Write { path, source }
    };
    let failpoint = |name| flare_daemon::fault::block(name).map_err(io::Error::other);
    failpoint("persist::save").map_err(werr(&tmp))?;
    let mut f = File::create(&tmp).map_err(werr(&tmp))?;
    f.write_all(render(map).as_bytes()).map_err(werr(&tmp))?;
    f.sync_all().map_err(werr(&tmp))?;
    drop(f);
    // `return(crash)` here: the new map is written but not yet in place
    failpoint("persist::rename").map_err(werr(&path))?;
    std::fs::rename(&tmp, &path).map_err(werr(&path))?;
    // make the rename durable
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(werr(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = include_str!("testdata/flare.xml");

    fn node(name: &str, port: u16, role: Role, state: State, p: i32, b: i32, tt: i32) -> NodeLine {
        NodeLine {
            name: name.into(),
            port,
            role,
            state,
            partition: p,
            balance: b,
            thread_type: tt,
        }
    }

    fn example_map() -> NodeMap {
        NodeMap::from_parts(
            vec![
                node("10.0.0.5", 12121, Role::Master, State::Active, 0, 1, 16),
                node("10.0.0.6", 12121, Role::Slave, State::Active, 0, 0, 17),
            ],
            3,
            18,
        )
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "flarei-persist-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn writes_the_spec_example_byte_for_byte() {
        assert_eq!(render(&example_map()), SPEC_EXAMPLE);
    }

    #[test]
    fn reads_the_spec_example() {
        let m = parse(SPEC_EXAMPLE).expect("parse");
        assert_eq!(m, example_map());
        assert_eq!(m.check(), Ok(()));
        assert_eq!(render(&m), SPEC_EXAMPLE, "round trip");
    }

    #[test]
    fn empty_map() {
        let m = NodeMap::default();
        let text = render(&m);
        assert!(
            text.contains("\t<count>0</count>\n\t<item_version>0</item_version>\n</node_map>\n")
        );
        assert!(text.ends_with("<thread_type>16</thread_type>\n</boost_serialization>\n\n"));
        assert_eq!(parse(&text).expect("parse"), m);
    }

    #[test]
    fn accepts_node_map_version_tag_and_legacy_format() {
        let renamed = SPEC_EXAMPLE
            .replace(
                "<version>3</version>",
                "<node_map_version>3</node_map_version>",
            )
            .replace("version=\"18\"", "version=\"7\"");
        assert_eq!(parse(&renamed).expect("parse"), example_map());

        let legacy = SPEC_EXAMPLE.replace("<version>3</version>\n", "");
        let m = parse(&legacy).expect("parse legacy");
        assert_eq!(m.version, 0);
        assert_eq!(m.len(), 2);
        assert_eq!(m.next_thread_type, 18);
    }

    #[test]
    fn escapes_names() {
        let m = NodeMap::from_parts(
            vec![node("a&b<c>", 1, Role::Proxy, State::Down, -1, 0, 16)],
            9,
            17,
        );
        let text = render(&m);
        assert!(text.contains("<first>a&amp;b&lt;c&gt;:1</first>"));
        assert_eq!(parse(&text).expect("parse"), m);
    }

    #[test]
    fn rejects_broken_documents() {
        for bad in [
            "",
            "<boost_serialization>",
            "<other><a>1</a><b>2</b></other>",
            &SPEC_EXAMPLE.replace("<count>2</count>", "<count>5</count>"),
            &SPEC_EXAMPLE.replace("<node_role>1</node_role>", "<node_role>9</node_role>"),
            &SPEC_EXAMPLE.replace(
                "<node_balance>0</node_balance>",
                "<node_balance>x</node_balance>",
            ),
            &SPEC_EXAMPLE.replace("<first>10.0.0.6:12121</first>", "<first>10.0.0.7:1</first>"),
            &SPEC_EXAMPLE.replace("</node_map>", "</node_mop>"),
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn save_and_load() {
        let dir = TempDir::new("save");
        assert!(load(&dir.0).expect("no file").is_none());
        save(&dir.0, &example_map()).expect("save");
        assert_eq!(
            std::fs::read_to_string(state_path(&dir.0)).expect("read"),
            SPEC_EXAMPLE
        );
        assert!(!dir.0.join(TMP_NAME).exists());
        assert_eq!(load(&dir.0).expect("load"), Some(example_map()));
    }

    #[test]
    fn load_runs_the_sanity_checks() {
        let dir = TempDir::new("sanity");
        let bad = SPEC_EXAMPLE.replace(
            "<thread_type>18</thread_type>",
            "<thread_type>17</thread_type>",
        );
        std::fs::write(state_path(&dir.0), bad).expect("write");
        let e = load(&dir.0).expect_err("thread type check");
        assert!(e.to_string().contains("thread_type"), "{e}");
        std::fs::write(state_path(&dir.0), "garbage").expect("write");
        assert!(load(&dir.0).is_err());
    }
}

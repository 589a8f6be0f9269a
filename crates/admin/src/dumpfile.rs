//! The dump file of `flare-admin dump` / `restore` (docs/dump-format.md):
//!
//! ```text
//! FLARE-DUMP 1\r\n
//! VALUE <key> <flags> <bytes> <version> <expire>\r\n<data>\r\n   (one per record)
//! END <records>\r\n
//! ```
//!
//! Records are the nodes' own `dump` framing, so keys and values are bytes
//! (a key is whatever the protocol accepts as a key; the data is framed by
//! its length). The trailer's count makes a truncated file an error.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::{BufMut, BytesMut};
use flare_proto::client::{next_dump_item, DumpItem, ReplyLimits};

use crate::client::Record;
use crate::error::AdminError;

pub const MAGIC: &[u8] = b"FLARE-DUMP 1\r\n";

/// Appends a record in the file's framing to `out`.
pub fn encode(out: &mut BytesMut, r: &Record) {
    out.put_slice(b"VALUE ");
    out.put_slice(&r.key);
    out.put_slice(
        format!(
            " {} {} {} {}\r\n",
            r.flags,
            r.value.len(),
            r.version,
            r.expire
        )
        .as_bytes(),
    );
    out.put_slice(&r.value);
    out.put_slice(b"\r\n");
}

/// Writes a dump file; `finish` writes the trailer and, for a file, moves
/// it into place (a failed dump never leaves a complete-looking file).
pub struct Writer {
    out: Box<dyn Write>,
    tmp: Option<(PathBuf, PathBuf)>,
    buf: BytesMut,
    pub records: u64,
    pub bytes: u64,
}

impl Writer {
    pub fn create(path: &Path) -> Result<Writer, AdminError> {
        let (out, tmp): (Box<dyn Write>, _) = if path == Path::new("-") {
            (Box::new(std::io::stdout()), None)
        } else {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".part");
            let tmp = PathBuf::from(tmp);
            let f = std::fs::File::create(&tmp).map_err(AdminError::file(&tmp))?;
            (
                Box::new(std::io::BufWriter::with_capacity(1 << 20, f)),
                Some((tmp, path.to_path_buf())),
            )
        };
        let mut w = Writer {
            out,
            tmp,
            buf: BytesMut::with_capacity(1 << 16),
            records: 0,
            bytes: 0,
        };
        w.buf.put_slice(MAGIC);
        Ok(w)
    }

    fn path(&self) -> PathBuf {
        self.tmp
            .as_ref()
            .map_or_else(|| PathBuf::from("-"), |(t, _)| t.clone())
    }

    pub fn write(&mut self, r: &Record) -> Result<(), AdminError> {
        encode(&mut self.buf, r);
        self.records += 1;
        self.bytes += r.value.len() as u64;
        if self.buf.len() >= 1 << 16 {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), AdminError> {
        let path = self.path();
        self.out
            .write_all(&self.buf)
            .map_err(AdminError::file(&path))?;
        self.buf.clear();
        Ok(())
    }

    pub fn finish(mut self) -> Result<(), AdminError> {
        let trailer = format!("END {}\r\n", self.records);
        self.buf.put_slice(trailer.as_bytes());
        self.flush_buf()?;
        let path = self.path();
        self.out.flush().map_err(AdminError::file(&path))?;
        drop(self.out);
        if let Some((tmp, dest)) = self.tmp.take() {
            std::fs::rename(&tmp, &dest).map_err(AdminError::file(&dest))?;
        }
        Ok(())
    }
}

/// Reads a dump file record by record, with bounded memory (one record
/// and a read buffer).
pub struct Reader {
    input: Box<dyn Read>,
    path: PathBuf,
    buf: BytesMut,
    eof: bool,
    pub records: u64,
    /// Bytes of the file read so far (for progress).
    pub consumed: u64,
    started: bool,
}

/// Values are bounded by the nodes' item size (at most 1 GiB).
const LIMITS: ReplyLimits = ReplyLimits {
    max_line: 64 << 10,
    max_reply: 1 << 30,
};

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, AdminError> {
        let input: Box<dyn Read> = if path == Path::new("-") {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).map_err(AdminError::file(path))?)
        };
        Ok(Reader::from_read(input, path))
    }

    pub fn from_read(input: Box<dyn Read>, path: &Path) -> Reader {
        Reader {
            input,
            path: path.to_path_buf(),
            buf: BytesMut::with_capacity(1 << 16),
            eof: false,
            records: 0,
            consumed: 0,
            started: false,
        }
    }

    fn bad(&self, reason: impl Into<String>) -> AdminError {
        AdminError::DumpFormat {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn fill(&mut self) -> Result<(), AdminError> {
        let mut chunk = [0u8; 1 << 16];
        let n = self
            .input
            .read(&mut chunk)
            .map_err(AdminError::file(&self.path))?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next record; `None` after a complete file.
    pub fn next(&mut self) -> Result<Option<Record>, AdminError> {
        if !self.started {
            while self.buf.len() < MAGIC.len() && !self.eof {
                self.fill()?;
            }
            if !self.buf.starts_with(MAGIC) {
                return Err(self.bad("it does not start with `FLARE-DUMP 1`"));
            }
            let _ = self.buf.split_to(MAGIC.len());
            self.consumed += MAGIC.len() as u64;
            self.started = true;
        }
        loop {
            let before = self.buf.len();
            match next_dump_item(&mut self.buf, LIMITS) {
                Ok(Some(item @ DumpItem::Record { .. })) => {
                    self.consumed += (before - self.buf.len()) as u64;
                    self.records += 1;
                    return Ok(Record::from_item(item).ok());
                }
                Ok(Some(DumpItem::Refused(line))) => {
                    let count = line
                        .strip_prefix(b"END ")
                        .and_then(|n| std::str::from_utf8(n).ok())
                        .and_then(|n| n.parse::<u64>().ok())
                        .ok_or_else(|| {
                            self.bad(format!(
                                "unexpected line `{}` after record {}",
                                String::from_utf8_lossy(&line),
                                self.records
                            ))
                        })?;
                    if count != self.records {
                        return Err(self.bad(format!(
                            "the trailer says {count} records, the file has {}",
                            self.records
                        )));
                    }
                    self.consumed += (before - self.buf.len()) as u64;
                    return Ok(None);
                }
                Ok(Some(DumpItem::End)) => {
                    return Err(self.bad("`END` without a record count"));
                }
                Ok(None) => {
                    if self.eof {
                        return Err(self.bad(format!(
                            "truncated after record {} (no `END <records>` trailer)",
                            self.records
                        )));
                    }
                    self.fill()?;
                }
                Err(e) => {
                    return Err(self.bad(format!("after record {}: {e}", self.records)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn read_all(bytes: Vec<u8>) -> Result<Vec<Record>, AdminError> {
        let mut r = Reader::from_read(Box::new(std::io::Cursor::new(bytes)), Path::new("t"));
        let mut out = Vec::new();
        while let Some(rec) = r.next()? {
            out.push(rec);
        }
        Ok(out)
    }

    fn file(records: &[Record]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_slice(MAGIC);
        for r in records {
            encode(&mut b, r);
        }
        b.put_slice(format!("END {}\r\n", records.len()).as_bytes());
        b.to_vec()
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // What the text protocol accepts as a key: 1..=250 bytes, no
        // space or control character.
        proptest::collection::vec(
            any::<u8>().prop_filter("key byte", |b| *b > b' ' && *b != 0x7f),
            1..40,
        )
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            key(),
            any::<u32>(),
            any::<u64>(),
            0i64..4_000_000_000,
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(k, flags, version, expire, v)| Record {
                key: Bytes::from(k),
                flags,
                version,
                expire,
                value: Bytes::from(v),
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(record(), 0..20)) {
            let bytes = file(&records);
            prop_assert_eq!(read_all(bytes).expect("complete file"), records);
        }

        #[test]
        fn any_truncation_is_an_error(records in proptest::collection::vec(record(), 1..5), cut in any::<prop::sample::Index>()) {
            let bytes = file(&records);
            let at = cut.index(bytes.len());
            prop_assert!(read_all(bytes[..at].to_vec()).is_err());
        }
    }

    #[test]
    fn rejects_other_files_and_wrong_counts() {
        assert!(read_all(b"VALUE k 0 1 0 0\r\nx\r\nEND\r\n".to_vec()).is_err());
        let mut f = file(&[]);
        f.truncate(MAGIC.len());
        f.extend_from_slice(b"END 3\r\n");
        let e = read_all(f).expect_err("count");
        assert!(e.to_string().contains("3 records"), "{e}");
        assert!(read_all(Vec::new()).is_err());
    }
}

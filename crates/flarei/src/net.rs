//! The index's client side: one connection to a node, every step bounded by
//! a timeout.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest reply line accepted from a node.
const MAX_LINE: u64 = 4096;

/// A connection to a node.
pub struct NodeConn {
    stream: BufReader<TcpStream>,
}

fn timed_out(what: &str, t: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} timed out after {} ms", t.as_millis()),
    )
}

/// `host:port` → (host, port), split at the first `:` (cluster.md §1.1).
pub fn split_key(key: &str) -> io::Result<(&str, u16)> {
    key.split_once(':')
        .and_then(|(h, p)| Some((h, p.parse().ok()?)))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad node key [{key}]")))
}

impl NodeConn {
    /// Connect to `host:port` within `timeout` (name resolution included).
    pub async fn connect(key: &str, timeout: Duration) -> io::Result<NodeConn> {
        let (host, port) = split_key(key)?;
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| timed_out("connect", timeout))??;
        let _ = stream.set_nodelay(true);
        Ok(NodeConn {
            stream: BufReader::new(stream),
        })
    }

    /// Send `request` and read one reply line (without its line end), all
    /// within `timeout`. Any error leaves the connection unusable.
    pub async fn request(&mut self, request: &[u8], timeout: Duration) -> io::Result<String> {
        let exchange = async {
            self.stream.get_mut().write_all(request).await?;
            let mut line = Vec::new();
            let n = (&mut self.stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the node",
                ));
            }
            if !line.ends_with(b"\n") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "reply line too long or truncated",
                ));
            }
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
            Ok(String::from_utf8_lossy(&line).into_owned())
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out("reply", timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            split_key("127.0.0.1:12121").expect("valid"),
            ("127.0.0.1", 12121)
        );
        assert!(split_key("nohost").is_err());
        assert!(split_key("h:x").is_err());
        assert!(split_key("h:70000").is_err());
    }

    #[tokio::test]
    async fn request_reply_and_timeouts() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = [0u8; 6];
            s.read_exact(&mut buf).await.expect("read");
            s.write_all(b"OK\r\n").await.expect("write");
            // never answer the second request
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let key = format!("127.0.0.1:{port}");
        let mut c = NodeConn::connect(&key, Duration::from_secs(1))
            .await
            .expect("connect");
        assert_eq!(
            c.request(b"ping\r\n", Duration::from_secs(1))
                .await
                .expect("reply"),
            "OK"
        );
        let e = c
            .request(b"ping\r\n", Duration::from_millis(100))
            .await
            .expect_err("timeout");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}

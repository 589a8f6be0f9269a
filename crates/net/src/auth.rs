//! Mutual authentication inside a cluster (`cluster-secret-file`,
//! docs/security.md §2.4): a challenge–response over the text protocol in
//! which each side proves it knows the shared secret without sending it.
//!
//! ```text
//! client: auth challenge <client nonce, 32 hex digits>
//! server: AUTH <server nonce> <server proof>
//! client: auth response <client proof>
//! server: OK                     (or CLIENT_ERROR authentication failed)
//! ```
//!
//! A proof is HMAC-SHA256 over a role label and both nonces, keyed with the
//! secret, in hex. The client checks the server's proof before sending its
//! own, so neither side talks cluster business with an impostor, and a
//! recorded exchange is worthless (fresh nonces each time).

use std::path::Path;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of a nonce in bytes (hex: twice as many digits).
pub const NONCE_LEN: usize = 16;
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 16;

const CLIENT_LABEL: &[u8] = b"flare-rs cluster auth v1 client";
const SERVER_LABEL: &[u8] = b"flare-rs cluster auth v1 server";

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the cluster secret file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the cluster secret in {path} is {len} bytes: use at least {MIN_SECRET} (for example \
         `head -c 32 /dev/urandom | base64 > {path}`)"
    )]
    TooShort { path: String, len: usize },
}

/// The cluster's shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret is the file's content without surrounding whitespace.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let raw = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let key = raw.trim_ascii().to_vec();
        if key.len() < MIN_SECRET {
            return Err(SecretError::TooShort {
                path: path.display().to_string(),
                len: key.len(),
            });
        }
        Ok(Secret { key })
    }

    /// A secret from bytes (tests).
    pub fn from_bytes(key: &[u8]) -> Secret {
        Secret { key: key.to_vec() }
    }

    fn proof(&self, label: &[u8], client: &[u8], server: &[u8]) -> String {
        // HMAC takes keys of any length
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(label);
        mac.update(client);
        mac.update(server);
        hex(&mac.finalize().into_bytes())
    }

    /// The server's proof for a challenge.
    pub fn server_proof(&self, client: &[u8], server: &[u8]) -> String {
        self.proof(SERVER_LABEL, client, server)
    }

    /// The client's proof for a challenge.
    pub fn client_proof(&self, client: &[u8], server: &[u8]) -> String {
        self.proof(CLIENT_LABEL, client, server)
    }
}

/// A daemon's cluster secret and whether authentication is required
/// (`cluster-secret-required`, reloadable). Shared by every peer client and
/// the server side of the daemon.
#[derive(Debug)]
pub struct ClusterAuth {
    secret: Secret,
    required: std::sync::atomic::AtomicBool,
}

impl ClusterAuth {
    pub fn new(secret: Secret, required: bool) -> std::sync::Arc<ClusterAuth> {
        std::sync::Arc::new(ClusterAuth {
            secret,
            required: std::sync::atomic::AtomicBool::new(required),
        })
    }

    /// The options `cluster-secret-file` (empty: none) and
    /// `cluster-secret-required`.
    pub fn from_options(
        path: &str,
        required: bool,
    ) -> Result<Option<std::sync::Arc<ClusterAuth>>, SecretError> {
        if path.is_empty() {
            return Ok(None);
        }
        let secret = Secret::from_file(Path::new(path))?;
        Ok(Some(ClusterAuth::new(secret, required)))
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Required: unauthenticated peers may not send cluster commands, and
    /// this daemon talks only to peers that prove the secret. Otherwise
    /// (during a rolling upgrade) it authenticates where the peer can and
    /// accepts peers that cannot.
    pub fn required(&self) -> bool {
        self.required.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_required(&self, required: bool) {
        self.required
            .store(required, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decode lower- or upper-case hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A fresh random nonce.
pub fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    if getrandom::fill(&mut n).is_err() {
        // no OS randomness: fall back to the clock and a counter (still
        // unique per exchange, which is what the protocol needs)
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        n[..8].copy_from_slice(&t.to_le_bytes());
        n[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    n
}

/// Constant-time comparison of two proofs.
pub fn proofs_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A connection's side of the exchange (server).
#[derive(Debug, Default)]
pub struct AuthState {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (client nonce, server nonce) of a challenge awaiting its response.
    pending: Option<(Vec<u8>, Vec<u8>)>,
    authenticated: bool,
}

impl AuthState {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_authenticated(&self) -> bool {
        self.state().authenticated
    }

    /// `auth challenge <nonce>`: the reply line (with CRLF).
    pub fn challenge(&self, secret: Option<&Secret>, client_hex: &str) -> String {
        let Some(secret) = secret else {
            return "CLIENT_ERROR no cluster secret is configured here\r\n".to_string();
        };
        let Some(client) = unhex(client_hex).filter(|n| n.len() == NONCE_LEN) else {
            return "CLIENT_ERROR bad nonce\r\n".to_string();
        };
        let server = nonce().to_vec();
        let line = format!(
            "AUTH {} {}\r\n",
            hex(&server),
            secret.server_proof(&client, &server)
        );
        let mut st = self.state();
        st.pending = Some((client, server));
        st.authenticated = false;
        line
    }

    /// `auth response <proof>`: `OK`, or the failure line.
    pub fn response(&self, secret: Option<&Secret>, proof: &str) -> &'static str {
        let mut st = self.state();
        let pending = st.pending.take();
        match (secret, pending) {
            (Some(secret), Some((client, server)))
                if proofs_equal(&secret.client_proof(&client, &server), proof) =>
            {
                st.authenticated = true;
                "OK\r\n"
            }
            _ => "CLIENT_ERROR authentication failed\r\n",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_succeeds_only_with_the_same_secret() {
        let s = Secret::from_bytes(b"0123456789abcdef0123");
        let server = AuthState::default();
        let c = nonce();
        let line = server.challenge(Some(&s), &hex(&c));
        let parts: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(parts[0], "AUTH");
        let sn = unhex(parts[1]).expect("nonce");
        assert!(proofs_equal(parts[2], &s.server_proof(&c, &sn)));
        // a wrong secret's proof fails, and the challenge is used up
        let other = Secret::from_bytes(b"another secret of 20");
        assert_eq!(
            server.response(Some(&s), &other.client_proof(&c, &sn)),
            "CLIENT_ERROR authentication failed\r\n"
        );
        assert_eq!(
            server.response(Some(&s), &s.client_proof(&c, &sn)),
            "CLIENT_ERROR authentication failed\r\n"
        );
        assert!(!server.is_authenticated());
        let line = server.challenge(Some(&s), &hex(&c));
        let sn = unhex(line.trim_end().split(' ').nth(1).expect("nonce")).expect("hex");
        assert_eq!(
            server.response(Some(&s), &s.client_proof(&c, &sn)),
            "OK\r\n"
        );
        assert!(server.is_authenticated());
        assert_eq!(
            AuthState::default().challenge(Some(&s), "zz"),
            "CLIENT_ERROR bad nonce\r\n"
        );
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}

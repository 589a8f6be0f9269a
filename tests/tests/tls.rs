//! TLS for clients (`tls-port`, docs/security.md §2.5): Python's `ssl`
//! client sets and gets over the TLS port, a plain client there is refused
//! cleanly, client certificates are required with `tls-ca-file`, and a
//! reload (SIGHUP) serves a new certificate. Certificates are made by the
//! test with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flare_e2e::{free_port, run_bounded, signal, wait_until, Conn, Flared, WAIT};

/// `openssl` with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `<name>-ca.pem` and a certificate `<name>.pem` / `<name>.key` it
/// signed, for 127.0.0.1 (EC P-256 keys).
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend(["-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj"]);
    let ca_subject = format!("/CN={name} test CA");
    args.push(&ca_subject);
    openssl(dir, &args);
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
    openssl(dir, &args);
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    let pem = format!("{name}.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (dir.join(pem), dir.join(key), dir.join(ca))
}

const CLIENT: &str = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
if len(sys.argv) > 4:
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"set tk 3 0 5\r\nhello\r\nget tk\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            d = s.recv(4096)
            if not d:
                break
            buf += d
        sys.stdout.write(buf.decode())
"#;

/// Run the Python TLS client; `Ok(stdout)` or `Err(stderr)`.
fn tls_client(port: u16, ca: &Path, cert: Option<(&Path, &Path)>) -> Result<String, String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(CLIENT).arg(port.to_string()).arg(ca);
    if let Some((c, k)) = cert {
        cmd.arg(c).arg(k);
    }
    let out = run_bounded(cmd, Duration::from_secs(30));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

const REPLY: &str = "STORED\r\nVALUE tk 3 5\r\nhello\r\nEND\r\n";

fn tls_node(dir: &Path, extra: &str) -> (Flared, u16) {
    let (cert, key, _) = make_cert(dir, "server");
    let port = free_port();
    let f = Flared::start_with(
        &format!(
            "tls-port = {port}\ntls-cert-file = {}\ntls-key-file = {}\n{extra}",
            cert.display(),
            key.display()
        ),
        &[],
    );
    wait_until("the TLS port listens", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (f, port)
}

#[test]
fn a_tls_client_sets_and_gets_and_a_plain_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (f, port) = tls_node(dir.path(), "");
    let ca = dir.path().join("server-ca.pem");
    assert_eq!(tls_client(port, &ca, None).as_deref(), Ok(REPLY));
    // the plain port still serves, and sees the record
    assert_eq!(f.connect().get("tk"), Some((3, b"hello".to_vec())));
    // a plain client on the TLS port: the connection is closed, nothing is
    // answered, the node goes on
    let mut plain = Conn::connect(port);
    plain.send(b"get tk\r\n");
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut plain.stream, &mut answer).expect("closed by the node");
    // at most a TLS alert record (0x15): never a protocol reply
    assert!(
        answer.is_empty() || (answer[0] == 0x15 && answer.len() <= 7),
        "{answer:?}"
    );
    assert!(
        f.log().contains("TLS handshake with 127.0.0.1:"),
        "{}",
        f.log()
    );
    assert_eq!(tls_client(port, &ca, None).as_deref(), Ok(REPLY));
    // a client that does not trust the certificate fails its handshake
    let (_, _, other_ca) = make_cert(dir.path(), "other");
    assert!(tls_client(port, &other_ca, None).is_err());
}

#[test]
fn client_certificates_with_a_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, client_ca) = make_cert(dir.path(), "client");
    let (f, port) = tls_node(
        dir.path(),
        &format!("tls-ca-file = {}\n", client_ca.display()),
    );
    let ca = dir.path().join("server-ca.pem");
    let err = tls_client(port, &ca, None).expect_err("no client certificate");
    assert!(!err.is_empty());
    let cert = dir.path().join("client.pem");
    let key = dir.path().join("client.key");
    assert_eq!(
        tls_client(port, &ca, Some((&cert, &key))).as_deref(),
        Ok(REPLY)
    );
    // a certificate from another CA is refused
    let (rogue, rogue_key, _) = make_cert(dir.path(), "rogue");
    assert!(tls_client(port, &ca, Some((&rogue, &rogue_key))).is_err());
    drop(f);
}

/// SIGHUP reads the certificate files again: new connections get the new
/// certificate.
#[test]
fn a_reload_serves_the_new_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (f, port) = tls_node(dir.path(), "");
    let old_ca = dir.path().join("server-ca.pem");
    assert_eq!(tls_client(port, &old_ca, None).as_deref(), Ok(REPLY));
    let (cert, key, new_ca) = make_cert(dir.path(), "renewed");
    std::fs::copy(&cert, dir.path().join("server.pem")).expect("copy cert");
    std::fs::copy(&key, dir.path().join("server.key")).expect("copy key");
    signal(f.pid(), 1);
    wait_until("the renewed certificate is served", WAIT, || {
        tls_client(port, &new_ca, None).as_deref() == Ok(REPLY)
    });
    assert!(tls_client(port, &old_ca, None).is_err());
}

/// tls-port without the files, or with a key that is not the
/// certificate's, is a configuration error naming the problem.
#[test]
fn bad_tls_settings_stop_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _, _) = make_cert(dir.path(), "a");
    let (_, other_key, _) = make_cert(dir.path(), "b");
    for (extra, want) in [
        (
            format!("tls-port = {}\n", free_port()),
            "tls-port needs tls-cert-file and tls-key-file",
        ),
        (
            format!(
                "tls-port = {}\ntls-cert-file = {}\ntls-key-file = {}\n",
                free_port(),
                cert.display(),
                other_key.display()
            ),
            "tls-key-file is the key of tls-cert-file",
        ),
        (
            format!(
                "tls-port = {}\ntls-cert-file = {}/missing.pem\ntls-key-file = {}\n",
                free_port(),
                dir.path().display(),
                other_key.display()
            ),
            "cannot read tls-cert-file",
        ),
    ] {
        let f = Flared::configure(&extra, &[]);
        let out = run_bounded(f.command(), Duration::from_secs(30));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(255), "{text}");
        assert!(text.contains(want), "{want}: {text}");
    }
}

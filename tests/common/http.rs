//! Small HTTP servers for tests that need one to misbehave on purpose (a mirror, a
//! Prometheus API): reading a request's head, and writing a whole answer.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// A request as these servers need it: its path (without the leading `/`) and the
/// first byte of its `Range: bytes=N-`, if any.
pub struct Request {
    pub path: String,
    pub range: Option<u64>,
}

/// Reads a request's head from `c` (the request line and headers, up to the blank line).
pub fn read_request(c: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(c.try_clone().ok()?);
    let mut first = String::new();
    r.read_line(&mut first).ok()?;
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = v.trim().trim_end_matches('-').parse().ok();
        }
    }
    let path = first
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_owned();
    Some(Request { path, range })
}

/// Writes a whole `200 OK` answer of `body` and closes the connection.
pub fn answer(c: &mut TcpStream, body: &[u8]) {
    let _ = c.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let _ = c.write_all(body);
    let _ = c.flush();
    let _ = c.shutdown(std::net::Shutdown::Both);
}

/// A Prometheus query answer: a vector with one sample per value in `values` (none:
/// no data).
pub fn prometheus_vector(values: &[&str]) -> String {
    let samples: Vec<String> = values
        .iter()
        .map(|v| format!(r#"{{"metric":{{}},"value":[1700000000,"{v}"]}}"#))
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        samples.join(",")
    )
}

/// A private CA and a server certificate for 127.0.0.1 it signed, made by openssl in
/// `d`: the paths of the CA's certificate, the server's certificate and its key.
pub fn certificates(
    d: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    std::fs::write(
        d.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=fleetup-test-ca -keyout ca.key -out ca.pem",
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out leaf.csr",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile leaf.ext -out cert.pem",
    ] {
        let made = std::process::Command::new("openssl")
            .args(args.split(' '))
            .current_dir(d)
            .output()
            .expect("openssl is installed by scripts/test");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    (d.join("ca.pem"), d.join("cert.pem"), d.join("key.pem"))
}

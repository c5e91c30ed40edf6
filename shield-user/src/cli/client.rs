//! A small HTTP/1.1 client over the agent's Unix socket: one request per connection, JSON in
//! and out. Errors say whether the agent is missing, unreachable, or refused the request.

use std::{
    io::{Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use serde::{Serialize, de::DeserializeOwned};

use crate::api::ErrorBody;

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client { socket: socket.to_owned() }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.request("GET", path, None::<&()>)
    }

    /// A POST without a body (the server reads none, so none is sent: an unread body can make
    /// the server's close reset the connection before the answer is read).
    pub fn post<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.request("POST", path, None::<&()>)
    }

    pub fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.request(method, path, Some(body))
    }

    fn connect(&self) -> anyhow::Result<UnixStream> {
        UnixStream::connect(&self.socket).map_err(|e| {
            let socket = self.socket.display();
            match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow!(
                    "no shield agent is running (nothing listening on {socket}); start it with `shield run --iface IFACE` or `systemctl start shield`"
                ),
                std::io::ErrorKind::PermissionDenied => anyhow!(
                    "permission denied on {socket}: {}",
                    socket_access_hint(&self.socket)
                ),
                _ => anyhow!("connecting to the agent at {socket} failed: {e}"),
            }
        })
    }

    fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let mut stream = self.connect()?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let body = match body {
            Some(b) => serde_json::to_vec(b)?,
            None => Vec::new(),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: shield\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).context("sending the request to the agent")?;
        stream.write_all(&body).context("sending the request to the agent")?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).context("reading the agent's answer")?;
        let (status, body) = split_response(&response)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).with_context(|| format!("the agent's answer to {method} {path} is not what this CLI expects (versions differ?)"));
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => bail!("{}", e.error),
            Err(_) => bail!(
                "the agent refused the request ({status}): {}",
                String::from_utf8_lossy(&body).trim()
            ),
        }
    }
}

/// Who may use the socket: its group, when it has one besides root.
fn socket_access_hint(socket: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let gid = std::fs::metadata(socket).map(|m| m.gid()).unwrap_or(0);
    if gid == 0 {
        return "only root may use it (set agent.socket_group to let a group use the CLI)".into();
    }
    // SAFETY: getgrgid returns null or a pointer to a static entry that is read at once.
    let name = unsafe {
        let entry = libc::getgrgid(gid);
        if entry.is_null() {
            gid.to_string()
        } else {
            std::ffi::CStr::from_ptr((*entry).gr_name).to_string_lossy().into_owned()
        }
    };
    format!("run as root or as a member of group '{name}' (the socket is mode 0660, group {name})")
}

/// Status code and body of an HTTP/1.1 response (Content-Length or chunked).
fn split_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let bad = || anyhow!("the agent sent a malformed HTTP response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad())?;
    let body = &raw[split + 4..];
    let status: u16 =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        out.extend_from_slice(rest.get(..size).ok_or_else(bad)?);
        rest = rest.get(size + 2..).ok_or_else(bad)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_response() {
        let (s, b) = split_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, b"{}".as_slice()));
    }

    #[test]
    fn chunked_response() {
        let raw = b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (s, b) = split_response(raw).unwrap();
        assert_eq!((s, b.as_slice()), (404, b"abcde".as_slice()));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(split_response(b"nonsense").is_err());
        assert!(split_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }
}

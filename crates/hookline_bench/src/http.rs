//! A minimal HTTP/1.1 keep-alive client: the load generator must cost far less CPU than
//! the server it measures, on the same two cores.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Conn {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
    line: String,
    body: Vec<u8>,
    buffer: usize,
}

impl Conn {
    /// A connection to `addr` (`host:port`), opened on first use.
    pub fn new(addr: &str) -> Self {
        Self::with_buffer(addr, 16 * 1024)
    }

    /// As [`Conn::new`] with a read buffer of `buffer` bytes (thousands of connections
    /// need small ones).
    pub fn with_buffer(addr: &str, buffer: usize) -> Self {
        Self {
            addr: addr.to_string(),
            stream: None,
            line: String::new(),
            body: Vec::new(),
            buffer,
        }
    }

    /// Opens the connection now if it is not open.
    pub async fn connect(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::with_capacity(self.buffer, stream));
        }
        Ok(())
    }

    /// The body of the last response.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Sends a complete request and returns the response status, without a second try:
    /// an error is the server's answer (the connection is reopened on the next call).
    pub async fn send_once(&mut self, request: &[u8]) -> std::io::Result<u16> {
        let result = self.try_send(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    /// Sends a complete request and returns the response status. Reconnects (once) when
    /// the server closed the connection.
    pub async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        match self.try_send(request).await {
            Ok(status) => Ok(status),
            Err(_) => {
                self.stream = None;
                self.try_send(request).await
            }
        }
    }

    async fn try_send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.connect().await?;
        let stream = self.stream.as_mut().expect("connected above");
        stream.get_mut().write_all(request).await?;
        self.line.clear();
        if stream.read_line(&mut self.line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let mut length = 0usize;
        let mut close = false;
        loop {
            self.line.clear();
            if stream.read_line(&mut self.line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection")
                    && value.trim().eq_ignore_ascii_case("close")
                {
                    close = true;
                }
            }
        }
        self.body.resize(length, 0);
        stream.read_exact(&mut self.body).await?;
        if close {
            self.stream = None;
        }
        Ok(status)
    }
}

/// Serialises a POST request.
pub fn post(path: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: hookline\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

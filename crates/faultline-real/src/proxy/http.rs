//! Where the request heads of an HTTP/1 client stream begin and end, so that `matches` can
//! judge every request of a kept-alive connection, not only its first bytes.
//!
//! Go's HTTP transport (and most others) reuses an idle connection for the next request to
//! the same host: etcd's prober (`GET /raft/probing`, without `X-Server-From`) opens
//! connections that then carry pipeline posts (`POST /raft`, with it). A proxy that judges a
//! connection by its first bytes alone lets those posts through a partition. So the upstream
//! direction is framed as HTTP/1 requests (RFC 9112: a head up to `\r\n\r\n`, then a body of
//! `Content-Length` bytes or in chunks) and each head is handed to the caller. A stream that
//! does not frame as HTTP (another protocol, an upgrade, `CONNECT`, a head past
//! [`HEAD_BYTES`]) is opaque from there on: nothing more is judged, as before.

/// The most bytes of one request head; a longer one makes the stream opaque.
pub const HEAD_BYTES: usize = 16 * 1024;
/// The most bytes of a chunk-size or trailer line.
const LINE_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Gathering a request head (empty: between requests).
    Head,
    /// Skipping this many bytes of body.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping a chunk's data, then its CRLF.
    ChunkData(u64),
    /// Reading trailer lines until an empty one.
    Trailers,
    /// Not (or no longer) HTTP/1 requests: nothing more is framed.
    Opaque,
}

/// The framing of one connection's client-to-server bytes.
#[derive(Debug)]
pub struct Requests {
    state: State,
    head: Vec<u8>,
    line: Vec<u8>,
}

impl Default for Requests {
    fn default() -> Self {
        Requests { state: State::Head, head: Vec::new(), line: Vec::new() }
    }
}

/// Whether `bytes` can be the start of an HTTP/1 request line: a method token in capitals,
/// a space, and, once the line is complete, `HTTP/1.x` at its end.
pub fn request_start(bytes: &[u8]) -> bool {
    let method = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if method == bytes.len() {
        return method <= 16;
    }
    if method == 0 || method > 16 || bytes[method] != b' ' {
        return false;
    }
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = bytes[..end].strip_suffix(b"\r").unwrap_or(&bytes[..end]);
            line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")
        }
        None => true,
    }
}

fn header<'a>(head: &'a [u8], name: &str) -> impl Iterator<Item = &'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).filter_map(move |line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon].eq_ignore_ascii_case(name.as_bytes()).then(|| line[colon + 1..].trim_ascii())
    })
}

impl Requests {
    /// Whether the stream is still framed.
    pub fn is_framed(&self) -> bool {
        self.state != State::Opaque
    }

    /// Whether a head has begun and is not complete: its bytes are not all in yet.
    pub fn in_head(&self) -> bool {
        self.state == State::Head && !self.head.is_empty()
    }

    /// Stops framing (the stream is not HTTP, or its head never completed).
    pub fn give_up(&mut self) {
        self.state = State::Opaque;
        self.head = Vec::new();
        self.line = Vec::new();
    }

    /// Reads the next bytes of the stream; pushes every request head they complete (its
    /// text up to and including `\r\n\r\n`) onto `heads`.
    pub fn feed(&mut self, mut bytes: &[u8], heads: &mut Vec<Vec<u8>>) {
        while !bytes.is_empty() {
            match self.state {
                State::Opaque => return,
                State::Head => {
                    // Only the new bytes and the three before them can complete the "\r\n\r\n".
                    let from = self.head.len().saturating_sub(3);
                    let room = HEAD_BYTES - self.head.len();
                    let take = bytes.len().min(room);
                    self.head.extend_from_slice(&bytes[..take]);
                    let end = self.head[from..].windows(4).position(|w| w == b"\r\n\r\n").map(|i| from + i + 4);
                    let Some(end) = end else {
                        if !request_start(&self.head) || self.head.len() >= HEAD_BYTES {
                            self.give_up();
                        }
                        return;
                    };
                    let rest = self.head.len() - end;
                    bytes = &bytes[take - rest..];
                    self.head.truncate(end);
                    let head = std::mem::take(&mut self.head);
                    self.state = self.after(&head);
                    heads.push(head);
                }
                State::Body(n) => {
                    let skip = (bytes.len() as u64).min(n);
                    bytes = &bytes[skip as usize..];
                    self.state = if n == skip { State::Head } else { State::Body(n - skip) };
                }
                State::ChunkSize | State::Trailers => {
                    let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(bytes);
                        if self.line.len() > LINE_BYTES {
                            self.give_up();
                        }
                        return;
                    };
                    self.line.extend_from_slice(&bytes[..nl]);
                    bytes = &bytes[nl + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = if self.state == State::Trailers {
                        if line.is_empty() { State::Head } else { State::Trailers }
                    } else {
                        // The size in hex, before any chunk extension.
                        let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
                        match std::str::from_utf8(digits).ok().and_then(|d| u64::from_str_radix(d, 16).ok()) {
                            Some(0) => State::Trailers,
                            // The data, then its CRLF.
                            Some(n) => State::ChunkData(n.saturating_add(2)),
                            None => State::Opaque,
                        }
                    };
                }
                State::ChunkData(n) => {
                    let skip = (bytes.len() as u64).min(n);
                    bytes = &bytes[skip as usize..];
                    self.state = if n == skip { State::ChunkSize } else { State::ChunkData(n - skip) };
                }
            }
        }
    }

    /// What follows a complete head: its body, the next head, or nothing framed.
    fn after(&self, head: &[u8]) -> State {
        if !request_start(head) || head.starts_with(b"CONNECT ") || header(head, "upgrade").next().is_some() {
            return State::Opaque;
        }
        if let Some(coding) = header(head, "transfer-encoding").last() {
            let chunked =
                coding.rsplit(|&b| b == b',').next().is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            return if chunked { State::ChunkSize } else { State::Opaque };
        }
        let length = header(head, "content-length").next();
        match length.map(|l| std::str::from_utf8(l).ok().and_then(|l| l.parse::<u64>().ok())) {
            None | Some(Some(0)) => State::Head,
            Some(Some(n)) => State::Body(n),
            Some(None) => State::Opaque,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(chunks: &[&[u8]]) -> (Vec<String>, bool) {
        let mut r = Requests::default();
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut out);
        }
        (out.into_iter().map(|h| String::from_utf8(h).unwrap()).collect(), r.is_framed())
    }

    #[test]
    fn kept_alive_requests_are_each_a_head_whatever_the_chunks() {
        let stream = b"GET /raft/probing HTTP/1.1\r\nHost: a\r\n\r\n\
POST /raft HTTP/1.1\r\nX-Server-From: 7\r\nContent-Length: 5\r\n\r\nhello\
POST /raft HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n\
GET /x HTTP/1.1\r\n\r\n";
        let whole = heads(&[stream]);
        assert_eq!(whole.0.len(), 4, "{whole:?}");
        assert!(whole.0[1].contains("X-Server-From: 7"));
        assert!(whole.0[3].starts_with("GET /x"));
        assert!(whole.1);
        // Byte by byte: the same heads.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(heads(&bytes).0, whole.0);
    }

    #[test]
    fn a_body_that_looks_like_a_request_is_not_one() {
        let (h, _) = heads(&[b"POST / HTTP/1.1\r\nContent-Length: 19\r\n\r\nGET /no HTTP/1.1\r\n\r\n"]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn other_protocols_and_upgrades_are_opaque() {
        assert!(!heads(&[b"\x16\x03\x01\x02\x00"]).1);
        assert!(!heads(&[b"hello there"]).1);
        let (h, framed) = heads(&[b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n"]);
        assert_eq!((h.len(), framed), (1, false));
        assert!(request_start(b"POS"));
        assert!(!request_start(b"POST /x SPDY/3\r\n"));
    }
}

//! A deliberately small HTTP/1.1 request parser and response writer, enough for the metadata
//! service and nothing more: one request per connection, bodies only by `Content-Length`,
//! bounded sizes. Pure functions over bytes, so they can be fuzzed (see
//! `store/fuzz/fuzz_targets/metadata_http.rs`) and never panic on any input.

/// Largest request line plus headers accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted (the form to sign or verify).
pub const MAX_BODY: usize = 64 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 64;

/// A response: status, content type, body, and the `Allow` header of a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Value of `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Value of `Allow` (405 only).
    pub allow: Option<&'static str>,
}

/// Media type of JSON answers.
pub const JSON: &str = "application/json";
/// Media type the spec requires for the UUID, image ID and signatures.
pub const ASCII: &str = "text/plain; charset=us-ascii";
/// Media type of error messages and non-ASCII annotation values.
pub const UTF8: &str = "text/plain; charset=utf-8";

impl Response {
    /// A 200 answer.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: 200,
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    /// An error answer with a one-line message.
    pub fn error(status: u16, message: impl std::fmt::Display) -> Response {
        Response {
            status,
            content_type: UTF8,
            body: format!("{message}\n").into_bytes(),
            allow: None,
        }
    }

    /// 405 with the allowed methods.
    pub fn method_not_allowed(allow: &'static str) -> Response {
        Response {
            allow: Some(allow),
            ..Response::error(405, format!("method not allowed: use {allow}"))
        }
    }

    /// The bytes on the wire; `head_only` leaves out the body (answer to HEAD).
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// The reason phrase of the status codes this service sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// The request line and headers that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Method, as sent (methods are case-sensitive).
    pub method: String,
    /// Path, before any `?`, not yet percent-decoded.
    pub path: String,
    /// Query string after `?`, if any.
    pub query: Option<String>,
    /// Body length.
    pub content_length: usize,
    /// Media type of the body, lower case, without parameters.
    pub content_type: Option<String>,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

/// Where the head ends: the index just after the blank line (`\r\n\r\n`, or a bare `\n\n`).
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Parses a request head (everything up to and including the blank line).
pub fn parse_head(bytes: &[u8]) -> Result<Head, Response> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Response::error(400, "request head is not valid UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let (method, target, version) = parse_request_line(request_line)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let mut head = Head {
        method: method.to_string(),
        path: path.to_string(),
        query,
        content_length: 0,
        content_type: None,
        expect_continue: false,
    };
    let mut content_length: Option<usize> = None;
    let mut count = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        count += 1;
        if count > MAX_HEADERS {
            return Err(Response::error(
                431,
                format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        let (name, value) = line
            .split_once(':')
            .filter(|(n, _)| is_token(n))
            .ok_or_else(|| Response::error(400, "malformed header line"))?;
        let value = value.trim_matches([' ', '\t']);
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = parse_length(value)?;
                if content_length.is_some_and(|old| old != n) {
                    return Err(Response::error(400, "conflicting Content-Length headers"));
                }
                content_length = Some(n);
            }
            "transfer-encoding" => {
                return Err(Response::error(
                    411,
                    "chunked or encoded bodies are not supported: send Content-Length",
                ))
            }
            "content-type" => {
                let media = value.split(';').next().unwrap_or_default();
                head.content_type = Some(media.trim().to_ascii_lowercase());
            }
            "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    if version == "HTTP/1.0" {
        head.expect_continue = false;
    }
    head.content_length = content_length.unwrap_or(0);
    if head.content_length > MAX_BODY {
        return Err(Response::error(
            413,
            format!(
                "request body of {} bytes is larger than {MAX_BODY}",
                head.content_length
            ),
        ));
    }
    Ok(head)
}

fn parse_request_line(line: &str) -> Result<(&str, &str, &str), Response> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Response::error(400, "malformed request line"));
    };
    if !is_token(method) {
        return Err(Response::error(400, "malformed method"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Response::error(
            400,
            "request target must be a path starting with /",
        ));
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => Ok((method, target, version)),
        v if v.starts_with("HTTP/") => Err(Response::error(
            505,
            "only HTTP/1.0 and HTTP/1.1 are served",
        )),
        _ => Err(Response::error(400, "malformed HTTP version")),
    }
}

fn parse_length(value: &str) -> Result<usize, Response> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Response::error(400, "malformed Content-Length"));
    }
    value
        .parse()
        .map_err(|_| Response::error(400, "malformed Content-Length"))
}

/// An RFC 9110 token (method and header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Decodes `%XX` escapes; `plus_is_space` for form fields. `None` on a bad escape.
pub fn percent_decode(s: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hi = hex_digit(*s.get(i + 1)?)?;
                let lo = hex_digit(*s.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// An `application/x-www-form-urlencoded` form: fields in order, names and values decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(Vec<(Vec<u8>, Vec<u8>)>);

impl Form {
    /// Parses an encoded form; `None` on a bad `%` escape.
    pub fn parse(encoded: &[u8]) -> Option<Form> {
        let mut fields = Vec::new();
        for pair in encoded.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            fields.push((percent_decode(name, true)?, percent_decode(value, true)?));
        }
        Some(Form(fields))
    }

    /// Appends the fields of another form (which lose to this one's, being later).
    pub fn extend(&mut self, other: Form) {
        self.0.extend(other.0);
    }

    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Head, Response> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn parses_a_post_head() {
        let h = head("POST /t/acMetadata/v1/pod/hmac/sign?x=1 HTTP/1.1\r\nHost: a\r\ncontent-length: 12\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/t/acMetadata/v1/pod/hmac/sign");
        assert_eq!(h.query.as_deref(), Some("x=1"));
        assert_eq!(h.content_length, 12);
        assert_eq!(
            h.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert!(h.expect_continue);
    }

    #[test]
    fn rejects_malformed_heads_with_the_right_status() {
        let status = |s: &str| head(s).unwrap_err().status;
        assert_eq!(status("GET /\r\n\r\n"), 400);
        assert_eq!(status("GET  / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET http://x/ HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status("GET / FTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("G(T / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            status("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n"),
            413
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(status("GET /\x01 HTTP/1.1\r\n\r\n"), 400);
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(status(&many), 431);
        assert_eq!(
            parse_head(b"GET /\xff HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(head_end(b""), None);
        assert_eq!(head_end(b"\n"), None);
    }

    #[test]
    fn decodes_forms() {
        let f = Form::parse(b"content=a+b%26c%3D&uuid=1&content=second&flag&=x").unwrap();
        assert_eq!(f.get("content"), Some(&b"a b&c="[..]));
        assert_eq!(f.get("uuid"), Some(&b"1"[..]));
        assert_eq!(f.get("flag"), Some(&b""[..]));
        assert_eq!(f.get("missing"), None);
        assert_eq!(Form::parse(b"content=%zz"), None);
        assert_eq!(Form::parse(b"content=%4"), None);
        assert_eq!(
            Form::parse(b"content=%ff").unwrap().get("content"),
            Some(&[0xff][..])
        );
    }

    #[test]
    fn writes_responses() {
        let r = Response::method_not_allowed("POST");
        let text = String::from_utf8(r.to_bytes(false)).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: POST\r\n"), "{text}");
        let ok = Response::ok(ASCII, "abc");
        assert!(ok.to_bytes(false).ends_with(b"\r\n\r\nabc"));
        assert!(ok.to_bytes(true).ends_with(
            b"Content-Length: 3\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ));
    }
}

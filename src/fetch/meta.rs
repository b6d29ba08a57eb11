//! Extraction of appc discovery `<meta>` tags from an untrusted HTML page.
//!
//! Only what appc's Go code keeps: `<meta name="ac-…" content="PREFIX URL">` with a non-empty
//! prefix and URL; the content is split at its first space. Attribute names are matched
//! case-insensitively, values may be double-, single- or un-quoted, and the usual character
//! references (`&amp;` …) are decoded. Everything else in the page is skipped.

/// One `ac-discovery` or `ac-discovery-pubkeys` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcMeta {
    /// The tag's `name`, e.g. `ac-discovery`.
    pub name: String,
    /// The name prefix the tag applies to.
    pub prefix: String,
    /// The URL template (for `ac-discovery`) or key URL (for `ac-discovery-pubkeys`).
    pub uri: String,
}

/// All `ac-*` meta tags of `html`, in page order.
pub fn extract(html: &str) -> Vec<AcMeta> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = find_ci(rest, "<meta") {
        let after = &rest[start + 5..];
        // `<metadata>` and the like are other tags.
        let is_meta = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_whitespace() || c == '/' || c == '>');
        if !is_meta {
            rest = after;
            continue;
        }
        let (attrs, consumed) = parse_attrs(after);
        rest = &after[consumed..];
        if let Some(m) = to_meta(&attrs) {
            out.push(m);
        }
    }
    out
}

fn to_meta(attrs: &[(String, String)]) -> Option<AcMeta> {
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let name = get("name")?;
    let content = get("content")?.trim();
    let (prefix, uri) = content.split_once(' ')?;
    let uri = uri.trim();
    if !name.starts_with("ac-") || prefix.is_empty() || uri.is_empty() {
        return None;
    }
    Some(AcMeta {
        name: name.to_string(),
        prefix: prefix.to_string(),
        uri: uri.to_string(),
    })
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.len();
    hay.char_indices().map(|(i, _)| i).find(|&i| {
        hay.get(i..i + n)
            .is_some_and(|s| s.eq_ignore_ascii_case(needle))
    })
}

/// Parses attributes up to the closing `>`; returns them (names lower-cased; the first of
/// a repeated name wins, as in HTML) and the number of bytes consumed.
fn parse_attrs(s: &str) -> (Vec<(String, String)>, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut attrs: Vec<(String, String)> = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (attrs, i);
        }
        if b[i] == b'>' {
            return (attrs, i + 1);
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let (v, used) = attr_value(&s[i..]);
            value = decode_entities(v);
            i += used;
        }
        if !name.is_empty() && !attrs.iter().any(|(n, _)| *n == name) {
            attrs.push((name, value));
        }
    }
}

fn attr_value(s: &str) -> (&str, usize) {
    match s.as_bytes().first() {
        Some(&q) if q == b'"' || q == b'\'' => match s[1..].find(q as char) {
            Some(end) => (&s[1..1 + end], end + 2),
            None => (&s[1..], s.len()),
        },
        _ => {
            let end = s
                .find(|c: char| c.is_ascii_whitespace() || c == '>')
                .unwrap_or(s.len());
            (&s[..end], end)
        }
    }
}

fn decode_entities(v: &str) -> String {
    if !v.contains('&') {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        match tail
            .find(';')
            .and_then(|semi| Some((decode_one(&tail[1..semi])?, semi)))
        {
            Some((c, semi)) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_one(entity: &str) -> Option<char> {
    match entity {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = entity.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(n: u8) -> String {
        let p = format!("/work/shared/testdata/appc/discovery-testdata/meta0{n}.html");
        let local = format!(
            "{}/tests/testdata/discovery/meta0{n}.html",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&local)
            .or_else(|_| std::fs::read_to_string(p))
            .unwrap()
    }

    fn m(name: &str, prefix: &str, uri: &str) -> AcMeta {
        AcMeta {
            name: name.into(),
            prefix: prefix.into(),
            uri: uri.into(),
        }
    }

    const TPL: &str = "https://storage.example.com/{name}-{version}-{os}-{arch}.{ext}";
    const KEYS: &str = "https://example.com/pubkeys.gpg";

    #[test]
    fn parses_appc_fixtures() {
        assert_eq!(
            extract(&fixture(1)),
            vec![
                m("ac-discovery", "example.com", TPL),
                m("ac-discovery-pubkeys", "example.com", KEYS)
            ]
        );
        assert_eq!(
            extract(&fixture(2)),
            vec![m("ac-discovery", "example.com", TPL)]
        );
        assert_eq!(
            extract(&fixture(3)),
            vec![m("ac-discovery-pubkeys", "example.com", KEYS)]
        );
        assert_eq!(
            extract(&fixture(4))[0].uri,
            "https://another.storage.example.com/{name}-{version}-{os}-{arch}.{ext}"
        );
        let six = extract(&fixture(6));
        assert_eq!(six.len(), 4);
        assert_eq!(
            six[2].uri,
            "hdfs://storage.example.com/{name}-{version}-{os}-{arch}.{ext}"
        );
    }

    #[test]
    fn html_variants() {
        let page = r#"<META Name='ac-discovery' CONTENT="a.com  https://x/{name}?a=1&amp;b=2"/>
            <metadata name="ac-discovery" content="b.com https://no">
            <meta name=ac-discovery-pubkeys content=c.com>
            <meta name="description" content="a.com https://ignored">
            <meta content="d.com   https://d/k.gpg  " name="ac-discovery-pubkeys">"#;
        assert_eq!(
            extract(page),
            vec![
                m("ac-discovery", "a.com", "https://x/{name}?a=1&b=2"),
                m("ac-discovery-pubkeys", "d.com", "https://d/k.gpg"),
            ]
        );
    }

    proptest! {
        // Arbitrary and mutated pages never panic, and every tag found is well-formed.
        #[test]
        fn never_panics(s in ".{0,400}") {
            for t in extract(&s) {
                prop_assert!(t.name.starts_with("ac-"));
                prop_assert!(!t.prefix.is_empty() && !t.uri.is_empty());
            }
        }

        #[test]
        fn mutated_fixture(pos in 0usize..400, len in 0usize..20, ins in ".{0,10}") {
            let mut page = fixture(1);
            let mut pos = pos.min(page.len());
            while !page.is_char_boundary(pos) { pos -= 1; }
            let mut end = (pos + len).min(page.len());
            while !page.is_char_boundary(end) { end -= 1; }
            page.replace_range(pos..end.max(pos), &ins);
            for t in extract(&page) {
                prop_assert!(t.name.starts_with("ac-"));
            }
        }
    }
}

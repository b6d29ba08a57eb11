//! The metadata service's answers: routes a parsed request of one pod to its handler.
//!
//! Paths are `/TOKEN/acMetadata/v1/…`: `AC_METADATA_URL` is `http://ADDR:PORT/TOKEN`, where
//! the token is 256 random bits, as the spec recommends, so that only the apps given the URL
//! can read the pod's metadata or sign in its name, even when other processes of the host can
//! reach the port.

use crate::hmac_key::{HmacKeyStore, Verification};
use crate::http::{Form, Head, Response, ASCII, JSON, UTF8};
use crate::pod::{Annotated, App, Pod};
use crate::uuid::PodUuid;

/// The fixed part of every path after the token.
pub const PREFIX: &str = "/acMetadata/v1/";

/// One pod's metadata service.
#[derive(Debug)]
pub(crate) struct Service {
    pub pod: Pod,
    pub keys: HmacKeyStore,
    pub token: String,
}

/// The endpoints, with the names taken from the path.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    PodAnnotations,
    PodAnnotation(&'a str),
    PodManifest,
    PodUuid,
    Sign,
    Verify,
    AppAnnotations(&'a str),
    AppAnnotation(&'a str, &'a str),
    ImageManifest(&'a str),
    ImageId(&'a str),
}

impl Endpoint<'_> {
    /// Parses the part of the path after [`PREFIX`], already percent-decoded.
    fn parse(rest: &str) -> Option<Endpoint<'_>> {
        Some(match rest {
            "pod/annotations" | "pod/annotations/" => Endpoint::PodAnnotations,
            "pod/manifest" => Endpoint::PodManifest,
            "pod/uuid" => Endpoint::PodUuid,
            "pod/hmac/sign" => Endpoint::Sign,
            "pod/hmac/verify" => Endpoint::Verify,
            _ => {
                if let Some(name) = rest.strip_prefix("pod/annotations/") {
                    return Some(Endpoint::PodAnnotation(name));
                }
                let (app, what) = rest.strip_prefix("apps/")?.split_once('/')?;
                if app.is_empty() {
                    return None;
                }
                match what {
                    "annotations" | "annotations/" => Endpoint::AppAnnotations(app),
                    "image/manifest" => Endpoint::ImageManifest(app),
                    "image/id" => Endpoint::ImageId(app),
                    _ => Endpoint::AppAnnotation(app, what.strip_prefix("annotations/")?),
                }
            }
        })
    }

    fn method(&self) -> &'static str {
        match self {
            Endpoint::Sign | Endpoint::Verify => "POST",
            _ => "GET",
        }
    }
}

impl Service {
    /// The answer to one request with its body.
    pub fn handle(&self, head: &Head, body: &[u8]) -> Response {
        let Some(rest) = self.authorized_rest(&head.path) else {
            return Response::error(
                401,
                "unknown or missing pod token: use the URL in AC_METADATA_URL",
            );
        };
        let Some(decoded) = crate::http::percent_decode(rest.as_bytes(), false)
            .and_then(|d| String::from_utf8(d).ok())
        else {
            return Response::error(400, "malformed percent-encoding in the path");
        };
        let Some(endpoint) = decoded.strip_prefix(PREFIX).and_then(Endpoint::parse) else {
            return Response::error(404, format!("no such metadata endpoint: {decoded}"));
        };
        let allowed = endpoint.method();
        let method_ok = head.method == allowed || (allowed == "GET" && head.method == "HEAD");
        if !method_ok {
            return Response::method_not_allowed(if allowed == "GET" {
                "GET, HEAD"
            } else {
                "POST"
            });
        }
        match endpoint {
            Endpoint::PodAnnotations => Response::ok(JSON, self.pod.annotations.json.clone()),
            Endpoint::PodAnnotation(name) => annotation(&self.pod.annotations, name, "pod"),
            Endpoint::PodManifest => Response::ok(JSON, self.pod.manifest.clone()),
            Endpoint::PodUuid => Response::ok(ASCII, self.pod.uuid.to_string()),
            Endpoint::Sign => self.sign(head, body),
            Endpoint::Verify => self.verify(head, body),
            Endpoint::AppAnnotations(app) => {
                self.with_app(app, |a| Response::ok(JSON, a.annotations.json.clone()))
            }
            Endpoint::AppAnnotation(app, name) => {
                self.with_app(app, |a| annotation(&a.annotations, name, app))
            }
            Endpoint::ImageManifest(app) => {
                self.with_app(app, |a| Response::ok(JSON, a.image_manifest.clone()))
            }
            Endpoint::ImageId(app) => {
                self.with_app(app, |a| Response::ok(ASCII, a.image_id.clone()))
            }
        }
    }

    /// The path after `/TOKEN` if the token is this pod's (compared in constant time).
    fn authorized_rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let after = path.strip_prefix('/')?;
        let (token, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        constant_time_eq(token.as_bytes(), self.token.as_bytes()).then_some(rest)
    }

    fn with_app(&self, name: &str, answer: impl FnOnce(&App) -> Response) -> Response {
        match self.pod.apps.get(name) {
            Some(app) => answer(app),
            None => Response::error(404, format!("no app named {name:?} in this pod")),
        }
    }

    fn sign(&self, head: &Head, body: &[u8]) -> Response {
        let form = match read_form(head, body) {
            Ok(f) => f,
            Err(r) => return r,
        };
        match form.get("content") {
            Some(content) => Response::ok(ASCII, self.keys.sign(&self.pod.uuid, content)),
            None => Response::error(400, "form field \"content\" (what to sign) is missing"),
        }
    }

    fn verify(&self, head: &Head, body: &[u8]) -> Response {
        let form = match read_form(head, body) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let (Some(content), Some(uuid), Some(signature)) =
            (form.get("content"), form.get("uuid"), form.get("signature"))
        else {
            return Response::error(
                400,
                "form fields \"content\", \"uuid\" and \"signature\" are all required",
            );
        };
        let Some(uuid) = std::str::from_utf8(uuid)
            .ok()
            .and_then(|u| PodUuid::parse(u).ok())
        else {
            return Response::error(400, "form field \"uuid\" is not a pod UUID");
        };
        let signature = String::from_utf8_lossy(signature);
        match self.keys.verify(&uuid, content, &signature) {
            Verification::Valid => Response::ok(ASCII, ""),
            Verification::Invalid => Response {
                content_type: ASCII,
                ..Response::error(403, "signature does not match that pod and content")
            },
            Verification::Malformed => {
                Response::error(400, "form field \"signature\" is not base64")
            }
        }
    }
}

/// The request's form: the urlencoded body, then the query string's fields (as Go's
/// `FormValue`, which rkt's service used, the body's win).
fn read_form(head: &Head, body: &[u8]) -> Result<Form, Response> {
    match head.content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => {}
        None if body.is_empty() => {}
        Some(other) => {
            return Err(Response::error(
                415,
                format!("form must be application/x-www-form-urlencoded (curl --data-urlencode), not {other}"),
            ))
        }
        None => {
            return Err(Response::error(
                415,
                "form must be sent with Content-Type: application/x-www-form-urlencoded",
            ))
        }
    }
    let bad = || Response::error(400, "malformed form: bad %-escape");
    let mut form = Form::parse(body).ok_or_else(bad)?;
    if let Some(q) = &head.query {
        form.extend(Form::parse(q.as_bytes()).ok_or_else(bad)?);
    }
    Ok(form)
}

fn annotation(list: &Annotated, name: &str, owner: &str) -> Response {
    match list.get(name) {
        Some(v) if v.is_ascii() => Response::ok(ASCII, v),
        Some(v) => Response::ok(UTF8, v),
        None => Response::error(404, format!("{owner} has no annotation named {name:?}")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        use Endpoint::*;
        assert_eq!(Endpoint::parse("pod/annotations"), Some(PodAnnotations));
        assert_eq!(Endpoint::parse("pod/annotations/"), Some(PodAnnotations));
        assert_eq!(
            Endpoint::parse("pod/annotations/example.com/x"),
            Some(PodAnnotation("example.com/x"))
        );
        assert_eq!(
            Endpoint::parse("apps/web/annotations"),
            Some(AppAnnotations("web"))
        );
        assert_eq!(
            Endpoint::parse("apps/web/annotations/a/b"),
            Some(AppAnnotation("web", "a/b"))
        );
        assert_eq!(Endpoint::parse("apps/web/image/id"), Some(ImageId("web")));
        assert_eq!(
            Endpoint::parse("apps/web/image/manifest"),
            Some(ImageManifest("web"))
        );
        assert_eq!(Endpoint::parse("apps//image/id"), None);
        assert_eq!(Endpoint::parse("apps/web"), None);
        assert_eq!(Endpoint::parse("apps/web/other"), None);
        assert_eq!(Endpoint::parse("pod"), None);
        assert_eq!(Endpoint::parse(""), None);
    }

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

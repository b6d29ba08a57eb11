//! appc meta discovery: from an image name (with labels) to ACI/signature URLs and to
//! public key URLs, walking up the name's path until a page answers with matching tags.

use std::collections::BTreeMap;

use super::meta::{self, AcMeta};

/// An image asked for by name: `example.com/nginx:1.8,os=linux`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    /// Labels including `version`, in name order.
    pub labels: BTreeMap<String, String>,
}

/// Where one candidate image and its signature live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AciEndpoint {
    pub aci: String,
    pub asc: String,
}

impl App {
    /// Parses `NAME[:VERSION][,LABEL=VALUE…]`, as appc's `NewAppFromString`.
    pub fn parse(s: &str) -> Result<App, String> {
        let r = rkt_store::schema::AppRef::parse(s).map_err(|e| e.to_string())?;
        Ok(App {
            name: r.name.to_string(),
            labels: r.labels_with_version().into_iter().collect(),
        })
    }

    /// The labels discovery fills in when absent: `version=latest`, `os=linux` and the
    /// machine's `arch`, as rkt did.
    pub fn with_defaults(mut self) -> App {
        self.labels
            .entry("version".into())
            .or_insert_with(|| "latest".into());
        self.labels
            .entry("os".into())
            .or_insert_with(|| std::env::consts::OS.into());
        self.labels
            .entry("arch".into())
            .or_insert_with(|| appc_arch().into());
        self
    }
}

/// appc's name for this machine's architecture.
pub fn appc_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "aarch64",
        "arm" => "armv7l",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// Endpoints rendered from the `ac-discovery` tags of one page that apply to `app`.
///
/// Variables are `{name}` and `{LABEL}` for every label (a label called `name` is ignored);
/// a template that still holds a `{…}` after substitution is skipped, as are templates
/// that are not http(s). Of the rest, only those that use the most labels are kept (the
/// most specific match first, as in appc's discovery).
pub fn render_endpoints(metas: &[AcMeta], app: &App) -> Vec<AciEndpoint> {
    let mut best: Vec<(usize, AciEndpoint)> = Vec::new();
    for m in metas {
        if m.name != "ac-discovery" || !app.name.starts_with(&m.prefix) {
            continue;
        }
        let (tpl, used) = substitute(&m.uri, app);
        let aci = tpl.replace("{ext}", "aci");
        let asc = tpl.replace("{ext}", "aci.asc");
        if has_variable(&aci) || !(aci.starts_with("https://") || aci.starts_with("http://")) {
            continue;
        }
        best.push((used, AciEndpoint { aci, asc }));
    }
    let max = best.iter().map(|(u, _)| *u).max().unwrap_or(0);
    best.into_iter()
        .filter(|(u, _)| *u == max)
        .map(|(_, e)| e)
        .collect()
}

/// Key URLs of the `ac-discovery-pubkeys` tags that apply to `name`.
pub fn render_keys(metas: &[AcMeta], name: &str) -> Vec<String> {
    metas
        .iter()
        .filter(|m| m.name == "ac-discovery-pubkeys" && name.starts_with(&m.prefix))
        .map(|m| m.uri.clone())
        .collect()
}

fn substitute(tpl: &str, app: &App) -> (String, usize) {
    let mut out = tpl.replace("{name}", &app.name);
    let mut used = 0;
    for (k, v) in &app.labels {
        if k == "name" {
            continue;
        }
        let var = format!("{{{k}}}");
        if out.contains(&var) {
            used += 1;
            out = out.replace(&var, v);
        }
    }
    (out, used)
}

fn has_variable(s: &str) -> bool {
    s.find('{')
        .is_some_and(|open| s[open..].find('}').is_some())
}

/// The discovery page URLs for `name`, most specific first:
/// `example.com/a/b` → `example.com/a/b`, `example.com/a`, `example.com`.
pub fn walk(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split('/').collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("/"))
        .collect()
}

/// What discovery found, and where.
#[derive(Debug, Default)]
pub struct Found {
    pub endpoints: Vec<AciEndpoint>,
    pub keys: Vec<String>,
    /// Every page that was asked, with the reason it did not help.
    pub tried: Vec<String>,
}

/// Runs discovery for `app` using `get(prefix) -> page` for each walked prefix. Endpoints
/// and keys are searched independently: each stops at the first level that has some.
pub fn discover(
    app: &App,
    want_endpoints: bool,
    want_keys: bool,
    get: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Found {
    let mut found = Found::default();
    for prefix in walk(&app.name) {
        let need_eps = want_endpoints && found.endpoints.is_empty();
        let need_keys = want_keys && found.keys.is_empty();
        if !need_eps && !need_keys {
            break;
        }
        let page = match get(&prefix) {
            Ok(p) => p,
            Err(e) => {
                found.tried.push(format!("{prefix}: {e}"));
                continue;
            }
        };
        let metas = meta::extract(&page);
        if need_eps {
            found.endpoints = render_endpoints(&metas, app);
        }
        if need_keys {
            found.keys = render_keys(&metas, &app.name);
        }
        if (need_eps && found.endpoints.is_empty()) || (need_keys && found.keys.is_empty()) {
            found
                .tried
                .push(format!("{prefix}: no matching ac-discovery meta tags"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(n: u8) -> String {
        let p = format!(
            "{}/tests/testdata/discovery/meta0{n}.html",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(p).unwrap()
    }

    fn app(name: &str, labels: &[(&str, &str)]) -> App {
        App {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const FULL: &[(&str, &str)] = &[("version", "1.0.0"), ("os", "linux"), ("arch", "amd64")];

    /// Serves fixtures by path below `example.com`, 404 elsewhere (appc's fakeHTTPGet).
    fn run(pages: &[(&str, u8)], a: &App) -> Found {
        let pages: Vec<(String, String)> = pages
            .iter()
            .map(|(p, n)| (format!("example.com{p}"), fixture(*n)))
            .collect();
        discover(a, true, true, &mut |prefix| {
            pages
                .iter()
                .find(|(p, _)| p == prefix)
                .map(|(_, body)| body.clone())
                .ok_or_else(|| "404".to_string())
        })
    }

    fn ep(base: &str) -> AciEndpoint {
        AciEndpoint {
            aci: format!("{base}.aci"),
            asc: format!("{base}.aci.asc"),
        }
    }

    const KEYS: &str = "https://example.com/pubkeys.gpg";
    const MYAPP: &str = "https://storage.example.com/example.com/myapp-1.0.0-linux-amd64";

    #[test]
    fn appc_discovery_cases() {
        let myapp = app("example.com/myapp", FULL);
        let f = run(&[("/myapp", 1)], &myapp);
        assert_eq!(
            (f.endpoints, f.keys),
            (vec![ep(MYAPP)], vec![KEYS.to_string()])
        );

        // walks up to the parent paths
        let f = run(&[("", 1)], &app("example.com/myapp/foobar", FULL));
        let foobar = "https://storage.example.com/example.com/myapp/foobar-1.0.0-linux-amd64";
        assert_eq!(
            (f.endpoints, f.keys),
            (vec![ep(foobar)], vec![KEYS.to_string()])
        );

        // nothing on the walked path
        let f = run(
            &[("/path/out/of/myapp", 1)],
            &app("example.com/myapp/foobar/bazzer", FULL),
        );
        assert!(f.endpoints.is_empty() && f.keys.is_empty());
        assert_eq!(f.tried.len(), 4);

        // endpoints and keys found at different levels
        for pages in [[("", 2), ("/myapp", 3)], [("", 3), ("/myapp", 2)]] {
            let f = run(&pages, &myapp);
            assert_eq!(
                (f.endpoints, f.keys),
                (vec![ep(MYAPP)], vec![KEYS.to_string()])
            );
        }
        let f = run(&[("", 2)], &myapp);
        assert_eq!((f.endpoints, f.keys.len()), (vec![ep(MYAPP)], 0));
        let f = run(&[("", 3)], &myapp);
        assert_eq!((f.endpoints.len(), f.keys), (0, vec![KEYS.to_string()]));

        // the most specific page wins for endpoints; keys come from the parent
        let f = run(&[("", 4), ("/myapp", 2)], &myapp);
        assert_eq!(
            (f.endpoints, f.keys),
            (vec![ep(MYAPP)], vec![KEYS.to_string()])
        );
    }

    #[test]
    fn appc_template_cases() {
        // a missing label skips the template that needs it
        let f = run(
            &[("/myapp", 5)],
            &app("example.com/myapp", &[("version", "1.0.0")]),
        );
        assert_eq!(
            f.endpoints,
            vec![ep("https://storage.example.com/example.com/myapp-1.0.0")]
        );
        // a label called "name" is ignored
        let a = app(
            "example.com/myapp",
            &[("name", "labelcalledname"), ("version", "1.0.0")],
        );
        let f = run(&[("/myapp", 5)], &a);
        assert_eq!(
            f.endpoints,
            vec![ep("https://storage.example.com/example.com/myapp-1.0.0")]
        );
        // the most specific templates win; non-http(s) templates are skipped
        let f = run(&[("/myapp", 6)], &app("example.com/myapp", FULL));
        assert_eq!(f.endpoints, vec![ep(MYAPP)]);
    }

    #[test]
    fn defaults_and_parse() {
        let a = App::parse("example.com/reduce-worker:1.0.0").unwrap();
        assert_eq!(a, app("example.com/reduce-worker", &[("version", "1.0.0")]));
        let a = App::parse("example.com/reduce-worker,channel=alpha,label=value").unwrap();
        assert_eq!(
            a,
            app(
                "example.com/reduce-worker",
                &[("channel", "alpha"), ("label", "value")]
            )
        );
        assert!(App::parse("not an app name").is_err());
        assert!(App::parse("foo.com/bar,channel=alpha,dog=woof,channel=beta").is_err());
        let d = App::parse("example.com/nginx").unwrap().with_defaults();
        assert_eq!(d.labels["version"], "latest");
        assert_eq!(d.labels["os"], "linux");
        assert_eq!(walk("a.com/b/c"), vec!["a.com/b/c", "a.com/b", "a.com"]);
    }
}

//! Tests of the schema module; vectors ported from appc/spec's Go tests.

use super::*;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/appc");

fn testdata(name: &str) -> Vec<u8> {
    let candidates = [
        format!("{TESTDATA}/{name}"),
        format!("/work/shared/testdata/appc/{name}"),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .unwrap_or_else(|| panic!("test data {name} not found"))
}

fn image_with_app(app: &str) -> String {
    format!(
        r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app","app":{app}}}"#
    )
}

fn app_with(extra: &str) -> String {
    image_with_app(&format!(
        r#"{{"exec":["/bin/true"],"user":"0","group":"0"{extra}}}"#
    ))
}

fn image_err(json: &str) -> String {
    match ImageManifest::parse(json.as_bytes()) {
        Ok(m) => panic!("accepted invalid manifest {json}: {m:?}"),
        Err(e) => e.to_string(),
    }
}

fn pod_err(json: &str) -> String {
    match PodManifest::parse(json.as_bytes()) {
        Ok(m) => panic!("accepted invalid pod {json}: {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn schema_ac_identifier_good_and_bad() {
    for good in [
        "asdf",
        "foo-bar-baz",
        "zab_rab_oof",
        "database",
        "example.com/database",
        "example.com/ourapp-1.0.0",
        "sub-domain.example.com/org/product/release-1.0.0",
        "my~database",
        "example.com/~bob/database",
        "a--b",
        "a//b",
    ] {
        let id = AcIdentifier::parse(good).unwrap();
        assert_eq!(id.as_str(), good);
        assert_eq!(id.to_string(), good);
    }
    for bad in [
        "",
        "BAR",
        "foo#",
        "EXAMPLE.com",
        "foo.com/BAR",
        "/app",
        "app/",
        "-app",
        "app-",
        ".app",
        "app.",
        "_app",
        "app_",
        "~app",
        "app~",
    ] {
        assert!(AcIdentifier::parse(bad).is_err(), "{bad:?} accepted");
    }
    let e = AcIdentifier::parse("BAR").unwrap_err().to_string();
    assert!(e.contains("^[a-z0-9]+([-._~/][a-z0-9]+)*$"), "{e}");
}

#[test]
fn schema_ac_name_good_and_bad() {
    for good in [
        "asdf",
        "foo-bar-baz",
        "database",
        "example",
        "foo-bar",
        "a--b",
    ] {
        assert_eq!(AcName::parse(good).unwrap().as_str(), good);
    }
    for bad in [
        "",
        "foo#",
        "example.com",
        "EXAMPLE.com",
        "example/database",
        "example/database-1.0.0",
        "foo.com/BAR",
        "example.com/app_1",
        "/app",
        "app/",
        "-app",
        "app-",
        ".app",
        "app.",
        "Foo",
    ] {
        assert!(AcName::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn schema_identifiers_serde_as_strings() {
    let id: AcIdentifier = serde_json::from_str(r#""example.com/x""#).unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), r#""example.com/x""#);
    assert!(serde_json::from_str::<AcIdentifier>(r#""EXAMPLE""#).is_err());
    assert!(serde_json::from_str::<AcName>(r#""example.com/app_1""#).is_err());
    let n: AcName = serde_json::from_str(r#""foo-bar""#).unwrap();
    assert_eq!(n.as_str(), "foo-bar");
}

#[test]
fn schema_semver() {
    for good in [
        "1.0.0",
        "3.2.1",
        "3.2.1-foo",
        "1.2.3-alpha+git",
        "0.8.11",
        "0.0.1",
    ] {
        assert_eq!(SemVer::parse(good).unwrap().to_string(), good);
    }
    for bad in [
        "1",
        "1.2",
        "1.2.3.4",
        "v1.2.3",
        "",
        "0.0.0",
        "1.2.x",
        "1..3",
        "1.2.3-a..b",
    ] {
        assert!(SemVer::parse(bad).is_err(), "{bad:?} accepted");
    }
    let v = SemVer::parse("1.2.3-alpha+git").unwrap();
    assert_eq!((v.major, v.minor, v.patch), (1, 2, 3));
    assert_eq!(
        (v.pre_release.as_str(), v.metadata.as_str()),
        ("alpha", "git")
    );
    assert!(SemVer::parse("0.8.1").unwrap().less_than_major(&v));
    let e = image_err(r#"{"acKind":"ImageManifest","acVersion":1.2,"name":"a"}"#);
    assert!(e.contains("acVersion: expected a string"), "{e}");
    let e = image_err(r#"{"acKind":"ImageManifest","acVersion":"0.0.0","name":"a"}"#);
    assert!(e.contains("SemVer cannot be zero"), "{e}");
}

#[test]
fn schema_ac_kind_and_image_id() {
    assert_eq!(AcKind::parse("PodManifest").unwrap(), AcKind::PodManifest);
    assert!(AcKind::parse("").is_err());
    assert!(AcKind::parse("imagemanifest").is_err());
    let full = format!("sha512-{}", "ab".repeat(64));
    assert!(ImageId::parse(&full).unwrap().is_full());
    let short = ImageId::parse("sha512-...").unwrap();
    assert!(!short.is_full());
    assert_eq!(short.value(), "...");
    for bad in ["", "sha512-", "sha256-abc", "sha512-a-b", "abc"] {
        assert!(ImageId::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(ImageId::from_sha512(&[0xab; 64]).as_str(), full);
}

fn labels_json(os: &str, arch: &str) -> String {
    format!(r#"[{{"name":"os","value":"{os}"}},{{"name":"arch","value":"{arch}"}}]"#)
}

fn image_with_labels(labels: &str) -> String {
    format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","labels":{labels}}}"#)
}

#[test]
fn schema_labels_os_arch_matrix() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("linux", "amd64", None),
        ("linux", "aarch64", None),
        ("linux", "arm64", Some(r#"bad arch "arm64" for linux"#)),
        ("linux", "aarch64_be", None),
        (
            "linux",
            "arm64_be",
            Some(r#"bad arch "arm64_be" for linux"#),
        ),
        ("linux", "arm", Some(r#"bad arch "arm" for linux"#)),
        ("linux", "armv6l", None),
        ("linux", "armv7l", None),
        ("linux", "armv7b", None),
        ("linux", "ppc64le", None),
        ("linux", "ppc64l", Some(r#"bad arch "ppc64l" for linux"#)),
        ("linux", "ppc64", None),
        ("linux", "ppc64be", Some(r#"bad arch "ppc64be" for linux"#)),
        ("linux", "s390x", None),
        ("linux", "S390x", Some(r#"bad arch "S390x" for linux"#)),
        ("freebsd", "amd64", None),
        ("freebsd", "arm", None),
        (
            "freebsd",
            "armv7b",
            Some(r#"bad arch "armv7b" for freebsd"#),
        ),
        ("darwin", "x86_64", None),
        ("darwin", "amd64", Some(r#"bad arch "amd64" for darwin"#)),
        ("OS/360", "S/360", Some(r#"bad os "OS/360""#)),
    ];
    for (os, arch, want) in cases {
        let got = ImageManifest::parse(image_with_labels(&labels_json(os, arch)).as_bytes());
        match (got, want) {
            (Ok(m), None) => assert_eq!((m.os(), m.arch()), (Some(*os), Some(*arch))),
            (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{os}/{arch}: {e}"),
            (r, w) => panic!("{os}/{arch}: got {r:?}, want {w:?}"),
        }
    }
    // arch alone is not checked; os alone is.
    let arch_only = r#"[{"name":"arch","value":"whatever"}]"#;
    assert!(ImageManifest::parse(image_with_labels(arch_only).as_bytes()).is_ok());
    let os_only = r#"[{"name":"os","value":"plan9"}]"#;
    assert!(ImageManifest::parse(image_with_labels(os_only).as_bytes()).is_err());
}

#[test]
fn schema_labels_name_and_duplicates() {
    let e = image_err(&image_with_labels(r#"[{"name":"name","value":"x"}]"#));
    assert!(e.contains(r#"invalid label name: "name""#), "{e}");
    let dup = r#"[{"name":"version","value":"1"},{"name":"version","value":"2"}]"#;
    let e = image_err(&image_with_labels(dup));
    assert!(
        e.contains(r#"labels: duplicate labels of name "version""#),
        "{e}"
    );
    let e = image_err(&image_with_labels(r#"[{"name":"Version","value":"1"}]"#));
    assert!(e.contains("labels[0].name"), "{e}");
    let l = Labels::from_pairs([("version", "1.0"), ("os", "linux")]).unwrap();
    assert_eq!(l.get("version"), Some("1.0"));
    assert_eq!(l.get("arch"), None);
    assert!(Labels::from_pairs([("os", "linux"), ("arch", "arm64")]).is_err());
}

fn annotations_ok(list: &[(&str, &str)]) -> bool {
    let items: Vec<String> = list
        .iter()
        .map(|(n, v)| format!(r#"{{"name":"{n}","value":"{v}"}}"#))
        .collect();
    let json = format!(
        r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","annotations":[{}]}}"#,
        items.join(",")
    );
    ImageManifest::parse(json.as_bytes()).is_ok()
}

#[test]
fn schema_annotations() {
    assert!(!annotations_ok(&[("foo", "bar"), ("foo", "baz")]));
    assert!(!annotations_ok(&[("created", "garbage")]));
    assert!(!annotations_ok(&[("created", "2004-05-14 23:11:14Z")]));
    assert!(!annotations_ok(&[("created", "2004-05-14t23:11:14Z")]));
    assert!(!annotations_ok(&[("created", "2004-05-14T23:11:14z")]));
    assert!(!annotations_ok(&[("created", "2004-05-14T23:11:14")]));
    assert!(!annotations_ok(&[("homepage", "not-A$@#URL")]));
    assert!(!annotations_ok(&[(
        "documentation",
        "ftp://isnotallowed.com"
    )]));
    assert!(!annotations_ok(&[("homepage", "http://bad%zzescape")]));
    assert!(annotations_ok(&[
        ("created", "2004-05-14T23:11:14+00:00"),
        ("documentation", "http://example.com/docs"),
    ]));
    assert!(annotations_ok(&[
        ("foo", "bar"),
        ("homepage", "https://homepage.com")
    ]));
    assert!(annotations_ok(&[(
        "appc.io/executor/supports-systemd-notify",
        "false"
    )]));
    assert!(annotations_ok(&[(
        "created",
        "2014-10-27T19:32:27.67021798Z"
    )]));
    assert!(annotations_ok(&[]));
    let e = image_err(
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a",
            "annotations":[{"name":"homepage","value":"ftp://x"}]}"#,
    );
    assert!(e.contains("bad URL scheme, must be http or https"), "{e}");
}

#[test]
fn schema_environment() {
    let env = |items: &[(&str, &str)]| {
        let list: Vec<String> = items
            .iter()
            .map(|(n, v)| format!(r#"{{"name":"{n}","value":"{v}"}}"#))
            .collect();
        ImageManifest::parse(
            app_with(&format!(r#","environment":[{}]"#, list.join(","))).as_bytes(),
        )
    };
    assert!(env(&[("DEBUG", "true"), ("DEBUG", "true")]).is_err());
    assert!(env(&[("", "value")]).is_err());
    assert!(env(&[("0DEBUG", "true")]).is_err());
    assert!(env(&[("VERBOSE|DEBUG", "true")]).is_err());
    for good in ["DEBUG", "_0_DEBUG_0_", "DEBUG.0", "DEBUG-0", "lower"] {
        let m = env(&[(good, "true")]).unwrap();
        assert_eq!(m.app.unwrap().environment.get(good), Some("true"));
    }
    let e = env(&[("A", "1"), ("A", "2")]).unwrap_err().to_string();
    assert!(
        e.contains(r#"duplicate environment variable of name "A""#),
        "{e}"
    );
}

fn port_result(port: &str) -> Result<ImageManifest, SchemaError> {
    ImageManifest::parse(app_with(&format!(r#","ports":[{port}]"#)).as_bytes())
}

#[test]
fn schema_ports() {
    let p = port_result(r#"{"name":"www","protocol":"tcp","port":80}"#).unwrap();
    let port = &p.app.unwrap().ports[0];
    assert_eq!(
        (port.port, port.count, port.socket_activated),
        (80, 1, false)
    );
    let ok = port_result(r#"{"name":"r","protocol":"tcp","port":32456,"count":100}"#).unwrap();
    assert_eq!(ok.app.unwrap().ports[0].count, 100);
    assert!(port_result(r#"{"name":"r","protocol":"tcp","port":65535,"count":1}"#).is_ok());
    for bad in [
        r#"{"name":"r","port":88888}"#,
        r#"{"name":"r","port":0}"#,
        r#"{"name":"r"}"#,
        r#"{"name":"r","port":-1}"#,
        r#"{"name":"r","port":32456,"count":45678}"#,
        r#"{"name":"r","port":65535,"count":2}"#,
        r#"{"name":"R","port":80}"#,
        r#"{"port":80}"#,
    ] {
        assert!(port_result(bad).is_err(), "{bad} accepted");
    }
    let e = port_result(r#"{"name":"r","port":88888}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("app.ports[0]: port must be in 1-65535 range"),
        "{e}"
    );
}

#[test]
fn schema_volume_cli_good() {
    let host = Volume::parse_cli("foobar,kind=host,source=/tmp").unwrap();
    assert_eq!((host.kind.as_str(), host.source.as_str()), ("host", "/tmp"));
    assert_eq!(
        (host.read_only, host.recursive, host.mode.clone()),
        (None, None, None)
    );
    let cases: &[(&str, &str)] = &[
        (
            "foobar,kind=host,source=/tmp",
            "foobar,kind=host,source=/tmp",
        ),
        (
            "foobar,kind=host,source=/tmp,readOnly=false",
            "foobar,kind=host,source=/tmp,readOnly=false",
        ),
        (
            "foobar,kind=host,source=/tmp,readOnly=true",
            "foobar,kind=host,source=/tmp,readOnly=true",
        ),
        ("foobar,kind=empty", "foobar,kind=empty"),
        (
            "foobar,kind=empty,readOnly=true",
            "foobar,kind=empty,readOnly=true",
        ),
        (
            "foobar,kind=empty,readOnly=true,mode=0777",
            "foobar,kind=empty,readOnly=true,mode=0777",
        ),
        (
            "foobar,kind=empty,mode=0777,uid=1000",
            "foobar,kind=empty,mode=0777,uid=1000",
        ),
        (
            "foobar,kind=empty,mode=0777,uid=1000,gid=1000",
            "foobar,kind=empty,mode=0777,uid=1000,gid=1000",
        ),
        (
            "foobar,kind=host,source=/tmp,recursive=false",
            "foobar,kind=host,source=/tmp,recursive=false",
        ),
        (
            "foobar,kind=host,source=/tmp,recursive=true",
            "foobar,kind=host,source=/tmp,recursive=true",
        ),
        (
            "foobar,kind=host,source=/tmp,readOnly=1,recursive=T",
            "foobar,kind=host,source=/tmp,readOnly=true,recursive=true",
        ),
    ];
    for (input, shown) in cases {
        let v = Volume::parse_cli(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(v.to_string(), *shown);
    }
    let empty = Volume::parse_cli("foobar,kind=empty").unwrap();
    assert_eq!(
        (empty.mode.as_deref(), empty.uid, empty.gid),
        (Some("0755"), Some(0), Some(0))
    );
    let ro = Volume::parse_cli("data,kind=host,source=/srv,readOnly=true,recursive=true").unwrap();
    assert_eq!((ro.read_only, ro.recursive), (Some(true), Some(true)));
}

#[test]
fn schema_volume_cli_bad() {
    for bad in [
        "#foobar,kind=host,source=/tmp",
        "foobar,kind=host,source=/tmp,readOnly=true,asdf=asdf",
        "foobar,kind=host,source=tmp",
        "foobar,kind=host,uid=3",
        "foobar,kind=host,mode=0755",
        "foobar,kind=host,mode=0600,readOnly=true,gid=0",
        "foobar,kind=empty,source=/tmp",
        "foobar,kind=host,source=/tmp,recursive=MAYBE",
        "foobar,kind=host,source=/tmp,source=/var",
        "foobar,kind=nfs",
        "foobar,kind",
        "foobar,name=other,kind=empty",
        "foobar,kind=empty,uid=x",
    ] {
        assert!(Volume::parse_cli(bad).is_err(), "{bad:?} accepted");
    }
    let e = Volume::parse_cli("foobar,kind=host,source=tmp")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source for host volume must be absolute path"),
        "{e}"
    );
}

const ISOLATORS: &[(&str, bool)] = &[
    (r#"{"name": "os/linux/cpu-shares", "value": 2048}"#, true),
    (r#"{"name": "os/linux/cpu-shares", "value": 1}"#, false),
    (
        r#"{"name": "os/linux/cpu-shares", "value": "pants"}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/cpu-shares", "value": "262145"}"#,
        false,
    ),
    (r#"{"name": "os/linux/cpu-shares", "value": 262145}"#, false),
    (r#"{"name": "os/linux/cpu-shares", "value": "-1"}"#, false),
    (r#"{"name": "os/linux/oom-score-adj", "value": 250}"#, true),
    (r#"{"name": "os/linux/oom-score-adj", "value": -250}"#, true),
    (
        r#"{"name": "os/linux/oom-score-adj", "value": -2500}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/oom-score-adj", "value": "pants"}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/no-new-privileges", "value": true}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/no-new-privileges", "value": false}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/no-new-privileges", "value": 123}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/no-new-privileges", "value": {"set": ["CAP_KILL"]}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/no-new-privileges", "value": "foo"}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_KILL"]}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_PONIES"]}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/capabilities-retain-set", "value": {"set": []}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/capabilities-retain-set", "value": {"set": "CAP_PONIES"}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_KILL"]}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/capabilities-remove-set", "value": {}}"#,
        false,
    ),
    (
        r#"{"name": "resource/block-bandwidth", "value": {"default": true, "limit": "1G"}}"#,
        true,
    ),
    (
        r#"{"name": "resource/block-bandwidth", "value": {"default": false, "limit": "1G"}}"#,
        false,
    ),
    (
        r#"{"name": "resource/block-bandwidth", "value": {"request": "30G", "limit": "1G"}}"#,
        false,
    ),
    (
        r#"{"name": "resource/block-iops", "value": {"default": true, "limit": "1G"}}"#,
        true,
    ),
    (
        r#"{"name": "resource/block-iops", "value": {"default": false, "limit": "1G"}}"#,
        false,
    ),
    (
        r#"{"name": "resource/block-iops", "value": {"request": "30G", "limit": "1G"}}"#,
        false,
    ),
    (
        r#"{"name": "resource/cpu", "value": {"request": "30m", "limit": "1m"}}"#,
        true,
    ),
    (
        r#"{"name": "resource/cpu", "value": {"limit": "1.5"}}"#,
        true,
    ),
    (
        r#"{"name": "resource/cpu", "value": {"limit": "lots"}}"#,
        false,
    ),
    (
        r#"{"name": "resource/memory", "value": {"request": "1G", "limit": "2Gi"}}"#,
        true,
    ),
    (
        r#"{"name": "resource/memory", "value": {"limit": 1000000}}"#,
        true,
    ),
    (
        r#"{"name": "resource/memory", "value": {"limit": "1e3"}}"#,
        true,
    ),
    (
        r#"{"name": "resource/memory", "value": {"default": true, "request": "1G", "limit": "2G"}}"#,
        false,
    ),
    (
        r#"{"name": "resource/network-bandwidth", "value": {"default": true, "limit": "1G"}}"#,
        true,
    ),
    (
        r#"{"name": "resource/network-bandwidth", "value": {"default": false, "limit": "1G"}}"#,
        false,
    ),
    (
        r#"{"name": "resource/network-bandwidth", "value": {"request": "30G", "limit": "1G"}}"#,
        false,
    ),
    (
        r#"{"name": "os/unix/sysctl", "value": {"net.ipv4.tcp_rfc1337": "1"}}"#,
        true,
    ),
    (
        r#"{"name": "os/unix/sysctl", "value": {"net.ipv4.tcp_rfc1337": 1}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/selinux-context", "value": {"user" : "user_u", "role": "role_r", "type": "type_r", "level": "s0-s0"}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/selinux-context", "value": {"user" : "user_u", "role": "role_r", "type": "type_r", "level": "s0-s0:c0"}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/selinux-context", "value": {"user" : "user_u", "role": "role_r:type_t", "type": "type_r", "level": "s0-s0"}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/selinux-context", "value": {"user" : "user_u", "role": "", "type": "type_r", "level": "s0-s0"}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/apparmor-profile", "value": {"profile": "rkt-default"}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/apparmor-profile", "value": {"profile": ""}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "EPERM"}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/seccomp-retain-set", "value": {"set": ["@appc.io/all"]}}"#,
        true,
    ),
    (
        r#"{"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "eperm"}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "EPE-RM"}}"#,
        false,
    ),
    (
        r#"{"name": "os/linux/seccomp-remove-set", "value": {"set": []}}"#,
        false,
    ),
    (r#"{"name": "os/linux/memory", "value": null}"#, true),
    (r#"{"name": "resource/cpu"}"#, false),
];

#[test]
fn schema_isolator_values() {
    for (json, ok) in ISOLATORS {
        // Pod-level isolators get per-value checks only.
        let pod =
            format!(r#"{{"acKind":"PodManifest","acVersion":"0.8.11","isolators":[{json}]}}"#);
        let got = PodManifest::parse(pod.as_bytes());
        assert_eq!(got.is_ok(), *ok, "{json}: {got:?}");
    }
    assert!(serde_json::from_str::<Isolator>(r#"{"name":"sysctl","value":{["x"]}}"#).is_err());
}

#[test]
fn schema_app_isolator_set_rules() {
    let iso = |list: &str| {
        ImageManifest::parse(app_with(&format!(r#","isolators":[{list}]"#)).as_bytes())
    };
    let unknown = iso(r#"{"name":"example.com/unknown","value":1}"#)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unrecognized isolator name"), "{unknown}");
    let two_mem = r#"{"name":"resource/memory","value":{"limit":"1G"}},
                     {"name":"resource/memory","value":{"limit":"2G"}}"#;
    assert!(iso(two_mem).is_ok());
    let two_shares =
        r#"{"name":"os/linux/cpu-shares","value":10},{"name":"os/linux/cpu-shares","value":20}"#;
    let e = iso(two_shares).unwrap_err().to_string();
    assert!(
        e.contains("too many instances of type os/linux/cpu-shares"),
        "{e}"
    );
    let conflict = r#"{"name":"os/linux/seccomp-retain-set","value":{"set":["read"]}},
                      {"name":"os/linux/seccomp-remove-set","value":{"set":["reboot"]}}"#;
    let e = iso(conflict).unwrap_err().to_string();
    assert!(
        e.contains("conflicts with os/linux/seccomp-retain-set"),
        "{e}"
    );
    let caps = r#"{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}},
                  {"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_KILL"]}}"#;
    assert!(iso(caps).is_ok());
    // Unknown pod-level isolators pass, as in Go.
    let pod = r#"{"acKind":"PodManifest","isolators":[{"name":"example.com/unknown","value":1}]}"#;
    assert!(PodManifest::parse(pod.as_bytes()).is_ok());
}

#[test]
fn schema_app_rules() {
    let e = image_err(&image_with_app(r#"{"exec":["/x"],"group":"0"}"#));
    assert!(e.contains("app.user: user is required"), "{e}");
    let e = image_err(&image_with_app(r#"{"exec":["/x"],"user":"0"}"#));
    assert!(e.contains("app.group: group is required"), "{e}");
    let e = image_err(&app_with(r#","workingDirectory":"rel/dir""#));
    assert!(
        e.contains("workingDirectory must be an absolute path"),
        "{e}"
    );
    let eh = r#","eventHandlers":[{"name":"pre-start","exec":["/a"]},{"name":"pre-start","exec":["/b"]}]"#;
    let e = image_err(&app_with(eh));
    assert!(
        e.contains(r#"only one eventHandler of name "pre-start" allowed"#),
        "{e}"
    );
    let e = image_err(&app_with(r#","eventHandlers":[{"name":"pre-stop"}]"#));
    assert!(e.contains("pre-start"), "{e}");
    let e = image_err(&app_with(r#","mountPoints":[{"name":"db"}]"#));
    assert!(
        e.contains("app.mountPoints[0].path: path must be set"),
        "{e}"
    );
    // exec is not validated: empty, relative or missing are all fine.
    for app in [
        r#"{"user":"0","group":"0"}"#,
        r#"{"exec":[],"user":"0","group":"0"}"#,
        r#"{"exec":["bin/x"],"user":"0","group":"0"}"#,
    ] {
        assert!(
            ImageManifest::parse(image_with_app(app).as_bytes()).is_ok(),
            "{app}"
        );
    }
    let e = image_err(&image_with_app(
        r#"{"exec":"/bin/sh","user":"0","group":"0"}"#,
    ));
    assert!(e.contains("app.exec: expected an array of strings"), "{e}");
}

#[test]
fn schema_keys_case_insensitive_and_unknown_ignored() {
    let spec_spelling = app_with(r#","supplementaryGids":[1,2],"unknownKey":{"x":1}"#);
    let m = ImageManifest::parse(spec_spelling.as_bytes()).unwrap();
    assert_eq!(m.app.as_ref().unwrap().supplementary_gids, vec![1, 2]);
    let tag_spelling = app_with(r#","supplementaryGIDs":[1,2]"#);
    assert_eq!(ImageManifest::parse(tag_spelling.as_bytes()).unwrap(), m);
    let upper = image_with_app(r#"{"Exec":["/x"],"User":"1","GROUP":"2"}"#);
    let app = ImageManifest::parse(upper.as_bytes()).unwrap().app.unwrap();
    assert_eq!(
        (app.exec, app.user.as_str(), app.group.as_str()),
        (vec!["/x".to_string()], "1", "2")
    );
    assert!(m.to_json().contains(r#""supplementaryGIDs":[1,2]"#));
}

#[test]
fn schema_manifest_top_level_rules() {
    let e = image_err(r#"{"acKind":"PodManifest","acVersion":"0.8.11","name":"a"}"#);
    assert!(
        e.contains(r#"acKind: missing or bad acKind "PodManifest" (must be "ImageManifest")"#),
        "{e}"
    );
    let e = image_err(r#"{"acVersion":"0.8.11","name":"a"}"#);
    assert!(e.contains("acKind"), "{e}");
    let e = image_err(r#"{"acKind":"ImageManifest","name":"a"}"#);
    assert!(e.contains("acVersion must be set"), "{e}");
    let e = image_err(r#"{"acKind":"ImageManifest","acVersion":"0.8.11"}"#);
    assert!(e.contains("name: name must be set"), "{e}");
    let e = image_err(r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"BAR"}"#);
    assert_eq!(
        e,
        r#"invalid image name "BAR": AC Identifier must match ^[a-z0-9]+([-._~/][a-z0-9]+)*$ (lowercase letters, digits and -._~/ separators)"#
    );
    let e = image_err("{\n  \"acKind\": \"ImageManifest\",\n  \"name\": }");
    assert!(e.starts_with("malformed JSON at line 3, column"), "{e}");
    let e = image_err("[]");
    assert!(e.contains("manifest: expected a JSON object"), "{e}");
    let e = image_err(
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","dependencies":[{"imageID":"sha512-x"}]}"#,
    );
    assert!(
        e.contains("dependencies[0].imageName: imageName must be set"),
        "{e}"
    );
    let e = image_err(
        r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","dependencies":[{"imageName":"b","imageID":"md5-x"}]}"#,
    );
    assert!(e.contains("unrecognized hash type"), "{e}");
    let e = pod_err(r#"{"acKind":"ImageManifest"}"#);
    assert!(e.contains(r#"(must be "PodManifest")"#), "{e}");
}

fn round_trip_image(bytes: &[u8]) -> ImageManifest {
    let m = ImageManifest::parse(bytes).unwrap();
    assert_eq!(ImageManifest::parse(m.to_json().as_bytes()).unwrap(), m);
    assert_eq!(
        ImageManifest::parse(m.to_json_pretty().as_bytes()).unwrap(),
        m
    );
    m
}

fn round_trip_pod(bytes: &[u8]) -> PodManifest {
    let p = PodManifest::parse(bytes).unwrap();
    assert_eq!(PodManifest::parse(p.to_json().as_bytes()).unwrap(), p);
    assert_eq!(
        PodManifest::parse(p.to_json_pretty().as_bytes()).unwrap(),
        p
    );
    p
}

#[test]
fn schema_example_image_manifest() {
    let m = round_trip_image(&testdata("image.json"));
    assert_eq!(m.name.as_str(), "example.com/reduce-worker");
    assert_eq!(
        (m.version(), m.os(), m.arch()),
        (Some("1.0.0"), Some("linux"), Some("amd64"))
    );
    let app = m.app.as_ref().unwrap();
    assert_eq!((app.user.as_str(), app.group.as_str()), ("100", "300"));
    assert_eq!(app.event_handlers.len(), 2);
    assert_eq!(app.isolators.len(), 5);
    assert_eq!(app.ports[0].count, 1);
    assert!(app.ports[0].socket_activated);
    assert_eq!(
        m.dependencies[0].image_id.as_ref().unwrap().as_str(),
        "sha512-..."
    );
    assert_eq!(m.dependencies[0].labels.get("env"), Some("canary"));
    assert_eq!(m.path_whitelist.len(), 5);
    assert_eq!(m.annotations.get("homepage"), Some("https://example.com"));
    let json = m.to_json();
    let order = [
        "\"acKind\"",
        "\"acVersion\"",
        "\"name\"",
        "\"labels\"",
        "\"app\"",
        "\"annotations\"",
        "\"dependencies\"",
        "\"pathWhitelist\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| json.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(
        json.contains(r#""count":1,"socketActivated":true"#),
        "{json}"
    );
    assert!(
        !json.contains("readOnly"),
        "omitempty readOnly false: {json}"
    );
}

#[test]
fn schema_ace_validator_templates() {
    for name in [
        "image_manifest_main.json.in",
        "image_manifest_sidekick.json.in",
    ] {
        let text = String::from_utf8(testdata(name)).unwrap();
        let good = text
            .replace("@ACI_OS@", "linux")
            .replace("@ACI_ARCH@", "amd64");
        let m = round_trip_image(good.as_bytes());
        assert_eq!(m.os(), Some("linux"));
        let bad = text
            .replace("@ACI_OS@", "linux")
            .replace("@ACI_ARCH@", "arm64");
        let e = image_err(&bad);
        assert!(e.contains(r#"bad arch "arm64" for linux"#), "{e}");
    }
}

#[test]
fn schema_example_pods() {
    let p = round_trip_pod(&testdata("pod_runtime.json"));
    assert_eq!(p.apps.len(), 3);
    assert!(p.apps[0].image.id.as_ref().unwrap().is_full());
    assert_eq!(p.app("backup").unwrap().mounts.len(), 2);
    assert_eq!(p.volumes[0].read_only, Some(true));
    assert_eq!(p.volumes[1].mode.as_deref(), Some("0777"));
    assert_eq!(p.isolators.len(), 2);
    let t = round_trip_pod(&testdata("pod_template.json"));
    assert_eq!(t.ac_version.as_ref().unwrap().to_string(), "0.3.0");
    assert!(t.apps[1].image.id.is_none());
    assert_eq!(t.apps[2].image.labels.get("version"), Some("3.0.0"));
    let pretty = t.to_json_pretty();
    assert!(
        pretty.starts_with("{\n  \"acVersion\": \"0.3.0\",\n  \"acKind\": \"PodManifest\""),
        "{pretty}"
    );
}

#[test]
fn schema_pod_rules() {
    let app = |n: &str| format!(r#"{{"name":"{n}","image":{{"id":"sha512-abc"}}}}"#);
    let dup = format!(
        r#"{{"acKind":"PodManifest","apps":[{},{}]}}"#,
        app("a"),
        app("a")
    );
    let e = pod_err(&dup);
    assert!(e.contains(r#"apps[1].name: duplicate app name "a""#), "{e}");
    let vols = r#"{"acKind":"PodManifest","volumes":[{"name":"v","kind":"empty"},{"name":"v","kind":"host","source":"/x"}]}"#;
    let e = pod_err(vols);
    assert!(
        e.contains(r#"volumes[1].name: duplicate volume name "v""#),
        "{e}"
    );
    let e = pod_err(
        r#"{"acKind":"PodManifest","volumes":[{"name":"v","kind":"host","source":"/x","uid":0}]}"#,
    );
    assert!(
        e.contains("volumes[0]: uid for host volume cannot be set"),
        "{e}"
    );
    let e = pod_err(r#"{"acKind":"PodManifest","volumes":[{"name":"v","kind":"tmpfs"}]}"#);
    assert!(e.contains("unrecognized volume kind"), "{e}");
    let e = pod_err(r#"{"acKind":"PodManifest","apps":[{"name":"Web"}]}"#);
    assert!(e.contains(r#"invalid apps[0].name "Web""#), "{e}");
    let e = pod_err(
        r#"{"acKind":"PodManifest","ports":[{"name":"www","hostPort":80,"hostIP":"nope"}]}"#,
    );
    assert!(e.contains("must be an IP address"), "{e}");
    let e = pod_err(r#"{"acKind":"PodManifest","apps":[{"name":"a","image":{"id":""}}]}"#);
    assert!(e.contains("apps[0].image.id"), "{e}");
    let ok = r#"{"acKind":"PodManifest","apps":[],"ports":[{"name":"www","hostPort":8080,"hostIP":"127.0.0.1",
        "podPort":{"name":"www","port":80,"protocol":"tcp"}}],
        "volumes":[{"name":"v","kind":"empty"}],"userLabels":{"a":"b"}}"#;
    let p = round_trip_pod(ok.as_bytes());
    assert_eq!(p.volumes[0].uid, Some(0));
    assert_eq!(p.ports[0].pod_port.as_ref().unwrap().count, 1);
    assert!(p.to_json().contains(r#""mode":"0755","uid":0,"gid":0"#));
    assert!(round_trip_pod(br#"{"acKind":"PodManifest"}"#)
        .ac_version
        .is_none());
}

#[test]
fn schema_app_ref() {
    let r = AppRef::parse("example.com/nginx:1.8,os=linux,arch=amd64").unwrap();
    assert_eq!(r.name.as_str(), "example.com/nginx");
    assert_eq!(r.version.as_deref(), Some("1.8"));
    assert_eq!(
        r.labels,
        vec![
            ("os".into(), "linux".into()),
            ("arch".into(), "amd64".into())
        ]
    );
    assert_eq!(r.label("version"), Some("1.8"));
    assert_eq!(
        r.labels_with_version().last().unwrap(),
        &("version".to_string(), "1.8".to_string())
    );
    assert_eq!(r.to_string(), "example.com/nginx:1.8,os=linux,arch=amd64");
    let plain = AppRef::parse("busybox").unwrap();
    assert_eq!((plain.version, plain.labels.len()), (None, 0));
    let labelled = AppRef::parse("coreos.com/etcd,version=v2.0.0").unwrap();
    assert_eq!(labelled.label("version"), Some("v2.0.0"));
    for bad in [
        "",
        "Example.com/nginx",
        "a:1:2",
        "a:",
        "a,os",
        "a,OS=linux",
        "a:1,version=2",
        "a,os=linux,os=darwin",
        "a,name=b",
        "a,os=li:nux",
        "a,os=linux:1",
        "a,=x",
    ] {
        assert!(AppRef::parse(bad).is_err(), "{bad:?} accepted");
    }
    let e = AppRef::parse("BAR").unwrap_err().to_string();
    assert!(e.starts_with(r#"invalid image name "BAR""#), "{e}");
}

#[test]
fn schema_serde_impls() {
    let m: ImageManifest = serde_json::from_slice(&testdata("image.json")).unwrap();
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["app"]["ports"][0]["port"], 4000);
    let back: ImageManifest = serde_json::from_value(v).unwrap();
    assert_eq!(back, m);
    assert!(serde_json::from_str::<Volume>(r#"{"name":"v","kind":"host"}"#).is_err());
}

/// A tiny deterministic PRNG (xorshift64) for the mutation test.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn replacement(rng: &mut Rng) -> serde_json::Value {
    let choices = [
        "null",
        "0",
        "1",
        "-1",
        "65535",
        "65536",
        "2.5",
        "\"\"",
        "\"x\"",
        "\"Z\"",
        "true",
        "[]",
        "{}",
        "\"sha512-1\"",
        "\"/abs\"",
        "\"empty\"",
        "\"host\"",
        "\"linux\"",
        "\"arm64\"",
        "\"pre-start\"",
        "\"0.0.0\"",
        "\"1.2.3-\"",
        "[\"a\"]",
        "{\"set\":[]}",
    ];
    serde_json::from_str(choices[rng.next(choices.len())]).unwrap()
}

fn mutate(v: &mut serde_json::Value, rng: &mut Rng) {
    use serde_json::Value;
    if rng.next(8) == 0 {
        *v = replacement(rng);
        return;
    }
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(rng.next(map.len())).unwrap().clone();
            match rng.next(6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let val = map.remove(&key).unwrap();
                    map.insert(key.to_uppercase(), val);
                }
                _ => mutate(map.get_mut(&key).unwrap(), rng),
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.next(items.len());
            if rng.next(5) == 0 {
                let dup = items[i].clone();
                items.push(dup);
            } else {
                mutate(&mut items[i], rng);
            }
        }
        _ => *v = replacement(rng),
    }
}

#[test]
fn schema_mutated_examples_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sources = ["image.json", "pod_runtime.json", "pod_template.json"];
    let bases: Vec<serde_json::Value> = sources
        .iter()
        .map(|s| serde_json::from_slice(&testdata(s)).unwrap())
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..3000 {
        let mut v = bases[round % bases.len()].clone();
        for _ in 0..=rng.next(3) {
            mutate(&mut v, &mut rng);
        }
        let bytes = v.to_string().into_bytes();
        match (ImageManifest::parse(&bytes), PodManifest::parse(&bytes)) {
            (Ok(m), _) => {
                accepted += 1;
                assert_eq!(
                    ImageManifest::parse(m.to_json().as_bytes()).unwrap(),
                    m,
                    "{v}"
                );
            }
            (_, Ok(p)) => {
                accepted += 1;
                assert_eq!(
                    PodManifest::parse(p.to_json().as_bytes()).unwrap(),
                    p,
                    "{v}"
                );
            }
            (Err(a), Err(b)) => {
                refused += 1;
                assert!(!a.to_string().is_empty() && !b.to_string().is_empty());
            }
        }
    }
    assert!(
        accepted > 300 && refused > 300,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn schema_sanitize() {
    let ids = [
        ("foo#", "foo"),
        ("FOO", "foo"),
        ("EXAMPLE.com", "example.com"),
        ("foo.com/BAR", "foo.com/bar"),
        ("/app", "app"),
        ("app/", "app"),
        ("_app", "app"),
        ("app~", "app"),
        ("app///", "app"),
        ("-/.app..", "app"),
        ("-/app.name-test/-/", "app.name-test"),
        (
            "sub-domain.example.com/org/product/~alice/release-1.0.0",
            "sub-domain.example.com/org/product/~alice/release-1.0.0",
        ),
    ];
    for (input, want) in ids {
        assert_eq!(
            AcIdentifier::sanitize(input).unwrap().as_str(),
            want,
            "{input}"
        );
    }
    let names = [
        ("foo#", "foo"),
        ("EXAMPLE.com", "example-com"),
        ("foo.com/BAR", "foo-com-bar"),
        ("example.com/app_1", "example-com-app-1"),
        ("app.", "app"),
        ("-/.app..", "app"),
        ("-/app.name-test/-/", "app-name-test"),
        (
            "sub-domain.example.com/org/product/release-1.0.0",
            "sub-domain-example-com-org-product-release-1-0-0",
        ),
    ];
    for (input, want) in names {
        assert_eq!(AcName::sanitize(input).unwrap().as_str(), want, "{input}");
    }
    for bad in ["__", "..", "//", "", ".//-"] {
        assert!(AcIdentifier::sanitize(bad).is_err(), "{bad:?}");
        assert!(AcName::sanitize(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn schema_isolator_accessors_and_quantities() {
    let m = ImageManifest::parse(&testdata("image.json")).unwrap();
    let isos = &m.app.as_ref().unwrap().isolators;
    assert_eq!(isos[0].resource_limit().unwrap().milli_value(), Some(20));
    assert_eq!(
        isos[1].resource_limit().unwrap().value(),
        Some(1_000_000_000)
    );
    assert_eq!(isos[1].resource_request(), None);
    assert_eq!(
        isos[2].set().unwrap(),
        vec!["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"]
    );
    assert_eq!(isos[3].bool_value(), Some(true));
    assert_eq!(isos[4].errno().as_deref(), Some("EACCESS"));
    let q = |s: &str| Quantity::parse(s).unwrap();
    assert_eq!(q("2Gi").value(), Some(2_147_483_648));
    assert_eq!(q("1G").value(), Some(1_000_000_000));
    assert_eq!(q("30m").milli_value(), Some(30));
    assert_eq!(q("1m").value(), Some(1), "rounded up");
    assert_eq!(q("1.5").milli_value(), Some(1500));
    assert_eq!(q("1e3").value(), Some(1000));
    assert_eq!(q("1Ki").value(), Some(1024));
    assert_eq!(q("-1").value(), Some(-1));
    assert_eq!(q("1E300").value(), None, "too large");
    for bad in ["", "G", "1.2.3", "1x", "1Kib", "1e", "abc"] {
        assert!(Quantity::parse(bad).is_err(), "{bad:?}");
    }
    let pod = PodManifest::parse(&testdata("pod_runtime.json")).unwrap();
    let sysctl = pod.isolators[1].string_map().unwrap();
    assert_eq!(
        sysctl.get("net.ipv4.tcp_fin_timeout").map(String::as_str),
        Some("6")
    );
}

#[test]
fn schema_validate_built_manifests() {
    let mut m = ImageManifest::parse(&testdata("image.json")).unwrap();
    assert!(m.validate().is_ok());
    m.app.as_mut().unwrap().user.clear();
    assert!(m
        .validate()
        .unwrap_err()
        .to_string()
        .contains("user is required"));
    let mut p = PodManifest::parse(&testdata("pod_runtime.json")).unwrap();
    assert!(p.validate().is_ok());
    let dup = p.volumes[0].clone();
    p.volumes.push(dup);
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("duplicate volume name"));
    let a = Annotations::from_pairs([("created", "2014-10-27T19:32:27Z")]).unwrap();
    assert_eq!(a.get("created"), Some("2014-10-27T19:32:27Z"));
    assert!(Annotations::from_pairs([("created", "yesterday")]).is_err());
}

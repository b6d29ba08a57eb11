//! The appc ACE validator (`github.com/appc/spec/ace`, built with `go` from the Debian package
//! golang-github-appc-spec-dev) run as a two-app pod with `--volume database,kind=empty`: its
//! pre-start, main, sidekick and post-stop checks cover the execution environment, event
//! handler order, environment, working directory, mount points, the shared volume and the
//! metadata service at AC_METADATA_URL (pod and app manifests, annotations, UUID, HMAC).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const APPC_SRC: &str = "/usr/share/gocode/src/github.com/appc/spec/ace";
const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ace");

fn build_validator(out: &Path) {
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(out)
        .arg("github.com/appc/spec/ace")
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", out.parent().unwrap().join("gocache"))
        .env("CGO_ENABLED", "0")
        .status()
        .expect("run go (package golang-go)");
    assert!(st.success(), "go build of the ACE validator failed");
}

fn validator_aci(tmp: &Path, bin: &Path, which: &str) -> std::path::PathBuf {
    let layout = tmp.join(which);
    std::fs::create_dir_all(layout.join("rootfs/opt/acvalidator")).unwrap();
    std::fs::copy(bin, layout.join("rootfs/ace-validator")).unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "aarch64",
        other => other,
    };
    let text = std::fs::read_to_string(
        Path::new(TESTDATA).join(format!("image_manifest_{which}.json.in")),
    )
    .expect("tests/data/ace manifests");
    let manifest = text
        .replace("@ACI_OS@", "linux")
        .replace("@ACI_ARCH@", arch);
    write(&layout.join("manifest"), manifest.as_bytes());
    let out = tmp.join(format!("ace-{which}.aci"));
    actool_build(&layout, &out, false);
    out
}

#[test]
fn ace_validator_passes() {
    assert!(
        Path::new(APPC_SRC).is_dir(),
        "{APPC_SRC} missing: install golang-github-appc-spec-dev"
    );
    let (tmp, dir, _cleanup) = pod_scratch();
    let bin = tmp.path().join("ace-validator");
    build_validator(&bin);
    let main = validator_aci(tmp.path(), &bin, "main");
    let sidekick = validator_aci(tmp.path(), &bin, "sidekick");
    // Host networking, then a private network namespace (`--net=none` needs no CNI, so it
    // touches nothing of the host): there the metadata service is on the pod's own loopback.
    for net in ["--net=host", "--net=none"] {
        let o = rkt_pod(
            &dir,
            &[
                "run",
                net,
                "--volume=database,kind=empty",
                main.to_str().unwrap(),
                sidekick.to_str().unwrap(),
            ],
        );
        let what = format!("ace {net}");
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        for line in ["prestart OK", "main OK", "sidekick OK", "poststop OK"] {
            assert!(
                stdout.lines().any(|l| l == line),
                "{line} missing\n{}",
                describe(&what, &o)
            );
        }
        assert!(
            !stderr.contains("==>"),
            "validator failures:\n{}",
            describe(&what, &o)
        );
        assert_eq!(o.status.code(), Some(0), "{}", describe(&what, &o));
    }
}

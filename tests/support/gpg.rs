//! Real OpenPGP keys and signatures made with gpg in a private GNUPGHOME.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Gpg {
    pub home: PathBuf,
}

pub struct Key {
    pub fpr: String,
    /// Armored public key.
    pub public: Vec<u8>,
}

impl Gpg {
    pub fn new(dir: &Path) -> Gpg {
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Gpg { home }
    }

    fn cmd(&self, faked_time: Option<&str>) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &self.home).args([
            "--batch",
            "--yes",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        if let Some(t) = faked_time {
            c.arg("--faked-system-time").arg(t);
        }
        c
    }

    fn run(&self, c: &mut Command) -> Vec<u8> {
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A new signing key `uid`; `expire` as gpg takes it ("never", "1d"); `faked_time` makes
    /// gpg believe it is another time (e.g. "20200101T000000!").
    pub fn key(&self, uid: &str, expire: &str, faked_time: Option<&str>) -> Key {
        self.run(
            self.cmd(faked_time)
                .args(["--quick-gen-key", uid, "ed25519", "sign", expire]),
        );
        let fpr = self.fingerprint(uid);
        let public = self.run(self.cmd(None).args(["--armor", "--export", &fpr]));
        Key { fpr, public }
    }

    fn fingerprint(&self, uid: &str) -> String {
        let out = self.run(self.cmd(None).args(["--with-colons", "--list-keys", uid]));
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .filter(|l| l.starts_with("fpr:"))
            .map(|l| l.split(':').nth(9).unwrap().to_lowercase())
            .next()
            .unwrap()
    }

    /// Detached signature of `file` by `key` (armored unless `binary`).
    pub fn sign(&self, key: &Key, file: &Path, out: &Path, binary: bool, faked_time: Option<&str>) {
        let mut c = self.cmd(faked_time);
        c.args(["--local-user", &key.fpr, "--detach-sign", "--output"])
            .arg(out);
        if !binary {
            c.arg("--armor");
        }
        self.run(c.arg(file));
    }

    /// Revokes `key` with the revocation certificate gpg made for it; returns the
    /// revoked public key.
    pub fn revoke(&self, key: &Key) -> Vec<u8> {
        let rev = self
            .home
            .join("openpgp-revocs.d")
            .join(format!("{}.rev", key.fpr.to_uppercase()));
        let text = std::fs::read_to_string(&rev).unwrap();
        let cleaned = text.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        );
        let p = self.home.join("rev.asc");
        std::fs::write(&p, cleaned).unwrap();
        self.run(self.cmd(None).arg("--import").arg(&p));
        self.run(self.cmd(None).args(["--armor", "--export", &key.fpr]))
    }
}

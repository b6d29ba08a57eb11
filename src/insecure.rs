//! `--insecure-options`: which security checks the user switched off.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsecureOptions {
    pub image: bool,
    pub tls: bool,
    pub http: bool,
    pub pubkey: bool,
    pub capabilities: bool,
    pub paths: bool,
    pub seccomp: bool,
}

const VALUES: &str =
    "none, image, tls, ondisk, http, pubkey, capabilities, paths, seccomp, all-fetch, all-run, all";

impl FromStr for InsecureOptions {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut o = InsecureOptions::default();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "none" => {}
                "image" => o.image = true,
                "tls" => o.tls = true,
                "ondisk" => {} // accepted and ignored, as in rkt >= 1.26
                "http" => o.http = true,
                "pubkey" => o.pubkey = true,
                "capabilities" => o.capabilities = true,
                "paths" => o.paths = true,
                "seccomp" => o.seccomp = true,
                "all-fetch" => o.set_fetch(),
                "all-run" => o.set_run(),
                "all" => {
                    o.set_fetch();
                    o.set_run();
                }
                other => {
                    return Err(format!(
                        "unknown insecure option {other:?}; valid options are: {VALUES}"
                    ))
                }
            }
        }
        Ok(o)
    }
}

impl InsecureOptions {
    /// What either `self` or `other` switches off (`run`'s own flag and the global one).
    pub fn or(self, other: InsecureOptions) -> InsecureOptions {
        InsecureOptions {
            image: self.image || other.image,
            tls: self.tls || other.tls,
            http: self.http || other.http,
            pubkey: self.pubkey || other.pubkey,
            capabilities: self.capabilities || other.capabilities,
            paths: self.paths || other.paths,
            seccomp: self.seccomp || other.seccomp,
        }
    }

    fn set_fetch(&mut self) {
        self.image = true;
        self.tls = true;
        self.http = true;
        self.pubkey = true;
    }

    fn set_run(&mut self) {
        self.capabilities = true;
        self.paths = true;
        self.seccomp = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_keeps_what_either_switches_off() {
        let a: InsecureOptions = "image,paths".parse().unwrap();
        let b: InsecureOptions = "seccomp".parse().unwrap();
        assert_eq!(a.or(b), "image,paths,seccomp".parse().unwrap());
        assert_eq!(a.or(InsecureOptions::default()), a);
    }

    #[test]
    fn parses_rkt_values() {
        let o: InsecureOptions = "image,http".parse().unwrap();
        assert!(o.image && o.http && !o.tls);
        let all: InsecureOptions = "all".parse().unwrap();
        assert!(all.image && all.tls && all.seccomp && all.paths);
        let fetch: InsecureOptions = "all-fetch".parse().unwrap();
        assert!(fetch.image && fetch.pubkey && !fetch.capabilities);
        assert_eq!(
            "none".parse::<InsecureOptions>().unwrap(),
            InsecureOptions::default()
        );
        assert!("images"
            .parse::<InsecureOptions>()
            .unwrap_err()
            .contains("valid options"));
    }
}

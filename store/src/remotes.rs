//! Remotes: what was downloaded from which URL, so pull policies can reuse or revalidate
//! an image (rkt's `remote` table: URL, signature URL, ETag, Cache-Control max-age,
//! image ID and download time).

use rusqlite::{params, OptionalExtension};

use crate::error::Result;
use crate::images::now_nanos;
use crate::Store;

/// One remembered download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The ACI URL as it was fetched.
    pub url: String,
    pub sig_url: Option<String>,
    pub etag: Option<String>,
    pub image_id: String,
    /// `Cache-Control: max-age` in seconds, if the server sent one.
    pub cache_max_age: Option<i64>,
    /// Unix nanoseconds of the last download or successful revalidation.
    pub download_time: i64,
}

impl Remote {
    /// The current time in the unit of `download_time` (unix nanoseconds).
    pub fn now() -> i64 {
        now_nanos()
    }

    /// Whether `max-age` says the download is still fresh at `now` (unix nanoseconds).
    pub fn is_fresh(&self, now: i64) -> bool {
        match self.cache_max_age {
            Some(age) if age > 0 => {
                now.saturating_sub(self.download_time) < age.saturating_mul(1_000_000_000)
            }
            _ => false,
        }
    }
}

impl Store {
    /// The remote recorded for `url`, if its image is still in the store.
    pub fn remote(&self, url: &str) -> Result<Option<Remote>> {
        let e = self.db.err();
        self.conn
            .query_row(
                "SELECT r.url, r.sig_url, r.etag, r.image_id, r.cache_max_age, r.download_time \
                 FROM remotes r JOIN images i ON i.id = r.image_id WHERE r.url = ?1",
                [url],
                |r| {
                    Ok(Remote {
                        url: r.get(0)?,
                        sig_url: r.get(1)?,
                        etag: r.get(2)?,
                        image_id: r.get(3)?,
                        cache_max_age: r.get(4)?,
                        download_time: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(e)
    }

    /// Records (or replaces) the remote for `remote.url`.
    pub fn set_remote(&mut self, remote: &Remote) -> Result<()> {
        let e = self.db.err();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO remotes \
                 (url, sig_url, etag, image_id, cache_max_age, download_time) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    remote.url,
                    remote.sig_url,
                    remote.etag,
                    remote.image_id,
                    remote.cache_max_age,
                    remote.download_time
                ],
            )
            .map_err(e)?;
        Ok(())
    }

    /// A revalidation (HTTP 304) refreshed `url`: restart its max-age clock.
    pub fn touch_remote(&mut self, url: &str, cache_max_age: Option<i64>) -> Result<()> {
        let e = self.db.err();
        self.conn
            .execute(
                "UPDATE remotes SET download_time = ?2, cache_max_age = COALESCE(?3, cache_max_age) \
                 WHERE url = ?1",
                params![url, now_nanos(), cache_max_age],
            )
            .map_err(e)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness() {
        let r = Remote {
            url: "u".into(),
            sig_url: None,
            etag: None,
            image_id: "i".into(),
            cache_max_age: Some(10),
            download_time: 0,
        };
        assert!(r.is_fresh(9_000_000_000));
        assert!(!r.is_fresh(10_000_000_000));
        assert!(!Remote {
            cache_max_age: None,
            ..r
        }
        .is_fresh(1));
    }
}

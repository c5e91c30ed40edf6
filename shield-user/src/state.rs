//! The durable state in the state directory: dynamic list entries (manual, auto-ban, import)
//! and policy changes made with the CLI. Written atomically (temp file, fsync, rename, fsync
//! of the directory); a file that cannot be read is kept aside and reported, never reset.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{lists::ListKind, policies::PolicySpec};

pub const STATE_FILE: &str = "state.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum StateError {
    #[error(
        "the state file {path} is unreadable ({reason}); it was copied to {kept} and left in place. Repair it, or move it away to start without the dynamic entries it held"
    )]
    Corrupt { path: String, reason: String, kept: String },
    #[error("state file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Who made a dynamic entry (an enum, not a string: a state can hold a million entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredOrigin {
    Manual,
    Auto,
    Import,
}

impl StoredOrigin {
    pub fn from_kernel(origin: u32) -> StoredOrigin {
        match shield_common::lists::Origin::from_u32(origin) {
            Some(shield_common::lists::Origin::Auto) => StoredOrigin::Auto,
            Some(shield_common::lists::Origin::Import) => StoredOrigin::Import,
            _ => StoredOrigin::Manual,
        }
    }

    pub fn to_kernel(self) -> shield_common::lists::Origin {
        match self {
            StoredOrigin::Manual => shield_common::lists::Origin::Manual,
            StoredOrigin::Auto => shield_common::lists::Origin::Auto,
            StoredOrigin::Import => shield_common::lists::Origin::Import,
        }
    }
}

/// One dynamic list entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub list: ListKind,
    pub net: IpNet,
    pub origin: StoredOrigin,
    pub created_at_unix: u64,
    /// Wall-clock expiry (the kernel's monotonic clock restarts at boot); none = permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_unix: Option<u64>,
    /// For auto-bans: the offence count that set the ban's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offences: Option<u64>,
    /// Why the entry exists, as the operator (or the ban) said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// Keyed by (list, network); written to the file as a list.
    #[serde(with = "entry_list")]
    pub entries: BTreeMap<(ListKind, IpNet), StoredEntry>,
    /// Policies set with the CLI; they override the configuration's by name.
    pub policies: Vec<PolicySpec>,
}

/// The entries as a JSON list (a map keyed by tuples has no JSON form).
mod entry_list {
    use std::collections::BTreeMap;

    use ipnet::IpNet;
    use serde::{Deserialize as _, Deserializer, Serializer};

    use super::StoredEntry;
    use crate::lists::ListKind;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<(ListKind, IpNet), StoredEntry>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(ListKind, IpNet), StoredEntry>, D::Error> {
        let list = Vec::<StoredEntry>::deserialize(d)?;
        Ok(list.into_iter().map(|e| ((e.list, e.net), e)).collect())
    }
}

impl State {
    /// Read the state file in `dir`; an absent file is an empty state.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State { version: FORMAT_VERSION, ..State::default() });
            }
            Err(source) => return Err(StateError::Io { path: path.display().to_string(), source }),
        };
        let parsed: Result<State, String> =
            serde_json::from_slice::<State>(&text).map_err(|e| e.to_string()).and_then(|s| {
                if s.version == FORMAT_VERSION {
                    Ok(s)
                } else {
                    Err(format!("format version {} is not {FORMAT_VERSION}", s.version))
                }
            });
        parsed.map_err(|reason| {
            let kept = keep_copy(&path, &text);
            StateError::Corrupt { path: path.display().to_string(), reason, kept }
        })
    }

    /// Write the state file in `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(STATE_FILE);
        let io = |source| StateError::Io { path: path.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        let body = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)?;
        // The rename is durable once the directory is synced.
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }

    /// Record an entry, replacing one for the same list and network.
    pub fn upsert(&mut self, entry: StoredEntry) {
        self.entries.insert((entry.list, entry.net), entry);
    }

    pub fn remove(&mut self, list: ListKind, net: IpNet) -> bool {
        self.entries.remove(&(list, net)).is_some()
    }

    /// Entries expired at `now_unix` (without removing them).
    pub fn expired(&self, now_unix: u64) -> Vec<(ListKind, IpNet)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.expires_at_unix.is_some_and(|t| t <= now_unix))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Drop entries expired at `now_unix`; returns how many.
    pub fn remove_expired(&mut self, now_unix: u64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.expires_at_unix.is_none_or(|t| t > now_unix));
        before - self.entries.len()
    }
}

/// Keep the unreadable file's bytes next to it; returns the copy's path (or why it failed).
fn keep_copy(path: &Path, bytes: &[u8]) -> String {
    let copy: PathBuf = path.with_extension(format!("json.corrupt-{}", crate::clock::unix_now()));
    match std::fs::write(&copy, bytes) {
        Ok(()) => copy.display().to_string(),
        Err(e) => format!("(no copy: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl AsRef<Path> for TempDir {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir() -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "shield-state-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn entry(net: &str) -> StoredEntry {
        StoredEntry {
            list: ListKind::Block,
            net: net.parse().unwrap(),
            origin: StoredOrigin::Manual,
            created_at_unix: 1,
            expires_at_unix: None,
            offences: None,
            reason: Some("test".into()),
        }
    }

    #[test]
    fn missing_file_is_empty_state() {
        let d = dir();
        assert_eq!(State::load(&d).unwrap().entries.len(), 0);
    }

    #[test]
    fn save_then_load_round_trips() {
        let d = dir();
        let mut s = State::load(&d).unwrap();
        s.upsert(entry("198.18.0.0/24"));
        s.policies.push(PolicySpec::builtin_default());
        s.save(&d).unwrap();
        assert_eq!(State::load(&d).unwrap(), s);
        assert!(!d.join(format!(".{STATE_FILE}.tmp")).exists());
    }

    #[test]
    fn truncated_file_is_reported_and_kept() {
        let d = dir();
        let mut s = State::load(&d).unwrap();
        s.upsert(entry("198.18.0.0/24"));
        s.save(&d).unwrap();
        let full = std::fs::read(d.join(STATE_FILE)).unwrap();
        std::fs::write(d.join(STATE_FILE), &full[..full.len() / 2]).unwrap();
        let err = State::load(&d).unwrap_err().to_string();
        assert!(err.contains("is unreadable"), "{err}");
        let kept: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read(kept[0].path()).unwrap(), &full[..full.len() / 2]);
        // The original stays where it was.
        assert_eq!(std::fs::read(d.join(STATE_FILE)).unwrap(), &full[..full.len() / 2]);
    }

    #[test]
    fn upsert_replaces_and_expiry_removes() {
        let mut s = State::default();
        s.upsert(entry("198.18.0.0/24"));
        let mut e = entry("198.18.0.0/24");
        e.expires_at_unix = Some(100);
        s.upsert(e);
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.remove_expired(99), 0);
        assert_eq!(s.remove_expired(100), 1);
    }
}

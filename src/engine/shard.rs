//! `--shard K/N`: which keys one of N independent runs owns.
//!
//! Past one machine, a tree of 100M objects is audited by N copies of
//! vouch that the user's own scheduler runs (a Kubernetes Indexed Job, a
//! Slurm or AWS Batch array, a Nomad batch job, GNU parallel), each with its own index, and
//! `vouch merge` combines their reports. A key belongs to shard K when a
//! stable hash of its raw bytes, modulo N, is K. The hash must never
//! change silently between versions — two shards computed by different
//! builds must still partition the same keys — so it has a name and a
//! version ([`HASH_NAME`]) that every shard report carries and `merge`
//! checks.
//!
//! The hashed bytes are the key relative to ROOT (or to the remote
//! prefix) in `/`-separated form, exactly as stored: no case folding, no
//! Unicode normalisation, so the local file `a/b.jpg` and the object
//! `prefix/a/b.jpg` fall in the same shard on every machine.
//!
//! Hash shards come before key-range shards: they need no knowledge of
//! the key distribution (a range split of 100M keys needs a listing
//! first), they balance skewed trees (one huge directory), and a new key
//! never moves another key to another shard.
//!
//! This module is pure: `auto/N` is resolved from the scheduler's
//! variables by the caller, through [`auto_index`] and a lookup function.

use std::fmt;

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

/// The name and version of the shard hash, as reports carry it. Version 1:
/// the first 8 bytes of BLAKE3 of the key's bytes, read little-endian,
/// modulo N.
pub const HASH_NAME: &str = "blake3-64le/v1";

/// The scheduler variables `auto/N` reads the shard index from, in this
/// order, with the offset that makes each 0-based.
pub const AUTO_VARIABLES: [(&str, u64); 5] = [
    ("JOB_COMPLETION_INDEX", 0),      // Kubernetes Indexed Job
    ("SLURM_ARRAY_TASK_ID", 0),       // Slurm job array (--array=0-N-1)
    ("AWS_BATCH_JOB_ARRAY_INDEX", 0), // AWS Batch array job
    ("NOMAD_ALLOC_INDEX", 0),         // Nomad batch job of `count = N`
    ("PARALLEL_SEQ", 1),              // GNU parallel (1-based)
];

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// 0-based index.
    pub index: u64,
    pub count: u64,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The 64-bit shard hash of a key (see [`HASH_NAME`]).
pub fn key_hash(slash_key: &[u8]) -> u64 {
    let h = blake3::hash(slash_key);
    let b = h.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl Shard {
    /// True when the key (relative, `/`-separated bytes) belongs here.
    pub fn owns(&self, slash_key: &[u8]) -> bool {
        self.count <= 1 || key_hash(slash_key) % self.count == self.index
    }

    /// True when the stored key (components joined by NUL, see
    /// [`crate::model::paths`]) belongs here: hashed in its `/` form.
    pub fn owns_stored(&self, key: &[u8]) -> bool {
        if self.count <= 1 {
            return true;
        }
        if !key.contains(&crate::model::paths::SEP) {
            return self.owns(key);
        }
        self.owns(&crate::model::paths::slash_bytes(key))
    }

    /// What a shard report says about its shard.
    pub fn to_json(&self) -> Value {
        json!({ "index": self.index, "count": self.count, "hash": HASH_NAME })
    }

    /// Parses `K/N` (0-based K) or `auto/N`, where `auto` takes K from
    /// `auto` (resolved by the caller with [`auto_index`]).
    pub fn parse(spec: &str, auto: impl FnOnce() -> Result<u64>) -> Result<Shard> {
        let (k, n) = spec
            .split_once('/')
            .ok_or_else(|| anyhow!("--shard {spec:?}: expected K/N (e.g. 3/16) or auto/N"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| anyhow!("--shard {spec:?}: N must be a whole number"))?;
        if count == 0 {
            bail!("--shard {spec:?}: N must be at least 1");
        }
        let index = if k.trim() == "auto" {
            auto()?
        } else {
            k.trim()
                .parse()
                .map_err(|_| anyhow!("--shard {spec:?}: K must be a whole number or auto"))?
        };
        if index >= count {
            bail!("--shard {spec:?}: shard index {index} is not below N = {count} (K is 0-based)");
        }
        Ok(Shard { index, count })
    }
}

/// The shard index of `auto/N`, from the first of [`AUTO_VARIABLES`] that
/// `lookup` finds. Returns the index and the variable it came from.
pub fn auto_index(lookup: impl Fn(&str) -> Option<String>) -> Result<(u64, &'static str)> {
    for (var, offset) in AUTO_VARIABLES {
        if let Some(v) = lookup(var) {
            let n: u64 = v
                .trim()
                .parse()
                .map_err(|_| anyhow!("--shard auto: {var}={v:?} is not a whole number"))?;
            let k = n
                .checked_sub(offset)
                .ok_or_else(|| anyhow!("--shard auto: {var}={v:?} is below {offset}"))?;
            return Ok((k, var));
        }
    }
    let names: Vec<&str> = AUTO_VARIABLES.iter().map(|(v, _)| *v).collect();
    bail!(
        "--shard auto/N: none of {} is set; give the index as K/N",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pinned() {
        // Changing the function changes every shard assignment: it must
        // come with a new HASH_NAME version.
        let h = blake3::hash(b"a/b.jpg");
        assert_eq!(
            key_hash(b"a/b.jpg"),
            u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap())
        );
        // BLAKE3("") = af1349b9f5f9a1a6…
        assert_eq!(key_hash(b""), 0xa6a1_f9f5_b949_13af);
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_key() {
        for n in [1u64, 2, 3, 7, 16] {
            let shards: Vec<Shard> = (0..n).map(|index| Shard { index, count: n }).collect();
            let mut per = vec![0u64; n as usize];
            for i in 0..20_000u32 {
                let key = format!("dir{}/file-{i}.bin", i % 37);
                let owners: Vec<_> = shards.iter().filter(|s| s.owns(key.as_bytes())).collect();
                assert_eq!(owners.len(), 1, "{key} in {n} shards");
                per[owners[0].index as usize] += 1;
            }
            let mean = 20_000.0 / n as f64;
            for c in per {
                assert!((c as f64 - mean).abs() / mean < 0.1, "{c} vs {mean}");
            }
        }
    }

    #[test]
    fn stored_keys_hash_in_slash_form_without_normalisation() {
        let s = Shard {
            index: 0,
            count: 1 << 40,
        };
        let stored = b"a\0b.jpg";
        assert_eq!(s.owns_stored(stored), s.owns(b"a/b.jpg"));
        // Case and Unicode forms are different keys.
        assert_ne!(key_hash(b"A/b.jpg"), key_hash(b"a/b.jpg"));
        assert_ne!(key_hash("é".as_bytes()), key_hash("e\u{301}".as_bytes()));
    }

    #[test]
    fn parse_and_auto() {
        let none = || -> Result<u64> { unreachable!() };
        assert_eq!(
            Shard::parse("3/16", none).unwrap(),
            Shard {
                index: 3,
                count: 16
            }
        );
        for bad in ["16/16", "17/16", "1/0", "x/2", "3", "-1/4", "1/"] {
            assert!(Shard::parse(bad, || Ok(0)).is_err(), "{bad}");
        }
        let e = Shard::parse("16/16", none).unwrap_err().to_string();
        assert!(e.contains("not below N = 16"), "{e}");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            auto_index(env(&[("PARALLEL_SEQ", "1")])).unwrap(),
            (0, "PARALLEL_SEQ")
        );
        assert_eq!(
            auto_index(env(&[("PARALLEL_SEQ", "4"), ("JOB_COMPLETION_INDEX", "2")])).unwrap(),
            (2, "JOB_COMPLETION_INDEX")
        );
        assert!(auto_index(env(&[("PARALLEL_SEQ", "0")])).is_err());
        assert!(auto_index(env(&[("SLURM_ARRAY_TASK_ID", "x")])).is_err());
        let e = auto_index(env(&[])).unwrap_err().to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX"), "{e}");
        let s = Shard::parse("auto/4", || {
            auto_index(env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "3")])).map(|x| x.0)
        })
        .unwrap();
        assert_eq!(s.to_string(), "3/4");
        assert!(
            Shard::parse("auto/4", || {
                auto_index(env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "4")])).map(|x| x.0)
            })
            .is_err()
        );
    }
}

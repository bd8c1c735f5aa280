//! The rule of the audit: how one (file, object) pair whose sizes match is
//! settled. A pure function, so it is tested against a naive model.
//!
//! An object counts as verified only when its bytes were hashed in full at
//! its current fingerprint (this run or an earlier one), or, outside a
//! deep run, its single-part MD5 ETag equals the file's MD5 (`by_md5`, now
//! or cached). A deep run reads every object not read at its current
//! fingerprint. Anything else that merely looks right is `unverified`,
//! never a match.

use super::Mode;
use crate::model::{Entry, RemoteRow, etag_md5};

/// How one (file, object) pair is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Content proven equal without reading (cached read, or MD5 ETag).
    Verified {
        by_md5: bool,
    },
    /// Content known to differ: the object was read at its current ETag.
    Corrupt {
        remote_blake3: [u8; 32],
    },
    Unverified(&'static str),
    /// Read the object's bytes now.
    Read,
}

/// Decides a pair whose sizes match. Pure, so the rule is easy to test.
pub fn decide(local: &Entry, remote: &RemoteRow, mode: Mode, scrub_selected: bool) -> Decision {
    let Some(local_hash) = local.blake3 else {
        return Decision::Unverified("the local file has never been hashed");
    };
    if scrub_selected {
        return Decision::Read;
    }
    // A deep run reads: only a read proves for it, never an MD5 ETag.
    let deep = mode == Mode::Deep;
    if let Some(known) = remote.known_blake3() {
        let by_md5 = !remote.known_by_read();
        if known != local_hash {
            return Decision::Corrupt {
                remote_blake3: known,
            };
        }
        if !(deep && by_md5) {
            return Decision::Verified { by_md5 };
        }
    }
    let md5_etag = remote.etag.as_deref().and_then(etag_md5);
    if let (Some(etag_md5), Some(local_md5)) = (md5_etag, local.md5)
        && etag_md5 == local_md5
        && !deep
    {
        return Decision::Verified { by_md5: true };
    }
    match mode {
        Mode::Deep => Decision::Read,
        Mode::Quick | Mode::Scrub => {
            Decision::Unverified(if md5_etag.is_some() && local.md5.is_some() {
                "the ETag is not the file's MD5 (an encrypted or multipart upload?): not read, not proof of damage"
            } else {
                "content never read at this ETag"
            })
        }
    }
}

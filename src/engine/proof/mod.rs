//! Proving backup content without downloading it.
//!
//! Object stores keep checksums of what they accepted: S3 a CRC64NVME,
//! CRC32, CRC32C, SHA-1 or SHA-256 (whole-object or composite over the
//! parts) and MD5-based ETags; GCS a CRC32C and an MD5; Azure the
//! `Content-MD5` an uploader set. Comparing one of those with the same
//! checksum of the local file proves that the bytes the store accepted
//! equal the file, for the price of a `HEAD`, without the egress of a
//! read. It does not prove the bytes as they are now (only a read does:
//! `--mode deep`/`scrub`), and it is only as strong as its checksum.
//!
//! - [`digest`]: local checksums, all computed in one read pass;
//! - [`probe`]: the requests (signed by `object_store`) and their facts;
//! - [`ladder`]: the pure decision, proven / mismatch / undecided;
//! - [`prove`]: one object through the ladder, fetching what it asks for.

pub mod digest;
pub mod ladder;
pub mod probe;
pub mod record;

use digest::{DigestError, Digests, Layout, Want};
use ladder::{Facts, Next, Parts, Verdict};
use probe::{ProbeError, Prober, Target};

/// S3 allows at most 10,000 parts; asking for more sizes than that is a
/// sign of a confused store.
const MAX_PARTS: u64 = 10_000;

impl Digests {
    /// Adds `other`'s digests (of the same content) to these.
    pub fn merge(&mut self, other: Digests) {
        self.full.extend(other.full);
        self.parts.extend(other.parts);
    }

    /// What of `want` is not here yet.
    pub fn missing(&self, want: &Want) -> Want {
        Want {
            full: want
                .full
                .iter()
                .filter(|a| !self.full.contains_key(a))
                .copied()
                .collect(),
            parts: want
                .parts
                .iter()
                .filter(|k| !self.parts.contains_key(k))
                .cloned()
                .collect(),
        }
    }
}

/// The result of proving one object.
#[derive(Debug, Clone)]
pub struct Proof {
    pub verdict: Verdict,
    /// The store's facts as finally known (with any part sizes learned),
    /// to be kept for the next run; `None` when none could be had.
    pub facts: Option<Facts>,
    /// Local digests computed or reused (all of the same content).
    pub local: Digests,
    /// Local bytes read to compute digests.
    pub bytes_hashed: u64,
}

/// Runs one object through the ladder.
///
/// `facts`: what an earlier run learned about this exact object version,
/// if anything (no request is made then unless part sizes are missing).
/// `local`: cached digests of the file's content, whose `blake3` is the
/// manifest's. `read` computes more digests of the file in one pass; its
/// BLAKE3 must still be the manifest's, else the file changed since it was
/// scanned and nothing is decided.
pub async fn prove<R>(
    prober: &Prober,
    target: &Target<'_>,
    facts: Option<Facts>,
    mut local: Digests,
    read: R,
) -> Result<Proof, ProbeError>
where
    R: Fn(Want) -> futures::future::BoxFuture<'static, Result<Digests, DigestError>>,
{
    let mut bytes_hashed = 0u64;
    let expected = local.blake3;
    // An S3 ETag as listed that equals the file's MD5 (or its multipart
    // ETag) proves the content without a request; anything else asks.
    if facts.is_none()
        && prober.listed_etag_counts()
        && let Some(etag) = target.etag
        && let Some(want) = ladder::listing_want(target.size, etag)
    {
        let missing = local.missing(&want);
        let mut readable = true;
        if !missing.is_empty() {
            match read(missing).await {
                Ok(d) if d.blake3 == expected => {
                    bytes_hashed += d.size;
                    local.merge(d);
                }
                Ok(d) => bytes_hashed += d.size,
                Err(_) => readable = false,
            }
        }
        if readable && let Some(verdict) = ladder::listing_proof(target.size, etag, &local) {
            // No facts: the store was not asked (a later run with other
            // content asks it).
            return Ok(Proof {
                verdict,
                facts: None,
                local,
                bytes_hashed,
            });
        }
    }
    let mut facts = match facts {
        Some(f) => f,
        None => prober.head(target).await?,
    };
    let undecided = |why: String, facts: Facts, local: Digests, bytes_hashed| Proof {
        verdict: Verdict::Undecided(why),
        facts: Some(facts),
        local,
        bytes_hashed,
    };
    let mut want = Want::default();
    for _round in 0..8 {
        if !want.is_empty() {
            match read(want.clone()).await {
                Ok(d) if d.blake3 == expected => {
                    bytes_hashed += d.size;
                    local.merge(d);
                }
                Ok(d) => {
                    bytes_hashed += d.size;
                    return Ok(undecided(
                        "the local file changed since it was scanned".into(),
                        facts,
                        local,
                        bytes_hashed,
                    ));
                }
                Err(e) => {
                    return Ok(undecided(
                        format!("cannot read the local file: {e}"),
                        facts,
                        local,
                        bytes_hashed,
                    ));
                }
            }
        }
        want = Want::default();
        match ladder::next(&facts, &local) {
            Next::Done(verdict) => {
                return Ok(Proof {
                    verdict,
                    facts: Some(facts),
                    local,
                    bytes_hashed,
                });
            }
            Next::Compute(w) => want = local.missing(&w),
            Next::PartSizes { all: false } => {
                facts.parts = match prober.part(target, 1).await {
                    Ok((size, Some(count))) => Parts::First { count, first: size },
                    // No parts count: the store says it is one part.
                    Ok((size, None)) => Parts::All(Layout(vec![size])),
                    Err(ProbeError::Refused(e)) => {
                        Parts::Unavailable(format!("the part sizes cannot be had ({e})"))
                    }
                    Err(e) => return Err(e),
                };
            }
            Next::PartSizes { all: true } => {
                let count = match &facts.parts {
                    Parts::First { count, .. } => *count,
                    Parts::Unknown { count: Some(n) } => *n,
                    _ => 0,
                };
                facts.parts = if count == 0 || count > MAX_PARTS {
                    Parts::Unavailable(format!("{count} parts: their sizes are not asked for"))
                } else {
                    match prober.all_parts(target, count).await {
                        Ok(sizes) => Parts::All(Layout(sizes)),
                        Err(ProbeError::Refused(e)) => {
                            Parts::Unavailable(format!("the part sizes cannot be had ({e})"))
                        }
                        Err(e) => return Err(e),
                    }
                };
            }
        }
    }
    Ok(undecided(
        "the ladder did not settle".into(),
        facts,
        local,
        bytes_hashed,
    ))
}

/// Computes `want` over the file at `path`, off the async threads.
pub fn read_file(
    path: std::path::PathBuf,
) -> impl Fn(Want) -> futures::future::BoxFuture<'static, Result<Digests, DigestError>> {
    move |want| {
        let path = path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let f = crate::engine::longpath::open(&path, libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .map_err(DigestError::Io)?;
                digest::compute(f, &want)
            })
            .await
            .map_err(|e| DigestError::Io(std::io::Error::other(e.to_string())))?
        })
    }
}

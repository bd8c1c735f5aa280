//! The verification ladder: what an object store says about an object
//! (its listing and HEAD facts) against the same checksums of the local
//! file, decided without reading the object.
//!
//! Pure: no I/O. [`next`] is called with the facts gathered so far and the
//! local digests computed so far, and answers either with a verdict or
//! with what it still needs: more local digests, or the sizes of the
//! object's parts. The caller fetches that and calls again.
//!
//! The rules that keep it honest:
//! - a match under any plausible reading of a stored value is a proof
//!   (a checksum of other content, or of other part boundaries, matches
//!   only by chance: 2^-32 for a CRC32, far less for the others);
//! - a mismatch is `corrupt` only when the reading is certain (the
//!   checksum type is known or the only one possible, the part sizes
//!   were observed rather than assumed, the ETag is known to be an MD5)
//!   **and** no other evidence the store holds matches. Evidence that
//!   disagrees with itself is `unverified`, never `corrupt`;
//! - a method that cannot decide (an unknown part layout, an ETag that
//!   may not be an MD5) never gives `corrupt`, only `unverified`.

use super::digest::{Algo, Digests, Layout, Want, b64};

/// How a store keeps a checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// Over the whole content (any upload, or a multipart upload with
    /// `ChecksumType=FULL_OBJECT`; GCS and Azure values).
    FullObject,
    /// `algo(part checksums concatenated)` of a multipart upload.
    Composite,
    /// The store did not say (moto omits `x-amz-checksum-type`).
    Unknown,
}

/// A checksum value the store keeps for the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub algo: Algo,
    /// The decoded digest.
    pub value: Vec<u8>,
    pub kind: ChecksumType,
    /// The `-N` of a composite value, when it carries one.
    pub parts: Option<u64>,
}

impl Stored {
    /// Parses a value as S3 prints it: base64, optionally `-N`.
    pub fn parse(algo: Algo, value: &str, kind: ChecksumType) -> Option<Stored> {
        let (b, parts) = match value.trim().rsplit_once('-') {
            Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                (b, Some(n.parse().ok()?))
            }
            _ => (value.trim(), None),
        };
        let decoded = super::digest::unb64(b)?;
        if decoded.len() != algo.digest_len() {
            return None;
        }
        let kind = match (kind, parts) {
            (ChecksumType::Unknown, Some(_)) => ChecksumType::Composite,
            (k, _) => k,
        };
        Some(Stored {
            algo,
            value: decoded,
            kind,
            parts,
        })
    }

    /// The value as the store prints it.
    pub fn display(&self) -> String {
        match self.parts {
            Some(n) => format!("{}-{n}", b64(&self.value)),
            None => b64(&self.value),
        }
    }
}

/// What is known about the sizes of an object's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parts {
    /// Not a multipart object: one part, the whole content.
    Single,
    /// Multipart (`count` parts when known), sizes not asked yet.
    Unknown { count: Option<u64> },
    /// `count` parts, the first `first` bytes long (`HEAD ?partNumber=1`):
    /// equal parts are assumed until a mismatch asks for every size.
    First { count: u64, first: u64 },
    /// Every part's size, as the store reported them.
    All(Layout),
    /// The sizes could not be had (refused, too many parts, ...).
    Unavailable(String),
}

/// What the store said about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub size: u64,
    /// The ETag without quotes.
    pub etag: Option<String>,
    pub stored: Vec<Stored>,
    /// Whether the ETag is an MD5 of the content (single part) or of the
    /// part MD5s (multipart): `Some(true)` when a HEAD showed no SSE-KMS
    /// or SSE-C on S3, `Some(false)` when it showed one or the store's
    /// ETags are opaque (GCS, Azure), `None` when not asked.
    pub etag_is_md5: Option<bool>,
    pub parts: Parts,
    /// Checksums the store keeps in algorithms vouch does not compute
    /// (S3's `x-amz-checksum-xxhash64`, `-xxhash3`, `-xxhash128`): named
    /// when nothing else decides, never a match nor a mismatch.
    pub unknown: Vec<String>,
}

/// How content was proven (or disproven).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// A stored whole-content checksum: `crc64nvme`, `sha256`, `md5`, ...
    Full(Algo),
    /// A stored composite checksum: `crc32-composite`, ...
    Composite(Algo),
    /// A single-part ETag that is the content's MD5.
    Md5Etag,
    /// A multipart ETag rebuilt from the part sizes.
    MultipartEtag,
}

impl Method {
    pub fn name(&self) -> String {
        match self {
            Method::Full(a) => a.name().to_string(),
            Method::Composite(a) => format!("{}-composite", a.name()),
            Method::Md5Etag => "md5-etag".into(),
            Method::MultipartEtag => "multipart-etag".into(),
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        match name {
            "md5-etag" => Some(Method::Md5Etag),
            "multipart-etag" => Some(Method::MultipartEtag),
            _ => match name.strip_suffix("-composite") {
                Some(a) => Algo::from_name(a).map(Method::Composite),
                None => Algo::from_name(name).map(Method::Full),
            },
        }
    }
}

/// The outcome for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The store's value equals the local file's.
    Proven {
        method: Method,
        /// The part layout used, for per-part methods.
        layout: Option<Layout>,
        /// The store's value, as it prints it.
        remote: String,
    },
    /// Certain evidence, and all of it, says the content differs.
    Mismatch {
        method: Method,
        layout: Option<Layout>,
        local: String,
        remote: String,
    },
    /// Nothing decided: not proof of damage.
    Undecided(String),
}

/// What [`next`] needs before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Compute these local digests (and call again).
    Compute(Want),
    /// Learn the part sizes: part 1 only (`all == false`) or every part.
    PartSizes {
        all: bool,
    },
    Done(Verdict),
}

/// One piece of evidence and the readings it allows.
struct Evidence {
    readings: Vec<Reading>,
    /// A mismatch of every reading may count as damage.
    decisive: bool,
    remote: String,
}

#[derive(Clone)]
struct Reading {
    method: Method,
    /// For per-part methods: the layout, whether it was observed, or
    /// what is needed to get one.
    layout: Option<Result<(Layout, bool), Next>>,
    expected: Vec<u8>,
    algo: Algo,
}

impl Reading {
    fn want(&self) -> Option<Want> {
        match &self.layout {
            None => Some(Want {
                full: vec![self.algo],
                parts: vec![],
            }),
            Some(Ok((l, _))) => Some(Want {
                full: vec![],
                parts: vec![(l.clone(), self.algo)],
            }),
            Some(Err(_)) => None,
        }
    }

    fn local(&self, d: &Digests) -> Option<Vec<u8>> {
        match &self.layout {
            None => d.full.get(&self.algo).cloned(),
            Some(Ok((l, _))) => d.composite(l, self.algo),
            Some(Err(_)) => None,
        }
    }

    fn local_display(&self, v: &[u8]) -> String {
        match (&self.method, &self.layout) {
            (Method::Md5Etag, _) => hex::encode(v),
            (Method::MultipartEtag, Some(Ok((l, _)))) => {
                format!("{}-{}", hex::encode(v), l.count())
            }
            (Method::Composite(_), Some(Ok((l, _)))) => format!("{}-{}", b64(v), l.count()),
            _ => b64(v),
        }
    }
}

/// The part layout per-part methods use, or what to ask for.
fn layout(facts: &Facts, count_hint: Option<u64>) -> Result<(Layout, bool), Next> {
    match &facts.parts {
        Parts::Single => Ok((Layout(vec![facts.size]), true)),
        Parts::All(l) => Ok((l.clone(), true)),
        Parts::First { count, first } => {
            let count = count_hint.unwrap_or(*count);
            match Layout::equal(facts.size, *first, count) {
                Some(l) => Ok((l, false)),
                None => Err(Next::PartSizes { all: true }),
            }
        }
        Parts::Unknown { .. } => Err(Next::PartSizes { all: false }),
        Parts::Unavailable(why) => Err(Next::Done(Verdict::Undecided(why.clone()))),
    }
}

fn multipart_count(facts: &Facts) -> Option<u64> {
    let from_etag = facts
        .etag
        .as_deref()
        .and_then(|e| e.rsplit_once('-'))
        .and_then(|(_, n)| n.parse::<u64>().ok());
    match &facts.parts {
        Parts::Single => Some(1),
        Parts::All(l) => Some(l.count() as u64),
        Parts::First { count, .. } => Some(*count),
        Parts::Unknown { count } => count.or(from_etag),
        Parts::Unavailable(_) => from_etag,
    }
}

/// The evidence, in ladder order: stored whole-content checksums (the
/// strongest first), then stored composite or untyped ones, then the
/// single-part MD5 ETag, then the multipart ETag.
fn evidence(facts: &Facts) -> Vec<Evidence> {
    let mut out = Vec::new();
    let mut stored: Vec<&Stored> = facts.stored.iter().collect();
    stored.sort_by_key(|s| {
        (
            s.kind != ChecksumType::FullObject,
            std::cmp::Reverse(s.algo.strength()),
        )
    });
    let count = multipart_count(facts);
    let multipart = count.is_some_and(|n| n > 1) || !matches!(facts.parts, Parts::Single);
    for s in stored {
        let full = Reading {
            method: Method::Full(s.algo),
            layout: None,
            expected: s.value.clone(),
            algo: s.algo,
        };
        let composite = |hint: Option<u64>| Reading {
            method: Method::Composite(s.algo),
            // A composite of a single-part object is over one part.
            layout: Some(if multipart {
                layout(facts, hint)
            } else {
                Ok((Layout(vec![facts.size]), true))
            }),
            expected: s.value.clone(),
            algo: s.algo,
        };
        let readings = match s.kind {
            ChecksumType::FullObject => vec![full],
            ChecksumType::Composite => vec![composite(s.parts)],
            // Untyped: either reading is possible (moto keeps the
            // composite of a copied multipart object under a single-part
            // ETag, without its `-N`).
            // The likelier reading first: it is the one a mismatch names.
            ChecksumType::Unknown if multipart => vec![composite(None), full],
            ChecksumType::Unknown => vec![full, composite(None)],
        };
        out.push(Evidence {
            readings,
            // An untyped value on a single-part object may still be a
            // composite over parts nobody can name (moto keeps a copied
            // multipart object's composite that way): its mismatch alone
            // proves nothing. On a multipart object both readings are
            // computed over the observed part sizes.
            decisive: s.kind != ChecksumType::Unknown || multipart,
            remote: s.display(),
        });
    }
    if facts.etag_is_md5 != Some(false)
        && let Some(etag) = facts.etag.as_deref()
    {
        let decisive = facts.etag_is_md5 == Some(true);
        if let Some(md5) = single_md5(etag) {
            out.push(Evidence {
                readings: vec![Reading {
                    method: Method::Md5Etag,
                    layout: None,
                    expected: md5.to_vec(),
                    algo: Algo::Md5,
                }],
                decisive,
                remote: etag.to_string(),
            });
        } else if let Some((md5, n)) = multipart_md5(etag) {
            out.push(Evidence {
                readings: vec![Reading {
                    method: Method::MultipartEtag,
                    layout: Some(layout(facts, Some(n))),
                    expected: md5.to_vec(),
                    algo: Algo::Md5,
                }],
                decisive,
                remote: etag.to_string(),
            });
        }
    }
    out
}

/// The MD5 of a single-part ETag (32 hex digits).
pub fn single_md5(etag: &str) -> Option<[u8; 16]> {
    crate::model::etag_md5(etag)
}

/// The hash and part count of a multipart ETag (`<32 hex>-N`).
pub fn multipart_md5(etag: &str) -> Option<([u8; 16], u64)> {
    let (h, n) = etag.trim_matches('"').split_once('-')?;
    let n: u64 = n.parse().ok()?;
    if n == 0 {
        return None;
    }
    Some((single_md5(h)?, n))
}

/// The digests every first reading of the ladder needs: computed in one
/// pass before the first call to [`next`], so that the common case (the
/// first evidence matches) reads the file once.
pub fn first_want(facts: &Facts) -> Want {
    let mut want = Want::default();
    if let Some(e) = evidence(facts).first() {
        for r in &e.readings {
            if let Some(w) = r.want() {
                want.merge(&w);
            }
        }
    }
    want
}

/// One step of the ladder: a verdict, or what is still needed.
pub fn next(facts: &Facts, local: &Digests) -> Next {
    let all = evidence(facts);
    if all.is_empty() {
        return Next::Done(Verdict::Undecided(if facts.unknown.is_empty() {
            "the store keeps no checksum for this object and its ETag is not an MD5".into()
        } else {
            format!(
                "the store keeps only a checksum vouch does not compute ({}) and its ETag is not an MD5",
                facts.unknown.join(", ")
            )
        }));
    }
    // The first evidence that did not match, and whether any mismatch
    // was certain.
    let mut mismatch: Option<Verdict> = None;
    let mut certain: Option<Verdict> = None;
    let mut undecided: Vec<String> = Vec::new();
    for e in &all {
        // Every reading's local value, or the first thing missing.
        let mut missing = Want::default();
        let mut needs: Option<Next> = None;
        for r in &e.readings {
            match &r.layout {
                Some(Err(next)) => {
                    if needs.is_none() {
                        needs = Some(next.clone());
                    }
                }
                _ => {
                    if r.local(local).is_none()
                        && let Some(w) = r.want()
                    {
                        missing.merge(&w);
                    }
                }
            }
        }
        // Part sizes first, so that one pass computes every reading.
        if let Some(n @ Next::PartSizes { .. }) = &needs {
            return n.clone();
        }
        if !missing.is_empty() {
            return Next::Compute(missing);
        }
        // Any reading that matches proves the content, unless certain
        // evidence before it said otherwise.
        for r in &e.readings {
            if let Some(v) = r.local(local)
                && v == r.expected
            {
                if let Some(c) = &certain {
                    return Next::Done(Verdict::Undecided(format!(
                        "the store's checksums disagree: its {} matches the file, {}; read it (--mode deep) to know",
                        r.method.name(),
                        describe(c)
                    )));
                }
                return Next::Done(Verdict::Proven {
                    method: r.method.clone(),
                    layout: r.layout.clone().and_then(Result::ok).map(|(l, _)| l),
                    remote: e.remote.clone(),
                });
            }
        }
        // No reading matched. A reading without its layout may still:
        // ask for the sizes (or give up on this evidence).
        if let Some(n) = needs {
            match n {
                Next::Done(Verdict::Undecided(why)) => {
                    undecided.push(why);
                    continue;
                }
                other => return other,
            }
        }
        // A reading over assumed part sizes proves nothing by failing:
        // ask for every part's size before calling it a mismatch.
        let assumed = e
            .readings
            .iter()
            .any(|r| matches!(&r.layout, Some(Ok((_, false)))));
        if assumed {
            return Next::PartSizes { all: true };
        }
        let first = &e.readings[0];
        let local_value = first.local(local).expect("computed above");
        let this = Verdict::Mismatch {
            method: first.method.clone(),
            layout: first.layout.clone().and_then(Result::ok).map(|(l, _)| l),
            local: first.local_display(&local_value),
            remote: e.remote.clone(),
        };
        if e.decisive && certain.is_none() {
            certain = Some(this.clone());
        }
        if mismatch.is_none() {
            mismatch = Some(this);
        }
        if !e.decisive {
            undecided.push(match first.method {
                Method::Md5Etag | Method::MultipartEtag => {
                    "the ETag is not the file's MD5 (it may not be an MD5: an encrypted upload?)"
                        .to_string()
                }
                _ => format!(
                    "the store's {} (of unstated type) does not match the file",
                    first.method.name()
                ),
            });
        }
    }
    // Every evidence failed; a mismatch needs at least one certain one.
    // The strongest evidence is the one named.
    Next::Done(match (certain, mismatch) {
        (Some(_), Some(m)) => m,
        _ => {
            if !facts.unknown.is_empty() {
                undecided.push(format!(
                    "its {} checksum is not computed by vouch",
                    facts.unknown.join(", ")
                ));
            }
            Verdict::Undecided(undecided.join("; "))
        }
    })
}

/// Guessed multipart layouts tried against a listed ETag (each costs one
/// MD5 of the file).
const LISTING_CANDIDATES: usize = 2;

/// The local digests that could prove an object from its listed ETag
/// alone, before any request: the file's MD5 for a single-part ETag, the
/// part MD5s over the usual equal-part layouts for a multipart one.
pub fn listing_want(size: u64, etag: &str) -> Option<Want> {
    if single_md5(etag).is_some() {
        return Some(Want {
            full: vec![Algo::Md5],
            parts: vec![],
        });
    }
    let (_, n) = multipart_md5(etag)?;
    let parts: Vec<(Layout, Algo)> = Layout::candidates(size, n, LISTING_CANDIDATES)
        .into_iter()
        .map(|l| (l, Algo::Md5))
        .collect();
    (!parts.is_empty()).then_some(Want {
        full: vec![],
        parts,
    })
}

/// A proof from the listed ETag alone, when it **equals** the MD5 (or
/// the multipart ETag over a guessed layout) of the local file. Whatever
/// the store's ETags are (an MD5, or a random value under SSE-KMS/SSE-C),
/// one equal to the content's MD5 is no accident: a random value or an
/// MD5 of other bytes matches with probability 2^-128, and a wrong part
/// layout cannot match. `None` when it does not match: that proves
/// nothing (an encrypted upload, unusual parts) and the store must be
/// asked — never `corrupt` from the listing.
pub fn listing_proof(size: u64, etag: &str, local: &Digests) -> Option<Verdict> {
    let etag = etag.trim().trim_matches('"');
    if let Some(md5) = single_md5(etag) {
        return (local.full.get(&Algo::Md5).map(Vec::as_slice) == Some(&md5[..])).then(|| {
            Verdict::Proven {
                method: Method::Md5Etag,
                layout: None,
                remote: etag.to_string(),
            }
        });
    }
    let (_, n) = multipart_md5(etag)?;
    Layout::candidates(size, n, LISTING_CANDIDATES)
        .into_iter()
        .find(|l| {
            local
                .multipart_etag(l)
                .is_some_and(|e| e.eq_ignore_ascii_case(etag))
        })
        .map(|l| Verdict::Proven {
            method: Method::MultipartEtag,
            layout: Some(l),
            remote: etag.to_string(),
        })
}

fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Mismatch {
            method,
            local,
            remote,
            ..
        } => format!(
            "its {} does not (store {remote}, file {local})",
            method.name()
        ),
        Verdict::Proven { method, .. } => format!("its {} matches", method.name()),
        Verdict::Undecided(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::digest::{Layout, compute};
    use super::*;

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
            .collect()
    }

    /// Runs the ladder to the end the way the audit does, with `parts`
    /// standing in for the store's answers to part-size requests.
    fn run(mut facts: Facts, content: &[u8], all_parts: Option<Layout>) -> (Verdict, Vec<Next>) {
        let mut local = compute(content, &first_want(&facts)).unwrap();
        let mut steps = Vec::new();
        for _ in 0..10 {
            let n = next(&facts, &local);
            steps.push(n.clone());
            match n {
                Next::Done(v) => return (v, steps),
                Next::Compute(mut w) => {
                    w.merge(&Want {
                        full: local.full.keys().copied().collect(),
                        parts: local.parts.keys().cloned().collect(),
                    });
                    local = compute(content, &w).unwrap();
                }
                Next::PartSizes { all: false } => {
                    let l = all_parts.clone().unwrap();
                    facts.parts = Parts::First {
                        count: l.count() as u64,
                        first: l.0[0],
                    };
                }
                Next::PartSizes { all: true } => {
                    facts.parts = Parts::All(all_parts.clone().unwrap());
                }
            }
        }
        panic!("the ladder did not finish: {steps:?}");
    }

    fn stored(algo: Algo, value: Vec<u8>, kind: ChecksumType, parts: Option<u64>) -> Stored {
        Stored {
            algo,
            value,
            kind,
            parts,
        }
    }

    fn etag_of(content: &[u8], layout: &Layout) -> String {
        let mut cat = Vec::new();
        let mut off = 0usize;
        for p in &layout.0 {
            cat.extend(Algo::Md5.digest(&content[off..off + *p as usize]));
            off += *p as usize;
        }
        format!("{}-{}", hex::encode(Algo::Md5.digest(&cat)), layout.count())
    }

    #[test]
    fn a_full_object_checksum_proves_and_disproves() {
        let good = data(10_000, 0);
        let bad = data(10_000, 1);
        let facts = Facts {
            size: 10_000,
            etag: Some(hex::encode(Algo::Md5.digest(&good))),
            stored: vec![stored(
                Algo::Crc64Nvme,
                Algo::Crc64Nvme.digest(&good),
                ChecksumType::FullObject,
                None,
            )],
            etag_is_md5: Some(true),
            parts: Parts::Single,
            unknown: vec![],
        };
        let (v, steps) = run(facts.clone(), &good, None);
        assert!(
            matches!(
                v,
                Verdict::Proven {
                    method: Method::Full(Algo::Crc64Nvme),
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(steps.len(), 1, "one pass, no request: {steps:?}");
        // Other content: the CRC and the ETag both disagree.
        let (v, _) = run(facts, &bad, None);
        match v {
            Verdict::Mismatch {
                method,
                local,
                remote,
                ..
            } => {
                assert_eq!(method, Method::Full(Algo::Crc64Nvme));
                assert_eq!(local, b64(&Algo::Crc64Nvme.digest(&bad)));
                assert_eq!(remote, b64(&Algo::Crc64Nvme.digest(&good)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn evidence_that_disagrees_is_undecided() {
        // A wrong stored SHA-256 (as moto keeps a bad client value) while
        // the MD5 ETag matches: not corrupt, not proven.
        let good = data(5_000, 0);
        let mut wrong = Algo::Sha256.digest(&good);
        wrong[0] ^= 1;
        let facts = Facts {
            size: 5_000,
            etag: Some(hex::encode(Algo::Md5.digest(&good))),
            stored: vec![stored(Algo::Sha256, wrong, ChecksumType::FullObject, None)],
            etag_is_md5: Some(true),
            parts: Parts::Single,
            unknown: vec![],
        };
        let (v, _) = run(facts, &good, None);
        match v {
            Verdict::Undecided(why) => assert!(why.contains("disagree"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn composite_checksums_use_the_part_sizes() {
        let content = data(20_000, 0);
        let layout = Layout(vec![8_000, 8_000, 4_000]);
        let parts: Vec<Vec<u8>> = content
            .chunks(8_000)
            .map(|c| Algo::Crc32.digest(c))
            .collect();
        let value = super::super::digest::composite_of(Algo::Crc32, &parts);
        let facts = Facts {
            size: 20_000,
            etag: Some(etag_of(&content, &layout)),
            stored: vec![stored(
                Algo::Crc32,
                value.clone(),
                ChecksumType::Composite,
                Some(3),
            )],
            etag_is_md5: Some(true),
            parts: Parts::Unknown { count: Some(3) },
            unknown: vec![],
        };
        let (v, steps) = run(facts.clone(), &content, Some(layout.clone()));
        assert_eq!(
            v,
            Verdict::Proven {
                method: Method::Composite(Algo::Crc32),
                layout: Some(layout.clone()),
                remote: format!("{}-3", b64(&value)),
            }
        );
        assert!(steps.contains(&Next::PartSizes { all: false }), "{steps:?}");
        assert!(!steps.contains(&Next::PartSizes { all: true }), "{steps:?}");

        // Other content of the same size: after learning every part's
        // size, both the composite and the multipart ETag disagree.
        let other = data(20_000, 7);
        let (v, steps) = run(facts, &other, Some(layout.clone()));
        assert!(
            matches!(
                v,
                Verdict::Mismatch {
                    method: Method::Composite(Algo::Crc32),
                    ..
                }
            ),
            "{v:?}"
        );
        assert!(steps.contains(&Next::PartSizes { all: true }), "{steps:?}");
    }

    #[test]
    fn unequal_parts_are_learned_before_a_mismatch() {
        // Parts of 8000, 9000, 3000: assuming equal parts from part 1
        // gives 8000,8000,4000 and fails; every size is then asked for and
        // the ETag matches.
        let content = data(20_000, 3);
        let layout = Layout(vec![8_000, 9_000, 3_000]);
        let facts = Facts {
            size: 20_000,
            etag: Some(etag_of(&content, &layout)),
            stored: vec![],
            etag_is_md5: Some(true),
            parts: Parts::Unknown { count: Some(3) },
            unknown: vec![],
        };
        let (v, steps) = run(facts, &content, Some(layout.clone()));
        assert_eq!(
            v,
            Verdict::Proven {
                method: Method::MultipartEtag,
                layout: Some(layout),
                remote: etag_of(&content, &Layout(vec![8_000, 9_000, 3_000])),
            }
        );
        assert!(steps.contains(&Next::PartSizes { all: true }), "{steps:?}");
    }

    #[test]
    fn an_etag_that_may_not_be_an_md5_never_gives_corrupt() {
        let content = data(3_000, 0);
        let other = data(3_000, 9);
        for is_md5 in [None, Some(false)] {
            let facts = Facts {
                size: 3_000,
                etag: Some(hex::encode(Algo::Md5.digest(&other))),
                stored: vec![],
                etag_is_md5: is_md5,
                parts: Parts::Single,
                unknown: vec![],
            };
            let (v, _) = run(facts, &content, None);
            assert!(matches!(v, Verdict::Undecided(_)), "{is_md5:?}: {v:?}");
        }
        // With the HEAD showing no SSE-KMS/SSE-C, it is the MD5.
        let facts = Facts {
            size: 3_000,
            etag: Some(hex::encode(Algo::Md5.digest(&other))),
            stored: vec![],
            etag_is_md5: Some(true),
            parts: Parts::Single,
            unknown: vec![],
        };
        assert!(matches!(
            run(facts, &content, None).0,
            Verdict::Mismatch {
                method: Method::Md5Etag,
                ..
            }
        ));
    }

    #[test]
    fn untyped_checksums_are_read_both_ways() {
        // moto's copy of a multipart object: a single-part ETag, and the
        // composite CRC32 of one part without `-1` or a type.
        let content = data(4_000, 0);
        let one = super::super::digest::composite_of(Algo::Crc32, &[Algo::Crc32.digest(&content)]);
        let facts = Facts {
            size: 4_000,
            etag: Some(hex::encode(Algo::Md5.digest(&content))),
            stored: vec![stored(Algo::Crc32, one, ChecksumType::Unknown, None)],
            etag_is_md5: Some(true),
            parts: Parts::Single,
            unknown: vec![],
        };
        let (v, _) = run(facts, &content, None);
        assert!(
            matches!(
                v,
                Verdict::Proven {
                    method: Method::Composite(Algo::Crc32),
                    ..
                }
            ),
            "{v:?}"
        );
    }

    #[test]
    fn no_evidence_and_unavailable_parts_are_undecided() {
        let content = data(100, 0);
        let facts = Facts {
            size: 100,
            etag: Some("0x8DBF00D".into()),
            stored: vec![],
            etag_is_md5: Some(false),
            parts: Parts::Single,
            unknown: vec![],
        };
        assert!(matches!(
            run(facts, &content, None).0,
            Verdict::Undecided(_)
        ));
        let facts = Facts {
            size: 100,
            etag: Some(format!("{}-2", "0".repeat(32))),
            stored: vec![],
            etag_is_md5: Some(true),
            parts: Parts::Unavailable("part sizes refused".into()),
            unknown: vec![],
        };
        assert_eq!(
            run(facts, &content, None).0,
            Verdict::Undecided("part sizes refused".into())
        );
    }

    #[test]
    fn stored_values_parse_as_s3_prints_them() {
        let s = Stored::parse(Algo::Crc32, "8kciCA==-3", ChecksumType::Unknown).unwrap();
        assert_eq!((s.kind, s.parts), (ChecksumType::Composite, Some(3)));
        assert_eq!(s.display(), "8kciCA==-3");
        let s = Stored::parse(Algo::Crc64Nvme, "f0YiOm8nVsQ=", ChecksumType::FullObject).unwrap();
        assert_eq!(s.value.len(), 8);
        assert!(Stored::parse(Algo::Crc32, "f0YiOm8nVsQ=", ChecksumType::Unknown).is_none());
        assert!(Stored::parse(Algo::Sha256, "not base64!", ChecksumType::Unknown).is_none());
        for m in [
            Method::Full(Algo::Crc64Nvme),
            Method::Composite(Algo::Crc32c),
            Method::Md5Etag,
            Method::MultipartEtag,
        ] {
            assert_eq!(Method::from_name(&m.name()), Some(m));
        }
        assert_eq!(
            multipart_md5("\"f541f6a3f4378afa141cbca85105783e-3\"")
                .unwrap()
                .1,
            3
        );
        assert!(multipart_md5("f541f6a3f4378afa141cbca85105783e").is_none());
    }

    #[test]
    fn a_listed_etag_proves_only_by_equality() {
        // Single part: the ETag equal to the file's MD5 proves; another
        // value (an SSE-KMS ETag, other content) proves nothing either way.
        let d = data(20_000, 1);
        let md5 = hex::encode(Algo::Md5.digest(&d));
        let want = listing_want(20_000, &md5).unwrap();
        assert_eq!(want.full, vec![Algo::Md5]);
        let local = compute(&d[..], &want).unwrap();
        let quoted = format!("\"{}\"", md5.to_uppercase());
        assert!(matches!(
            listing_proof(20_000, &quoted, &local),
            Some(Verdict::Proven {
                method: Method::Md5Etag,
                ..
            })
        ));
        let other = hex::encode(Algo::Md5.digest(&data(20_000, 2)));
        assert_eq!(listing_proof(20_000, &other, &local), None);
        // Multipart: the ETag of 16 KiB parts is found among the usual
        // part sizes; the same ETag with another part count is not.
        let size = 50_000u64;
        let d = data(size as usize, 3);
        let real = Layout::equal(size, 16 << 10, 4).unwrap();
        let etag = etag_of(&d, &real);
        let want = listing_want(size, &etag).unwrap();
        assert!(want.parts.contains(&(real.clone(), Algo::Md5)), "{want:?}");
        let local = compute(&d[..], &want).unwrap();
        assert_eq!(
            listing_proof(size, &etag, &local),
            Some(Verdict::Proven {
                method: Method::MultipartEtag,
                layout: Some(real.clone()),
                remote: etag.clone(),
            })
        );
        // 10 KiB parts, not a usual size: no proof from the listing (a
        // HEAD then learns the sizes), and never a mismatch.
        let odd = Layout::equal(size, 10_000, 5).unwrap();
        assert_eq!(listing_want(size, &etag_of(&d, &odd)), None);
        // 12,500-byte parts: 16 KiB parts would fit 4 parts too, and are
        // tried, and do not match.
        let odd = Layout::equal(size, 12_500, 4).unwrap();
        let etag = etag_of(&d, &odd);
        let want = listing_want(size, &etag).unwrap();
        assert!(!want.parts.is_empty());
        let local = compute(&d[..], &want).unwrap();
        assert_eq!(listing_proof(size, &etag, &local), None);
        // Opaque ETags ask for nothing.
        assert_eq!(listing_want(size, "0x8DBF0123"), None);
        assert_eq!(listing_want(size, "CKih16GjycICEAE="), None);
    }

    #[test]
    fn candidate_layouts_fit_and_put_usual_sizes_first() {
        const MIB: u64 = 1 << 20;
        // 100 MiB + 1 in 13 parts: 8 MiB parts.
        let c = Layout::candidates(100 * MIB + 1, 13, 2);
        assert_eq!(c[0], Layout::equal(100 * MIB + 1, 8 * MIB, 13).unwrap());
        for l in &c {
            assert_eq!(l.total(), 100 * MIB + 1);
            assert_eq!(l.count(), 13);
        }
        // 2 parts of a 1 GiB object: many sizes fit, at most 2 are tried.
        assert!(Layout::candidates(1 << 30, 2, 2).len() <= 2);
        assert!(Layout::candidates(10, 20, 2).is_empty());
    }

    #[test]
    fn an_uncomputed_algorithm_is_named_not_judged() {
        let facts = Facts {
            size: 5,
            etag: Some("CKih16GjycICEAE=".into()),
            stored: vec![],
            etag_is_md5: Some(false),
            parts: Parts::Single,
            unknown: vec!["xxhash3".into()],
        };
        let (v, _) = run(facts, b"hello", None);
        match v {
            Verdict::Undecided(why) => assert!(why.contains("xxhash3"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

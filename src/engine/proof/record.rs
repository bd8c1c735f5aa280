//! How proofs and digests are kept in the index: the store's facts as
//! JSON (so a later run asks nothing about an unchanged object version),
//! and each local digest as a (spec, value) pair keyed by the content's
//! BLAKE3 (`full:crc64nvme`, `parts:md5:8388608x11+1048576`, ...).

use serde_json::{Value, json};

use super::digest::{Algo, Digests, Layout};
use super::ladder::{ChecksumType, Facts, Parts, Stored};

pub fn facts_to_json(f: &Facts) -> String {
    let stored: Vec<Value> = f
        .stored
        .iter()
        .map(|s| {
            json!({
                "algo": s.algo.name(),
                "value": super::digest::b64(&s.value),
                "type": match s.kind {
                    ChecksumType::FullObject => "full",
                    ChecksumType::Composite => "composite",
                    ChecksumType::Unknown => "unknown",
                },
                "parts": s.parts,
            })
        })
        .collect();
    let parts = match &f.parts {
        Parts::Single => json!({"single": true}),
        Parts::Unknown { count } => json!({"count": count}),
        Parts::First { count, first } => json!({"count": count, "first": first}),
        Parts::All(l) => json!({"all": l.describe()}),
        Parts::Unavailable(why) => json!({"unavailable": why}),
    };
    json!({
        "size": f.size,
        "etag": f.etag,
        "stored": stored,
        "etag_is_md5": f.etag_is_md5,
        "unknown": f.unknown,
        "parts": parts,
    })
    .to_string()
}

/// The facts kept by [`facts_to_json`]; `None` for anything unreadable
/// (the object is then asked again).
pub fn facts_from_json(s: &str) -> Option<Facts> {
    let v: Value = serde_json::from_str(s).ok()?;
    let mut stored = Vec::new();
    for s in v["stored"].as_array()? {
        let algo = Algo::from_name(s["algo"].as_str()?)?;
        let kind = match s["type"].as_str()? {
            "full" => ChecksumType::FullObject,
            "composite" => ChecksumType::Composite,
            _ => ChecksumType::Unknown,
        };
        let value = super::digest::unb64(s["value"].as_str()?)?;
        stored.push(Stored {
            algo,
            value,
            kind,
            parts: s["parts"].as_u64(),
        });
    }
    let p = &v["parts"];
    let parts = if p["single"].as_bool() == Some(true) {
        Parts::Single
    } else if let Some(all) = p["all"].as_str() {
        Parts::All(Layout::parse(all)?)
    } else if let Some(why) = p["unavailable"].as_str() {
        Parts::Unavailable(why.to_string())
    } else if let (Some(count), Some(first)) = (p["count"].as_u64(), p["first"].as_u64()) {
        Parts::First { count, first }
    } else {
        Parts::Unknown {
            count: p["count"].as_u64(),
        }
    };
    Some(Facts {
        size: v["size"].as_u64()?,
        etag: v["etag"].as_str().map(str::to_string),
        stored,
        etag_is_md5: v["etag_is_md5"].as_bool(),
        parts,
        unknown: v["unknown"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Every digest in `d`, as (spec, value) pairs.
pub fn digest_specs(d: &Digests) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = d
        .full
        .iter()
        .map(|(a, v)| (format!("full:{}", a.name()), v.clone()))
        .collect();
    for ((layout, algo), parts) in &d.parts {
        out.push((
            format!("parts:{}:{}", algo.name(), layout.describe()),
            parts.concat(),
        ));
    }
    out
}

/// Cached digests of the content whose BLAKE3 is `blake3`.
pub fn digests_from_specs(blake3: [u8; 32], size: u64, rows: &[(String, Vec<u8>)]) -> Digests {
    let mut d = Digests {
        blake3,
        size,
        ..Default::default()
    };
    for (spec, value) in rows {
        let mut it = spec.splitn(3, ':');
        match (it.next(), it.next(), it.next()) {
            (Some("full"), Some(a), None) => {
                if let Some(a) = Algo::from_name(a)
                    && value.len() == a.digest_len()
                {
                    d.full.insert(a, value.clone());
                }
            }
            (Some("parts"), Some(a), Some(l)) => {
                if let (Some(a), Some(l)) = (Algo::from_name(a), Layout::parse(l))
                    && value.len() == a.digest_len() * l.count()
                {
                    let parts = value.chunks(a.digest_len()).map(<[u8]>::to_vec).collect();
                    d.parts.insert((l, a), parts);
                }
            }
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_and_digests_round_trip() {
        for parts in [
            Parts::Single,
            Parts::Unknown { count: Some(3) },
            Parts::Unknown { count: None },
            Parts::First { count: 3, first: 8 },
            Parts::All(Layout(vec![8, 9, 3])),
            Parts::Unavailable("no".into()),
        ] {
            let f = Facts {
                size: 20,
                etag: Some("abc-3".into()),
                stored: vec![Stored {
                    algo: Algo::Crc32,
                    value: vec![1, 2, 3, 4],
                    kind: ChecksumType::Composite,
                    parts: Some(3),
                }],
                etag_is_md5: Some(true),
                parts,
                unknown: vec!["xxhash3".into()],
            };
            assert_eq!(facts_from_json(&facts_to_json(&f)), Some(f));
        }
        let data: Vec<u8> = (0..20u8).collect();
        let layout = Layout(vec![8, 9, 3]);
        let d = super::super::digest::compute(
            &data[..],
            &super::super::digest::Want {
                full: vec![Algo::Crc64Nvme, Algo::Md5],
                parts: vec![(layout, Algo::Md5)],
            },
        )
        .unwrap();
        let back = digests_from_specs(d.blake3, d.size, &digest_specs(&d));
        assert_eq!(back, d);
    }
}

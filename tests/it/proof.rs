//! The verification ladder against moto's S3 (server mode, with `awscrt`
//! for real CRC64NVME and `crc32c`): objects written the ways users write
//! them, proven by their stored checksums and ETags with HEAD requests
//! only; corrupted ones disproven with the method that saw it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjPath;
use vouch::engine::proof::digest::{Algo, Digests, Layout};
use vouch::engine::proof::ladder::{Method, Verdict};
use vouch::engine::proof::probe::{Backend, Prober, Target};

use crate::support::moto::MotoServer;
use crate::support::s3::{ACCESS_KEY, SECRET_KEY};

/// Content of `n` bytes, different per seed.
fn content(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed * 7919).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Writes the bucket as users write it. `dir` holds `<key>` (what the
/// store should hold) for every key; `<key>.other` replaces it with other
/// bytes of the same size for the corrupted ones.
const WRITE: &str = r#"
import os, json
from boto3.s3.transfer import TransferConfig
b, d = args[0], args[1]
crc = boto3.client('s3', endpoint_url=s3.meta.endpoint_url, region_name='us-east-1',
    aws_access_key_id=s3._request_signer._credentials.access_key,
    aws_secret_access_key=s3._request_signer._credentials.secret_key,
    config=Config(s3={'addressing_style': 'path'}, request_checksum_calculation='when_supported'))
def body(k):
    p = os.path.join(d, k)
    return open(p + '.other' if os.path.exists(p + '.other') else p, 'rb').read()
def mpu(client, k, sizes, **kw):
    data = body(k)
    extra = {x: y for x, y in kw.items() if x != 'ChecksumType'}
    up = client.create_multipart_upload(Bucket=b, Key=k, **kw)['UploadId']
    parts, off = [], 0
    for n in sizes:
        r = client.upload_part(Bucket=b, Key=k, UploadId=up, PartNumber=len(parts)+1, Body=data[off:off+n], **{x: y for x, y in extra.items() if x == 'ChecksumAlgorithm'})
        p = {'PartNumber': len(parts)+1, 'ETag': r['ETag']}
        for c in ('ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumCRC64NVME', 'ChecksumSHA256', 'ChecksumSHA1'):
            if r.get(c): p[c] = r[c]
        parts.append(p)
        off += n
    assert off == len(data), (k, off, len(data))
    ct = {'ChecksumType': kw['ChecksumType']} if 'ChecksumType' in kw else {}
    client.complete_multipart_upload(Bucket=b, Key=k, UploadId=up, MultipartUpload={'Parts': parts}, **ct)
s3.create_bucket(Bucket=b)
tc = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
open(os.path.join(d, 'upload'), 'wb').write(body('upload_file_multipart'))
crc.upload_file(os.path.join(d, 'upload'), b, 'upload_file_multipart', Config=tc)
open(os.path.join(d, 'upload'), 'wb').write(body('upload_file_single'))
crc.upload_file(os.path.join(d, 'upload'), b, 'upload_file_single', Config=tc)
os.remove(os.path.join(d, 'upload'))
for k in ('crc64_full', 'crc64_full_bad'):
    mpu(crc, k, [4096, 4096, 1808], ChecksumAlgorithm='CRC64NVME', ChecksumType='FULL_OBJECT')
for k in ('crc32c_composite', 'crc32c_composite_bad'):
    mpu(crc, k, [4096, 4096, 1808], ChecksumAlgorithm='CRC32C')
for k in ('sha256_single', 'sha256_single_bad'):
    crc.put_object(Bucket=b, Key=k, Body=body(k), ChecksumAlgorithm='SHA256')
for k in ('plain', 'plain_bad'):
    s3.put_object(Bucket=b, Key=k, Body=body(k))
for k in ('plain_multipart', 'plain_multipart_bad'):
    mpu(s3, k, [4096, 4096, 1808])
mpu(s3, 'unequal_parts', [4096, 5000, 904])
s3.put_object(Bucket=b, Key='kms', Body=body('kms'), ServerSideEncryption='aws:kms')
s3.copy_object(Bucket=b, Key='copy', CopySource={'Bucket': b, 'Key': 'upload_file_multipart'})
# A wrong client-supplied SHA-256, kept without complaint by moto (it
# computes multipart checksums itself, so only a single PUT's can be wrong).
def spoil(request, **kw):
    request.headers['x-amz-checksum-sha256'] = 'A' * 43 + '='
crc.meta.events.register('before-send.s3.PutObject', spoil)
crc.put_object(Bucket=b, Key='wrong_stored_sha256', Body=body('wrong_stored_sha256'), ChecksumAlgorithm='SHA256')
"#;

fn prober(moto: &MotoServer, bucket: &str) -> Prober {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&moto.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .unwrap();
    Prober::new(Backend::S3(Arc::new(store)), 2, Duration::from_secs(30)).unwrap()
}

/// The bucket's intended content per key: `<key>.other` files (same size,
/// one bit flipped) replace it on the store for the `_bad` keys.
fn bucket_files() -> BTreeMap<&'static str, Vec<u8>> {
    let big = content(11 << 20, 1); // three upload_file parts of 5 MiB
    let mut files: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    files.insert("upload_file_multipart", big);
    files.insert("upload_file_single", content(70_000, 2));
    for (i, k) in [
        "crc64_full",
        "crc64_full_bad",
        "crc32c_composite",
        "crc32c_composite_bad",
        "sha256_single",
        "sha256_single_bad",
        "plain",
        "plain_bad",
        "plain_multipart",
        "plain_multipart_bad",
        "unequal_parts",
        "kms",
        "wrong_stored_sha256",
    ]
    .into_iter()
    .enumerate()
    {
        files.insert(k, content(10_000, 10 + i as u32));
    }
    files.insert("copy", files["upload_file_multipart"].clone());
    files
}

/// Writes `files` into `dir` (with the `.other` variants) and the bucket
/// `bkt` on `moto` from them, the ways users write objects.
fn write_bucket(moto: &MotoServer, files: &BTreeMap<&str, Vec<u8>>, dir: &std::path::Path) {
    for (k, data) in files {
        std::fs::write(dir.join(k), data).unwrap();
        if k.ends_with("_bad") {
            let mut other = data.clone();
            other[5_000] ^= 0x40; // one bit, same size
            std::fs::write(dir.join(format!("{k}.other")), other).unwrap();
        }
    }
    moto.boto3(WRITE, &["bkt", dir.to_str().unwrap()], b"");
}

#[test]
fn stored_checksums_and_etags_prove_and_disprove_content_on_moto() {
    let dir = tempfile::tempdir().unwrap();
    let files = bucket_files();
    let moto = MotoServer::start();
    write_bucket(&moto, &files, dir.path());

    let prober = prober(&moto, "bkt");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut outcome = BTreeMap::new();
    for (k, data) in &files {
        let location = ObjPath::from(*k);
        let target = Target {
            location: &location,
            size: data.len() as u64,
            etag: None,
            version: None,
            last_modified: None,
        };
        let before = prober.requests();
        let local = Digests {
            blake3: *blake3::hash(data).as_bytes(),
            size: data.len() as u64,
            ..Default::default()
        };
        let proof = rt
            .block_on(vouch::engine::proof::prove(
                &prober,
                &target,
                None,
                local,
                vouch::engine::proof::read_file(dir.path().join(k)),
            ))
            .unwrap_or_else(|e| panic!("{k}: {e}"));
        outcome.insert(*k, (proof, prober.requests() - before));
    }
    let method = |k: &str| match &outcome[k].0.verdict {
        Verdict::Proven { method, .. } => method.name(),
        other => panic!("{k} not proven: {other:?}"),
    };
    let mismatch = |k: &str| match &outcome[k].0.verdict {
        Verdict::Mismatch { method, .. } => method.name(),
        other => panic!("{k} not disproven: {other:?}"),
    };
    let undecided = |k: &str| match &outcome[k].0.verdict {
        Verdict::Undecided(why) => why.clone(),
        other => panic!("{k} decided: {other:?}"),
    };
    let requests = |k: &str| outcome[k].1;

    // CRC64NVME is really computed by moto (awscrt installed): its value
    // is 8 bytes and equals ours. Without awscrt moto stores a CRC32 and
    // this fails.
    assert_eq!(method("crc64_full"), "crc64nvme");
    assert_eq!(requests("crc64_full"), 1, "one HEAD");
    let facts = outcome["crc64_full"].0.facts.clone().unwrap();
    assert_eq!(facts.stored[0].algo, Algo::Crc64Nvme);
    assert_eq!(
        facts.stored[0].value,
        Algo::Crc64Nvme.digest(&files["crc64_full"])
    );

    // boto3 upload_file: single part (CRC32 whole object) and multipart
    // (CRC32 composite over 5 MiB parts, learned from HEAD ?partNumber=1).
    assert_eq!(method("upload_file_single"), "crc32");
    assert_eq!(method("upload_file_multipart"), "crc32-composite");
    assert_eq!(requests("upload_file_multipart"), 2);
    match &outcome["upload_file_multipart"].0.verdict {
        Verdict::Proven { layout, .. } => assert_eq!(
            layout.as_ref().unwrap(),
            &Layout(vec![5 << 20, 5 << 20, 1 << 20])
        ),
        _ => unreachable!(),
    }
    assert_eq!(method("crc32c_composite"), "crc32c-composite");
    assert_eq!(method("sha256_single"), "sha256");
    assert_eq!(method("plain"), "md5-etag");
    assert_eq!(requests("plain"), 1);
    assert_eq!(method("plain_multipart"), "multipart-etag");
    assert_eq!(requests("plain_multipart"), 2, "HEAD and part 1");
    // Parts of 4096, 5000, 904: equal parts are assumed from part 1, fail,
    // and every part's size is asked for.
    assert_eq!(method("unequal_parts"), "multipart-etag");
    // (HEAD, part 1, the three parts, and the object pinned again.)
    assert_eq!(requests("unequal_parts"), 2 + 3 + 1);
    // moto's copy keeps the composite CRC32 of its three-part source
    // under a single-part ETag and no type: that value cannot be read
    // (nor taken as damage); the copy's MD5 ETag proves it.
    assert_eq!(method("copy"), "md5-etag");

    // Other bytes of the same size: disproven by the first evidence.
    assert_eq!(mismatch("crc64_full_bad"), "crc64nvme");
    assert_eq!(mismatch("crc32c_composite_bad"), "crc32c-composite");
    assert_eq!(mismatch("sha256_single_bad"), "sha256");
    assert_eq!(mismatch("plain_bad"), "md5-etag");
    assert_eq!(mismatch("plain_multipart_bad"), "multipart-etag");
    match &outcome["sha256_single_bad"].0.verdict {
        Verdict::Mismatch { local, remote, .. } => {
            assert_eq!(
                local,
                &vouch::engine::proof::digest::b64(
                    &Algo::Sha256.digest(&files["sha256_single_bad"])
                )
            );
            assert_ne!(local, remote);
        }
        _ => unreachable!(),
    }

    // SSE-KMS: the ETag is not trusted as an MD5, and nothing else is kept.
    assert!(
        undecided("kms").contains("no checksum"),
        "{}",
        undecided("kms")
    );
    // moto states no type for a single PUT's checksum, so a wrong SHA-256
    // there may be a composite of unknown parts: the MD5 ETag decides.
    // (A typed checksum that disagrees with a matching ETag is
    // `unverified`: see the ladder's unit tests.)
    assert_eq!(method("wrong_stored_sha256"), "md5-etag");

    // Nothing was downloaded: the prober sent HEADs only, and every proof
    // hashed the local file at most twice.
    for (k, (proof, _)) in &outcome {
        assert!(
            proof.bytes_hashed <= 2 * files[k].len() as u64,
            "{k}: {}",
            proof.bytes_hashed
        );
    }
    let _ = Method::Md5Etag;
}

/// Runs one object through the ladder against `prober`.
fn prove_one(prober: &Prober, key: &str, data: &[u8], dir: &std::path::Path) -> (Verdict, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let file = dir.join(key.replace('/', "_"));
    std::fs::write(&file, data).unwrap();
    let location = ObjPath::from(key);
    let target = Target {
        location: &location,
        size: data.len() as u64,
        etag: None,
        version: None,
        last_modified: None,
    };
    let before = prober.requests();
    let local = Digests {
        blake3: *blake3::hash(data).as_bytes(),
        size: data.len() as u64,
        ..Default::default()
    };
    let proof = rt
        .block_on(vouch::engine::proof::prove(
            prober,
            &target,
            None,
            local,
            vouch::engine::proof::read_file(file),
        ))
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    (proof.verdict, prober.requests() - before)
}

#[test]
fn gcs_crc32c_and_md5_prove_and_disprove_on_fake_gcs_server() {
    let gcs = crate::support::emulators::gcs();
    gcs.gcs_create_bucket("proofs");
    let good = content(30_000, 1);
    let mut bad = good.clone();
    bad[100] ^= 1;
    gcs.gcs_put("proofs", "p/good", &good);
    let meta = gcs.gcs_put("proofs", "p/bad", &bad);
    assert!(meta["crc32c"].is_string(), "{meta}");
    let store = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_bucket_name("proofs")
        .with_base_url(&gcs.endpoint)
        .with_skip_signature(true)
        .build()
        .unwrap();
    let prober = Prober::new(
        Backend::Gcs {
            store: Arc::new(store),
            base_url: gcs.endpoint.clone(),
            bucket: "proofs".into(),
            anonymous: true,
        },
        2,
        Duration::from_secs(30),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (v, requests) = prove_one(&prober, "p/good", &good, dir.path());
    // The strongest of the two: MD5 over CRC32C.
    assert!(
        matches!(
            &v,
            Verdict::Proven {
                method: Method::Full(Algo::Md5),
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(requests, 1);
    let (v, _) = prove_one(&prober, "p/bad", &good, dir.path());
    match v {
        Verdict::Mismatch { method, remote, .. } => {
            assert_eq!(method, Method::Full(Algo::Md5));
            assert_eq!(remote, meta["md5Hash"].as_str().unwrap());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn azure_content_md5_proves_and_disproves_on_azurite() {
    use crate::support::emulators::{AZURE_ACCOUNT, AZURE_KEY, azurite};
    use object_store::ObjectStoreExt as _;
    let az = azurite();
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(AZURE_ACCOUNT)
        .with_access_key(AZURE_KEY)
        .with_container_name("proofs")
        .with_endpoint(format!("{}/{AZURE_ACCOUNT}", az.endpoint))
        .with_allow_http(true)
        .build()
        .unwrap();
    let store = Arc::new(store);
    let good = content(30_000, 2);
    let mut bad = good.clone();
    bad[7] ^= 1;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        create_container(&az.endpoint, "proofs").await;
        store
            .put(&ObjPath::from("p/good"), good.clone().into())
            .await
            .unwrap();
        store
            .put(&ObjPath::from("p/bad"), bad.clone().into())
            .await
            .unwrap();
    });
    let prober = Prober::new(Backend::Azure(store), 2, Duration::from_secs(30)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (v, requests) = prove_one(&prober, "p/good", &good, dir.path());
    assert!(
        matches!(
            &v,
            Verdict::Proven {
                method: Method::Full(Algo::Md5),
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(requests, 1);
    let (v, _) = prove_one(&prober, "p/bad", &good, dir.path());
    assert!(
        matches!(
            &v,
            Verdict::Mismatch {
                method: Method::Full(Algo::Md5),
                ..
            }
        ),
        "{v:?}"
    );
}

/// Creates a container on Azurite through a SAS-less shared-key request
/// (object_store does not create containers): Python signs it.
async fn create_container(endpoint: &str, name: &str) {
    let script = format!(
        r#"
import base64, hmac, hashlib, urllib.request as u, email.utils
acct, key = {acct:?}, {key:?}
date = email.utils.formatdate(usegmt=True)
ver = '2023-11-03'
res = '/' + acct + '/' + acct + '/' + {name:?} + '\nrestype:container'
sts = 'PUT\n\n\n\n\napplication/octet-stream\n\n\n\n\n\n\n' + 'x-ms-date:' + date + '\nx-ms-version:' + ver + '\n' + res
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
r = u.Request({endpoint:?} + '/' + acct + '/' + {name:?} + '?restype=container', method='PUT', data=b'',
    headers={{'x-ms-date': date, 'x-ms-version': ver, 'Authorization': 'SharedKey ' + acct + ':' + sig, 'Content-Type': 'application/octet-stream'}})
try:
    u.urlopen(r)
except u.HTTPError as e:
    if e.code != 409: raise
"#,
        acct = crate::support::emulators::AZURE_ACCOUNT,
        key = crate::support::emulators::AZURE_KEY,
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot create container: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn audit_findings(doc: &serde_json::Value) -> Vec<(String, String)> {
    crate::findings(doc)
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "added" | "modified" | "deleted"))
        .collect()
}

fn proven_by(doc: &serde_json::Value) -> BTreeMap<String, u64> {
    doc["summary"]["proven_by"]
        .as_object()
        .unwrap_or_else(|| panic!("no proven_by: {}", doc["summary"]))
        .iter()
        .map(|(k, v)| (k.clone(), v["objects"].as_u64().unwrap()))
        .collect()
}

#[test]
fn a_quick_audit_proves_a_bucket_written_by_boto3_without_downloading_it() {
    let env = crate::Env::new();
    let files = bucket_files();
    for (k, data) in &files {
        env.write(k, data);
    }
    let staging = tempfile::tempdir().unwrap();
    let moto = MotoServer::start();
    write_bucket(&moto, &files, staging.path());
    let vars = moto.env();

    let (code, doc) = crate::audit_json(&env, "s3://bkt", &vars, &[]);
    assert_eq!(code, 1, "{doc}");
    let expected_corrupt = [
        ("crc64_full_bad", "crc64nvme"),
        ("crc32c_composite_bad", "crc32c-composite"),
        ("sha256_single_bad", "sha256"),
        ("plain_bad", "md5-etag"),
        ("plain_multipart_bad", "multipart-etag"),
    ];
    // (moto keeps the MD5 as the ETag even under SSE-KMS: "kms" is proven
    // by its listed ETag, which equals the file's MD5 — a random SSE-KMS
    // ETag could not. The prober-level test keeps a KMS HEAD unverified.)
    let want: Vec<(&str, &str)> = expected_corrupt
        .iter()
        .map(|(k, _)| ("corrupt", *k))
        .collect();
    assert_eq!(
        audit_findings(&doc),
        crate::pairs(&want),
        "{}",
        doc["findings"]
    );
    // Each corrupt finding names its method and both checksums.
    for f in doc["findings"].as_array().unwrap() {
        if f["kind"] == "corrupt" {
            let key = f["path"].as_str().unwrap();
            let method = expected_corrupt.iter().find(|(k, _)| *k == key).unwrap().1;
            assert_eq!(f["remote"]["method"], method, "{f}");
            assert_ne!(f["remote"]["checksum"], f["local"]["checksum"], "{f}");
            assert!(f["detail"].as_str().unwrap().contains(method), "{f}");
        }
    }
    let by = proven_by(&doc);
    // Intact objects are proven by their listed ETags, with no request:
    // single-part ones by the file's MD5, multipart ones (5 MiB and 4 KiB
    // parts) by the multipart ETag over those usual sizes; unequal parts
    // only after a HEAD learns them.
    let expected: BTreeMap<String, u64> = [
        // upload_file_single, sha256_single, plain, kms,
        // wrong_stored_sha256, copy
        ("md5-etag", 6),
        // upload_file_multipart, crc64_full, crc32c_composite,
        // plain_multipart, unequal_parts
        ("multipart-etag", 5),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(by, expected);
    assert_eq!(crate::counter(&doc, "verified"), 11);
    assert_eq!(crate::counter(&doc, "bytes_downloaded"), 0);
    assert_eq!(crate::counter(&doc, "objects_read"), 0);
    // HEADs only for what the listing did not prove: the 5 disproven and
    // unequal_parts (a HEAD, then part sizes).
    let first_requests = crate::counter(&doc, "requests");
    assert!(first_requests >= 6, "{first_requests}");

    // Nothing changed: the second quick audit makes no request and reads
    // no local byte, and concludes the same.
    let (code2, doc2) = crate::audit_json(&env, "s3://bkt", &vars, &[]);
    assert_eq!(code2, 1);
    assert_eq!(audit_findings(&doc2), audit_findings(&doc));
    assert_eq!(proven_by(&doc2), expected);
    assert_eq!(crate::counter(&doc2, "requests"), 0);
    assert_eq!(crate::counter(&doc2, "local_bytes_hashed"), 0);

    // --no-head: listing only, as before the ladder.
    let (code3, doc3) = crate::audit_json(&env, "s3://bkt", &vars, &["--no-head"]);
    assert_eq!(code3, 0, "unverified is not a discrepancy");
    assert_eq!(crate::counter(&doc3, "requests"), 0);
    assert_eq!(crate::counter(&doc3, "verified"), 0);
    assert_eq!(crate::counter(&doc3, "unverified"), files.len() as u64);

    // An object replaced by other bytes of the same size is asked again
    // (its ETag changed) and disproven.
    let mut other = files["crc64_full"].clone();
    other[0] ^= 1;
    moto.boto3(
        "s3.put_object(Bucket='bkt', Key='crc64_full', Body=data, ChecksumAlgorithm='CRC64NVME')",
        &[],
        &other,
    );
    let (_, doc4) = crate::audit_json(&env, "s3://bkt", &vars, &[]);
    assert!(
        audit_findings(&doc4).contains(&("corrupt".to_string(), "crc64_full".to_string())),
        "{doc4}"
    );
    assert!(crate::counter(&doc4, "requests") >= 1);
}

#[test]
fn gs_audits_work_end_to_end_on_fake_gcs_server() {
    let gcs = crate::support::emulators::gcs();
    gcs.gcs_create_bucket("e2e");
    let env = crate::Env::new();
    let good = content(40_000, 3);
    let other = content(40_000, 4);
    env.write("a", &good);
    env.write("b", &good);
    env.write("c", b"never uploaded");
    gcs.gcs_put("e2e", "p/a", &good);
    gcs.gcs_put("e2e", "p/b", &other);
    gcs.gcs_put("e2e", "p/d", b"extra");
    let vars = crate::support::emulators::gcs_env(gcs);
    audits_end_to_end(&env, "gs://e2e/p", &vars);
}

/// The same tree and backup on every store: `a` intact, `b` other bytes
/// of the same size, `c` missing, `d` extra. Quick proves `a` by the
/// store's MD5 and `b` corrupt by it without downloading; a second quick
/// run asks nothing; deep reads both and agrees.
fn audits_end_to_end(env: &crate::Env, url: &str, vars: &[(String, String)]) {
    let expected = crate::pairs(&[("corrupt", "b"), ("missing", "c"), ("extra", "d")]);
    let (code, doc) = crate::audit_json(env, url, vars, &["--min-coverage", "0"]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(audit_findings(&doc), expected);
    assert_eq!(proven_by(&doc), BTreeMap::from([("md5".to_string(), 1)]));
    assert_eq!(crate::counter(&doc, "bytes_downloaded"), 0);
    let b = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "b" && f["kind"] == "corrupt")
        .unwrap();
    assert_eq!(b["remote"]["method"], "md5", "{b}");

    let (_, doc) = crate::audit_json(env, url, vars, &["--min-coverage", "0"]);
    assert_eq!(
        crate::counter(&doc, "requests"),
        0,
        "second run: no request"
    );
    assert_eq!(audit_findings(&doc), expected);

    let (code, doc) = crate::audit_json(env, url, vars, &["--mode", "deep", "--min-coverage", "0"]);
    assert_eq!(code, 1);
    assert_eq!(audit_findings(&doc), expected);
    assert_eq!(crate::counter(&doc, "objects_read"), 2);
}

#[test]
fn az_audits_work_end_to_end_on_azurite() {
    use crate::support::emulators::{AZURE_ACCOUNT, AZURE_KEY, azure_env, azurite};
    use object_store::ObjectStoreExt as _;
    let az = azurite();
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(AZURE_ACCOUNT)
        .with_access_key(AZURE_KEY)
        .with_container_name("e2e")
        .with_endpoint(format!("{}/{AZURE_ACCOUNT}", az.endpoint))
        .with_allow_http(true)
        .build()
        .unwrap();
    let env = crate::Env::new();
    let good = content(40_000, 5);
    let other = content(40_000, 6);
    env.write("a", &good);
    env.write("b", &good);
    env.write("c", b"never uploaded");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        create_container(&az.endpoint, "e2e").await;
        store
            .put(&ObjPath::from("p/a"), good.clone().into())
            .await
            .unwrap();
        store
            .put(&ObjPath::from("p/b"), other.clone().into())
            .await
            .unwrap();
        store
            .put(&ObjPath::from("p/d"), b"extra".to_vec().into())
            .await
            .unwrap();
    });
    let vars = azure_env(az);
    audits_end_to_end(&env, "az://e2e/p", &vars);
}

/// A store that keeps what the client sends (s3s-fs verifies a client's
/// CRC64NVME and stores it; its listings carry no ETag): an object
/// rewritten with other bytes of the same size, uploaded with their
/// (correct) CRC64NVME, is `corrupt` by that typed checksum — a
/// CRC64NVME is always full-object — with the method named; the intact
/// one is proven by it with a HEAD pinned to the listed Last-Modified.
#[test]
fn a_typed_stored_checksum_of_other_bytes_is_corrupt_on_s3s_fs() {
    let env = crate::Env::new();
    let good = content(30_000, 40);
    let local_bad = content(30_000, 41);
    let mut other = local_bad.clone();
    other[12_345] ^= 0x01;
    env.write("ok", &good);
    env.write("bad", &local_bad);
    let served = env.dir.path().join("s3");
    std::fs::create_dir_all(served.join("bkt")).unwrap();
    let server = crate::support::s3::S3Server::start(&served);
    let script = format!(
        "import sys, base64, boto3\n\
         from awscrt import checksums\n\
         from botocore.config import Config\n\
         s3 = boto3.client('s3', endpoint_url={ep:?}, region_name='us-east-1',\n\
             aws_access_key_id={ak:?}, aws_secret_access_key={sk:?},\n\
             config=Config(s3={{'addressing_style': 'path'}}, retries={{'max_attempts': 1}},\n\
                 request_checksum_calculation='when_required'))\n\
         for key, path in (('ok', sys.argv[1]), ('bad', sys.argv[2])):\n\
         \x20   data = open(path, 'rb').read()\n\
         \x20   crc = base64.b64encode(checksums.crc64nvme(data).to_bytes(8, 'big')).decode()\n\
         \x20   s3.put_object(Bucket='bkt', Key=key, Body=data, ChecksumCRC64NVME=crc)\n\
         \x20   h = s3.head_object(Bucket='bkt', Key=key, ChecksumMode='ENABLED')\n\
         \x20   assert h.get('ChecksumCRC64NVME') == crc, h\n",
        ep = server.endpoint,
        ak = server.access_key,
        sk = server.secret_key,
    );
    let staging = tempfile::tempdir().unwrap();
    let (ok_path, bad_path) = (staging.path().join("ok"), staging.path().join("bad"));
    std::fs::write(&ok_path, &good).unwrap();
    std::fs::write(&bad_path, &other).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(&ok_path)
        .arg(&bad_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 upload to s3s-fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars = server.env();
    let (code, doc) = crate::audit_json(&env, "s3://bkt", &vars, &[]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        audit_findings(&doc),
        crate::pairs(&[("corrupt", "bad")]),
        "{}",
        doc["findings"]
    );
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "corrupt")
        .unwrap();
    assert_eq!(f["remote"]["method"], "crc64nvme", "{f}");
    let b64 = |d: &[u8]| vouch::engine::proof::digest::b64(&Algo::Crc64Nvme.digest(d));
    assert_eq!(f["remote"]["checksum"], b64(&other), "{f}");
    assert_eq!(f["local"]["checksum"], b64(&local_bad), "{f}");
    assert!(f["detail"].as_str().unwrap().contains("crc64nvme"), "{f}");
    assert_eq!(
        proven_by(&doc),
        [("crc64nvme".to_string(), 1)].into_iter().collect()
    );
    // No listed ETag: one HEAD each (pinned to the listed Last-Modified).
    assert_eq!(crate::counter(&doc, "requests"), 2);
    // The scan computed the CRC64NVME in its read pass: the intact object
    // is proven without reading the file again; the other is read once,
    // for its MD5 (a mismatch is `corrupt` only if its ETag does not
    // match either).
    assert_eq!(crate::counter(&doc, "local_bytes_hashed"), 30_000);

    // The intact object rewritten with other bytes of the same size: its
    // Last-Modified moves, so the recorded proof no longer holds and the
    // store is asked again.
    std::thread::sleep(Duration::from_millis(1_100));
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(&bad_path)
        .arg(&bad_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, doc) = crate::audit_json(&env, "s3://bkt", &vars, &[]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        audit_findings(&doc),
        crate::pairs(&[("corrupt", "bad"), ("corrupt", "ok")]),
        "{}",
        doc["findings"]
    );
    assert!(crate::counter(&doc, "requests") >= 1);
}

//! Scratch: prove the test S3 servers work with object_store.
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use md5::{Digest, Md5};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as OPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};

use support::moto::MotoServer;
use support::s3::{ACCESS_KEY, S3Server, SECRET_KEY};

fn store(endpoint: &str, bucket: &str, retries: usize) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: retries,
                ..Default::default()
            })
            .build()
            .unwrap(),
    )
}

fn md5hex(d: &[u8]) -> String {
    hex::encode(Md5::digest(d))
}

#[tokio::test(flavor = "multi_thread")]
async fn s3s_fs_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut srv = S3Server::start(dir.path());
    println!("s3s-fs: started at {} in {:?}", srv.endpoint, t.elapsed());
    let b = srv.create_bucket("bkt");
    std::fs::create_dir_all(b.join("dir")).unwrap();
    std::fs::write(b.join("dir/a.txt"), b"hello").unwrap();
    let s = store(&srv.endpoint, "bkt", 0);

    let list: Vec<_> = s.list(None).try_collect().await.unwrap();
    println!("s3s-fs LIST plain file: {list:?}");
    let h = s.head(&OPath::from("dir/a.txt")).await.unwrap();
    println!(
        "s3s-fs HEAD plain file: {h:?}  (md5 = {})",
        md5hex(b"hello")
    );
    let g = s.get(&OPath::from("dir/a.txt")).await.unwrap();
    println!("s3s-fs GET meta: {:?}", g.meta);
    assert_eq!(&g.bytes().await.unwrap()[..], b"hello");

    // PUT through S3, then list/head
    let pr = s
        .put(&OPath::from("put/b.bin"), b"world!".to_vec().into())
        .await
        .unwrap();
    println!("s3s-fs PUT result: {pr:?}");
    let list: Vec<_> = s
        .list(Some(&OPath::from("put")))
        .try_collect()
        .await
        .unwrap();
    println!("s3s-fs LIST after PUT: {list:?}");
    let h = s.head(&OPath::from("put/b.bin")).await.unwrap();
    println!("s3s-fs HEAD after PUT: {h:?}");
    println!(
        "root contents: {:?}",
        std::fs::read_dir(&srv.root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );

    // delimiter listing
    let lr = s.list_with_delimiter(None).await.unwrap();
    println!(
        "s3s-fs LIST delim: prefixes {:?} objects {:?}",
        lr.common_prefixes,
        lr.objects.len()
    );

    // wrong credentials
    let bad = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&srv.endpoint)
            .with_allow_http(true)
            .with_bucket_name("bkt")
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key("wrong")
            .with_retry(RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap(),
    );
    let e = bad.list(None).try_collect::<Vec<_>>().await.unwrap_err();
    println!("s3s-fs wrong secret: {e}");
    // missing bucket
    let e = store(&srv.endpoint, "nobucket", 0)
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    println!("s3s-fs missing bucket: {e}");

    // many objects
    let n_dirs = 50;
    let per = 100;
    let t = Instant::now();
    let many = srv.create_bucket("many");
    for d in 0..n_dirs {
        let dd = many.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dd).unwrap();
        for f in 0..per {
            std::fs::write(dd.join(format!("f{f:04}")), format!("{d}/{f}")).unwrap();
        }
    }
    println!("wrote {} files in {:?}", n_dirs * per, t.elapsed());
    let sm = store(&srv.endpoint, "many", 0);
    let t = Instant::now();
    let list: Vec<_> = sm.list(None).try_collect().await.unwrap();
    println!("s3s-fs LIST {} objects in {:?}", list.len(), t.elapsed());
    assert_eq!(list.len(), n_dirs * per);
    assert!(list.windows(2).all(|w| w[0].location < w[1].location));

    // sequential small GETs on kept-alive connection
    let t = Instant::now();
    for m in list.iter().take(300) {
        sm.get(&m.location).await.unwrap().bytes().await.unwrap();
    }
    println!(
        "s3s-fs 300 sequential GETs: {:?} ({:?}/GET)",
        t.elapsed(),
        t.elapsed() / 300
    );
    let t = Instant::now();
    for m in list.iter().take(300) {
        sm.head(&m.location).await.unwrap();
    }
    println!("s3s-fs 300 sequential HEADs: {:?}", t.elapsed());

    // stop → refused
    let t = Instant::now();
    srv.stop();
    println!("s3s-fs stop took {:?}", t.elapsed());
    assert!(std::net::TcpStream::connect(srv.addr).is_err());
    let t = Instant::now();
    let e = s.head(&OPath::from("dir/a.txt")).await.unwrap_err();
    println!("s3s-fs after stop (0 retries): {e} in {:?}", t.elapsed());
    let t = Instant::now();
    let e = store(&srv.endpoint, "bkt", 2)
        .head(&OPath::from("dir/a.txt"))
        .await
        .unwrap_err();
    println!("s3s-fs after stop (2 retries): {e} in {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_smoke() {
    let t = Instant::now();
    let m = MotoServer::start();
    println!("moto: started at {} in {:?}", m.endpoint, t.elapsed());
    let t = Instant::now();
    m.create_bucket("bkt");
    println!("moto create_bucket (python) took {:?}", t.elapsed());
    let et = m.put_object("bkt", "dir/a.txt", b"hello");
    println!("moto put_object etag {et} (md5 {})", md5hex(b"hello"));
    let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    let met = m.put_multipart("bkt", "big.bin", &data, 1000);
    println!("moto multipart etag {met} in {:?}", t.elapsed());
    let parts: Vec<u8> = data
        .chunks(1000)
        .flat_map(|c| Md5::digest(c).to_vec())
        .collect();
    println!("expected multipart etag \"{}-3\"", md5hex(&parts));
    let objs: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("many/{i:04}"), vec![i as u8; 10]))
        .collect();
    let refs: Vec<(&str, &[u8])> = objs
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_slice()))
        .collect();
    let t = Instant::now();
    m.put_objects("bkt", &refs);
    println!("moto put_objects 200 in {:?}", t.elapsed());

    let s = store(&m.endpoint, "bkt", 0);
    let t = Instant::now();
    let list: Vec<_> = s.list(None).try_collect().await.unwrap();
    println!("moto LIST {} objects in {:?}", list.len(), t.elapsed());
    for x in list
        .iter()
        .filter(|x| !x.location.as_ref().starts_with("many/"))
    {
        println!("moto LIST: {x:?}");
    }
    for k in ["dir/a.txt", "big.bin"] {
        let h = s.head(&OPath::from(k)).await.unwrap();
        println!("moto HEAD: {h:?}");
        let g = s.get(&OPath::from(k)).await.unwrap();
        println!("moto GET meta: {:?}", g.meta);
        let bytes = g.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, h.size);
    }
    let t = Instant::now();
    for x in list.iter().take(100) {
        s.get(&x.location).await.unwrap().bytes().await.unwrap();
    }
    println!("moto 100 sequential GETs: {:?}", t.elapsed());
    let _ = Duration::ZERO;
}

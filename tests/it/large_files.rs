//! Large files are hashed through memory maps (src/engine/mapped.rs): a
//! file truncated under a live map must neither kill the run (SIGBUS) nor
//! be stored with a hash of anything but its bytes.

use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::*;

/// True while process `pid` has `path` mapped (its /proc maps list it).
fn maps_file(pid: u32, path: &Path) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|maps| maps.lines().any(|l| l.ends_with(path.to_str().unwrap())))
        .unwrap_or(false)
}

#[test]
fn hostile_tree_sparse_16_gib_file_truncated_while_mapped_is_rehashed_at_its_new_size() {
    for threads in ["1", "2"] {
        let env = Env::new();
        let path = env.root.join("sparse-16GiB");
        let head = b"vouch: a header, then holes";
        {
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(head).unwrap();
            f.set_len(16 << 30).unwrap();
            f.seek(SeekFrom::Start(1 << 20)).unwrap();
            f.write_all(b"one MiB in").unwrap();
        }
        set_old_mtime(&path);
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("vouch"))
            .env_remove("VOUCH_INDEX")
            .args(["--index", env.index.to_str().unwrap()])
            .args(["--threads", threads, "--format", "json", "scan"])
            .arg(&env.root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until a window of the file is mapped, then cut the file to
        // 3 MiB under it: the pages past the cut fault (SIGBUS) as they are
        // hashed.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !maps_file(child.id(), &path) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the scan ended before it mapped the file"
            );
            assert!(Instant::now() < deadline, "the file was never mapped");
            std::thread::sleep(Duration::from_micros(200));
        }
        let new_len = 3 << 20;
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(new_len)
            .unwrap();
        set_old_mtime(&path);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "threads {threads}: killed or failed: {:?} {}",
            out.status,
            stderr_of(&out)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(findings(&doc), pairs(&[("added", "sparse-16GiB")]));
        let mut expected = vec![0u8; new_len as usize];
        expected[..head.len()].copy_from_slice(head);
        expected[1 << 20..(1 << 20) + 10].copy_from_slice(b"one MiB in");
        let local = &doc["findings"][0]["local"];
        assert_eq!(local["size"], new_len, "threads {threads}");
        assert_eq!(
            local["blake3"],
            blake3::hash(&expected).to_hex().as_str(),
            "threads {threads}: the stored hash is not that of the truncated file"
        );
        // The index holds the same, and a rescan trusts it.
        let (code, again) = env.scan();
        assert_eq!(code, 0);
        assert_eq!(counter(&again, "bytes_hashed"), 0);
        assert_eq!(counter(&again, "unchanged"), 1);
    }
}

//! Unit tests for the structural checks: for each format a healthy file made
//! by the real tool (dumps: fixtures made by `scripts/gen-check-fixtures`
//! with the real pg_dump / mariadb-dump; the rest made here by gzip, zstd,
//! xz, bzip2, tar, zip, Pillow and SQLite), then truncated and corrupted
//! copies of it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use memchr::memmem;

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checks")
        .join(name)
}

fn check_path(path: &Path, level: Level) -> Option<Report> {
    let mut f = File::open(path).expect("open");
    let size = f.metadata().expect("stat").len();
    check(&mut f, size, level, &Budget::unlimited()).expect("check")
}

fn check_bytes(bytes: &[u8], level: Level) -> Option<Report> {
    let mut c = std::io::Cursor::new(bytes.to_vec());
    check(&mut c, bytes.len() as u64, level, &Budget::unlimited()).expect("check")
}

#[track_caller]
fn sound(bytes: &[u8], level: Level, format: Format) -> Report {
    let r = check_bytes(bytes, level).expect("a known format");
    assert_eq!(r.format, format);
    assert_eq!(r.verdict, Verdict::Sound, "{level:?}");
    r
}

#[track_caller]
fn damaged(bytes: &[u8], level: Level, format: Format, needle: &str) -> String {
    let r = check_bytes(bytes, level).expect("a known format");
    assert_eq!(r.format, format);
    let Verdict::Damaged(d) = &r.verdict else {
        panic!("expected damage at {level:?}, got {:?}", r.verdict);
    };
    assert!(d.contains(needle), "detail {d:?} lacks {needle:?}");
    d.clone()
}

#[track_caller]
fn undecided(bytes: &[u8], level: Level, format: Format) {
    let r = check_bytes(bytes, level).expect("a known format");
    assert_eq!(r.format, format);
    assert!(
        matches!(r.verdict, Verdict::Undecided(_)),
        "{:?}",
        r.verdict
    );
}

fn run(dir: &Path, cmd: &str, args: &[&str]) {
    let st = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/test installs it): {e}"));
    assert!(st.success(), "{cmd} {args:?} failed");
}

fn python(dir: &Path, code: &str) {
    run(dir, "python3", &["-c", code]);
}

/// Some compressible text, like a log or a dump.
fn text(lines: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..lines {
        writeln!(v, "{i}\tcustomer {i}\tc{i}@example.com\t{}", i * 7 % 1000).unwrap();
    }
    v
}

/// Some incompressible bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= 0x55;
    v
}

// --- detection -------------------------------------------------------------

#[test]
fn unknown_formats_and_sql_files_that_are_not_dumps_are_not_checked() {
    assert_eq!(check_bytes(b"", Level::Full), None);
    assert_eq!(check_bytes(&noise(10_000), Level::Full), None);
    assert_eq!(check_bytes(b"SELECT 1;\nSELECT 2;\n", Level::Full), None);
    // A .sql file that quotes a dump header far below its top is not a dump.
    let mut notes = b"-- my notes\n".repeat(40);
    notes.extend_from_slice(b"-- PostgreSQL database dump\nCREATE TABLE t (a int);\n");
    assert_eq!(check_bytes(&notes, Level::Full), None);
    // Level none checks nothing, whatever the file.
    let dump = fs::read(fixture("pg-shop.sql")).unwrap();
    assert_eq!(check_bytes(&dump, Level::None), None);
    // The name is never consulted: a dump named .txt is a dump.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("backup.txt");
    fs::write(&p, &dump).unwrap();
    assert_eq!(check_path(&p, Level::Fast).unwrap().format, Format::PgDump);
}

#[test]
fn numbers_read_with_separators() {
    assert_eq!(n(0), "0");
    assert_eq!(n(999), "999");
    assert_eq!(n(1000), "1,000");
    assert_eq!(n(73_400_320), "73,400,320");
}

#[test]
fn budget_spent_falls_back_to_fast() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("t"), text(2000)).unwrap();
    run(dir.path(), "gzip", &["-k", "t"]);
    let gz = fs::read(dir.path().join("t.gz")).unwrap();
    let budget = Budget::new(gz.len() as u64 - 1);
    let mut c = std::io::Cursor::new(gz.clone());
    let r = check(&mut c, gz.len() as u64, Level::Full, &budget)
        .unwrap()
        .unwrap();
    assert_eq!(r.level, Level::Fast);
    assert_eq!(budget.left(), gz.len() as u64 - 1);
    let budget = Budget::new(gz.len() as u64);
    let mut c = std::io::Cursor::new(gz.clone());
    let r = check(&mut c, gz.len() as u64, Level::Full, &budget)
        .unwrap()
        .unwrap();
    assert_eq!((r.level, r.verdict), (Level::Full, Verdict::Sound));
    assert_eq!(budget.left(), 0);
}

// --- SQL text dumps ----------------------------------------------------------

#[test]
fn pg_dump_plain_healthy_truncated_and_empty() {
    let dump = fs::read(fixture("pg-shop.sql")).unwrap();
    // The installed pg_dump writes \unrestrict after the trailer.
    assert!(String::from_utf8_lossy(&dump[dump.len() - 200..]).contains("\\unrestrict "));
    for level in [Level::Fast, Level::Full] {
        let r = sound(&dump, level, Format::PgDump);
        assert_eq!(r.table_data, Some(true));
    }
    let half = &dump[..dump.len() / 2];
    let d = damaged(
        half,
        Level::Fast,
        Format::PgDump,
        "without its '-- PostgreSQL database dump complete' trailer",
    );
    assert!(
        d.starts_with(&format!(
            "pg_dump output ends mid-line at byte {}",
            n(half.len() as u64)
        )) || d.starts_with("pg_dump output ends at byte"),
        "{d}"
    );
    // Cut just before the trailer: every table is there, the end is not.
    let at = memmem::find(&dump, b"-- PostgreSQL database dump complete").unwrap();
    damaged(
        &dump[..at],
        Level::Fast,
        Format::PgDump,
        "the dump was cut off",
    );
    // Cut inside the closing \unrestrict line: the dump itself is whole.
    sound(&dump[..dump.len() - 10], Level::Fast, Format::PgDump);
    // --inserts dumps have data too.
    let ins = fs::read(fixture("pg-shop-inserts.sql")).unwrap();
    assert_eq!(
        sound(&ins, Level::Fast, Format::PgDump).table_data,
        Some(true)
    );
    // A dump of an empty database is complete but holds no data.
    let empty = fs::read(fixture("pg-empty.sql")).unwrap();
    let r = sound(&empty, Level::Fast, Format::PgDump);
    assert_eq!(r.table_data, Some(false));
    assert_eq!(empty_dump_detail(&r, false), None);
    let d = empty_dump_detail(&r, true).unwrap();
    assert!(
        d.starts_with("the dump holds no table data (no COPY or INSERT statement)"),
        "{d}"
    );
    // Windows line endings do not hide the trailer.
    let crlf = String::from_utf8(dump.clone())
        .unwrap()
        .replace('\n', "\r\n");
    sound(crlf.as_bytes(), Level::Fast, Format::PgDump);
}

#[test]
fn pg_dumpall_needs_the_cluster_trailer() {
    let all = fs::read(fixture("pg-all.sql")).unwrap();
    sound(&all, Level::Fast, Format::PgDumpAll);
    // Cut right after one database's own trailer: the cluster dump is not whole.
    let at = memmem::rfind(&all, b"-- PostgreSQL database dump complete").unwrap();
    let cut = &all[..at + "-- PostgreSQL database dump complete\n".len()];
    damaged(
        cut,
        Level::Fast,
        Format::PgDumpAll,
        "'-- PostgreSQL database cluster dump complete' trailer",
    );
}

#[test]
fn mariadb_dump_healthy_truncated_empty_and_without_comments() {
    let dump = fs::read(fixture("my-shop.sql")).unwrap();
    let r = sound(&dump, Level::Fast, Format::MariadbDump);
    assert_eq!(r.table_data, Some(true));
    damaged(
        &dump[..dump.len() - 60],
        Level::Fast,
        Format::MariadbDump,
        "mariadb-dump output ends",
    );
    let d = damaged(
        &dump[..dump.len() / 2],
        Level::Full,
        Format::MariadbDump,
        "'-- Dump completed' trailer",
    );
    assert!(d.contains(&n((dump.len() / 2) as u64)), "{d}");
    let empty = fs::read(fixture("my-empty.sql")).unwrap();
    let r = sound(&empty, Level::Fast, Format::MariadbDump);
    assert_eq!(r.table_data, Some(false));
    assert!(
        empty_dump_detail(&r, true)
            .unwrap()
            .contains("no INSERT statement")
    );
    // --skip-comments: no header, no footer: unverifiable, so not checked.
    let bare = fs::read(fixture("my-shop-nocomments.sql")).unwrap();
    assert_eq!(check_bytes(&bare, Level::Full), None);
    assert_eq!(check_bytes(&bare[..bare.len() / 2], Level::Full), None);
    // A mysqldump header (MySQL's own tool) is recognised the same way.
    let mysql = String::from_utf8(dump.clone()).unwrap().replace(
        "-- MariaDB dump 10.19  Distrib",
        "-- MySQL dump 10.13  Distrib",
    );
    assert_eq!(
        sound(mysql.as_bytes(), Level::Fast, Format::MysqlDump).table_data,
        Some(true)
    );
}

// --- pg_dump custom format -----------------------------------------------------

#[test]
fn pg_dump_custom_healthy_in_every_variant() {
    for name in ["pg-shop.dump", "pg-shop-piped.dump", "pg-shop-z0.dump"] {
        let dump = fs::read(fixture(name)).unwrap();
        for level in [Level::Fast, Level::Full] {
            let r = sound(&dump, level, Format::PgCustom);
            assert_eq!(r.table_data, Some(true), "{name}");
        }
    }
    let empty = fs::read(fixture("pg-empty.dump")).unwrap();
    let r = sound(&empty, Level::Fast, Format::PgCustom);
    assert_eq!(r.table_data, Some(false));
    assert!(
        empty_dump_detail(&r, true)
            .unwrap()
            .contains("no TABLE DATA entry")
    );
}

#[test]
fn pg_dump_custom_truncated_anywhere_is_damaged() {
    for name in ["pg-shop.dump", "pg-shop-piped.dump", "pg-shop-z0.dump"] {
        let dump = fs::read(fixture(name)).unwrap();
        let len = dump.len();
        for cut in [20, 300, len / 3, len / 2, len - 200, len - 5, len - 1] {
            for level in [Level::Fast, Level::Full] {
                let r = check_bytes(&dump[..cut], level).unwrap();
                assert_eq!(r.format, Format::PgCustom);
                let Verdict::Damaged(d) = &r.verdict else {
                    panic!("{name} cut at {cut} ({level:?}): {:?}", r.verdict);
                };
                assert!(d.starts_with("pg_dump custom archive"), "{d}");
                assert!(
                    d.contains(&n(cut as u64)) || d.contains("should start at byte"),
                    "{d}"
                );
            }
        }
    }
    // The detail names the table whose data is cut.
    let dump = fs::read(fixture("pg-shop-z0.dump")).unwrap();
    let d = damaged(
        &dump[..dump.len() / 2],
        Level::Fast,
        Format::PgCustom,
        "inside the data of",
    );
    assert!(d.contains("table data '"), "{d}");
}

// --- compressed streams -----------------------------------------------------------

fn gz_of(dir: &Path, name: &str, content: &[u8], args: &[&str]) -> Vec<u8> {
    fs::write(dir.join(name), content).unwrap();
    let mut a = vec!["-kf"];
    a.extend_from_slice(args);
    a.push(name);
    run(dir, "gzip", &a);
    fs::read(dir.join(format!("{name}.gz"))).unwrap()
}

#[test]
fn gzip_healthy_truncated_and_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let gz = gz_of(dir.path(), "t", &text(20_000), &[]);
    // Fast cannot prove a gzip stream's end; it says nothing.
    undecided(&gz, Level::Fast, Format::Gzip);
    sound(&gz, Level::Full, Format::Gzip);
    let cut = &gz[..gz.len() / 2];
    let d = damaged(cut, Level::Full, Format::Gzip, "gzip stream ends at byte");
    assert_eq!(
        d,
        format!(
            "gzip stream ends at byte {} before its trailer: the file was cut off",
            n(cut.len() as u64)
        )
    );
    // Cut a few bytes short: only the trailer is missing.
    damaged(
        &gz[..gz.len() - 3],
        Level::Full,
        Format::Gzip,
        "before its trailer",
    );
    // A wrong CRC in the trailer, and a corrupted deflate body.
    let len = gz.len();
    damaged(
        &flip(&gz, len - 6),
        Level::Full,
        Format::Gzip,
        "fails its CRC32/length check",
    );
    let bad = flip(&gz, len / 2);
    let r = check_bytes(&bad, Level::Full).unwrap();
    assert!(matches!(r.verdict, Verdict::Damaged(_)), "{:?}", r.verdict);
    // Cut inside the header.
    damaged(&gz[..5], Level::Fast, Format::Gzip, "inside its header");
    // Fast: an impossible ISIZE in a small file is confirmed and reported.
    let small = gz_of(dir.path(), "s", &text(3000), &[]);
    let d = damaged(
        &small[..small.len() / 3],
        Level::Fast,
        Format::Gzip,
        "before its trailer",
    );
    assert!(d.contains(&n((small.len() / 3) as u64)), "{d}");
}

#[test]
fn gzip_multi_member_trailing_zeros_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let a = gz_of(dir.path(), "a", &text(500), &[]);
    let b = gz_of(dir.path(), "b", &text(700), &["-9", "-n"]);
    let both = [a.clone(), b.clone()].concat();
    sound(&both, Level::Full, Format::Gzip);
    let d = damaged(
        &both[..a.len() + b.len() / 2],
        Level::Full,
        Format::Gzip,
        "member 2 at byte",
    );
    assert!(d.contains(&n(a.len() as u64)), "{d}");
    let padded = [a.clone(), vec![0u8; 1024]].concat();
    undecided(&padded, Level::Fast, Format::Gzip);
    sound(&padded, Level::Full, Format::Gzip);
    // An empty gzip file passes gzip -t: the empty backup is caught by the
    // dump's content and by `shrunk`, not here.
    let e = gz_of(dir.path(), "e", b"", &[]);
    sound(&e, Level::Full, Format::Gzip);
}

#[test]
fn gzip_of_a_dump_checks_the_dump_inside_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let dump = fs::read(fixture("pg-shop.sql")).unwrap();
    let gz = gz_of(dir.path(), "d.sql", &dump, &[]);
    let r = sound(&gz, Level::Full, Format::Gzip);
    assert_eq!((r.inner, r.table_data), (Some(Format::PgDump), Some(true)));
    // A dump cut off, then compressed whole: the gzip is fine, the dump not.
    let cut = &dump[..dump.len() * 2 / 3];
    let gz = gz_of(dir.path(), "c.sql", cut, &[]);
    let d = damaged(
        &gz,
        Level::Full,
        Format::Gzip,
        "the gzip stream holds pg_dump output that ends",
    );
    assert!(d.contains(&n(cut.len() as u64)), "{d}");
    // An empty database, gzipped.
    let empty = fs::read(fixture("pg-empty.sql")).unwrap();
    let gz = gz_of(dir.path(), "e.sql", &empty, &[]);
    let r = sound(&gz, Level::Full, Format::Gzip);
    assert_eq!(r.table_data, Some(false));
    assert!(empty_dump_detail(&r, true).is_some());
}

#[test]
fn zstd_healthy_truncated_and_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("t"), text(40_000)).unwrap();
    run(dir.path(), "zstd", &["-q", "-f", "t", "-o", "t.zst"]);
    run(
        dir.path(),
        "zstd",
        &["-q", "-f", "--no-check", "-19", "t", "-o", "n.zst"],
    );
    for name in ["t.zst", "n.zst"] {
        let z = fs::read(dir.path().join(name)).unwrap();
        sound(&z, Level::Fast, Format::Zstd);
        sound(&z, Level::Full, Format::Zstd);
        for cut in [6, z.len() / 2, z.len() - 1] {
            let d = damaged(
                &z[..cut],
                Level::Fast,
                Format::Zstd,
                "zstd stream ends at byte",
            );
            assert!(d.contains(&n(cut as u64)), "{d}");
        }
    }
    // Two frames (zstd -c a b > ab.zst style) are one healthy stream.
    let z = fs::read(dir.path().join("t.zst")).unwrap();
    let two = [z.clone(), z.clone()].concat();
    sound(&two, Level::Full, Format::Zstd);
    // A corrupted body: the walk may pass, decompressing does not.
    let bad = flip(&z, z.len() / 2);
    let r = check_bytes(&bad, Level::Full).unwrap();
    assert!(matches!(r.verdict, Verdict::Damaged(_)), "{:?}", r.verdict);
    // A corrupted checksum.
    damaged(
        &flip(&z, z.len() - 2),
        Level::Full,
        Format::Zstd,
        "zstd data is corrupt",
    );
}

#[test]
fn xz_and_bzip2_healthy_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("t"), text(20_000)).unwrap();
    run(dir.path(), "xz", &["-kf", "t"]);
    run(dir.path(), "bzip2", &["-kf", "t"]);
    let xz = fs::read(dir.path().join("t.xz")).unwrap();
    sound(&xz, Level::Fast, Format::Xz);
    sound(&[xz.clone(), vec![0; 8]].concat(), Level::Fast, Format::Xz);
    damaged(
        &xz[..xz.len() / 2],
        Level::Fast,
        Format::Xz,
        "without its footer",
    );
    damaged(&xz[..xz.len() - 1], Level::Fast, Format::Xz, "xz");
    let bz = fs::read(dir.path().join("t.bz2")).unwrap();
    sound(&bz, Level::Fast, Format::Bzip2);
    sound(
        &[bz.clone(), bz.clone()].concat(),
        Level::Fast,
        Format::Bzip2,
    );
    let d = damaged(
        &bz[..bz.len() / 2],
        Level::Fast,
        Format::Bzip2,
        "without its end-of-stream marker",
    );
    assert!(d.contains(&n((bz.len() / 2) as u64)), "{d}");
    damaged(&bz[..bz.len() - 4], Level::Fast, Format::Bzip2, "bzip2");
}

// --- archives -----------------------------------------------------------------

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("src/sub")).unwrap();
    fs::write(dir.join("src/a.txt"), text(100)).unwrap();
    fs::write(dir.join("src/sub/b.bin"), noise(5000)).unwrap();
    fs::write(dir.join("src/empty"), b"").unwrap();
    let long = "x".repeat(150);
    fs::write(dir.join("src/sub").join(&long), b"long name").unwrap();
    std::os::unix::fs::symlink("a.txt", dir.join("src/link")).unwrap();
}

#[test]
fn tar_healthy_in_each_format_truncated_and_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    for fmt in ["gnu", "pax", "ustar"] {
        let name = format!("{fmt}.tar");
        let args = ["--format", fmt, "-cf", &name, "src"];
        if fmt == "ustar" {
            // ustar cannot hold the 150-byte name.
            run(
                dir.path(),
                "tar",
                &["--format", fmt, "-cf", &name, "src/a.txt", "src/sub/b.bin"],
            );
        } else {
            run(dir.path(), "tar", &args);
        }
        let t = fs::read(dir.path().join(&name)).unwrap();
        sound(&t, Level::Fast, Format::Tar);
        // Cut exactly after the last entry: no end-of-archive blocks.
        let mut end = t.len();
        while t[end - 512..end].iter().all(|&b| b == 0) {
            end -= 512;
        }
        let d = damaged(
            &t[..end],
            Level::Fast,
            Format::Tar,
            "without its end-of-archive marker (two zero blocks)",
        );
        assert!(
            d.contains(&format!("ends at byte {} after entry", n(end as u64))),
            "{d}"
        );
        // Cut inside an entry's data.
        let at = memmem::find(&t, &noise(5000)[..64]).unwrap();
        damaged(
            &t[..at + 100],
            Level::Fast,
            Format::Tar,
            "tar entry 'src/sub/b.bin' (5,000 bytes) is cut off",
        );
        // A corrupted header.
        damaged(
            &flip(&t, at - 512 + 130),
            Level::Fast,
            Format::Tar,
            "fails its checksum",
        );
    }
}

#[test]
fn zip_healthy_truncated_and_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    run(dir.path(), "zip", &["-qr", "-y", "a.zip", "src"]);
    let z = fs::read(dir.path().join("a.zip")).unwrap();
    sound(&z, Level::Fast, Format::Zip);
    sound(&z, Level::Full, Format::Zip);
    let d = damaged(
        &z[..z.len() - 30],
        Level::Fast,
        Format::Zip,
        "no end-of-central-directory record",
    );
    assert!(d.contains(&n((z.len() - 30) as u64)), "{d}");
    damaged(
        &z[..z.len() / 2],
        Level::Fast,
        Format::Zip,
        "no end-of-central-directory record",
    );
    // A corrupted deflated body: the structure is whole, the CRC is not.
    let at = memmem::find(&z, b"src/a.txt").unwrap() + 9 + 40;
    let bad = flip(&z, at);
    sound(&bad, Level::Fast, Format::Zip);
    let r = check_bytes(&bad, Level::Full).unwrap();
    let Verdict::Damaged(d) = r.verdict else {
        panic!("{:?}", r.verdict)
    };
    assert!(d.starts_with("zip entry 'src/a.txt'"), "{d}");
    // Junk after the end record (unzip tolerates it) is not damage.
    sound(
        &[z.clone(), b"junk after the end".to_vec()].concat(),
        Level::Fast,
        Format::Zip,
    );
    // A zip with a comment.
    fs::write(dir.path().join("c"), "a comment\n").unwrap();
    run(dir.path(), "sh", &["-c", "zip -q -z a.zip < c"]);
    sound(
        &fs::read(dir.path().join("a.zip")).unwrap(),
        Level::Full,
        Format::Zip,
    );
}

// --- images -----------------------------------------------------------------------

fn pillow(dir: &Path) {
    python(
        dir,
        r#"
from PIL import Image
import random
random.seed(7)
im = Image.new("RGB", (800, 600))
im.putdata([(random.randrange(256), (x * 3) % 256, 90) for x in range(800 * 600)])
im.save("a.jpg", quality=95)
im.save("p.jpg", quality=90, progressive=True)
im.save("a.png")
im.save("a.webp", quality=80)
"#,
    );
}

#[test]
fn jpeg_healthy_truncated_and_with_trailing_data() {
    let dir = tempfile::tempdir().unwrap();
    pillow(dir.path());
    for name in ["a.jpg", "p.jpg"] {
        let j = fs::read(dir.path().join(name)).unwrap();
        assert!(j.len() > 200 * 1024, "{}", j.len());
        sound(&j, Level::Fast, Format::Jpeg);
        // Missing its last 100 KiB.
        let cut = &j[..j.len() - 100 * 1024];
        let d = damaged(
            cut,
            Level::Fast,
            Format::Jpeg,
            "JPEG has no end-of-image marker",
        );
        assert_eq!(
            d,
            format!(
                "JPEG has no end-of-image marker: its data stops at byte {} (the image was cut off)",
                n(cut.len() as u64)
            )
        );
        // Missing only the EOI.
        damaged(
            &j[..j.len() - 2],
            Level::Fast,
            Format::Jpeg,
            "no end-of-image marker",
        );
        sound(&j, Level::Full, Format::Jpeg);
        damaged(cut, Level::Full, Format::Jpeg, "no end-of-image marker");
        // Trailing data after EOI (a motion photo, a thumbnail) is fine.
        let trailing = [j.clone(), noise(300 * 1024)].concat();
        sound(&trailing, Level::Fast, Format::Jpeg);
        sound(&trailing, Level::Full, Format::Jpeg);
        // Cut inside the headers, then bytes that happen to end in FF D9:
        // the fast walk trusts a final EOI only when the headers are whole.
        let header_cut = [&j[..200], &[0xff, 0xd9][..]].concat();
        damaged(
            &header_cut,
            Level::Fast,
            Format::Jpeg,
            "no end-of-image marker",
        );
    }
    // A header segment with an impossible length.
    let j = fs::read(dir.path().join("a.jpg")).unwrap();
    let mut bad = j.clone();
    bad[4] = 0;
    bad[5] = 1;
    damaged(
        &bad,
        Level::Fast,
        Format::Jpeg,
        "has an impossible length 1",
    );
}

#[test]
fn png_healthy_truncated_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    pillow(dir.path());
    let p = fs::read(dir.path().join("a.png")).unwrap();
    sound(&p, Level::Fast, Format::Png);
    sound(&p, Level::Full, Format::Png);
    let d = damaged(
        &p[..p.len() / 2],
        Level::Fast,
        Format::Png,
        "inside its 'IDAT' chunk",
    );
    assert!(d.contains(&n((p.len() / 2) as u64)), "{d}");
    damaged(
        &p[..p.len() - 12],
        Level::Fast,
        Format::Png,
        "PNG has no IEND chunk",
    );
    let bad = flip(&p, p.len() / 2);
    sound(&bad, Level::Fast, Format::Png);
    damaged(&bad, Level::Full, Format::Png, "fails its CRC32");
}

#[test]
fn webp_healthy_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    pillow(dir.path());
    let w = fs::read(dir.path().join("a.webp")).unwrap();
    sound(&w, Level::Fast, Format::Webp);
    damaged(
        &w[..w.len() - 1000],
        Level::Fast,
        Format::Webp,
        "the image was cut off",
    );
}

#[test]
fn iso_bmff_box_walk() {
    // No MP4/HEIC writer is installable here: boxes written by hand.
    let bx = |kind: &[u8], body: &[u8]| {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    };
    let file = [
        bx(b"ftyp", b"isom\0\0\x02\0isomiso2"),
        bx(b"moov", &noise(300)),
        bx(b"mdat", &noise(5000)),
    ]
    .concat();
    sound(&file, Level::Fast, Format::IsoBmff);
    damaged(
        &file[..file.len() - 10],
        Level::Fast,
        Format::IsoBmff,
        "box 'mdat' at byte 332 declares 5,008 bytes",
    );
}

// --- data files -----------------------------------------------------------------

#[test]
fn sqlite_healthy_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    python(
        dir.path(),
        "import sqlite3\nc = sqlite3.connect('a.db')\nc.execute('create table t (a, b)')\nc.executemany('insert into t values (?, ?)', [(i, 'x' * 200) for i in range(2000)])\nc.commit()\nc.close()",
    );
    let db = fs::read(dir.path().join("a.db")).unwrap();
    sound(&db, Level::Fast, Format::Sqlite);
    let d = damaged(
        &db[..db.len() - 4096],
        Level::Fast,
        Format::Sqlite,
        "SQLite database is cut off",
    );
    assert!(
        d.contains(&format!(
            "the file has {} bytes",
            n((db.len() - 4096) as u64)
        )),
        "{d}"
    );
}

#[test]
fn parquet_magic_and_footer() {
    // No Parquet writer is installed here (pyarrow is large): a minimal file
    // laid out as the spec says (PAR1, data, footer, length, PAR1).
    let footer = noise(100);
    let file = [
        b"PAR1".to_vec(),
        noise(1000),
        footer,
        100u32.to_le_bytes().to_vec(),
        b"PAR1".to_vec(),
    ]
    .concat();
    sound(&file, Level::Fast, Format::Parquet);
    damaged(
        &file[..file.len() - 3],
        Level::Fast,
        Format::Parquet,
        "lacks its closing 'PAR1' magic",
    );
    let mut big = file.clone();
    let at = big.len() - 8;
    big[at..at + 4].copy_from_slice(&5000u32.to_le_bytes());
    damaged(
        &big,
        Level::Fast,
        Format::Parquet,
        "footer claims 5,000 bytes",
    );
}

// --- xz / bzip2 full ----------------------------------------------------------

#[test]
fn xz_and_bzip2_full_decompression_finds_corruption_inside() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("t"), text(20_000)).unwrap();
    fs::write(
        dir.path().join("d.sql"),
        fs::read(fixture("pg-shop.sql")).unwrap(),
    )
    .unwrap();
    run(dir.path(), "xz", &["-kf", "t", "d.sql"]);
    run(dir.path(), "bzip2", &["-kf", "t", "d.sql"]);
    for (name, format) in [("t.xz", Format::Xz), ("t.bz2", Format::Bzip2)] {
        let b = fs::read(dir.path().join(name)).unwrap();
        sound(&b, Level::Full, format);
        // Two streams back to back (xz and bzip2 both accept it).
        sound(&[b.clone(), b.clone()].concat(), Level::Full, format);
        let bad = flip(&b, b.len() / 2);
        sound(&bad, Level::Fast, format);
        damaged(&bad, Level::Full, format, "data is corrupt");
    }
    // A dump inside: cut before compressing, the trailer check runs inside.
    let dump = fs::read(fixture("pg-shop.sql")).unwrap();
    fs::write(dir.path().join("cut.sql"), &dump[..dump.len() / 2]).unwrap();
    run(dir.path(), "xz", &["-kf", "cut.sql"]);
    run(dir.path(), "bzip2", &["-kf", "cut.sql"]);
    for (name, format) in [("cut.sql.xz", Format::Xz), ("cut.sql.bz2", Format::Bzip2)] {
        let b = fs::read(dir.path().join(name)).unwrap();
        damaged(
            &b,
            Level::Full,
            format,
            "stream holds pg_dump output that ends",
        );
    }
    for (name, format) in [("d.sql.xz", Format::Xz), ("d.sql.bz2", Format::Bzip2)] {
        let r = sound(
            &fs::read(dir.path().join(name)).unwrap(),
            Level::Full,
            format,
        );
        assert_eq!((r.inner, r.table_data), (Some(Format::PgDump), Some(true)));
    }
}

// --- TIFF -----------------------------------------------------------------------

#[test]
fn tiff_healthy_in_each_layout_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    python(
        dir.path(),
        r#"
from PIL import Image
import random
random.seed(5)
im = Image.new("RGB", (400, 300))
im.putdata([(random.randrange(256), x % 256, 9) for x in range(400 * 300)])
im.save("le.tif")
im.save("lzw.tif", compression="tiff_lzw")
im.save("big.tif", big_tiff=True)
im.save("multi.tif", save_all=True, append_images=[im.rotate(90)])

# Tiled and big-endian, by hand (no tiled TIFF writer is installed): 32x32
# grey in four 16x16 tiles; Pillow must read it back.
import struct
entries = [(256, 32), (257, 32), (258, 8), (259, 1), (262, 1), (277, 1), (322, 16), (323, 16)]
arrays_at = 8 + 2 + (len(entries) + 2) * 12 + 4
data_at = arrays_at + 32
out = bytearray(b"MM\0*" + struct.pack(">IH", 8, len(entries) + 2))
for tag, val in entries:
    out += struct.pack(">HHIHH", tag, 3, 1, val, 0)
out += struct.pack(">HHII", 324, 4, 4, arrays_at) + struct.pack(">HHII", 325, 4, 4, arrays_at + 16)
out += struct.pack(">I", 0)
out += struct.pack(">4I", *[data_at + 256 * i for i in range(4)]) + struct.pack(">4I", *[256] * 4)
out += b"".join(bytes([i * 40]) * 256 for i in range(4))
open("tiled.tif", "wb").write(out)
t = Image.open("tiled.tif")
t.load()
assert t.getpixel((20, 20)) == 120
"#,
    );
    for name in ["le.tif", "lzw.tif", "big.tif", "multi.tif", "tiled.tif"] {
        let b = fs::read(dir.path().join(name)).unwrap();
        sound(&b, Level::Fast, Format::Tiff);
        let cut = &b[..b.len() - 700.min(b.len() / 2)];
        let d = damaged(cut, Level::Fast, Format::Tiff, "the TIFF was cut off");
        assert!(d.contains(&n(cut.len() as u64)), "{name}: {d}");
    }
    let tiled = fs::read(dir.path().join("tiled.tif")).unwrap();
    assert!(tiled.starts_with(b"MM\0*"));
    // Pillow writes the directory before the strips: a cut loses strips.
    let le = fs::read(dir.path().join("le.tif")).unwrap();
    damaged(
        &le[..le.len() / 2],
        Level::Fast,
        Format::Tiff,
        "the image data of strip ",
    );
    // A directory offset pointing nowhere.
    let mut bad = le.clone();
    bad[4..8].copy_from_slice(&(le.len() as u32 + 10).to_le_bytes());
    damaged(&bad, Level::Fast, Format::Tiff, "the first image directory");
    // A loop in the chain is undecided, not damage.
    let mut looped = le.clone();
    let first = u32::from_le_bytes([le[4], le[5], le[6], le[7]]) as usize;
    let count = u16::from_le_bytes([le[first], le[first + 1]]) as usize;
    let next = first + 2 + count * 12;
    looped[next..next + 4].copy_from_slice(&(first as u32).to_le_bytes());
    undecided(&looped, Level::Fast, Format::Tiff);
}

// --- sets: pg_dump -Fd, pg_basebackup ------------------------------------------

/// A [`sets::Dir`] over a real directory.
struct TestDir(PathBuf, std::collections::HashSet<String>);

impl sets::Dir for TestDir {
    fn size(&self, name: &str) -> Option<u64> {
        fs::metadata(self.0.join(name))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }
    fn names(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(base, &e.path(), out);
                } else if t.is_file() {
                    let rel = e.path().strip_prefix(base).unwrap().to_path_buf();
                    out.push(rel.to_str().unwrap().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &self.0, &mut out);
        out
    }
    fn open(&self, name: &str) -> io::Result<Box<dyn sets::ReadSeek + '_>> {
        Ok(Box::new(File::open(self.0.join(name))?))
    }
    fn verified(&self, name: &str) -> bool {
        self.1.contains(name)
    }
}

fn copy_fixture_dir(name: &str, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn pgdir(dir: &Path) -> sets::SetReport {
    let toc = dir.join("toc.dat");
    let mut f = File::open(&toc).unwrap();
    let size = f.metadata().unwrap().len();
    sets::pgdir::check(
        &mut f,
        size,
        &TestDir(dir.to_path_buf(), Default::default()),
    )
    .unwrap()
    .expect("a directory archive")
}

#[test]
fn pg_dump_directory_healthy_missing_and_cut() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["pg-shop.dir", "pg-shop-z0.dir", "pg-empty.dir"] {
        let r = check_path(&fixture(name).join("toc.dat"), Level::Fast).unwrap();
        assert_eq!(
            (r.format, &r.verdict),
            (Format::PgDirectory, &Verdict::Sound)
        );
        assert_eq!(r.table_data, Some(name != "pg-empty.dir"), "{name}");
        let dir = tmp.path().join(name);
        copy_fixture_dir(name, &dir);
        let s = pgdir(&dir);
        assert_eq!(s.anchor, Verdict::Sound, "{name}");
        assert!(
            s.members.iter().all(|(_, v)| *v == Verdict::Sound),
            "{name}: {:?}",
            s.members
        );
    }
    // The empty-dump rule applies to the TOC like to a custom archive.
    let empty = check_path(&fixture("pg-empty.dir/toc.dat"), Level::Fast).unwrap();
    assert!(
        empty_dump_detail(&empty, true)
            .unwrap()
            .contains("no TABLE DATA entry")
    );

    let gz = tmp.path().join("pg-shop.dir");
    let blob = fs::read_dir(&gz)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("blob_"))
        .unwrap();
    fs::remove_file(gz.join("3351.dat.gz")).unwrap();
    fs::remove_file(gz.join(&blob)).unwrap();
    let s = pgdir(&gz);
    let oid = blob.trim_start_matches("blob_").trim_end_matches(".dat.gz");
    assert_eq!(
        s.anchor,
        Verdict::Damaged(format!(
            "pg_dump directory archive lacks 2 data files its toc.dat names: 3351.dat (table data public.customers), blob_{oid}.dat (large object {oid})"
        ))
    );
    // blobs.toc cut mid-line.
    let bt = fs::read(gz.join("blobs.toc")).unwrap();
    fs::write(gz.join("blobs.toc"), &bt[..bt.len() - 3]).unwrap();
    let s = pgdir(&gz);
    assert!(s.members.iter().any(|(n, v)| n == "blobs.toc"
        && matches!(v, Verdict::Damaged(d) if d.contains("in the middle of a line"))));

    let z0 = tmp.path().join("pg-shop-z0.dir");
    let data = fs::read(z0.join("3352.dat")).unwrap();
    fs::write(z0.join("3352.dat"), &data[..data.len() - 4]).unwrap();
    let s = pgdir(&z0);
    assert_eq!(s.anchor, Verdict::Sound);
    assert_eq!(
        s.members.iter().find(|(n, _)| n == "3352.dat").unwrap().1,
        Verdict::Damaged(format!(
            "pg_dump data file of table data public.orders ends at byte {} without the \\. line that ends COPY data: it was cut off",
            n(data.len() as u64 - 4)
        ))
    );
    // A custom archive is not a directory archive.
    let mut f = File::open(fixture("pg-shop.dump")).unwrap();
    let size = f.metadata().unwrap().len();
    assert!(
        sets::pgdir::check(&mut f, size, &TestDir(z0.clone(), Default::default()))
            .unwrap()
            .is_none()
    );
}

fn manifest(dir: &Path, level: Level, verified: &[&str]) -> sets::SetReport {
    let mut f = File::open(dir.join("backup_manifest")).unwrap();
    let size = f.metadata().unwrap().len();
    let d = TestDir(
        dir.to_path_buf(),
        verified.iter().map(|s| s.to_string()).collect(),
    );
    sets::manifest::check(&mut f, size, &d, level, &Budget::unlimited())
        .unwrap()
        .expect("a backup manifest")
}

#[test]
fn backup_manifest_sizes_checksums_and_its_own_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let bb = tmp.path().join("bb");
    fs::create_dir(&bb).unwrap();
    run(
        tmp.path(),
        "tar",
        &[
            "xJf",
            fixture("pg-basebackup.tar.xz").to_str().unwrap(),
            "-C",
            "bb",
        ],
    );
    let text = fs::read(bb.join("backup_manifest")).unwrap();
    // postgresql.auto.conf is listed but, as in pg_verifybackup, not compared.
    let listed = memmem::find_iter(&text, b"\"Path\"").count() - 1;
    assert!(memmem::find(&text, b"\"Path\": \"postgresql.auto.conf\"").is_some());
    for level in [Level::Fast, Level::Full] {
        let r = manifest(&bb, level, &[]);
        assert_eq!(r.anchor, Verdict::Sound);
        assert_eq!(r.members.len(), listed);
        assert!(r.members.iter().all(|(_, v)| *v == Verdict::Sound));
    }
    // Full reads every listed byte; a verified member is not read again.
    let all = manifest(&bb, Level::Full, &[]).bytes_read;
    let skip = manifest(&bb, Level::Full, &["base/1/1255"]).bytes_read;
    assert_eq!(
        all - skip,
        fs::metadata(bb.join("base/1/1255")).unwrap().len()
    );
    // CRC32C as PostgreSQL writes it: PG_VERSION holds "15\n".
    assert!(memmem::find(&text, b"\"Path\": \"PG_VERSION\", \"Size\": 3").is_some());

    let mut b = fs::read(bb.join("PG_VERSION")).unwrap();
    b[0] = b'9';
    fs::write(bb.join("PG_VERSION"), &b).unwrap();
    let r = manifest(&bb, Level::Fast, &[]);
    assert!(r.members.iter().all(|(_, v)| *v == Verdict::Sound));
    let r = manifest(&bb, Level::Full, &[]);
    let (_, v) = r.members.iter().find(|(n, _)| n == "PG_VERSION").unwrap();
    assert!(
        matches!(v, Verdict::Damaged(d) if d.starts_with("CRC32C checksum ")),
        "{v:?}"
    );

    // Cut: no Manifest-Checksum line.
    fs::write(bb.join("backup_manifest"), &text[..text.len() / 2]).unwrap();
    let r = manifest(&bb, Level::Fast, &[]);
    assert_eq!(
        r.anchor,
        Verdict::Damaged(format!(
            "backup_manifest ends at byte {} without its closing Manifest-Checksum line: it was cut off",
            n(text.len() as u64 / 2)
        ))
    );
    // One byte changed: its own checksum fails.
    fs::write(bb.join("backup_manifest"), flip(&text, 200)).unwrap();
    let r = manifest(&bb, Level::Fast, &[]);
    assert!(
        matches!(&r.anchor, Verdict::Damaged(d) if d.contains("own SHA-256 checksum")),
        "{:?}",
        r.anchor
    );
}

// --- pg_basebackup -Ft, and plain with WAL -------------------------------------

/// Unpacks the checked-in `pg_basebackup -Ft -X stream` (base.tar, a
/// tablespace's OID.tar, pg_wal.tar, backup_manifest) into `dir`.
fn tar_backup(dir: &Path) -> String {
    fs::create_dir_all(dir).unwrap();
    let xz = fixture("pg-basebackup-tar.tar.xz");
    run(dir, "tar", &["xJf", xz.to_str().unwrap()]);
    tablespace_oid(dir)
}

fn tablespace_oid(dir: &Path) -> String {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find_map(|n| {
            n.strip_suffix(".tar")
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_string)
        })
        .expect("a tablespace archive")
}

/// The regular-file members of an uncompressed tar: (name, data offset, size).
fn tar_members(tar: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 512 <= tar.len() && tar[pos..pos + 512].iter().any(|&b| b != 0) {
        let h = &tar[pos..pos + 512];
        let end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..end]).into_owned();
        let size = archive::octal(&h[124..136]).unwrap() as usize;
        if matches!(h[156], b'0' | 0) {
            out.push((name, pos + 512, size));
        }
        pos += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Removes member `name` from the tar at `path` (GNU tar --delete
/// rewrites the member before the deleted one wrongly on an archive that
/// is not padded to its 10 KiB records, as pg_basebackup's are not).
fn tar_delete(path: &Path, name: &str) {
    let mut tar = fs::read(path).unwrap();
    let (_, off, size) = tar_members(&tar)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not in {}", path.display()));
    tar.drain(off - 512..off + size.div_ceil(512) * 512);
    fs::write(path, tar).unwrap();
}

/// Renames member `from` to `to` (same length) in the tar at `path`.
fn tar_rename(path: &Path, from: &str, to: &str) {
    let mut tar = fs::read(path).unwrap();
    let (_, off, _) = tar_members(&tar)
        .into_iter()
        .find(|(n, _, _)| n == from)
        .unwrap();
    let h = &mut tar[off - 512..off];
    h[..to.len()].copy_from_slice(to.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    fs::write(path, tar).unwrap();
}

/// Appends a file `name` to the tar at `path` (Python's tarfile, which
/// finds the end-of-archive marker).
fn tar_append(path: &Path, name: &str, content: &str) {
    let dir = path.parent().unwrap();
    fs::write(dir.join(name), content).unwrap();
    python(
        dir,
        &format!(
            "import tarfile\nwith tarfile.open({:?}, 'a', format=tarfile.USTAR_FORMAT) as t: t.add({name:?})",
            path.file_name().unwrap().to_str().unwrap()
        ),
    );
    fs::remove_file(dir.join(name)).unwrap();
}

/// The segment name before `seg` (same timeline).
fn segment_before(seg: &str) -> String {
    let n = u64::from_str_radix(&seg[8..], 16).unwrap() - 1;
    format!("{}{:016X}", &seg[..8], n)
}

/// The first WAL segment name in pg_wal.tar.
fn wal_segment(dir: &Path) -> String {
    tar_members(&fs::read(dir.join("pg_wal.tar")).unwrap())
        .into_iter()
        .map(|(n, _, _)| n)
        .find(|n| n.len() == 24)
        .unwrap()
}

fn listed_crc(dir: &Path, path: &str) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("backup_manifest")).unwrap()).unwrap();
    m["Files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["Path"] == path)
        .unwrap()["Checksum"]
        .as_str()
        .unwrap()
        .to_string()
}

fn member_verdict(r: &sets::SetReport, name: &str) -> Verdict {
    r.members
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not in {:?}", r.members))
        .1
        .clone()
}

#[test]
fn tar_basebackup_healthy_plain_and_gzipped_passes_at_both_levels() {
    let tmp = tempfile::tempdir().unwrap();
    let bt = tmp.path().join("bt");
    let oid = tar_backup(&bt);
    let archives = [
        "base.tar".to_string(),
        format!("{oid}.tar"),
        "pg_wal.tar".into(),
    ];
    let total: u64 = archives
        .iter()
        .map(|a| fs::metadata(bt.join(a)).unwrap().len())
        .sum();
    for level in [Level::Fast, Level::Full] {
        let r = manifest(&bt, level, &[]);
        assert_eq!(r.anchor, Verdict::Sound, "{level:?}");
        assert_eq!(r.level, level);
        let mut names: Vec<_> = r.members.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        let mut want = archives.to_vec();
        want.sort();
        assert_eq!(names, want);
        assert!(
            r.members.iter().all(|(_, v)| *v == Verdict::Sound),
            "{level:?} {:?}",
            r.members
        );
        if level == Level::Fast {
            // Headers only: a small part of the archives.
            assert!(r.bytes_read < total / 10, "{} of {total}", r.bytes_read);
        } else {
            assert!(r.bytes_read >= fs::metadata(bt.join("base.tar")).unwrap().len() / 2);
        }
    }
    // A member verified in full is not read again.
    let skip = manifest(&bt, Level::Full, &["base.tar"]);
    assert!(!skip.members.iter().any(|(n, _)| n == "base.tar"));
    assert_eq!(skip.anchor, Verdict::Sound);

    // pg_basebackup -z: .tar.gz archives. fast cannot look inside them.
    for a in &archives {
        run(&bt, "gzip", &["-n", a]);
    }
    let r = manifest(&bt, Level::Fast, &[]);
    assert_eq!((r.anchor.clone(), r.members.len()), (Verdict::Sound, 0));
    let r = manifest(&bt, Level::Full, &[]);
    assert_eq!(r.anchor, Verdict::Sound);
    assert_eq!(r.members.len(), 3);
    assert!(
        r.members.iter().all(|(_, v)| *v == Verdict::Sound),
        "{:?}",
        r.members
    );
    // A member removed from a compressed archive is found in full.
    run(&bt, "gunzip", &["base.tar.gz"]);
    tar_delete(&bt.join("base.tar"), "global/pg_control");
    run(&bt, "gzip", &["-n", "base.tar"]);
    let r = manifest(&bt, Level::Full, &[]);
    assert_eq!(
        member_verdict(&r, "base.tar.gz"),
        Verdict::Damaged("base.tar.gz lacks global/pg_control listed in backup_manifest".into())
    );
}

#[test]
fn tar_basebackup_member_removed_altered_extra_cut_and_wal_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let bt = tmp.path().join("bt");
    let oid = tar_backup(&bt);
    let seg = wal_segment(&bt);
    // A member removed, another altered in place, a file added.
    tar_delete(&bt.join("base.tar"), "global/pg_control");
    let mut base = fs::read(bt.join("base.tar")).unwrap();
    let (_, off, size) = tar_members(&base)
        .into_iter()
        .find(|(n, _, _)| n == "base/1/1255")
        .unwrap();
    assert!(size > 5000);
    base[off + 5000] ^= 0x20;
    fs::write(bt.join("base.tar"), &base).unwrap();
    tar_append(&bt.join("base.tar"), "extra.conf", "work_mem = 1GB\n");
    // The WAL segment the backup needs is not there: pg_wal.tar holds the
    // one before it instead.
    tar_rename(&bt.join("pg_wal.tar"), &seg, &segment_before(&seg));

    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(bt.join("backup_manifest")).unwrap()).unwrap();
    let range = &m["WAL-Ranges"][0];
    let wal = format!(
        "pg_wal.tar lacks WAL segment {seg} that restoring the backup needs (WAL from {} to {} on timeline 1)",
        range["Start-LSN"].as_str().unwrap(),
        range["End-LSN"].as_str().unwrap()
    );
    let lacks = "base.tar lacks global/pg_control listed in backup_manifest";
    let extra = "base.tar holds extra.conf, which backup_manifest does not list: it was added after the backup";
    let r = manifest(&bt, Level::Fast, &[]);
    assert_eq!(r.anchor, Verdict::Sound);
    assert_eq!(
        member_verdict(&r, "base.tar"),
        Verdict::Damaged(format!("{lacks}; {extra}"))
    );
    assert_eq!(
        member_verdict(&r, "pg_wal.tar"),
        Verdict::Damaged(wal.clone())
    );
    assert_eq!(member_verdict(&r, &format!("{oid}.tar")), Verdict::Sound);

    // full: the altered member's CRC32C too.
    let r = manifest(&bt, Level::Full, &[]);
    let Verdict::Damaged(d) = member_verdict(&r, "base.tar") else {
        panic!("{:?}", r.members)
    };
    let crc = listed_crc(&bt, "base/1/1255");
    let sums = "base.tar holds 1 file whose checksum differs from backup_manifest (changed after the backup): base/1/1255 (CRC32C ";
    assert!(d.starts_with(&format!("{lacks}; {sums}")), "{d}");
    assert!(d.ends_with(&format!(", listed {crc}); {extra}")), "{d}");

    // No segment at all in pg_wal.tar.
    let kept = fs::read(bt.join("pg_wal.tar")).unwrap();
    fs::write(bt.join("pg_wal.tar"), vec![0u8; 1024]).unwrap();
    let r = manifest(&bt, Level::Fast, &[]);
    assert_eq!(
        member_verdict(&r, "pg_wal.tar"),
        Verdict::Damaged(format!(
            "pg_wal.tar holds no WAL segment: restoring the backup needs the WAL from {} to {} on timeline 1",
            range["Start-LSN"].as_str().unwrap(),
            range["End-LSN"].as_str().unwrap()
        ))
    );
    // Without pg_wal.tar (a backup taken with -X none): not judged.
    fs::remove_file(bt.join("pg_wal.tar")).unwrap();
    let r = manifest(&bt, Level::Fast, &[]);
    assert_eq!(r.anchor, Verdict::Sound);
    fs::write(bt.join("pg_wal.tar"), kept).unwrap();

    // A tablespace archive lost: reported on the manifest.
    fs::remove_file(bt.join(format!("{oid}.tar"))).unwrap();
    let r = manifest(&bt, Level::Fast, &[]);
    assert_eq!(
        r.anchor,
        Verdict::Damaged(format!(
            "the backup lacks {oid}.tar (tablespace {oid}), which holds 1 file backup_manifest lists"
        ))
    );

    // Cut off: what follows the cut is lacking.
    let fresh = tmp.path().join("fresh");
    tar_backup(&fresh);
    let base = fs::read(fresh.join("base.tar")).unwrap();
    let members = tar_members(&base);
    let (last_whole, off, size) = members[members.len() / 2].clone();
    let cut = off + size.div_ceil(512) * 512;
    fs::write(fresh.join("base.tar"), &base[..cut]).unwrap();
    let r = manifest(&fresh, Level::Fast, &[]);
    let Verdict::Damaged(d) = member_verdict(&r, "base.tar") else {
        panic!("{:?}", r.members)
    };
    assert!(
        d.starts_with(&format!(
            "base.tar ends before its end-of-archive marker (after {last_whole}): it was cut off; base.tar lacks "
        )) && d.contains(" files listed in backup_manifest: "),
        "{d}"
    );
}

/// The tar fixture unpacked as a plain-format backup (what `-Fp -X stream`
/// writes, the tablespace as a directory).
fn plain_from_tar(dir: &Path) -> String {
    let bt = dir.with_extension("tars");
    let oid = tar_backup(&bt);
    fs::create_dir_all(dir.join("pg_wal")).unwrap();
    fs::create_dir_all(dir.join(format!("pg_tblspc/{oid}"))).unwrap();
    let at = |a: &str| bt.join(a).to_str().unwrap().to_string();
    run(dir, "tar", &["xf", &at("base.tar")]);
    run(&dir.join("pg_wal"), "tar", &["xf", &at("pg_wal.tar")]);
    run(
        &dir.join(format!("pg_tblspc/{oid}")),
        "tar",
        &["xf", &at(&format!("{oid}.tar"))],
    );
    fs::copy(bt.join("backup_manifest"), dir.join("backup_manifest")).unwrap();
    wal_segment(&bt)
}

#[test]
fn plain_basebackup_wal_extra_files_and_the_ignore_list() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    let seg = plain_from_tar(&bp);
    for level in [Level::Fast, Level::Full] {
        let r = manifest(&bp, level, &[]);
        assert_eq!(r.anchor, Verdict::Sound, "{level:?}");
        assert!(r.members.iter().all(|(_, v)| *v == Verdict::Sound));
    }
    // pg_basebackup -R rewrites postgresql.auto.conf and adds
    // standby.signal: like pg_verifybackup, not judged.
    fs::write(bp.join("postgresql.auto.conf"), b"primary_conninfo = 'x'\n").unwrap();
    fs::write(bp.join("standby.signal"), b"").unwrap();
    let r = manifest(&bp, Level::Full, &[]);
    assert_eq!(r.anchor, Verdict::Sound);
    assert!(r.members.iter().all(|(_, v)| *v == Verdict::Sound));

    // A file not in the manifest, and the needed WAL segment gone.
    fs::write(bp.join("base/1/99999"), b"x").unwrap();
    fs::rename(
        bp.join("pg_wal").join(&seg),
        bp.join("pg_wal").join(segment_before(&seg)),
    )
    .unwrap();
    let r = manifest(&bp, Level::Fast, &[]);
    assert_eq!(
        member_verdict(&r, "base/1/99999"),
        Verdict::Damaged(
            "not listed in the backup's backup_manifest: the file was added to the backup after it was taken".into()
        )
    );
    let Verdict::Damaged(d) = &r.anchor else {
        panic!("{:?}", r.anchor)
    };
    assert!(
        d.starts_with(&format!(
            "pg_wal/ lacks WAL segment {seg} that restoring the backup needs (WAL from "
        )),
        "{d}"
    );
    // No WAL at all and no marker (-X none): not judged.
    fs::remove_dir_all(bp.join("pg_wal")).unwrap();
    let r = manifest(&bp, Level::Fast, &[]);
    assert_eq!(r.anchor, Verdict::Sound);
}

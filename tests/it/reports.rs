//! Cron-grade reports: formats, exit status, history, first_seen, health
//! checks, metrics, webhooks, named audits and the index lock.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use crate::*;

/// A tree with a directory backup beside it.
struct Setup {
    env: Env,
    backup: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let env = Env::new();
        let backup = env.dir.path().join("backup");
        std::fs::create_dir(&backup).unwrap();
        for (rel, content) in [
            ("a.txt", b"alpha".as_slice()),
            ("b/c.bin", &[3u8; 3000]),
            ("b/d,with \"quotes\".txt", b"csv-hostile name"),
        ] {
            env.write(rel, content);
            Env::write_in(&backup, rel, content);
        }
        Setup { env, backup }
    }

    fn audit_args(&self) -> Vec<String> {
        vec![
            "audit".into(),
            self.env.root.to_str().unwrap().into(),
            "--remote".into(),
            self.backup.to_str().unwrap().into(),
        ]
    }

    fn audit(&self, extra: &[&str]) -> std::process::Output {
        self.env
            .vouch()
            .args(self.audit_args())
            .args(extra)
            .output()
            .unwrap()
    }
}

#[test]
fn every_format_parses_back_with_a_real_parser_and_says_the_same() {
    let s = Setup::new();
    std::fs::remove_file(s.backup.join("a.txt")).unwrap();
    let json_out = s.audit(&["--format", "json", "--mode", "deep"]);
    assert_eq!(json_out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    let from_json: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] != "added")
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        from_json.contains(&("missing".into(), "a.txt".into())),
        "{from_json:?}"
    );
    assert_eq!(doc["summary"]["missing"], 1);
    assert_eq!(doc["summary"]["verified"], 2);

    // jsonl: one object per line, the summary last.
    let out = s.audit(&["--format", "jsonl", "--no-scan", "--mode", "deep"]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, items) = lines.split_last().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["missing"], 1);
    let kinds: Vec<(&str, &str)> = items
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("low_coverage", ""), ("missing", "a.txt")]);

    // csv: the header, one row per finding, a summary row; hostile names quoted.
    std::fs::remove_file(s.backup.join("b/d,with \"quotes\".txt")).unwrap();
    let out = s.audit(&["--format", "csv", "--no-scan"]);
    assert_eq!(out.status.code(), Some(1));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["kind", "path", "detail", "first_seen", "local", "remote"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let kinds: Vec<(&str, &str)> = rows.iter().map(|r| (&r[0], &r[1])).collect();
    assert_eq!(
        kinds,
        [
            ("low_coverage", ""),
            ("missing", "a.txt"),
            ("missing", "b/d,with \"quotes\".txt"),
            ("summary", "")
        ]
    );
    let summary: Value = serde_json::from_str(&rows[3][2]).unwrap();
    assert_eq!(summary["missing"], 2);
    let local: Value = serde_json::from_str(&rows[1][4]).unwrap();
    assert_eq!(local["size"], 5);
}

#[test]
fn the_json_shape_is_pinned() {
    let s = Setup::new();
    std::fs::write(s.backup.join("b/c.bin"), [3u8; 10]).unwrap();
    let out = s.audit(&["--format", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&doc), ["findings", "summary"]);
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "size_mismatch")
        .unwrap();
    assert_eq!(
        keys(f),
        [
            "detail",
            "discrepancy",
            "first_seen",
            "kind",
            "local",
            "path",
            "remote"
        ]
    );
    assert_eq!(f["path"], "b/c.bin");
    assert_eq!(f["local"]["size"], 3000);
    assert_eq!(f["remote"]["size"], 10);
    assert!(f["first_seen"].as_str().unwrap().ends_with('Z'));
    for counter in [
        "command",
        "root",
        "remote",
        "mode",
        "run",
        "missing",
        "extra",
        "size_mismatch",
        "corrupt",
        "unreadable",
        "unverified",
        "verified",
        "bytes_read",
        "local_files",
        "remote_objects",
        "coverage_files",
        "coverage_bytes",
        "scan",
    ] {
        assert!(
            doc["summary"].get(counter).is_some(),
            "summary lacks {counter}"
        );
    }
    for counter in [
        "added",
        "modified",
        "deleted",
        "unchanged",
        "unreadable",
        "bytes_hashed",
        "merkle_root",
    ] {
        assert!(
            doc["summary"]["scan"].get(counter).is_some(),
            "scan summary lacks {counter}"
        );
    }
}

#[test]
fn exit_status_is_0_clean_1_findings_2_trouble_and_quiet_is_silent_when_clean() {
    let s = Setup::new();
    let out = s.audit(&["--mode", "deep", "--quiet"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stderr.is_empty());

    std::fs::remove_file(s.backup.join("a.txt")).unwrap();
    let out = s.audit(&["--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("missing") && text.contains("a.txt"), "{text}");
    assert!(
        !text.contains("unverified"),
        "quiet lists only discrepancies: {text}"
    );

    let out = s
        .env
        .vouch()
        .args([
            "audit",
            s.env.root.to_str().unwrap(),
            "--remote",
            "/nonexistent/backup",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out).lines().count(), 1);
    let out = s
        .env
        .vouch()
        .args(["audit", "--bogus-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors are trouble too");
}

#[test]
fn first_seen_is_kept_across_runs_and_report_reprints_a_past_run() {
    let s = Setup::new();
    std::fs::remove_file(s.backup.join("a.txt")).unwrap();
    let out = s.audit(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    // Make the first sighting unmistakably old.
    let conn = rusqlite::Connection::open(&s.env.index).unwrap();
    conn.execute(
        "UPDATE findings SET first_seen = 1000000000 WHERE kind = 'missing'",
        [],
    )
    .unwrap();
    drop(conn);
    for _ in 0..2 {
        let out = s.audit(&["--format", "json"]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let missing = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "missing")
            .unwrap()
            .clone();
        assert_eq!(missing["first_seen"], "2001-09-09T01:46:40Z");
    }
    // Mended, then broken again: a new first sighting.
    Env::write_in(&s.backup, "a.txt", b"alpha");
    assert_eq!(s.audit(&[]).status.code(), Some(0));
    std::fs::remove_file(s.backup.join("a.txt")).unwrap();
    let out = s.audit(&["--format", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = doc["summary"]["run"].as_i64().unwrap();
    let missing = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "missing")
        .unwrap()
        .clone();
    assert_ne!(missing["first_seen"], "2001-09-09T01:46:40Z");

    // report: the same findings, from the index, with --kind.
    let (code, rep) = s
        .env
        .json(&["report", "--run", &run.to_string(), "--kind", "missing"]);
    assert_eq!(code, 1);
    assert_eq!(findings(&rep), pairs(&[("missing", "a.txt")]));
    assert_eq!(rep["findings"][0]["first_seen"], missing["first_seen"]);
    assert_eq!(rep["summary"]["run"], run);

    // history lists every run with its status and counters.
    let (code, hist) = s.env.json(&["history"]);
    assert_eq!(code, 0);
    let runs = hist["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 10, "5 audits, each with its scan");
    let last = runs.last().unwrap();
    assert_eq!(last["command"], "audit");
    assert_eq!(last["status"], "findings");
    assert_eq!(last["summary"]["missing"], 1);
}

#[test]
fn report_derives_a_scans_changes_from_the_index() {
    let env = Env::new();
    env.write("stay", b"1");
    env.write("change", b"before");
    env.write("go", b"bye");
    assert_eq!(env.scan().0, 0);
    env.write("change", b"after!!");
    std::fs::remove_file(env.root.join("go")).unwrap();
    env.write("new", b"hi");
    let (_, live) = env.scan();
    let run = live["summary"]["run"].as_i64().unwrap();
    let (code, past) = env.json(&["report", "--run", &run.to_string()]);
    assert_eq!(code, 0);
    assert_eq!(findings(&past), findings(&live));
    assert_eq!(
        findings(&past),
        pairs(&[("added", "new"), ("deleted", "go"), ("modified", "change")])
    );
}

#[test]
fn an_emptied_backup_is_the_headline_and_a_shrunk_dump_is_caught() {
    let s = Setup::new();
    let dump = s.env.write("db/dump.sql", &vec![b'x'; 1 << 20]);
    Env::write_in(&s.backup, "db/dump.sql", &vec![b'x'; 1 << 20]);
    assert_eq!(s.audit(&["--mode", "deep"]).status.code(), Some(0));

    // The nightly dump comes out as 10 bytes, and the backup job copies it
    // faithfully: the copy matches, and it is still a disaster.
    std::fs::write(&dump, b"-- empty\n\n").unwrap();
    std::fs::write(s.backup.join("db/dump.sql"), b"-- empty\n\n").unwrap();
    let out = s.audit(&["--format", "json", "--mode", "deep"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shrunk: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "shrunk")
        .collect();
    // The tree, which lost 99% of its bytes (findings about the whole
    // come first), and the file.
    assert_eq!(shrunk.len(), 2);
    assert_eq!(shrunk[0]["path"], "");
    assert_eq!(shrunk[0]["local"]["after"]["files"], 4);
    assert_eq!(shrunk[1]["path"], "db/dump.sql");
    assert!(
        shrunk[1]["detail"]
            .as_str()
            .unwrap()
            .contains("1048576 to 10 bytes")
    );
    assert_eq!(doc["summary"]["shrunk"], 2);
    assert_eq!(doc["summary"]["verified"], 4, "the copy itself matches");

    // Someone empties the bucket.
    for e in std::fs::read_dir(&s.backup).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
    let out = s.audit(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["remote_empty"], 1);
    assert_eq!(doc["summary"]["missing"], 4);
    assert_eq!(doc["summary"]["coverage_bytes"], 0.0);
}

#[test]
fn a_backup_older_than_max_age_is_stale() {
    let s = Setup::new(); // backup files carry a 2020 mtime
    let out = s.audit(&["--format", "json", "--max-age", "26h"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stale: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "stale")
        .collect();
    assert_eq!(stale.len(), 1, "the whole backup, once");
    assert_eq!(stale[0]["path"], "");
    assert!(
        stale[0]["detail"]
            .as_str()
            .unwrap()
            .contains("has the backup job stopped")
    );
    // A generous limit: fresh enough.
    assert_eq!(s.audit(&["--max-age", "100years"]).status.code(), Some(0));

    // A file changed locally long after its backup copy was made, in a
    // backup that is otherwise running (a fresh object; a stopped backup is
    // one `stale` for the whole backup instead, see tests/it/verdict.rs).
    let f = s.env.root.join("a.txt");
    std::fs::write(&f, b"ALPHA").unwrap();
    set_mtime(&f, 1_700_000_000);
    let fresh = s.backup.join("b/c.bin");
    std::fs::File::options()
        .write(true)
        .open(&fresh)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let out = s.audit(&[
        "--format",
        "json",
        "--max-age",
        "30d",
        "--min-coverage",
        "0",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds = findings(&doc);
    assert!(
        kinds.contains(&("stale".into(), "a.txt".into())),
        "{kinds:?}"
    );
}

/// Checks the Prometheus text format line by line and returns the samples.
pub(crate) fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut samples = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            typed.insert(parts.next().unwrap().to_string());
            assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        let (name, labels) = series
            .split_once('{')
            .unwrap_or_else(|| panic!("bad line {line}"));
        assert!(labels.ends_with('}'), "{line}");
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        samples.push((name.to_string(), labels.to_string(), value.parse().unwrap()));
    }
    samples
}

fn sample(samples: &[(String, String, f64)], name: &str, label: &str) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l.contains(label))
        .unwrap_or_else(|| panic!("no sample {name} {label}"))
        .2
}

#[test]
fn metrics_are_written_atomically_in_prometheus_format_even_on_failure() {
    let s = Setup::new();
    let prom = s.env.dir.path().join("vouch.prom");
    std::fs::remove_file(s.backup.join("a.txt")).unwrap();
    let out = s.audit(&["--metrics", prom.to_str().unwrap(), "--mode", "deep"]);
    assert_eq!(out.status.code(), Some(1));
    let samples = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(sample(&samples, "vouch_findings", "kind=\"missing\""), 1.0);
    assert_eq!(sample(&samples, "vouch_findings", "kind=\"corrupt\""), 0.0);
    assert_eq!(sample(&samples, "vouch_verified_files", ""), 2.0);
    assert_eq!(sample(&samples, "vouch_last_run_exit_code", ""), 1.0);
    assert_eq!(
        sample(&samples, "vouch_last_success_timestamp_seconds", ""),
        0.0
    );
    assert!(sample(&samples, "vouch_coverage_ratio", "of=\"files\"") < 0.7);
    let leftovers: Vec<_> = std::fs::read_dir(s.env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "no temp files left behind");

    Env::write_in(&s.backup, "a.txt", b"alpha");
    assert_eq!(
        s.audit(&["--metrics", prom.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let samples = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    let success = sample(&samples, "vouch_last_success_timestamp_seconds", "");
    assert!(success > 1.7e9);

    // The backup disk is gone: exit 2, and the metrics say so, keeping the
    // time of the last success.
    std::fs::rename(&s.backup, s.env.dir.path().join("unplugged")).unwrap();
    assert_eq!(
        s.audit(&["--metrics", prom.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    let samples = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(sample(&samples, "vouch_last_run_exit_code", ""), 2.0);
    assert_eq!(
        sample(&samples, "vouch_last_success_timestamp_seconds", ""),
        success
    );
}

/// A one-shot HTTP listener: returns its URL and a handle yielding the
/// request body it received.
pub(crate) fn webhook() -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let body_start = loop {
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed before the headers ended");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
        assert!(head.starts_with("post /hook"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        while buf.len() < body_start + len {
            let n = conn.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
        String::from_utf8(buf[body_start..body_start + len].to_vec()).unwrap()
    });
    (url, handle)
}

#[test]
fn a_webhook_hears_about_discrepancies_and_a_dead_webhook_changes_nothing() {
    let s = Setup::new();
    std::fs::remove_file(s.backup.join("a.txt")).unwrap();
    let (url, received) = webhook();
    let out = s.audit(&["--notify", &url]);
    assert_eq!(out.status.code(), Some(1));
    let body: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("1 missing"), "{text}");
    assert!(text.contains(s.env.root.to_str().unwrap()), "{text}");
    assert_eq!(body["vouch"]["exit_code"], 1);

    // Nobody listens: reported on stderr, the result is unchanged.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let out = s.audit(&["--notify", &dead_url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("notification"),
        "{}",
        stderr_of(&out)
    );

    // A clean run notifies only with --notify-always.
    Env::write_in(&s.backup, "a.txt", b"alpha");
    let out = s.audit(&["--notify", &dead_url]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "no notification attempted: {}",
        stderr_of(&out)
    );
    let (url, received) = webhook();
    let out = s.audit(&["--notify", &url, "--notify-always"]);
    assert_eq!(out.status.code(), Some(0));
    let body: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    assert!(body["text"].as_str().unwrap().contains("no discrepancies"));
}

#[test]
fn named_audits_from_a_config_file_run_with_all() {
    let s = Setup::new();
    let other_root = s.env.dir.path().join("other");
    let other_backup = s.env.dir.path().join("other-backup");
    Env::write_in(&other_root, "x", b"x");
    std::fs::create_dir_all(&other_backup).unwrap();
    let prom_a = s.env.dir.path().join("a.prom");
    let prom_b = s.env.dir.path().join("b.prom");
    let config = s.env.dir.path().join("vouch.toml");
    std::fs::write(
        &config,
        format!(
            "index = {:?}\n\n[audit.photos]\nroot = {:?}\nremote = {:?}\nmode = \"deep\"\nmetrics = {:?}\n\n[audit.dumps]\nroot = {:?}\nremote = {:?}\nmin_coverage = 0.5\nmetrics = {:?}\n",
            s.env.index, s.env.root, s.backup, prom_a, other_root, other_backup, prom_b
        ),
    )
    .unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
    let out = cmd
        .env_remove("VOUCH_INDEX")
        .args(["run", "--all", "--format", "jsonl", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "dumps has a missing file: {}",
        stderr_of(&out)
    );
    let summaries: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "summary")
        .collect();
    assert_eq!(summaries.len(), 2);
    // Name order: dumps, then photos.
    assert_eq!(summaries[0]["missing"], 1);
    assert_eq!(summaries[0]["remote_empty"], 1);
    assert_eq!(summaries[1]["verified"], 3);
    let a = parse_prometheus(&std::fs::read_to_string(&prom_a).unwrap());
    let b = parse_prometheus(&std::fs::read_to_string(&prom_b).unwrap());
    assert_eq!(
        sample(&a, "vouch_last_run_exit_code", "name=\"photos\""),
        0.0
    );
    assert_eq!(
        sample(&b, "vouch_last_run_exit_code", "name=\"dumps\""),
        1.0
    );

    // One by name.
    let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
    cmd.args(["run", "photos", "-q", "--config"])
        .arg(&config)
        .assert()
        .code(0)
        .stdout("");
    // An unknown name lists the known ones.
    let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
    let out = cmd
        .args(["run", "nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("known: dumps, photos"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_malformed_config_names_file_and_line() {
    let env = Env::new();
    let config = env.dir.path().join("vouch.toml");
    std::fs::write(
        &config,
        "[audit.x]\nroot = \"/tmp\"\nremote = \"/tmp\"\nmin_coverag = 0.5\n",
    )
    .unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
    let out = cmd
        .args(["run", "--all", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("vouch.toml line 4") && err.contains("min_coverag"),
        "{err}"
    );
    std::fs::write(&config, "[audit.x\n").unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
    let out = cmd
        .args(["run", "x", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("line 1"), "{}", stderr_of(&out));
}

#[test]
fn a_second_run_on_a_locked_index_fails_clearly_or_waits() {
    let s = Setup::new();
    assert_eq!(s.env.scan().0, 0);
    // Another vouch process holds the index lock (flock, across processes).
    let mut lock_path = s.env.index.clone().into_os_string();
    lock_path.push(".lock");
    let holder = std::fs::File::options()
        .write(true)
        .open(&lock_path)
        .unwrap();
    holder.lock().unwrap();
    let out = s.audit(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("in use by another vouch run") && err.contains("--wait"),
        "{err}"
    );

    // Reads need no lock.
    let (code, _) = s.env.json(&["history"]);
    assert_eq!(code, 0);

    let mut waiting = std::process::Command::new(assert_cmd::cargo::cargo_bin("vouch"))
        .arg("--index")
        .arg(&s.env.index)
        .args(s.audit_args())
        .args(["--wait", "-q"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "it must wait for the lock"
    );
    holder.unlock().unwrap();
    let status = waiting.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    let env = Env::new();
    let out = env.vouch().args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("audit") && text.contains("--remote"),
        "{text}"
    );
    let out = env.vouch().arg("man").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(".ie") || text.contains(".TH"),
        "{}",
        &text[..200]
    );
}

#[test]
fn quiet_still_speaks_when_strict_fails_on_unverified_alone() {
    let s = Setup::new();
    let out = s.audit(&["--strict", "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("vouch audit"),
        "a failing run is never silent: {text:?}"
    );
}

/// `vouch … | head -1`: the reader closes the pipe after one line; vouch
/// stops writing and exits 0 without a word on stderr (like ripgrep),
/// not 2 with an I/O error, and never a panic.
#[test]
fn a_closed_pipe_ends_the_run_quietly_with_status_0() {
    let env = Env::new();
    for i in 0..3000 {
        Env::write_in(&env.root, format!("d{}/f{i}", i % 30), b"x");
    }
    let bin = assert_cmd::cargo::cargo_bin("vouch");
    let mut child = std::process::Command::new(bin)
        .arg("--index")
        .arg(&env.index)
        .args(["--format", "jsonl", "scan"])
        .arg(&env.root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("\"kind\":\"added\""), "{first}");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err, "");
}

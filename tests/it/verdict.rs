//! The verdict (issue 14): one line a person can act on, the JSON a script
//! can branch on, capped lists on a terminal, a stable JSON order, and
//! metrics named by the Prometheus conventions (checked by `promtool`).

use std::path::PathBuf;

use crate::reports::{parse_prometheus, webhook};
use serde_json::json;

use crate::*;

/// A 65-file tree with a directory backup holding an exact copy.
struct Copy65 {
    env: Env,
    backup: PathBuf,
}

impl Copy65 {
    fn new() -> Copy65 {
        let env = Env::new();
        let backup = env.dir.path().join("backup");
        for i in 0..65 {
            let rel = format!("d{}/file{i:02}.dat", i % 5);
            let content = format!("content of file {i}\n").repeat(40);
            env.write(&rel, content.as_bytes());
            Env::write_in(&backup, &rel, content.as_bytes());
        }
        Copy65 { env, backup }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "audit".into(),
            self.env.root.to_str().unwrap().into(),
            "--remote".into(),
            self.backup.to_str().unwrap().into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// Runs an audit; returns (exit code, stdout).
    fn audit(&self, extra: &[&str]) -> (i32, String) {
        let out = self.env.vouch().args(self.args(extra)).output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        (code, String::from_utf8(out.stdout).unwrap())
    }

    fn json(&self, extra: &[&str]) -> (i32, Value) {
        let args = self.args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.env.json(&args)
    }

    /// 1 missing, 1 extra, 1 truncated and 1 corrupted (same size) file;
    /// with one file missing the backup holds less than `--min-coverage`
    /// 0.99 of the files, so `low_coverage` too.
    fn damage(&self) {
        std::fs::remove_file(self.backup.join("d0/file00.dat")).unwrap();
        Env::write_in(&self.backup, "d0/stray.dat", b"not in the tree");
        Env::write_in(&self.backup, "d1/file01.dat", b"truncated");
        let rel = "d2/file02.dat";
        let mut bytes = std::fs::read(self.env.root.join(rel)).unwrap();
        bytes[7] ^= 0x20;
        // A new mtime, so a new ETag: the old proof is void.
        let path = Env::write_in(&self.backup, rel, &bytes);
        set_mtime(&path, 1_600_000_100);
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[test]
fn the_first_line_is_the_verdict_and_nothing_proven_is_never_a_success() {
    let c = Copy65::new();
    let (code, text) = c.audit(&[]);
    assert_eq!(
        code, 0,
        "unproven keeps exit 0 (use --strict to fail): {text}"
    );
    let line = first_line(&text);
    assert!(line.starts_with("NOT PROVEN: "), "{text}");
    assert!(line.contains("0 of 65 files"), "{line}");
    assert!(line.contains("--mode deep"), "{line}");
    assert!(line.contains("the other 65 files (47.9 KiB)"), "{line}");
    // Changes and unverified collapse to one line each.
    assert!(text.contains("\nadded          65 ("), "{text}");
    assert!(text.contains("\nunverified     65 ("), "{text}");
    assert_eq!(text.matches("unverified").count(), 2, "{text}");

    // A cron job under -q hears about it; the webhook does not call it a
    // success; history does not say ok.
    let (code, quiet) = c.audit(&["-q"]);
    assert_eq!(code, 0);
    assert!(first_line(&quiet).starts_with("NOT PROVEN: "), "{quiet:?}");
    let (url, received) = webhook();
    let (code, _) = c.audit(&["--notify", &url, "--notify-always"]);
    assert_eq!(code, 0);
    let body: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    let said = body["text"].as_str().unwrap();
    assert!(
        said.contains("NOT PROVEN") && !said.contains('✅'),
        "{said}"
    );
    let history = c.env.vouch().arg("history").output().unwrap();
    let history = String::from_utf8(history.stdout).unwrap();
    let last = history.lines().last().unwrap();
    assert!(last.contains(" unproven "), "{history}");
    assert!(!last.contains(" ok "), "{history}");

    // A lower --min-proven is a choice the reader sees.
    let (code, text) = c.audit(&["--min-proven", "0"]);
    assert_eq!(code, 0);
    assert!(
        first_line(&text).starts_with("PROVEN: clean; 0 of 65"),
        "{text}"
    );

    // Deep reads everything: proven, and -q is silent again.
    let (code, text) = c.audit(&["--mode", "deep"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        first_line(&text),
        "PROVEN: clean; 65 of 65 files (47.9 KiB of 47.9 KiB) proven identical (by BLAKE3 of the backup's bytes)"
    );
    let (code, quiet) = c.audit(&["-q"]);
    assert_eq!((code, quiet.as_str()), (0, ""), "cached proofs still prove");
    let history = c.env.vouch().arg("history").output().unwrap();
    let history = String::from_utf8(history.stdout).unwrap();
    assert!(
        history.lines().last().unwrap().contains(" proven "),
        "{history}"
    );

    c.damage();
    let (code, text) = c.audit(&["--mode", "deep"]);
    assert_eq!(code, 1);
    assert_eq!(
        first_line(&text),
        "DAMAGED: 5 discrepancies (1 missing, 1 extra, 1 size_mismatch, 1 corrupt, 1 low_coverage); 62 of 65 files (45.7 KiB of 47.9 KiB) proven identical"
    );
    // Discrepancies next: the whole-backup headline, then grouped by kind
    // in the order of the verdict.
    let kinds: Vec<&str> = text
        .lines()
        .skip(1)
        .take(5)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "low_coverage",
            "missing",
            "extra",
            "size_mismatch",
            "corrupt"
        ],
        "{text}"
    );
}

#[test]
fn json_says_status_and_discrepancies_even_under_quiet() {
    let c = Copy65::new();
    let (code, doc) = c.json(&["-q"]);
    assert_eq!(code, 0);
    assert_eq!(doc["summary"]["status"], "unproven");
    assert_eq!(doc["summary"]["discrepancies"], 0);
    let (code, doc) = c.json(&["-q", "--mode", "deep"]);
    assert_eq!(code, 0);
    assert_eq!(doc["summary"]["status"], "proven", "-q still prints JSON");
    assert_eq!(doc["findings"], json!([]));

    c.damage();
    let (code, doc) = c.json(&["--mode", "deep"]);
    assert_eq!(code, 1);
    assert_eq!(doc["summary"]["status"], "damaged");
    assert_eq!(doc["summary"]["discrepancies"], 5);
    for f in doc["findings"].as_array().unwrap() {
        let kind = f["kind"].as_str().unwrap();
        let expected = !matches!(kind, "added" | "modified" | "deleted" | "unverified");
        assert_eq!(f["discrepancy"], expected, "{f}");
    }
    // report of the same run: the same verdict, from the index.
    let run = doc["summary"]["run"].to_string();
    let (code, rep) = c.env.json(&["report", "--run", &run]);
    assert_eq!(code, 1);
    assert_eq!(rep["summary"]["status"], "damaged");
    assert_eq!(rep["summary"]["run_status"], "findings");

    // A run that cannot finish: status failed, still a valid document.
    let (code, doc) = c.env.json(&[
        "audit",
        c.env.root.to_str().unwrap(),
        "--remote",
        "/nonexistent/backup",
        "-q",
    ]);
    assert_eq!(code, 2);
    assert_eq!(doc["summary"]["status"], "failed", "{doc}");
    assert!(doc["error"].is_string());
}

#[test]
fn a_terminal_list_is_capped_per_kind_and_json_and_output_are_not() {
    let env = Env::new();
    let backup = env.dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    Env::write_in(&backup, "kept", b"kept");
    env.write("kept", b"kept");
    for i in 0..30 {
        env.write(format!("gone/{i:02}"), b"lost");
    }
    let root = env.root.to_str().unwrap();
    let args = ["audit", root, "--remote", backup.to_str().unwrap()];
    let out = env.vouch().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let missing: Vec<&str> = text.lines().filter(|l| l.starts_with("missing ")).collect();
    assert_eq!(missing.len(), 20, "{text}");
    assert!(missing[0].contains("gone/00") && missing[19].contains("gone/19"));
    assert!(text.contains("… and 10 more missing ("), "{text}");

    let file = env.dir.path().join("report.txt");
    let out = env
        .vouch()
        .args(args)
        .arg("--output")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&file).unwrap();
    let missing = text.lines().filter(|l| l.starts_with("missing ")).count();
    assert_eq!(missing, 30, "--output lists all: {text}");

    let (_, doc) = env.json(&args);
    let n = findings(&doc)
        .iter()
        .filter(|(k, _)| k == "missing")
        .count();
    assert_eq!(n, 30);
}

/// The same tree and backup, audited twice from scratch (two indexes),
/// walked and read in parallel: byte-identical findings.
#[test]
fn the_same_tree_gives_byte_identical_json_findings() {
    let env = Env::new();
    let backup = env.dir.path().join("backup");
    for i in 0..400 {
        let rel = format!("d{}/f{i:03}", i % 40);
        let content = format!("file {i}").repeat(1 + i % 7);
        env.write(&rel, content.as_bytes());
        let copy = if i % 9 == 0 {
            content.to_uppercase()
        } else {
            content
        };
        if i % 13 != 0 {
            Env::write_in(&backup, &rel, copy.as_bytes());
        }
    }
    let root = env.root.to_str().unwrap().to_string();
    let docs: Vec<(String, String)> = ["one.sqlite3", "two.sqlite3"]
        .iter()
        .map(|name| {
            let index = env.dir.path().join(name);
            let vouch = || {
                let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
                cmd.env_remove("VOUCH_INDEX").arg("--index").arg(&index);
                cmd
            };
            let out = vouch()
                .args(["--format", "json", "--threads", "4", "scan", &root])
                .output()
                .unwrap();
            let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
            let out = vouch()
                .args(["--format", "json", "audit", &root, "--no-scan"])
                .args(["--remote", backup.to_str().unwrap()])
                .args(["--mode", "deep", "--jobs", "8"])
                .output()
                .unwrap();
            let mut audit: Value = serde_json::from_slice(&out.stdout).unwrap();
            // first_seen is the time of the run, the one thing that differs.
            for f in audit["findings"].as_array_mut().unwrap() {
                f.as_object_mut().unwrap().remove("first_seen");
            }
            (scan["findings"].to_string(), audit["findings"].to_string())
        })
        .collect();
    assert_eq!(docs[0].0, docs[1].0);
    assert_eq!(docs[0].1, docs[1].1);
    assert!(docs[0].1.contains("\"corrupt\"") && docs[0].1.contains("\"missing\""));
}

/// Units as suffixes, `_total` only on counters, and `promtool` agrees.
#[test]
fn metrics_follow_the_prometheus_conventions_and_promtool_agrees() {
    let c = Copy65::new();
    let prom = c.env.dir.path().join("vouch.prom");
    c.damage();
    let (code, _) = c.audit(&["--mode", "deep", "--metrics", prom.to_str().unwrap()]);
    assert_eq!(code, 1);
    let text = std::fs::read_to_string(&prom).unwrap();
    let (status, said) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(text.as_bytes());
    assert!(status.success(), "promtool: {said}\n{text}");
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line[7..].split(' ');
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
        let base = name.trim_end_matches("_total");
        for unit in ["bytes", "seconds", "ratio"] {
            if base.split('_').any(|w| w == unit) {
                assert!(base.ends_with(unit), "the unit goes last: {line}");
            }
        }
    }
    let samples = parse_prometheus(&text);
    let value = |name: &str, label: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l.contains(label))
            .unwrap_or_else(|| panic!("no {name} {label} in\n{text}"))
            .2
    };
    assert_eq!(value("vouch_verified_files", ""), 62.0);
    // 65 files of 720 or 760 bytes (49 000); 3 of 720 not proven.
    assert_eq!(value("vouch_verified_bytes", ""), 46_840.0);
    let ratio = value("vouch_proven_ratio", "");
    assert!(ratio > 0.9 && ratio < 1.0, "{ratio}");
    assert_eq!(value("vouch_proven_within_ratio", "days=\"1\""), 0.9559);
    // The corrupted copy is the newest object (see `damage`).
    let newest = value("vouch_backup_newest_object_timestamp_seconds", "");
    assert_eq!(newest, 1_600_000_100.0);
    let finished = value("vouch_last_run_timestamp_seconds", "");
    let age = value("vouch_backup_newest_object_age_seconds", "");
    assert_eq!(age, finished - newest);
    for old in [
        "vouch_bytes_verified",
        "vouch_files_verified",
        "vouch_bytes_read",
    ] {
        assert!(!text.contains(old), "{old} was renamed");
    }
}

trait WithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> (std::process::ExitStatus, String);
}

impl WithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> (std::process::ExitStatus, String) {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (Debian package prometheus, installed by scripts/test)");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
        said.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status, said)
    }
}

/// diff and scan open with their verdict too: a diff proves two trees
/// identical (Merkle subtrees skipped count as proven), a scan is `clean`.
#[test]
fn diff_and_scan_open_with_their_verdict() {
    let env = Env::new();
    let b = env.dir.path().join("b");
    for (rel, content) in [("x", b"hello".as_slice()), ("d/y", b"world!")] {
        env.write(rel, content);
        Env::write_in(&b, rel, content);
    }
    let a = env.root.to_str().unwrap();
    let out = env
        .vouch()
        .args(["diff", a, b.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        first_line(&text),
        "PROVEN: identical; 2 files proven identical (decided by merkle_root)"
    );
    let out = env.vouch().args(["scan", a]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(first_line(&text).starts_with("CLEAN: "), "{text}");
    let (_, doc) = env.json(&["scan", a]);
    assert_eq!(doc["summary"]["status"], "clean");
}

/// `scripts/demo` (the README's first command) runs on a fresh machine and
/// shows each kind of damage it makes, verdict first.
#[test]
fn the_demo_shows_its_damage_verdict_first() {
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo");
    let out = std::process::Command::new(script)
        .arg(dir.path().join("demo"))
        .env("VOUCH", assert_cmd::cargo::cargo_bin("vouch"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr_of(&out));
    let verdict = text
        .lines()
        .find(|l| l.starts_with("DAMAGED: "))
        .unwrap_or_else(|| panic!("no verdict: {text}"));
    assert!(
        verdict.starts_with(
            "DAMAGED: 5 discrepancies (1 missing, 1 size_mismatch, 1 corrupt, 1 low_coverage, 1 shrunk); 12 of 15 files"
        ),
        "{verdict}"
    );
    let report = std::fs::read(dir.path().join("demo/report.json")).unwrap();
    let doc: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(doc["summary"]["status"], "damaged");
    assert_eq!(doc["summary"]["discrepancies"], 5);
    // `report` of the audit lists what its own scan found, as the run did.
    let found = findings(&doc);
    assert!(
        found.contains(&("shrunk".into(), "dumps/orders.sql.gz".into())),
        "{found:?}"
    );
}

/// Loads a page in headless Chromium; returns the DOM after its scripts ran.
fn chromium(args: &[&str], page: &std::path::Path) -> String {
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (Debian package chromium, installed by scripts/test)");
    assert!(out.status.success(), "{}", stderr_of(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with this id in a dumped DOM.
fn by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\">");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in the page"))
        + open.len();
    &dom[start..start + dom[start..].find('<').unwrap()]
}

/// `--format html`: one self-contained page that renders in a real browser
/// without an error and says what the JSON of the same run says.
#[test]
fn the_html_report_renders_in_chromium_and_agrees_with_the_json() {
    let c = Copy65::new();
    c.env.scan();
    c.damage();
    let page = c.env.dir.path().join("report.html");
    let (code, _) = c.audit(
        &["--mode", "deep", "--format", "html", "--output"]
            .into_iter()
            .chain([page.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, 1);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    let (_, doc) = c.env.json(&["report"]);
    let dom = chromium(&["--dump-dom"], &page);
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the script ran to its end"
    );
    assert!(!dom.contains("data-errors"), "a script error: {dom}");
    assert!(by_id(&dom, "verdict").starts_with("DAMAGED: 5 discrepancies"));
    assert_eq!(
        by_id(&dom, "n-discrepancies"),
        doc["summary"]["discrepancies"].to_string()
    );
    for kind in [
        "missing",
        "extra",
        "size_mismatch",
        "corrupt",
        "low_coverage",
    ] {
        assert_eq!(
            by_id(&dom, &format!("n-{kind}")),
            doc["summary"][kind].to_string()
        );
    }
    let rows = doc["findings"].as_array().unwrap().len();
    assert_eq!(by_id(&dom, "n-findings"), rows.to_string());
    assert_eq!(by_id(&dom, "within-1d"), "95.6% of the bytes");

    // A picture for people to look at (kept in the target directory).
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vouch-report.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            "--window-size=1200,1100",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// Validates documents against schema/report.schema.json with Python's
/// `jsonschema` (a real validator); returns the error of each, if any.
fn schema_errors(docs: &[Value]) -> Vec<Option<String>> {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report.schema.json");
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
out = []
for doc in json.load(sys.stdin):
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    out.append("; ".join(e.message for e in errors) if errors else None)
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        Value::Array(docs.to_vec()).to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The JSON Schema in schema/ describes what vouch prints: every kind of
/// run validates, and a document that breaks the contract does not.
#[test]
fn the_json_schema_describes_real_output() {
    let c = Copy65::new();
    let root = c.env.root.to_str().unwrap().to_string();
    let mut docs = vec![
        c.env.scan().1,
        c.json(&[]).1,
        c.json(&["-q", "--mode", "deep"]).1,
    ];
    c.damage();
    docs.push(c.json(&["--mode", "deep"]).1);
    docs.push(c.env.json(&["report"]).1);
    docs.push(
        c.env
            .json(&["audit", &root, "--remote", "/nonexistent/backup"])
            .1,
    );
    docs.push(c.env.json(&["diff", &root, c.backup.to_str().unwrap()]).1);
    let statuses: Vec<&str> = docs
        .iter()
        .map(|d| d["summary"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "clean", "unproven", "proven", "damaged", "damaged", "failed", "damaged"
        ]
    );
    let errors = schema_errors(&docs);
    assert!(errors.iter().all(Option::is_none), "{errors:?}");

    // And it can fail: no verdict; a change marked as a discrepancy.
    let mut no_status = docs[3].clone();
    no_status["summary"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    let mut wrong = docs[0].clone();
    let added = wrong["findings"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["kind"] == "added")
        .unwrap();
    added["discrepancy"] = json!(true);
    let errors = schema_errors(&[no_status, wrong]);
    assert!(errors.iter().all(Option::is_some), "{errors:?}");
}

/// `vouch audit ROOT BACKUP` (the diff(1) habit) says how to name a backup.
#[test]
fn a_backup_given_as_an_operand_gets_a_hint_to_use_remote() {
    let env = Env::new();
    let root = env.root.to_str().unwrap();
    let out = env
        .vouch()
        .args(["audit", root, "/mnt/backup"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out),
        format!(
            "vouch: the backup is named with --remote: vouch audit {root} --remote /mnt/backup\n"
        )
    );
}

/// A stopped backup: one `stale` for the whole backup, not one per file
/// changed since.
#[test]
fn a_stopped_backup_is_one_stale_not_one_per_file() {
    let c = Copy65::new(); // the backup's files carry a 2020 mtime
    for i in 0..10 {
        let rel = format!("d{}/file{i:02}.dat", i % 5);
        let path = c
            .env
            .write(&rel, format!("CONTENT of file {i}\n").repeat(40).as_bytes());
        set_mtime(&path, 1_700_000_000);
    }
    let (code, doc) = c.json(&["--max-age", "26h", "--min-coverage", "0"]);
    assert_eq!(code, 1);
    let stale: Vec<String> = findings(&doc)
        .into_iter()
        .filter(|(k, _)| k == "stale")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(stale, [""], "the whole backup, once: {}", doc["findings"]);
}

/// `report` of a run that did not complete (killed, or failed) exits 2
/// and says why, in every format: it proves nothing.
#[test]
fn the_report_of_an_interrupted_or_failed_run_exits_2() {
    let c = Copy65::new();
    assert_eq!(c.audit(&["--mode", "deep"]).0, 0);
    // A killed run: its row stays `running` until the next writer marks
    // it `interrupted`.
    let conn = rusqlite::Connection::open(&c.env.index).unwrap();
    conn.execute(
        "INSERT INTO runs(root_id, command, remote, started_at, status) VALUES (1, 'audit', 'x', 0, 'running')",
        [],
    )
    .unwrap();
    let killed = conn.last_insert_rowid();
    drop(conn);
    assert_eq!(c.env.scan().0, 0);
    let out = c
        .env
        .vouch()
        .args(["report", "--run", &killed.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(first_line(&text).starts_with("FAILED: "), "{text}");
    assert!(
        stderr_of(&out).contains(&format!(
            "run {killed} did not complete: the run was interrupted"
        )),
        "{}",
        stderr_of(&out)
    );
    let (code, doc) = c.env.json(&["report", "--run", &killed.to_string()]);
    assert_eq!(code, 2);
    assert_eq!(doc["summary"]["status"], "failed");
    assert_eq!(doc["summary"]["run_status"], "interrupted");

    // A failed audit, as the engine records one.
    let conn = rusqlite::Connection::open(&c.env.index).unwrap();
    conn.execute(
        "INSERT INTO runs(root_id, command, remote, started_at, finished_at, status, exit_code, summary) VALUES (1, 'audit', 'x', 0, 1, 'failed', 2, '{\"error\":\"no route to host\"}')",
        [],
    )
    .unwrap();
    let failed = conn.last_insert_rowid();
    drop(conn);
    let (code, doc) = c.env.json(&["report", "--run", &failed.to_string()]);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(doc["summary"]["status"], "failed");
    assert_eq!(doc["summary"]["error"], "no route to host");
    // A finished run still reports with its own status.
    let (code, _) = c.env.json(&["report", "--run", "2"]);
    assert_eq!(code, 0);
}

/// `--kind K` narrows the list of audit, diff and verify as it does
/// report's; the verdict and the exit status stay the whole run's.
/// `report --kind unverified` is refused with the reason.
#[test]
fn kind_narrows_the_list_of_audit_diff_and_verify() {
    let c = Copy65::new();
    c.damage();
    let (code, doc) = c.json(&["--kind", "missing"]);
    assert_eq!(code, 1);
    assert_eq!(findings(&doc), pairs(&[("missing", "d0/file00.dat")]));
    assert_eq!(doc["summary"]["status"], "damaged");
    assert!(
        doc["summary"]["discrepancies"].as_u64().unwrap() >= 4,
        "{doc}"
    );
    // Exit 1 even when the kind asked for is not a discrepancy.
    let (code, text) = c.audit(&["--kind", "added"]);
    assert_eq!(code, 1);
    assert!(first_line(&text).starts_with("DAMAGED: "), "{text}");
    assert!(!text.contains("d0/file00.dat"), "{text}");
    let (code, doc) = c.json(&["--kind", "unverified"]);
    assert_eq!(code, 1);
    let kinds: std::collections::BTreeSet<String> =
        findings(&doc).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["unverified"]);

    let a = c.env.root.to_str().unwrap();
    let b = c.backup.to_str().unwrap();
    let (code, doc) = c.env.json(&["diff", a, b, "--kind", "extra"]);
    assert_eq!(code, 1, "{doc}");
    let kinds: Vec<String> = findings(&doc).into_iter().map(|(k, _)| k).collect();
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| k == "extra"),
        "{doc}"
    );

    let manifest = c.env.dir.path().join("b3sums");
    let out = c
        .env
        .vouch()
        .args(["export", a, "--format", "b3sum", "--output"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::fs::write(c.env.root.join("d3/file03.dat"), b"changed").unwrap();
    std::fs::remove_file(c.env.root.join("d4/file04.dat")).unwrap();
    let m = manifest.to_str().unwrap();
    let (code, all) = c.env.json(&["verify", a, "--manifest", m]);
    assert_eq!(code, 1, "{all}");
    assert!(findings(&all).len() >= 2, "{all}");
    let (code, doc) = c
        .env
        .json(&["verify", a, "--manifest", m, "--kind", "missing"]);
    assert_eq!(code, 1);
    assert_eq!(findings(&doc), pairs(&[("missing", "d4/file04.dat")]));

    let out = c
        .env
        .vouch()
        .args(["report", "--kind", "unverified"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("stores only its count of unverified")
            && err.contains("--kind unverified --format json"),
        "{err}"
    );
}

/// A system job (no HOME, no XDG variable: systemd without `User=`) uses
/// /etc/vouch and /var/lib/vouch, never the working directory.
#[test]
fn without_home_the_defaults_are_the_system_paths() {
    let env = Env::new();
    let run = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("vouch")
            .unwrap()
            .env_clear()
            .current_dir(env.dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["run", "--all"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("cannot read config /etc/vouch/vouch.toml"),
        "{}",
        stderr_of(&out)
    );
    if !std::path::Path::new("/var/lib/vouch/index.sqlite3").exists() {
        let out = run(&["history"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr_of(&out).contains("index /var/lib/vouch/index.sqlite3 does not exist"),
            "{}",
            stderr_of(&out)
        );
    }
    assert!(!env.dir.path().join("vouch").exists());
    assert!(!env.dir.path().join(".local").exists());
}

/// Relative paths in the config file are relative to the file, not to
/// the directory cron or systemd started vouch in.
#[test]
fn a_relative_root_in_the_config_is_relative_to_the_config_file() {
    let c = Copy65::new();
    let dir = c.env.dir.path();
    std::fs::create_dir(dir.join("etc")).unwrap();
    let cfg = dir.join("etc/vouch.toml");
    std::fs::write(
        &cfg,
        "index = \"../index.sqlite3\"\n[audit.prod]\nroot = \"../root\"\nremote = \"../backup\"\nmode = \"deep\"\n",
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("vouch")
        .unwrap()
        .env_remove("VOUCH_INDEX")
        .current_dir("/")
        .args(["run", "prod", "--format", "json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["status"], "proven", "{doc}");
    assert!(c.env.index.is_file());
    let root = std::fs::canonicalize(&c.env.root).unwrap();
    assert_eq!(doc["summary"]["root"], root.to_str().unwrap(), "{doc}");
}

/// A remote named one level too high (the backup's prefix forgotten):
/// every file missing and extra under `prod/`, and one hint naming the
/// remote that was meant.
#[test]
fn a_forgotten_prefix_gets_a_did_you_mean_hint() {
    let c = Copy65::new();
    let backups = c.env.dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    std::fs::rename(&c.backup, backups.join("prod")).unwrap();
    let root = c.env.root.to_str().unwrap();
    let out = c
        .env
        .vouch()
        .args(["audit", root, "--remote", backups.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let meant = format!("file://{}/prod", backups.display());
    assert_eq!(
        text.lines().nth(1).unwrap(),
        format!(
            "hint: did you mean --remote {meant}? 65 of the 65 missing files are on the backup under prod/"
        ),
        "{text}"
    );
    let (code, doc) = c
        .env
        .json(&["audit", root, "--remote", backups.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        doc["summary"]["hint"].as_str().unwrap().contains(&meant),
        "{doc}"
    );
    // The remote it names is the right one, and a clean audit gives none.
    let (code, doc) = c
        .env
        .json(&["audit", root, "--remote", &meant, "--mode", "deep"]);
    assert_eq!(code, 0, "{doc}");
    assert!(doc["summary"].get("hint").is_none());
}

/// The summary for people: sizes and durations in human units, both trees
/// named in a diff's header, a heading per audit in `run --all`.
#[test]
fn the_human_summary_names_both_sides_in_units_and_headings() {
    let c = Copy65::new();
    let (_, text) = c.audit(&["--mode", "deep"]);
    let counters = text.lines().find(|l| l.contains("bytes_read")).unwrap();
    assert!(counters.contains("bytes_read 47.9 KiB"), "{counters}");
    assert!(counters.contains("coverage_files 100%"), "{counters}");
    assert!(
        counters.contains(" ms") || counters.contains(" s,"),
        "{counters}"
    );
    assert!(!counters.contains("elapsed_ms"), "{counters}");
    let a = c.env.root.to_str().unwrap();
    let b = c.backup.to_str().unwrap();
    let out = c.env.vouch().args(["diff", a, b]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("\nvouch diff {a} against {b}\n")),
        "{text}"
    );

    let cfg = c.env.dir.path().join("vouch.toml");
    std::fs::write(
        &cfg,
        format!("[audit.first]\nroot = {a:?}\nremote = {b:?}\n[audit.second]\nroot = {a:?}\nremote = {b:?}\n"),
    )
    .unwrap();
    let out = c
        .env
        .vouch()
        .args(["run", "--all", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("=== audit first ===\n"), "{text}");
    assert!(text.contains("\n=== audit second ===\n"), "{text}");
}

/// Help that shows how: an example under every subcommand's `--help`,
/// and a man page per subcommand with EXIT STATUS, ENVIRONMENT, FILES and
/// EXAMPLES (`vouch man --dir`), each naming only pages that exist.
#[test]
fn every_subcommand_has_an_example_and_a_man_page() {
    let env = Env::new();
    let subcommands = [
        "scan",
        "audit",
        "diff",
        "export",
        "verify",
        "report",
        "history",
        "accept",
        "run",
        "merge",
        "completions",
        "man",
    ];
    for sub in subcommands {
        let out = env.vouch().args([sub, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains(&format!("Examples:\n  vouch {sub}")),
            "{sub}: {text}"
        );
    }
    let dir = env.dir.path().join("man1");
    let out = env
        .vouch()
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let main = std::fs::read_to_string(dir.join("vouch.1")).unwrap();
    for sub in subcommands {
        let page = std::fs::read_to_string(dir.join(format!("vouch-{sub}.1")))
            .unwrap_or_else(|e| panic!("vouch-{sub}.1: {e}"));
        for section in [
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(section), "vouch-{sub}.1 lacks {section}");
        }
        assert!(page.contains(&format!("vouch {sub}")), "vouch-{sub}.1");
        assert!(
            main.contains(&format!("\\fBvouch\\-{sub}\\fR(1)")),
            "vouch.1 names vouch-{sub}(1)"
        );
    }
    assert!(!dir.join("vouch-debug-panic.1").exists());
    assert!(main.contains("/var/lib/vouch/index.sqlite3"));
    // `man` renders them (when man-db is installed).
    if let Ok(out) = std::process::Command::new("man")
        .arg("-l")
        .arg(dir.join("vouch-audit.1"))
        .env("MANWIDTH", "100")
        .output()
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("EXIT STATUS") && text.contains("--remote"),
            "{text}"
        );
    }
}

/// Issue 17: off a terminal (stderr piped) a long scan writes a plain
/// progress line on stderr every `VOUCH_PROGRESS_INTERVAL` seconds, none
/// before one interval (default 60 s), and stdout stays the report alone.
#[test]
fn progress_off_a_terminal_is_a_line_on_stderr_at_an_interval() {
    let env = Env::new();
    env.write("a/b/small.txt", b"small\n");
    // 400 MiB hashed three ways on one thread: well over a second.
    let big = env.root.join("a/big.bin");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("head -c 400M /dev/urandom > '{}'", big.display()))
        .status()
        .unwrap();
    assert!(made.success());
    let root = env.root.to_str().unwrap();
    let scan = |interval: Option<&str>, extra: &[&str]| {
        let mut cmd = env.vouch();
        cmd.env_remove("VOUCH_PROGRESS_INTERVAL");
        if let Some(i) = interval {
            cmd.env("VOUCH_PROGRESS_INTERVAL", i);
        }
        let out = cmd
            .args(["scan", root, "--threads", "1", "--md5", "--sha256"])
            .args(["--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the report alone ({e}): {:?}", out.stdout));
        (doc, stderr_of(&out))
    };
    let (doc, stderr) = scan(Some("1"), &[]);
    assert!(doc["summary"].is_object(), "{doc}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("vouch: scanning: "))
        .collect();
    assert!(!lines.is_empty(), "no progress line: {stderr:?}");
    for l in &lines {
        assert!(l.contains(" files") && l.ends_with(" elapsed"), "{l}");
        assert!(!l.contains("\u{1b}") && !l.contains('\r'), "{l:?}");
    }
    // The default interval (60 s) is longer than the run: nothing.
    let (_, stderr) = scan(None, &["--rehash"]);
    assert!(!stderr.contains("vouch: scanning"), "{stderr:?}");
}

/// The bytes of a progress line (`1.25 GiB` in `…, 1.25 GiB of 2.00 GiB
/// hashed (…`), after the files count.
fn progress_bytes(line: &str) -> u64 {
    let after = line
        .split(" files, ")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"));
    let mut words = after.split(' ');
    let number: f64 = words
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    let unit = match words.next().unwrap() {
        "B" => 1u64,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => panic!("unit {u} in {line}"),
    };
    (number * unit as f64) as u64
}

/// Issue 14, progress that moves: bytes are counted as they are read, so
/// off a terminal the lines move while one large file is hashed (before
/// it completes), with its total once the walk has ended, a percentage and
/// an ETA in human units. Before, the bytes moved only when a file
/// completed: every line of this scan said `0 files`, with no bytes.
#[test]
fn progress_moves_while_one_large_file_is_hashed() {
    let env = Env::new();
    // 1 GiB, sparse: nothing on disk, every byte mapped and hashed.
    let big = env.root.join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let root = env.root.to_str().unwrap();
    let out = env
        .vouch()
        .env("VOUCH_PROGRESS_INTERVAL", "0.05")
        .args(["scan", root, "--threads", "1", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    // Lines written while the file was being hashed: no file done yet.
    let moving: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("vouch: scanning: 0 ") && l.contains(" hashed ("))
        .collect();
    assert!(moving.len() >= 2, "{stderr}");
    let bytes: Vec<u64> = moving.iter().map(|l| progress_bytes(l)).collect();
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{stderr}");
    assert!(bytes.iter().any(|&b| b > 0 && b < 1 << 30), "{stderr}");
    assert!(bytes.first() < bytes.last(), "not moving: {stderr}");
    // The walk has ended at once: the exact total, a percentage, an ETA.
    let with_total = moving
        .iter()
        .find(|l| l.contains(" of 1.00 GiB hashed (") && progress_bytes(l) > 0)
        .unwrap_or_else(|| panic!("no total: {stderr}"));
    assert!(
        with_total.starts_with("vouch: scanning: 0 of 1 files, "),
        "{with_total}"
    );
    assert!(
        with_total.contains("%, ") && with_total.contains("/s, ETA "),
        "{with_total}"
    );
}

/// A deep audit reads the backup with the bytes moving as they arrive,
/// against the total of what it reads.
#[test]
fn a_deep_audit_shows_the_bytes_read_of_the_total() {
    let env = Env::new();
    let backup = env.dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    for dir in [&env.root, &backup] {
        std::fs::File::create(dir.join("big.bin"))
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
    }
    let root = env.root.to_str().unwrap();
    let out = env.vouch().args(["-q", "scan", root]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = env
        .vouch()
        .env("VOUCH_PROGRESS_INTERVAL", "0.05")
        .args(["audit", root, "--remote", backup.to_str().unwrap()])
        .args(["--no-scan", "--mode", "deep", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    let reading: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("vouch: auditing: ") && l.contains("512.00 MiB read ("))
        .collect();
    assert!(!reading.is_empty(), "{stderr}");
    let partial = reading
        .iter()
        .find(|l| progress_bytes(l) < 512 << 20)
        .unwrap_or_else(|| panic!("no line before the read completed: {stderr}"));
    assert!(
        partial.contains(" of ") && partial.contains("%, "),
        "{partial}"
    );
}

/// Issue 14, options only where they apply: `--threads` is listed under
/// the commands that hash and nowhere else, each `--format` offers only
/// the values its command takes, and the old places (before the
/// subcommand, as when the options were global) still work.
#[test]
fn options_are_listed_only_where_they_apply() {
    let env = Env::new();
    env.write("a.txt", b"a\n");
    let root = env.root.to_str().unwrap();
    let help = |sub: &str| {
        let out = env.vouch().args([sub, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub}");
        String::from_utf8(out.stdout).unwrap()
    };
    let man = help("man");
    for option in ["--threads", "--wait", "--format", "--output"] {
        assert!(!man.contains(option), "vouch man lists {option}: {man}");
    }
    assert!(man.contains("--index") && man.contains("--quiet"), "{man}");
    let scan = help("scan");
    for option in ["--threads", "--wait", "--format", "--output"] {
        assert!(scan.contains(option), "vouch scan lacks {option}: {scan}");
    }
    assert!(scan.contains("html"), "{scan}");
    assert!(!scan.contains("bagit") && !scan.contains("b3sum"), "{scan}");
    let export = help("export");
    assert!(
        export.contains("bagit") && !export.contains("jsonl"),
        "{export}"
    );
    let report = help("report");
    assert!(
        !report.contains("--threads") && !report.contains("--wait"),
        "{report}"
    );
    // Refused by the parser: exit 2, one clear message.
    let out = env
        .vouch()
        .args(["man", "--threads", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("'--threads'"),
        "{}",
        stderr_of(&out)
    );
    let out = env
        .vouch()
        .args(["scan", root, "--format", "bagit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("[possible values: table, json, jsonl, csv, html]"),
        "{err}"
    );
    // Before the subcommand, as when they were global: still taken.
    let out = env
        .vouch()
        .args(["--format", "json", "--threads", "1", "--wait", "scan", root])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["command"], "scan", "{doc}");
}

//! Credentials and config as the AWS tools have them (issue 15): a profile
//! in `~/.aws/credentials` chosen by `AWS_PROFILE` or `--profile`, a
//! profile's `region` and `endpoint_url` in `~/.aws/config`, through the
//! AWS SDK's own chain; and errors at read time (GET, HEAD) that say what
//! to do, like those of the first listing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::support::proxy::{Fault, Op, Proxy, Times};
use crate::support::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::*;

/// Every variable that could bring credentials, a region, an endpoint or a
/// profile in from the machine running the tests.
const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT",
    "AWS_ALLOW_HTTP",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_METADATA_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// A home directory of its own, with `~/.aws/credentials` and
/// `~/.aws/config` as given (`None`: no such file).
fn home(env: &Env, credentials: Option<&str>, config: Option<&str>) -> PathBuf {
    let home = env.dir.path().join("home");
    let aws = home.join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    for (name, text) in [("credentials", credentials), ("config", config)] {
        let _ = std::fs::remove_file(aws.join(name));
        if let Some(t) = text {
            std::fs::write(aws.join(name), t).unwrap();
        }
    }
    home
}

/// `vouch audit ROOT --remote URL ARGS…` with HOME = `home`, none of the
/// machine's AWS variables, the metadata service out of reach, and
/// exactly `vars`. Returns (exit code, stdout, stderr).
fn run(
    env: &Env,
    home: &Path,
    url: &str,
    vars: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = env.vouch();
    for k in AWS_VARS {
        cmd.env_remove(k);
    }
    let out = cmd
        .env("HOME", home)
        // Nothing answers there: the chain's last link fails at once.
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
        .envs(vars.iter().copied())
        .args(["audit", env.root.to_str().unwrap(), "--remote", url])
        .args(["--retries", "0"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_of(&out),
    )
}

fn one_line(code: i32, err: &str, needles: &[&str]) {
    eprint!("{err}");
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked") && !err.contains("<?xml"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

/// A tree of one file and its copy in bucket `bkt` under `x/`.
fn tree_and_bucket(env: &Env) -> S3Server {
    env.write("a.txt", b"alpha");
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let bkt = server.create_bucket("bkt");
    Env::write_in(&bkt, "x/a.txt", b"alpha");
    server
}

fn keys(profile: &str, key: &str, secret: &str) -> String {
    format!("[{profile}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
}

fn verified(stdout: &str) -> u64 {
    let doc: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    counter(&doc, "verified")
}

/// `aws s3 ls` with `AWS_PROFILE=backup` works from `~/.aws/credentials`:
/// so does vouch, and `--profile` chooses too (over `AWS_PROFILE`, and over
/// keys in the environment, as `aws --profile` does). The `default`
/// profile's keys are wrong, so taking the wrong profile cannot pass.
#[test]
fn a_profile_in_aws_credentials_chosen_by_aws_profile_audits_cleanly() {
    if !cfg!(feature = "aws-config") {
        return;
    }
    let env = Env::new();
    let server = tree_and_bucket(&env);
    let creds = format!(
        "{}\n{}",
        keys("default", ACCESS_KEY, "not-the-secret"),
        keys("backup", ACCESS_KEY, SECRET_KEY)
    );
    let home = home(&env, Some(&creds), None);
    let ep = server.endpoint.as_str();
    let base = [
        ("AWS_ENDPOINT_URL", ep),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
    ];
    let json = ["--mode", "deep", "--format", "json"];

    let mut vars = base.to_vec();
    vars.push(("AWS_PROFILE", "backup"));
    let (code, out, err) = run(&env, &home, "s3://bkt/x", &vars, &json);
    assert_eq!(code, 0, "{err}{out}");
    assert_eq!(verified(&out), 1);

    // The default profile holds the wrong secret: refused, naming the
    // operation.
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &base, &json);
    one_line(code, &err, &["access denied listing s3://bkt/x"]);

    // `--profile` wins over AWS_PROFILE, and over keys in the environment.
    let (code, out, err) = run(
        &env,
        &home,
        "s3://bkt/x",
        &vars,
        &[&json[..], &["--profile", "default"][..]].concat(),
    );
    assert_eq!(code, 2, "--profile default: {err}{out}");
    let mut wrong_env = base.to_vec();
    wrong_env.push(("AWS_ACCESS_KEY_ID", "nobody"));
    wrong_env.push(("AWS_SECRET_ACCESS_KEY", "nothing"));
    let (code, out, err) = run(
        &env,
        &home,
        "s3://bkt/x",
        &wrong_env,
        &[&json[..], &["--profile", "backup"][..]].concat(),
    );
    assert_eq!(code, 0, "{err}{out}");
    // … but AWS_PROFILE does not override keys in the environment.
    wrong_env.push(("AWS_PROFILE", "backup"));
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &wrong_env, &json);
    one_line(code, &err, &["access denied"]);

    // A profile that is not there: one line naming it, where it came
    // from, the files, and the profiles there are.
    let mut nope = base.to_vec();
    nope.push(("AWS_PROFILE", "nope"));
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &nope, &[]);
    one_line(
        code,
        &err,
        &[
            "AWS profile \"nope\" (AWS_PROFILE) is in neither ~/.aws/credentials nor ~/.aws/config",
            "profiles there: backup, default",
        ],
    );
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &base, &["--profile", "nope"]);
    one_line(code, &err, &["AWS profile \"nope\" (--profile)"]);
    // The config file takes `profile` like the flag.
    let config = env.dir.path().join("vouch.toml");
    std::fs::write(
        &config,
        format!(
            "[audit.s3]\nroot = {:?}\nremote = \"s3://bkt/x\"\nprofile = \"backup\"\nmode = \"deep\"\n",
            env.root.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = env
        .vouch()
        .env_clear()
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .envs(base.iter().copied())
        .args(["run", "s3", "-q", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

/// Accepts one connection, keeps the request head, answers 500 and
/// closes: what a client sent, whatever it was.
fn capture_one() -> (String, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ep = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        String::from_utf8_lossy(&head).into_owned()
    });
    (ep, handle)
}

/// A profile in `~/.aws/config` with its own keys, `region` and
/// `endpoint_url` audits cleanly with nothing else set; the requests are
/// signed for the profile's region, and AWS_REGION still wins over it.
#[test]
fn aws_config_gives_the_endpoint_and_the_region() {
    if !cfg!(feature = "aws-config") {
        return;
    }
    let env = Env::new();
    let server = tree_and_bucket(&env);
    let config = |ep: &str| {
        format!(
            "[profile backup]\nregion = eu-west-3\nendpoint_url = {ep}\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        )
    };
    let home = home(&env, None, Some(&config(&server.endpoint)));
    let allow = [("AWS_ALLOW_HTTP", "true")];
    let (code, out, err) = run(
        &env,
        &home,
        "s3://bkt/x",
        &allow,
        &["--profile", "backup", "--mode", "deep", "--format", "json"],
    );
    assert_eq!(code, 0, "{err}{out}");
    assert_eq!(verified(&out), 1);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(
        doc["summary"]["remote"]
            .as_str()
            .is_some_and(|r| r.ends_with(&format!("@{}", server.endpoint))),
        "the remote's identity names the endpoint: {}",
        doc["summary"]["remote"]
    );

    // A plain-http endpoint_url without AWS_ALLOW_HTTP: says which
    // variable to set, and where the endpoint came from.
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &[], &["--profile", "backup"]);
    one_line(
        code,
        &err,
        &[
            "AWS_ALLOW_HTTP=true",
            &server.endpoint,
            "endpoint_url of AWS profile \"backup\" (--profile)",
        ],
    );

    // The region the requests are signed for.
    for (vars, region) in [
        (vec![("AWS_ALLOW_HTTP", "true")], "eu-west-3"),
        (
            vec![("AWS_ALLOW_HTTP", "true"), ("AWS_REGION", "us-west-1")],
            "us-west-1",
        ),
    ] {
        let (ep, seen) = capture_one();
        let home = self::home(&env, None, Some(&config(&ep)));
        let (code, _, err) = run(&env, &home, "s3://bkt/x", &vars, &["--profile", "backup"]);
        assert_eq!(code, 2, "{err}");
        let head = seen.join().unwrap();
        assert!(
            // In the Authorization header, or percent-encoded in the
            // query of the signed listing.
            head.to_ascii_lowercase()
                .replace("%2f", "/")
                .contains(&format!("/{region}/s3/aws4_request")),
            "signed for {region}: {head}"
        );
    }
}

/// No credentials anywhere, with the SDK's chain: one line saying where it
/// looked and what to set.
#[test]
fn no_credentials_anywhere_says_where_it_looked() {
    let env = Env::new();
    let server = tree_and_bucket(&env);
    let home = home(&env, None, None);
    let vars = [
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &vars, &[]);
    let mut needles = vec![
        "no AWS credentials found (looked at AWS_ACCESS_KEY_ID",
        "the instance metadata service",
    ];
    if cfg!(feature = "aws-config") {
        needles.push("AWS profile \"default\" in ~/.aws/credentials and ~/.aws/config");
        needles.push("set AWS_PROFILE (or --profile)");
    }
    one_line(code, &err, &needles);
    assert!(!env.index.exists(), "no index written");
}

/// The same errors at read time as at listing time. A GET or a HEAD that
/// is refused or not answered while none gets through (the remote as a
/// whole: credentials, policy, a dead host) ends the audit with one line
/// naming the operation (or the host) and exit 2; one object refused
/// among readable ones is that object's `unreadable`, with the same one
/// line as its detail, no XML.
#[test]
fn errors_at_read_time_say_what_to_do() {
    let env = Env::new();
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let bkt = server.create_bucket("bkt");
    for name in ["a.txt", "b.txt", "c.txt"] {
        env.write(name, name.as_bytes());
        Env::write_in(&bkt, format!("x/{name}"), name.as_bytes());
    }
    let proxy = Proxy::start(&server.endpoint);
    let home = home(&env, None, None);
    let vars = [
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ];
    let host = proxy.addr.to_string();

    // Every GET refused: which operation, what to check.
    proxy.on(Some(Op::Get), "", Times::All, Fault::Status(403));
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &vars, &["--mode", "deep"]);
    one_line(
        code,
        &err,
        &[
            "access denied reading x/",
            "(GET) (AccessDenied)",
            "s3:GetObject",
        ],
    );
    // No GET answered: which host.
    proxy.clear_rules();
    proxy.on(Some(Op::Get), "", Times::All, Fault::StallAfter(0));
    let (code, _, err) = run(
        &env,
        &home,
        "s3://bkt/x",
        &vars,
        &["--mode", "deep", "--timeout", "1"],
    );
    one_line(
        code,
        &err,
        &["timed out reading x/", "(GET)", &host, "--timeout"],
    );
    // Every HEAD (the stored checksums a quick audit asks for) refused.
    proxy.clear_rules();
    proxy.on(Some(Op::Head), "", Times::All, Fault::Status(403));
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &vars, &[]);
    one_line(
        code,
        &err,
        &[
            "access denied asking for the checksums of ",
            "(HEAD, HTTP 403)",
            "--no-head",
        ],
    );
    // … and none answered.
    proxy.clear_rules();
    proxy.on(
        Some(Op::Head),
        "",
        Times::All,
        Fault::Delay(std::time::Duration::from_secs(4)),
    );
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &vars, &["--timeout", "1"]);
    one_line(
        code,
        &err,
        &["timed out asking for the checksums of ", "(HEAD)", &host],
    );
    // One object refused: its finding says why, the others are read, and
    // the run ends incomplete (exit 2: it could not read everything).
    proxy.clear_rules();
    proxy.on(Some(Op::Get), "b.txt", Times::All, Fault::Status(403));
    let (code, out, err) = run(
        &env,
        &home,
        "s3://bkt/x",
        &vars,
        &["--mode", "deep", "--format", "json"],
    );
    assert_eq!(code, 2, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        findings(&doc)
            .into_iter()
            .filter(|(k, _)| k != "added")
            .collect::<Vec<_>>(),
        pairs(&[("unreadable", "b.txt")])
    );
    let detail = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "unreadable")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("access denied reading x/b.txt (GET) (AccessDenied)")
            && !detail.contains("<?xml")
            && !detail.contains('\n'),
        "{detail}"
    );
    assert_eq!(counter(&doc, "verified"), 2);

    // With nothing in the way, the same audit is clean.
    proxy.clear_rules();
    let (code, _, err) = run(&env, &home, "s3://bkt/x", &vars, &["--mode", "deep"]);
    assert_eq!(code, 0, "{err}");
}

/// A rotted file (`corrupt` on the scan's side) can be accepted, with a
/// reason, while its content stays what it was; a further change brings
/// `corrupt` back. So can a `shrunk` file.
#[test]
fn a_scan_finding_can_be_accepted_until_it_changes() {
    let env = Env::new();
    let photo = env.write("photo.jpg", b"original bytes");
    env.write("other", b"fine");
    let root = env.root.to_str().unwrap().to_string();
    let (code, _) = env.scan();
    assert_eq!(code, 0);
    // Bit rot: same size and mtime, other bytes.
    std::fs::write(&photo, b"ORIGINAL BYTES").unwrap();
    set_old_mtime(&photo);
    let (code, doc) = env.scan();
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "photo.jpg")]))
    );

    let out = env
        .vouch()
        .args(["accept", &root, "photo.jpg", "--kind", "corrupt"])
        .args(["--reason", "re-encoded in place by the camera app"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    for args in [vec!["scan", root.as_str()], vec!["scan", &root, "--rehash"]] {
        let (code, doc) = env.json(&args);
        assert_eq!(
            (code, findings(&doc)),
            (0, pairs(&[("accepted", "photo.jpg")])),
            "{args:?}: {doc}"
        );
        assert_eq!(counter(&doc, "corrupt"), 0);
        assert_eq!(counter(&doc, "accepted"), 1);
        let f = &doc["findings"][0];
        assert!(
            f["detail"]
                .as_str()
                .unwrap()
                .starts_with("corrupt accepted "),
            "{f}"
        );
        assert!(
            f["detail"]
                .as_str()
                .unwrap()
                .ends_with(": re-encoded in place by the camera app"),
            "{f}"
        );
    }
    // An audit's scan half too (exit 0, totals counted as accepted).
    let backup = env.dir.path().join("backup");
    Env::write_in(&backup, "photo.jpg", b"original bytes");
    Env::write_in(&backup, "other", b"fine");
    let (code, doc) = env.json(&["audit", &root, "--remote", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["corrupt"].as_u64().unwrap_or(0), 0, "{doc}");
    assert_eq!(counter(&doc, "accepted"), 1, "{doc}");

    // It rots further: corrupt again.
    std::fs::write(&photo, b"ORIGINAL BYTEZ").unwrap();
    set_old_mtime(&photo);
    let (code, doc) = env.scan();
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "photo.jpg")]))
    );
}

/// `vouch` with nothing of the machine's environment but PATH, and HOME =
/// `home`.
fn bare(env: &Env, home: &Path, path: &str) -> assert_cmd::Command {
    let mut cmd = env.vouch();
    cmd.env_clear().env("PATH", path).env("HOME", home);
    cmd
}

/// Signed in with `az login` and nothing else set: the Azure CLI's token
/// is what the requests carry (object_store would otherwise go to the
/// managed identity endpoint, which off Azure fails).
#[test]
fn azure_takes_the_az_login_token_when_nothing_else_is_set() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.write("a.txt", b"alpha");
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(home.join(".azure")).unwrap();
    std::fs::write(home.join(".azure/azureProfile.json"), "{}").unwrap();
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let az = bin.join("az");
    std::fs::write(
        &az,
        "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/az-args\"\n\
         echo '{\"accessToken\":\"token-from-az-login\",\"expiresOn\":\"2099-01-01 00:00:00.000000\",\"tokenType\":\"Bearer\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let (ep, seen) = capture_one();
    let out = bare(&env, &home, &path)
        .env("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1")
        .args([
            "audit",
            env.root.to_str().unwrap(),
            "--remote",
            "az://ctr/x",
        ])
        .args(["--endpoint", &ep, "--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let head = seen.join().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("authorization: bearer token-from-az-login"),
        "{head}"
    );
    let args = std::fs::read_to_string(bin.join("az-args")).unwrap();
    assert!(args.starts_with("account get-access-token"), "{args}");
}

/// No Google credentials anywhere: one line saying where object_store
/// looked and what to run.
#[test]
fn gcs_without_credentials_says_what_to_do() {
    let env = Env::new();
    env.write("a.txt", b"alpha");
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = bare(&env, &home, &std::env::var("PATH").unwrap_or_default())
        .args([
            "audit",
            env.root.to_str().unwrap(),
            "--remote",
            "gs://bkt/x",
        ])
        .args(["--retries", "0", "--timeout", "2"])
        .output()
        .unwrap();
    one_line(
        out.status.code().unwrap_or(-1),
        &stderr_of(&out),
        &[
            "no Google credentials found",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "gcloud auth application-default login",
        ],
    );
}

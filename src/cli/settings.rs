//! The settings resolver: raw arguments, the environment and the config
//! file in, the settings of one command out (flag > env > config file >
//! default). Every default is written here once.
//!
//! This is the only place that reads the environment for settings
//! (`VOUCH_INDEX` and `VOUCH_CONFIG` through clap, `XDG_*` and `HOME` for
//! the default paths).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::{CommandFactory, ValueEnum};

use super::{
    AuditArgs, ChecksArg, Cli, Command, Common, FormatArg, ManifestFormatArg, ModeArg, config,
};
use crate::commands::accept::AcceptSettings;
use crate::commands::audit::AuditSettings;
use crate::commands::diff::DiffSettings;
use crate::commands::export::ExportSettings;
use crate::commands::merge::MergeSettings;
use crate::commands::run::NamedAudit;
use crate::commands::scan::ScanSettings;
use crate::commands::verify::VerifySettings;
use crate::commands::{Alerts, Context, Invocation};
use crate::engine::audit::{DEFAULT_INVENTORY_GRACE, Mode};
use crate::engine::checks::Level;
use crate::engine::exclude::ExcludeRules;
use crate::engine::export::ExportFormat;
use crate::engine::manifest::ManifestFormat;
use crate::engine::reports::Target;
use crate::engine::shard::{self, Shard};
use crate::model::Kind;
use crate::out::Format;

/// The defaults of an audit, in one place.
const DEFAULT_SCRUB_BUDGET: u64 = 10 << 30;
const DEFAULT_JOBS: usize = 16;
const DEFAULT_RETRIES: usize = 4;
const DEFAULT_TIMEOUT_SECS: u64 = 60;
const DEFAULT_MIN_COVERAGE: f64 = 0.99;
use crate::model::verdict::DEFAULT_MIN_PROVEN;
const DEFAULT_SHRINK_THRESHOLD: f64 = 0.5;
const DEFAULT_CHECKS_BUDGET: u64 = 10 << 30;

/// Where a monitored run reports besides its output, as the flags give it.
impl From<super::AlertArgs> for Alerts {
    fn from(a: super::AlertArgs) -> Self {
        Alerts {
            metrics: a.metrics,
            notify: a.notify,
            notify_always: a.notify_always,
        }
    }
}

/// `--checks`, defaulting to `fast`.
fn checks_level(a: Option<ChecksArg>) -> Level {
    match a.unwrap_or(ChecksArg::Fast) {
        ChecksArg::None => Level::None,
        ChecksArg::Fast => Level::Fast,
        ChecksArg::Full => Level::Full,
    }
}

/// Resolves the command line into a context and an invocation.
pub fn resolve(cli: Cli) -> Result<(Context, Invocation)> {
    let export = matches!(cli.command, Command::Export(_));
    let mut ctx = context(&cli.common, export)?;
    ctx.kind = match &cli.command {
        Command::Audit(a) => a.kind,
        Command::Diff(a) => a.kind,
        Command::Verify(a) => a.kind,
        _ => None,
    };
    let inv = match cli.command {
        Command::Scan(a) => Invocation::Scan(ScanSettings {
            root: a.root,
            rehash: a.rehash,
            md5: a.md5,
            sha256: a.sha256,
            label: a.label,
            shrink_threshold: a.shrink_threshold.0,
            excludes: ExcludeRules {
                exclude: a.excludes.exclude,
                include: a.excludes.include,
                exclude_from: a.excludes.exclude_from,
            },
            shard: resolve_shard(a.shard.as_deref())?,
            checks: checks_level(a.checks),
            checks_budget: a.checks_budget.map_or(DEFAULT_CHECKS_BUDGET, |s| s.0),
            alerts: a.alerts.into(),
        }),
        Command::Audit(a) => Invocation::Audit(resolve_audit(&a)?),
        Command::Diff(a) => Invocation::Diff(DiffSettings {
            a: a.a,
            b: a.b,
            rehash: a.rehash,
            manifest_format: a.manifest_format.map(manifest_format),
        }),
        Command::Export(a) => Invocation::Export(ExportSettings {
            root: a.root,
            format: export_format(&cli.common)?,
            copy: a.copy,
            rehash: a.rehash,
            shard: resolve_shard(a.shard.as_deref())?,
        }),
        Command::Verify(a) => Invocation::Verify(VerifySettings {
            root: a.root,
            manifest: a.manifest,
            rehash: a.rehash,
            manifest_format: a.manifest_format.map(manifest_format),
        }),
        Command::Report(a) if a.kind == Some(Kind::Unverified) => bail!(
            "vouch report --kind unverified: a run stores only its count of unverified objects \
             (summary `unverified`), not their paths; list them as they are found with \
             `vouch audit ROOT --remote URL --kind unverified --format json`"
        ),
        Command::Report(a) => Invocation::Report {
            run: a.run,
            kind: a.kind,
        },
        Command::History => Invocation::History,
        Command::Accept(a) => Invocation::Accept(resolve_accept(a)?),
        Command::Merge(a) => Invocation::Merge(MergeSettings {
            reports: a.reports,
            min_coverage: a.min_coverage.map(|f| f.0),
            max_age: a.max_age.map(|a| a.0 as i64),
            strict: a.strict,
            alerts: a.alerts.into(),
        }),
        Command::Run(a) => {
            let path = a.config.clone().unwrap_or_else(default_config_path);
            let mut audits = resolve_run(
                &ctx,
                &cli.common,
                &path,
                a.name.as_deref(),
                a.shard.as_deref(),
            )?;
            for job in &mut audits {
                job.settings.dry_run |= a.dry_run;
            }
            Invocation::Run(audits)
        }
        Command::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "vouch", &mut out);
            Invocation::Done
        }
        Command::DebugPanic => {
            let _ = std::thread::spawn(|| panic!("a deliberate panic in a thread")).join();
            panic!("a deliberate panic\nover two lines");
        }
        Command::Man { dir } => {
            for page in super::help::man(Cli::command(), dir.as_deref())? {
                eprintln!("wrote {}", page.display());
            }
            Invocation::Done
        }
    };
    Ok((ctx, inv))
}

fn context(common: &Common, export: bool) -> Result<Context> {
    Ok(Context {
        index: common.index.clone().unwrap_or_else(default_index_path),
        wait: common.wait,
        format: if export {
            Format::Table
        } else {
            report_format(common)?
        },
        output: common
            .output
            .as_deref()
            .map(|p| Target::parse(p.as_os_str()))
            .transpose()?,
        quiet: common.quiet,
        threads: common.threads,
        kind: None,
        heading: None,
    })
}

/// The settings of one audit, from `vouch audit`'s flags or a config
/// section alike: every default is applied here, once.
pub fn resolve_audit(a: &AuditArgs) -> Result<AuditSettings> {
    if let (Some(root), Some(backup)) = (&a.root, &a.misplaced_remote) {
        bail!(
            "the backup is named with --remote: vouch audit {} --remote {backup}",
            root.display()
        );
    }
    let (Some(root), Some(remote)) = (&a.root, &a.remote) else {
        bail!("an audit needs a root and a remote");
    };
    Ok(AuditSettings {
        root: root.clone(),
        remote: remote.clone(),
        endpoint: a.endpoint.clone(),
        profile: a.profile.clone(),
        mode: match a.mode.unwrap_or(ModeArg::Quick) {
            ModeArg::Quick => Mode::Quick,
            ModeArg::Deep => Mode::Deep,
            ModeArg::Scrub => Mode::Scrub,
        },
        scrub_budget: a.scrub_budget.map_or(DEFAULT_SCRUB_BUDGET, |s| s.0),
        jobs: a.jobs.unwrap_or(DEFAULT_JOBS),
        no_scan: a.no_scan,
        strict: a.strict,
        one_way: a.one_way,
        dry_run: a.dry_run,
        excludes: ExcludeRules {
            exclude: a.exclude.clone(),
            include: a.include.clone(),
            exclude_from: a.exclude_from.clone(),
        },
        md5: a.md5,
        head: !a.no_head,
        retries: a.retries.unwrap_or(DEFAULT_RETRIES),
        timeout: Duration::from_secs(a.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)),
        min_coverage: a.min_coverage.map_or(DEFAULT_MIN_COVERAGE, |f| f.0),
        min_proven: a.min_proven.map_or(DEFAULT_MIN_PROVEN, |f| f.0),
        shrink_threshold: a.shrink_threshold.map_or(DEFAULT_SHRINK_THRESHOLD, |f| f.0),
        max_age: a.max_age.map(|a| a.0),
        inventory: a.inventory.clone(),
        inventory_grace: a
            .inventory_grace
            .map_or(DEFAULT_INVENTORY_GRACE, |g| g.0 as i64),
        shard: resolve_shard(a.shard.as_deref())?,
        checks: checks_level(a.checks),
        checks_budget: a.checks_budget.map_or(DEFAULT_CHECKS_BUDGET, |s| s.0),
        alerts: Alerts {
            metrics: a.metrics.clone(),
            notify: a.notify.clone(),
            notify_always: a.notify_always,
        },
    })
}

/// `vouch accept`: add (the default), `--remove` or `--list`.
fn resolve_accept(a: super::AcceptArgs) -> Result<AcceptSettings> {
    if a.list {
        return Ok(AcceptSettings::List { root: a.root });
    }
    let root = a.root.ok_or_else(|| anyhow!("vouch accept needs ROOT"))?;
    if a.remove {
        return Ok(AcceptSettings::Remove {
            root,
            paths: a.paths,
            kind: a.kind,
        });
    }
    let (Some(kind), Some(reason)) = (a.kind, a.reason) else {
        bail!("vouch accept needs --kind and --reason");
    };
    if reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    if !kind.is_discrepancy() {
        bail!(
            "--kind {kind} is not a discrepancy: it never fails a run, so there is nothing to accept"
        );
    }
    let until = match &a.until {
        None => None,
        Some(text) => {
            let t = parse_until(text)?;
            if t <= crate::model::now_unix() {
                bail!("--until {text} has already passed");
            }
            Some(t)
        }
    };
    Ok(AcceptSettings::Add {
        root,
        paths: a.paths,
        kind,
        reason,
        until,
    })
}

/// `--until`: a date (accepted through its end, UTC) or an RFC 3339 time.
fn parse_until(text: &str) -> Result<i64> {
    let day = text.len() == 10;
    let full = if day {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let t = humantime::parse_rfc3339_weak(&full).map_err(|e| {
        anyhow!("--until {text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time: {e}")
    })?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| anyhow!("--until {text:?} is before 1970"))?
        .as_secs() as i64;
    Ok(if day { secs + 86_400 } else { secs })
}

/// `--shard K/N` (or `VOUCH_SHARD`); `auto/N` takes K from the array
/// index the scheduler sets (the one place that reads those variables).
pub fn resolve_shard(spec: Option<&str>) -> Result<Option<Shard>> {
    spec.map(|spec| {
        Shard::parse(spec, || {
            shard::auto_index(|var| std::env::var(var).ok()).map(|(k, _)| k)
        })
    })
    .transpose()
}

/// The named audits of `vouch run`, each with its own context: the
/// config file's `index` unless `--index` (or `VOUCH_INDEX`) is given, and
/// the section's `output` over `--output`. `shard` (`vouch run --shard`
/// or `VOUCH_SHARD`) wins over a section's `shard`; with a shard, `{shard}`
/// in the index and output paths becomes its index K.
fn resolve_run(
    ctx: &Context,
    common: &Common,
    path: &std::path::Path,
    name: Option<&str>,
    shard: Option<&str>,
) -> Result<Vec<NamedAudit>> {
    let cfg = config::load(path)?;
    let names: Vec<String> = match name {
        Some(name) => {
            if !cfg.audit.contains_key(name) {
                let known: Vec<&str> = cfg.audit.keys().map(String::as_str).collect();
                bail!(
                    "config {} has no [audit.{name}] (known: {})",
                    path.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            vec![name.to_string()]
        }
        None => cfg.audit.keys().cloned().collect(),
    };
    if names.is_empty() {
        bail!("config {} defines no [audit.NAME] section", path.display());
    }
    names
        .into_iter()
        .map(|name| {
            let a = &cfg.audit[&name];
            let mut job_ctx = ctx.clone();
            if common.index.is_none()
                && let Some(index) = &cfg.index
            {
                job_ctx.index = index.clone();
            }
            if let Some(out) = &a.output {
                job_ctx.output = Some(
                    Target::parse(out.as_os_str())
                        .map_err(|e| anyhow!("config {}: [audit.{name}] {e}", path.display()))?,
                );
            }
            let in_section =
                |e: anyhow::Error| anyhow!("config {}: [audit.{name}] {e}", path.display());
            let mut args = a.clone();
            if shard.is_some() {
                args.shard = shard.map(str::to_string);
            }
            let settings = resolve_audit(&args).map_err(in_section)?;
            job_ctx.index = PathBuf::from(
                per_shard(job_ctx.index.as_os_str(), settings.shard).map_err(in_section)?,
            );
            job_ctx.output = match job_ctx.output.take() {
                Some(Target::Local(p)) => Some(Target::Local(PathBuf::from(
                    per_shard(p.as_os_str(), settings.shard).map_err(in_section)?,
                ))),
                Some(Target::Remote(u)) => Some(Target::Remote(
                    per_shard(std::ffi::OsStr::new(&u), settings.shard)
                        .map_err(in_section)?
                        .into_string()
                        .unwrap_or(u),
                )),
                None => None,
            };
            Ok(NamedAudit {
                name,
                ctx: job_ctx,
                settings,
            })
        })
        .collect()
}

/// `{shard}` in a path of a named audit becomes the shard index K, so the
/// shards of one host (GNU parallel) keep one index and one report each.
fn per_shard(path: &std::ffi::OsStr, shard: Option<Shard>) -> Result<std::ffi::OsString> {
    let Some(text) = path.to_str().filter(|t| t.contains("{shard}")) else {
        return Ok(path.to_os_string());
    };
    match shard {
        Some(s) => Ok(text.replace("{shard}", &s.index.to_string()).into()),
        None => {
            bail!("{text} names {{shard}} but the audit has no shard (--shard K/N or VOUCH_SHARD)")
        }
    }
}

/// The report format; the export-only values are refused.
fn report_format(common: &Common) -> Result<Format> {
    Ok(match common.format_arg {
        None | Some(FormatArg::Table) => Format::Table,
        Some(FormatArg::Json) => Format::Json,
        Some(FormatArg::Jsonl) => Format::Jsonl,
        Some(FormatArg::Csv) => Format::Csv,
        Some(FormatArg::Html) => Format::Html,
        Some(f @ (FormatArg::B3sum | FormatArg::Sha256sum | FormatArg::Bagit)) => {
            bail!(
                "--format {} is a manifest format, for `vouch export`; reports are table, json, jsonl, csv or html",
                f.to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default()
            )
        }
    })
}

/// The manifest format of `export`.
fn export_format(common: &Common) -> Result<ExportFormat> {
    Ok(match common.format_arg {
        Some(FormatArg::B3sum) => ExportFormat::B3sum,
        Some(FormatArg::Sha256sum) => ExportFormat::Sha256sum,
        Some(FormatArg::Bagit) => ExportFormat::Bagit,
        Some(FormatArg::Json) => ExportFormat::Json,
        _ => bail!("vouch export needs --format b3sum, sha256sum, bagit or json"),
    })
}

fn manifest_format(f: ManifestFormatArg) -> ManifestFormat {
    match f {
        ManifestFormatArg::B3sum => ManifestFormat::B3sum,
        ManifestFormatArg::Sha256sum => ManifestFormat::Sha256sum,
        ManifestFormatArg::Json => ManifestFormat::Json,
    }
}

/// The index when neither `--index`, `VOUCH_INDEX` nor the config names
/// one: see [`default_path`].
pub fn default_index_path() -> PathBuf {
    default_path(&Place::INDEX, &Host::current())
}

/// The config file of `vouch run` without `--config` / `VOUCH_CONFIG`.
pub fn default_config_path() -> PathBuf {
    default_path(&Place::CONFIG, &Host::current())
}

/// One default file: its XDG variable, where that defaults to under HOME,
/// and the system-wide path.
pub struct Place {
    xdg_var: &'static str,
    /// Where the XDG variable defaults to, under HOME.
    xdg_default: &'static str,
    /// The file under the XDG directory.
    file: &'static str,
    system: &'static str,
}

impl Place {
    pub const INDEX: Place = Place {
        xdg_var: "XDG_DATA_HOME",
        xdg_default: ".local/share",
        file: "vouch/index.sqlite3",
        system: "/var/lib/vouch/index.sqlite3",
    };
    pub const CONFIG: Place = Place {
        xdg_var: "XDG_CONFIG_HOME",
        xdg_default: ".config",
        file: "vouch/vouch.toml",
        system: "/etc/vouch/vouch.toml",
    };
}

/// What the defaults depend on: the environment, whether we run as root,
/// and which files exist (a function, so the rule is tested without
/// touching `/etc` or `/var/lib`).
pub struct Host<'a> {
    pub var: &'a dyn Fn(&str) -> Option<std::ffi::OsString>,
    pub root: bool,
    pub exists: &'a dyn Fn(&std::path::Path) -> bool,
}

impl Host<'static> {
    fn current() -> Host<'static> {
        Host {
            var: &|name| std::env::var_os(name),
            // SAFETY: geteuid has no preconditions and cannot fail.
            root: unsafe { libc::geteuid() } == 0,
            exists: &|p| p.exists(),
        }
    }
}

/// The rule, in order: an `XDG_*` variable that is set wins (`$XDG_DATA_HOME/
/// vouch/index.sqlite3`, `$XDG_CONFIG_HOME/vouch/vouch.toml`); a user
/// with a HOME gets the XDG default under it (`~/.local/share/…`,
/// `~/.config/…`); a system job — no HOME (systemd without `User=`), or
/// root — gets `/var/lib/vouch/index.sqlite3` and `/etc/vouch/vouch.toml`,
/// except that root keeps a file it already has under its HOME. Never the
/// working directory.
pub fn default_path(place: &Place, host: &Host<'_>) -> PathBuf {
    let set = |name: &str| (host.var)(name).filter(|v| !v.is_empty());
    if let Some(dir) = set(place.xdg_var)
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return dir.join(place.file);
    }
    let under_home = set("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h != std::path::Path::new("/"))
        .map(|home| home.join(place.xdg_default).join(place.file));
    match under_home {
        Some(path) if !host.root || (host.exists)(&path) => path,
        _ => PathBuf::from(place.system),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::ffi::OsString;
    use std::path::Path;

    fn path_for(place: &Place, vars: &[(&str, &str)], root: bool, existing: &[&str]) -> PathBuf {
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        };
        let exists = |p: &Path| existing.iter().any(|e| Path::new(e) == p);
        default_path(
            place,
            &Host {
                var: &var,
                root,
                exists: &exists,
            },
        )
    }

    /// A system job (no HOME, or root) gets /etc and /var/lib, never the
    /// working directory; a user gets the XDG paths; a set XDG variable
    /// wins; root keeps an index it already has under its HOME.
    #[test]
    fn default_paths_follow_xdg_for_users_and_the_system_dirs_for_system_jobs() {
        use Place as P;
        let none: &[(&str, &str)] = &[];
        assert_eq!(
            path_for(&P::INDEX, none, false, &[]),
            Path::new("/var/lib/vouch/index.sqlite3")
        );
        assert_eq!(
            path_for(&P::CONFIG, none, false, &[]),
            Path::new("/etc/vouch/vouch.toml")
        );
        assert_eq!(
            path_for(&P::INDEX, &[("HOME", "")], false, &[]),
            Path::new("/var/lib/vouch/index.sqlite3")
        );
        assert_eq!(
            path_for(&P::CONFIG, &[("HOME", "/")], false, &[]),
            Path::new("/etc/vouch/vouch.toml")
        );
        let home = &[("HOME", "/home/ann")];
        assert_eq!(
            path_for(&P::INDEX, home, false, &[]),
            Path::new("/home/ann/.local/share/vouch/index.sqlite3")
        );
        assert_eq!(
            path_for(&P::CONFIG, home, false, &[]),
            Path::new("/home/ann/.config/vouch/vouch.toml")
        );
        let root_home = &[("HOME", "/root")];
        assert_eq!(
            path_for(&P::INDEX, root_home, true, &[]),
            Path::new("/var/lib/vouch/index.sqlite3")
        );
        assert_eq!(
            path_for(&P::CONFIG, root_home, true, &[]),
            Path::new("/etc/vouch/vouch.toml")
        );
        assert_eq!(
            path_for(
                &P::INDEX,
                root_home,
                true,
                &["/root/.local/share/vouch/index.sqlite3"]
            ),
            Path::new("/root/.local/share/vouch/index.sqlite3")
        );
        let xdg = &[
            ("HOME", "/root"),
            ("XDG_DATA_HOME", "/data"),
            ("XDG_CONFIG_HOME", "/cfg"),
        ];
        assert_eq!(
            path_for(&P::INDEX, xdg, true, &[]),
            Path::new("/data/vouch/index.sqlite3")
        );
        assert_eq!(
            path_for(&P::CONFIG, xdg, false, &[]),
            Path::new("/cfg/vouch/vouch.toml")
        );
        // A relative XDG variable is ignored, as the XDG spec says.
        let rel = &[("HOME", "/home/ann"), ("XDG_DATA_HOME", "data")];
        assert_eq!(
            path_for(&P::INDEX, rel, false, &[]),
            Path::new("/home/ann/.local/share/vouch/index.sqlite3")
        );
    }

    /// `vouch run` and `vouch audit` resolve through one function: the
    /// same audit written both ways gives the same settings, defaults
    /// included.
    #[test]
    fn a_config_audit_and_the_same_command_line_resolve_alike() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("vouch.toml");
        std::fs::write(
            &cfg,
            "[audit.photos]\nroot = \"/srv/photos\"\nremote = \"s3://b/photos\"\nmode = \"scrub\"\nscrub_budget = \"50G\"\nmd5 = true\nmax_age = \"26h\"\nmin_coverage = 0.9\none_way = true\nexclude = [\"*.tmp\", \"cache/\"]\n",
        )
        .unwrap();
        let from_file = Cli::parse_from([
            "vouch",
            "--index",
            "/tmp/i.sqlite3",
            "run",
            "photos",
            "--config",
            cfg.to_str().unwrap(),
        ]);
        let from_flags = Cli::parse_from([
            "vouch",
            "--index",
            "/tmp/i.sqlite3",
            "audit",
            "/srv/photos",
            "--remote",
            "s3://b/photos",
            "--mode",
            "scrub",
            "--scrub-budget",
            "50G",
            "--md5",
            "--max-age",
            "26h",
            "--min-coverage",
            "0.9",
            "--one-way",
            "--exclude",
            "*.tmp",
            "--exclude",
            "cache/",
        ]);
        let (ctx_a, Invocation::Run(runs)) = resolve(from_file).unwrap() else {
            panic!("not a run");
        };
        let (ctx_b, Invocation::Audit(flags)) = resolve(from_flags).unwrap() else {
            panic!("not an audit");
        };
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].settings, flags);
        assert_eq!(runs[0].ctx, ctx_b);
        assert_eq!(ctx_a, ctx_b);
        assert_eq!(flags.scrub_budget, 50 << 30);
        assert_eq!(flags.max_age, Some(26 * 3600));
        assert_eq!(flags.jobs, DEFAULT_JOBS);
        assert!(flags.one_way);
        assert_eq!(flags.excludes.exclude, ["*.tmp", "cache/"]);
        // A bare audit gets every default from the same place.
        let bare = Cli::parse_from(["vouch", "audit", "/r", "--remote", "/b"]);
        let (_, Invocation::Audit(bare)) = resolve(bare).unwrap() else {
            panic!("not an audit");
        };
        assert_eq!(bare.mode, Mode::Quick);
        assert_eq!(bare.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(bare.min_coverage, DEFAULT_MIN_COVERAGE);
    }
}

//! The backup side: one adapter over `object_store` for every backend.
//!
//! `s3://bucket/prefix` (AWS or any S3-compatible server), `gs://…` and
//! `az://…` go through the same `ObjectStore` trait, so the audit has one
//! code path. Credentials and endpoints come from the standard environment
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), the AWS config files (see
//! [`crate::engine::aws_chain`]), `az login`, plus `--endpoint`; an object store is
//! listed once when it is opened, so a missing bucket or an unreachable
//! endpoint fails before the index is touched. vouch only lists and reads:
//! no method here writes to a remote.
//!
//! A directory (`file:///abs/path` or a plain path) is the exception: it
//! is walked and read directly, because `object_store`'s local store fails
//! a whole listing on one file name that is not UTF-8 or holds a control
//! character, and follows symlinks. Here every name is a key exactly as
//! the local walk records it, symlinks and special files are not objects,
//! and a read is pinned to the listed ETag (inode, mtime, size) like an S3
//! read.
//!
//! A local file `a/b.jpg` under ROOT corresponds to the object
//! `prefix/a/b.jpg`. Listed keys are converted to the index's key form
//! (see [`crate::model::paths`]) relative to the prefix.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, GetOptions, ObjectStore, RetryConfig};

use crate::engine::proof::probe::{Backend, Prober};
use crate::engine::s3list::{S3Lister, Via};
use crate::model::{Listed, ReadError, paths};
use crate::out::Meter;

/// How patient to be with a remote.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Overrides the endpoint (S3-compatible servers, emulators).
    pub endpoint: Option<String>,
    /// The AWS profile (`--profile`; else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Retries of a failed request, with exponential backoff.
    pub retries: usize,
    /// Longest wait for any single read from the network.
    pub timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            endpoint: None,
            profile: None,
            retries: 4,
            timeout: Duration::from_secs(60),
        }
    }
}

pub struct Remote {
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside the store that mirrors ROOT.
    pub prefix: Path,
    /// The canonical name of this remote, as the index records it.
    pub id: String,
    /// For a directory remote, the directory: listed and read natively
    /// (see [`Remote::list`]), not through `store`.
    pub dir: Option<std::path::PathBuf>,
    /// Asks the store for its stored checksums (object stores only).
    pub prober: Option<crate::engine::proof::probe::Prober>,
    /// Where requests go, for error messages.
    said: Where,
    /// Lists the prefix of an object store key by key (S3, GCS, Azure;
    /// see [`crate::engine::s3list`]).
    pub s3: Option<S3Lister>,
}

/// Timeouts, as config keys: set one by one so they do not replace the
/// client options the builders read from the environment (such as
/// `AWS_ALLOW_HTTP`). A whole request may take as long as it needs (a
/// 50 GiB object does); what must not stall is each network read.
fn client_config(opts: &RemoteOptions) -> Vec<(ClientConfigKey, String)> {
    let secs = |d: Duration| format!("{}s", d.as_secs().max(1));
    vec![
        (
            ClientConfigKey::ConnectTimeout,
            secs(Duration::from_secs(10).min(opts.timeout)),
        ),
        (ClientConfigKey::ReadTimeout, secs(opts.timeout)),
        (ClientConfigKey::Timeout, "7days".to_string()),
    ]
}

fn retry_config(opts: &RemoteOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: opts.retries,
        retry_timeout: Duration::from_secs(120),
    }
}

/// Opens the remote named by `url`: a URL or a plain directory path.
pub fn open(url: &str, opts: &RemoteOptions) -> Result<Remote> {
    let parsed = url::Url::parse(url);
    let mut dir = None;
    let mut backend = None;
    let mut said = Where::default();
    let mut lister = None;
    let (store, prefix, id): (Arc<dyn ObjectStore>, Path, String) = match parsed {
        Ok(u) if u.scheme() == "file" => {
            let path = u
                .to_file_path()
                .map_err(|_| anyhow!("remote {url}: not a local file URL"))?;
            open_dir(&path, url, &mut dir)?
        }
        Ok(u) if u.scheme().len() > 1 => {
            let bucket = u.host_str().unwrap_or_default();
            if bucket.is_empty() {
                bail!("remote {url}: no bucket or container in the URL");
            }
            let raw = raw_prefix(url);
            let prefix = Path::parse(&raw).map_err(|e| anyhow!("remote {url}: bad prefix: {e}"))?;
            // Where the requests go, for error messages.
            let mut host = opts.endpoint.clone();
            let store: Arc<dyn ObjectStore> = match u.scheme() {
                "s3" | "s3a" => {
                    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                    let mut b = AmazonS3Builder::from_env()
                        .with_url(url)
                        .with_retry(retry_config(opts));
                    for (k, v) in client_config(opts) {
                        b = b.with_config(AmazonS3ConfigKey::Client(k), v);
                    }
                    // What flags and the environment left open: credentials,
                    // region and endpoint from the AWS SDK's chain.
                    #[allow(unused_mut)]
                    let mut ep_from = "AWS_ENDPOINT_URL".to_string();
                    #[cfg(feature = "aws-config")]
                    {
                        use crate::engine::aws_chain;
                        let profile = opts.profile.as_deref();
                        let (b2, set) = aws_chain::configure(b, profile, opts.endpoint.is_some())
                            .map_err(|e| anyhow!("remote {url}: {e}"))?;
                        b = b2;
                        if set.is_some() {
                            ep_from = aws_chain::endpoint_source(profile);
                        }
                    }
                    #[cfg(not(feature = "aws-config"))]
                    if opts.profile.is_some() {
                        bail!(
                            "remote {url}: --profile needs vouch built with its aws-config feature (the default)"
                        );
                    }
                    if let Some(ep) = &opts.endpoint {
                        check_endpoint(url, ep, "--endpoint")?;
                        // `--endpoint` wins over AWS_ENDPOINT_URL_S3 too
                        // (object_store prefers that one to `endpoint`).
                        b = b
                            .with_endpoint(ep)
                            .with_config(AmazonS3ConfigKey::S3Endpoint, ep);
                        if ep.starts_with("http://") {
                            b = b.with_allow_http(true);
                        }
                    } else if let Some(ep) = b.get_config_value(&AmazonS3ConfigKey::Endpoint) {
                        // From AWS_ENDPOINT_URL (the builder read it) or
                        // the AWS config.
                        check_endpoint(url, &ep, &ep_from)?;
                        host = Some(ep.clone());
                        let allowed = b
                            .get_config_value(&AmazonS3ConfigKey::Client(
                                ClientConfigKey::AllowHttp,
                            ))
                            .is_some_and(|v| {
                                matches!(
                                    v.to_ascii_lowercase().as_str(),
                                    "true" | "1" | "yes" | "on"
                                )
                            });
                        if ep.starts_with("http://") && !allowed {
                            bail!(
                                "remote {url}: the endpoint {ep} (from {ep_from}) is plain http; set AWS_ALLOW_HTTP=true to allow it (or use https://)"
                            );
                        }
                    }
                    let region = b
                        .get_config_value(&AmazonS3ConfigKey::Region)
                        .unwrap_or_else(|| "us-east-1".into());
                    let s3 = Arc::new(b.build().map_err(|e| anyhow!("remote {url}: {e}"))?);
                    backend = Some(Backend::S3(Arc::clone(&s3)));
                    lister = Some(
                        S3Lister::new(Via::S3(Arc::clone(&s3)), &raw, opts.retries, opts.timeout)?
                            .with_region(region),
                    );
                    s3
                }
                "gs" => {
                    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                    let mut b = GoogleCloudStorageBuilder::from_env()
                        .with_url(url)
                        .with_retry(retry_config(opts));
                    for (k, v) in client_config(opts) {
                        b = b.with_config(GoogleConfigKey::Client(k), v);
                    }
                    let base_url = b
                        .get_config_value(&GoogleConfigKey::BaseUrl)
                        .unwrap_or_else(|| "https://storage.googleapis.com".into());
                    let anonymous = b
                        .get_config_value(&GoogleConfigKey::SkipSignature)
                        .is_some_and(|v| v == "true");
                    let gcs = Arc::new(b.build().map_err(|e| anyhow!("remote {url}: {e}"))?);
                    lister = Some(S3Lister::new(
                        Via::Gcs {
                            store: Arc::clone(&gcs),
                            base_url: base_url.clone(),
                            bucket: bucket.to_string(),
                            anonymous,
                        },
                        &raw,
                        opts.retries,
                        opts.timeout,
                    )?);
                    backend = Some(Backend::Gcs {
                        store: Arc::clone(&gcs),
                        base_url,
                        bucket: bucket.to_string(),
                        anonymous,
                    });
                    gcs
                }
                "az" | "azure" | "abfs" | "abfss" => {
                    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                    let mut b = MicrosoftAzureBuilder::from_env()
                        .with_url(url)
                        .with_retry(retry_config(opts));
                    for (k, v) in client_config(opts) {
                        b = b.with_config(AzureConfigKey::Client(k), v);
                    }
                    if azure_cli_signed_in(&b) {
                        b = b.with_use_azure_cli(true);
                    }
                    if let Some(ep) = &opts.endpoint {
                        check_endpoint(url, ep, "--endpoint")?;
                        b = b.with_endpoint(ep.clone());
                        if ep.starts_with("http://") {
                            b = b.with_allow_http(true);
                        }
                    }
                    let service = azure_service(&b, &u);
                    let az = Arc::new(b.build().map_err(|e| anyhow!("remote {url}: {e}"))?);
                    if let Some(service) = service {
                        let (account, container) = azure_names(&az);
                        let container_url = match service {
                            AzureService::Emulator(base) => format!(
                                "{}/{}/{}",
                                base.trim_end_matches('/'),
                                enc(&account),
                                enc(&container)
                            ),
                            AzureService::Account(base) => {
                                format!("{}/{}", base.trim_end_matches('/'), enc(&container))
                            }
                        };
                        lister = Some(S3Lister::new(
                            Via::Azure {
                                store: Arc::clone(&az),
                                container_url,
                                account,
                            },
                            &raw,
                            opts.retries,
                            opts.timeout,
                        )?);
                    }
                    backend = Some(Backend::Azure(Arc::clone(&az)));
                    az
                }
                other => bail!(
                    "remote {url}: unknown scheme {other:?} (use s3://, gs://, az://, file:// or a directory path)"
                ),
            };
            let host = host.unwrap_or_else(|| format!("the {} service", u.scheme()));
            said = Where {
                url: url.to_string(),
                bucket: bucket.to_string(),
                host,
            };
            probe(&store, lister.as_ref(), &prefix, &said)?;
            (store, prefix, identity(url, opts)?)
        }
        // A plain path (also `C:`-like one-letter "schemes" never occur on Unix).
        _ => open_dir(FsPath::new(url), url, &mut dir)?,
    };
    let prober = match backend {
        Some(b) => Some(Prober::new(b, opts.retries, opts.timeout)?),
        None => None,
    };
    Ok(Remote {
        store,
        prefix,
        id,
        dir,
        prober,
        said,
        s3: lister,
    })
}

/// Where an Azure container's URL starts, as `object_store` builds it.
enum AzureService {
    /// Azurite: `BASE/ACCOUNT/CONTAINER`.
    Emulator(String),
    /// `BASE/CONTAINER`.
    Account(String),
}

/// The service URL the builder will use, or `None` where `object_store`
/// decides it in ways not visible from here (Fabric, OneLake): such a
/// remote is listed through `object_store`.
fn azure_service(
    b: &object_store::azure::MicrosoftAzureBuilder,
    u: &url::Url,
) -> Option<AzureService> {
    use object_store::azure::AzureConfigKey as K;
    let on = |k: K| {
        b.get_config_value(&k)
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"))
    };
    if u.host_str()
        .is_some_and(|h| h.contains("fabric.microsoft.com"))
        || on(K::UseFabricEndpoint)
    {
        return None;
    }
    if on(K::UseEmulator) {
        let base = std::env::var("AZURITE_BLOB_STORAGE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:10000".into());
        return Some(AzureService::Emulator(base));
    }
    match b.get_config_value(&K::Endpoint) {
        Some(ep) => Some(AzureService::Account(ep)),
        None => {
            let account = match u.username() {
                "" => b.get_config_value(&K::AccountName)?,
                _ => u.host_str()?.split('.').next()?.to_string(),
            };
            Some(AzureService::Account(format!(
                "https://{account}.blob.core.windows.net"
            )))
        }
    }
}

/// The account and container of a built Azure store (its `Display`).
fn azure_names(az: &object_store::azure::MicrosoftAzure) -> (String, String) {
    let shown = az.to_string();
    let field = |name: &str| {
        shown
            .split_once(&format!("{name}: "))
            .map(|(_, rest)| {
                rest.split([',', ' ', '}'])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    };
    (field("account"), field("container"))
}

/// One URL path segment, percent-encoded.
fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// True when no Azure credential is configured (no key, SAS, token,
/// service principal, workload identity, managed identity setting, or
/// `AZURE_USE_AZURE_CLI` either way) and the Azure CLI has signed in on
/// this machine (`az login`: `azureProfile.json` in `AZURE_CONFIG_DIR` or
/// `~/.azure`, `az` on PATH). `object_store` asks the CLI only when told
/// to and otherwise falls back to the managed identity endpoint, which
/// off Azure fails where `az storage blob list` works.
fn azure_cli_signed_in(b: &object_store::azure::MicrosoftAzureBuilder) -> bool {
    use object_store::azure::AzureConfigKey as K;
    let set = |k: K| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
    let on = |k: K| b.get_config_value(&k).is_some_and(|v| v == "true");
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let configured = [
        K::AccessKey,
        K::SasKey,
        K::Token,
        K::ClientId,
        K::ClientSecret,
        K::FederatedTokenFile,
        K::MsiEndpoint,
        K::ObjectId,
        K::MsiResourceId,
        K::CredentialType,
    ]
    .into_iter()
    .any(set)
        || on(K::UseEmulator)
        || on(K::SkipSignature)
        || var("AZURE_USE_AZURE_CLI").is_some();
    if configured {
        return false;
    }
    let dir = var("AZURE_CONFIG_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| var("HOME").map(|h| std::path::PathBuf::from(h).join(".azure")));
    let signed_in = dir.is_some_and(|d| d.join("azureProfile.json").is_file());
    let az_on_path =
        var("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("az").is_file()));
    signed_in && az_on_path
}

/// The prefix of an object store URL exactly as written, without leading
/// or trailing `/`: `s3://b/my photos/été` is the prefix `my photos/été`
/// and `s3://b/a%20b` the prefix `a%20b`, as `aws s3` reads them (a parsed
/// URL would percent-encode the first and so list nothing).
pub fn raw_prefix(url: &str) -> String {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    path.trim_matches('/').to_string()
}

/// Lists the first page of an object store before anything else happens,
/// so that a bucket that does not exist, refused credentials or an
/// unreachable endpoint fail the command before it opens the index or
/// scans the tree (which then stay exactly as they were).
fn probe(
    store: &Arc<dyn ObjectStore>,
    lister: Option<&S3Lister>,
    prefix: &Path,
    w: &Where,
) -> Result<()> {
    std::thread::scope(|s| {
        // A thread of its own: the caller may already be inside a runtime.
        s.spawn(|| -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(async {
                if let Some(lister) = lister {
                    return lister.page(None).await.map(|_| ()).map_err(|e| match e
                        .downcast_ref::<object_store::Error>(
                    ) {
                        Some(e) => explain(e, w),
                        None => explain_text(&e.to_string(), w),
                    });
                }
                let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
                match store.list(prefix).next().await {
                    Some(Err(e)) => Err(explain(&e, w)),
                    _ => Ok(()),
                }
            })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(anyhow!(
                "remote {} cannot be listed: the listing panicked",
                w.url
            ))
        })
    })
}

/// Refuses an endpoint `object_store` cannot use (one without a scheme
/// panics inside it), saying what to write instead.
fn check_endpoint(url: &str, ep: &str, from: &str) -> Result<()> {
    match url::Url::parse(ep) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(())
        }
        _ if ep.contains("://") => {
            bail!("remote {url}: {from} {ep} must start with http:// or https://")
        }
        _ => bail!(
            "remote {url}: {from} {ep} has no scheme; write http://{ep} (with AWS_ALLOW_HTTP=true) or https://{ep}"
        ),
    }
}

/// The `<Code>` of an S3 (or Azure) XML error body, if any.
fn xml_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// Where a remote's requests go, for error messages.
#[derive(Debug, Clone, Default)]
struct Where {
    url: String,
    bucket: String,
    /// The endpoint, or "the s3 service".
    host: String,
}

/// What a failed request was doing.
#[derive(Debug, Clone, Copy)]
enum Doing<'a> {
    Listing,
    /// A GET of this key.
    Reading(&'a str),
}

/// A failure of the remote as a whole rather than of one object (no
/// credentials, access denied, no such bucket, no answer): one line that
/// says what to do, no XML, no request ids. `None` for anything else.
fn fatal(e: &object_store::Error, w: &Where, doing: Doing<'_>) -> Option<anyhow::Error> {
    use object_store::client::{HttpError, HttpErrorKind};
    let Where { url, bucket, host } = w;
    let text = e.to_string();
    let (what, to) = match doing {
        Doing::Listing => (format!("listing {url}"), "to list it".to_string()),
        Doing::Reading(key) => (format!("reading {key} (GET)"), format!("to read {key}")),
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        #[cfg(feature = "aws-config")]
        if let Some(c) = err.downcast_ref::<crate::engine::aws_chain::CredentialsFailed>() {
            return Some(anyhow!("remote {url}: {c}"));
        }
        if let Some(h) = err.downcast_ref::<HttpError>() {
            match h.kind() {
                HttpErrorKind::Timeout => {
                    return Some(match doing {
                        Doing::Listing => anyhow!(
                            "remote {url}: timed out listing it: no answer from {host} within --timeout"
                        ),
                        Doing::Reading(key) => anyhow!(
                            "remote {url}: timed out reading {key} (GET): no answer from {host} within --timeout"
                        ),
                    });
                }
                HttpErrorKind::Connect => {
                    return Some(anyhow!("remote {url}: cannot connect to {host} {to}: {h}"));
                }
                _ => {}
            }
        }
        source = err.source();
    }
    // Any failure on the way to the instance metadata service
    // (object_store's own chain): it found no credentials before it.
    if text.contains("/latest/api/token") || text.contains("/latest/meta-data/") {
        return Some(anyhow!(
            "remote {url}: no AWS credentials found (looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE, the container credentials endpoint and the instance metadata service); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ));
    }
    // The same for Google Cloud and Azure (object_store's chains).
    if text.contains("computeMetadata/") || text.contains("metadata.google.internal") {
        return Some(anyhow!(
            "remote {url}: no Google credentials found (looked at GOOGLE_SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT_KEY, GOOGLE_APPLICATION_CREDENTIALS, ~/.config/gcloud/application_default_credentials.json and the metadata server); run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ));
    }
    if text.contains("/metadata/identity/oauth2/token") {
        return Some(anyhow!(
            "remote {url}: no Azure credentials found (looked at AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, AZURE_STORAGE_TOKEN, AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE, `az login` and the managed identity endpoint); run `az login` or set AZURE_STORAGE_ACCOUNT_KEY"
        ));
    }
    if text.contains("az account get-access-token") {
        return Some(anyhow!(
            "remote {url}: the Azure CLI gave no token ({}); run `az login` again, or set AZURE_USE_AZURE_CLI=false to use other credentials",
            text.split("command failed:")
                .nth(1)
                .unwrap_or(&text)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let code = xml_code(&text);
    let denied = is_denied(code);
    if code == Some("NoSuchBucket") || code == Some("ContainerNotFound") {
        Some(anyhow!(
            "remote {url}: bucket {bucket:?} does not exist (at {host})"
        ))
    } else if denied
        || (code.is_none()
            && (matches!(
                e,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ) || text.contains("403 Forbidden")))
    {
        let hint = match doing {
            Doing::Listing => "check the credentials and the bucket's policy",
            Doing::Reading(_) => {
                "check the credentials and the bucket's policy (reading needs s3:GetObject, and kms:Decrypt for SSE-KMS objects)"
            }
        };
        Some(anyhow!(
            "remote {url}: access denied {what}{}: {hint}",
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ))
    } else {
        None
    }
}

/// [`explain`] for a failure of the raw S3 listing ([`S3Lister::page`]),
/// whose errors read `HTTP 403 AccessDenied: …`, `timeout: …` or
/// `connect: …`.
fn explain_text(text: &str, w: &Where) -> anyhow::Error {
    let Where { url, bucket, host } = w;
    if text.contains("/latest/api/token") || text.contains("/latest/meta-data/") {
        return anyhow!(
            "remote {url}: no AWS credentials found (looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE, the container credentials endpoint and the instance metadata service); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
    }
    if text.starts_with("timeout:") {
        return anyhow!(
            "remote {url}: timed out listing it: no answer from {host} within --timeout"
        );
    }
    if let Some(rest) = text.strip_prefix("connect: ") {
        return anyhow!("remote {url}: cannot connect to {host} to list it: {rest}");
    }
    let mut words = text.split_whitespace();
    let status = (words.next() == Some("HTTP"))
        .then(|| words.next())
        .flatten()
        .unwrap_or("");
    let code = words
        .next()
        .map(|c| c.trim_end_matches(':'))
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric()));
    if matches!(code, Some("NoSuchBucket" | "ContainerNotFound")) {
        return anyhow!("remote {url}: bucket {bucket:?} does not exist (at {host})");
    }
    if is_denied(code) || (status == "403" && code.is_none()) {
        return anyhow!(
            "remote {url}: access denied listing {url}{}: check the credentials and the bucket's policy",
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        );
    }
    // Whatever it is, without an XML body.
    let short = text
        .split("<?xml")
        .next()
        .unwrap_or(text)
        .trim_end_matches([' ', ':']);
    match code {
        Some(c) if !short.contains(c) => anyhow!("remote {url} cannot be listed: {c}: {short}"),
        _ => anyhow!("remote {url} cannot be listed: {short}"),
    }
}

/// A store's error code that means the credentials or policy refused.
fn is_denied(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "AccessDenied"
                | "SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "AllAccessDisabled"
                | "InvalidToken"
                | "ExpiredToken"
                | "AuthorizationFailure"
                | "AuthenticationFailed"
                | "NotSignedUp"
        )
    )
}

/// An error without its XML body, on one line.
fn short(e: &object_store::Error) -> String {
    let text = e.to_string();
    let code = xml_code(&text).map(str::to_string);
    let head = text
        .split("<?xml")
        .next()
        .unwrap_or(&text)
        .trim_end_matches([' ', ':'])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match code {
        Some(c) => format!("{c}: {head}"),
        None => head,
    }
}

/// One line that says what went wrong with listing a remote, and what to
/// do.
fn explain(e: &object_store::Error, w: &Where) -> anyhow::Error {
    fatal(e, w, Doing::Listing)
        .unwrap_or_else(|| anyhow!("remote {} cannot be listed: {}", w.url, short(e)))
}

fn open_dir(
    path: &FsPath,
    url: &str,
    dir: &mut Option<std::path::PathBuf>,
) -> Result<(Arc<dyn ObjectStore>, Path, String)> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("remote {url} does not exist or cannot be read"))?;
    if !meta.is_dir() {
        bail!("remote {url} is not a directory");
    }
    let abs =
        std::fs::canonicalize(path).with_context(|| format!("cannot resolve remote {url}"))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
        .map_err(|e| anyhow!("remote {url}: {e}"))?;
    *dir = Some(abs.clone());
    Ok((
        Arc::new(store),
        Path::default(),
        identity(url, &RemoteOptions::default())?,
    ))
}

/// The name under which the index records a remote, derived from the URL
/// and the configuration alone (no network; for S3 the AWS config files
/// may name the endpoint), so that a run which could not even reach its
/// remote is still recorded under the same name: a directory is
/// `file://` and its absolute path; an object store is scheme, bucket and
/// prefix, plus the endpoint when one is set.
pub fn identity(url: &str, opts: &RemoteOptions) -> Result<String> {
    let dir = |p: &FsPath| -> Result<String> {
        let abs = std::path::absolute(p).with_context(|| format!("cannot resolve remote {url}"))?;
        Ok(format!("file://{}", abs.display()))
    };
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "file" => {
            let path = u
                .to_file_path()
                .map_err(|_| anyhow!("remote {url}: not a local file URL"))?;
            dir(&path)
        }
        Ok(u) if u.scheme().len() > 1 => {
            let bucket = u.host_str().unwrap_or_default();
            let prefix = raw_prefix(url);
            let mut id = format!("{}://{}/{}", u.scheme(), bucket, prefix);
            let endpoint = match u.scheme() {
                "s3" | "s3a" => s3_endpoint(url, opts),
                _ => opts.endpoint.clone(),
            };
            if let Some(ep) = endpoint {
                id.push_str(&format!(" @{ep}"));
            }
            Ok(id)
        }
        _ => dir(FsPath::new(url)),
    }
}

/// The endpoint an S3 client opened with `opts` talks to: `--endpoint`,
/// else what the client's own configuration reads from the environment
/// (`AWS_ENDPOINT_URL_S3`, which wins, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT`), so the remote's identity names the server whatever
/// variable chose it, and proofs made on one server never count on
/// another with the same bucket name.
fn s3_endpoint(url: &str, opts: &RemoteOptions) -> Option<String> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    if let Some(ep) = &opts.endpoint {
        return Some(ep.clone());
    }
    let b = AmazonS3Builder::from_env().with_url(url);
    let from_env = b
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint))
        .filter(|ep| !ep.is_empty());
    #[cfg(feature = "aws-config")]
    let from_env = from_env.or_else(|| crate::engine::aws_chain::endpoint(opts.profile.as_deref()));
    from_env
}

/// The ETag of a file in a directory remote: its version, from what a
/// user cannot set back. Inode, mtime (µs) and size, as `object_store`'s
/// local store gives, are not enough: a file rewritten in place with its
/// mtime put back (`touch -r`, `rsync --times`, `cp -p`, bit rot) keeps
/// all three, and a different disk mounted at the same path may too. So
/// the ctime (ns), which every write and every `utimensat` moves and no
/// call sets, and the device id are part of it. (A chmod or a new hard
/// link moves the ctime too: the object is then read once more, never
/// trusted on less.) Proofs cached under the earlier three-part form
/// match no ETag now, so each object is read once more.
fn dir_etag(meta: &std::fs::Metadata) -> String {
    let meta = crate::engine::longpath::Meta::of_std(meta);
    dir_etag_of(&meta.stat, meta.dev)
}

/// [`dir_etag`] from the fields the walk keeps.
fn dir_etag_of(stat: &crate::model::Stat, dev: u64) -> String {
    use crate::model::time::from_unix_ns;
    let (secs, nsec) = from_unix_ns(stat.mtime_ns);
    // Microseconds since the epoch, 0 before it (as always).
    let mtime = if secs < 0 {
        0
    } else {
        secs as u128 * 1_000_000 + nsec as u128 / 1000
    };
    let (csecs, cnsec) = from_unix_ns(stat.ctime_ns);
    let ctime = i128::from(csecs) * 1_000_000_000 + i128::from(cnsec);
    format!(
        "\"{:x}-{mtime:x}-{:x}-{:x}-{ctime:x}\"",
        stat.inode, stat.size, dev
    )
}

/// Lists a directory remote natively: any file name (not UTF-8, control
/// characters, `#` suffixes) is a key exactly as it is, as the local walk
/// records it, where `object_store`'s local store fails the whole listing
/// on one such name. Symlinks are not followed (a loop cannot hang the
/// listing, a link cannot reach outside the backup) and are not objects;
/// nor are FIFOs, sockets or devices. It is the local walk itself, so a
/// backup deeper than `PATH_MAX` is listed like a tree that deep.
fn list_dir(dir: std::path::PathBuf, id: String) -> BoxStream<'static, Result<Listed>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Listed>>(1024);
    std::thread::spawn(move || {
        use crate::engine::walk::{self, Item};
        for item in walk::walk(&dir) {
            let item = match item {
                Item::Entry {
                    key,
                    kind: crate::model::EntryKind::File,
                    stat,
                    dev,
                    ..
                } => Ok(Listed {
                    key,
                    size: stat.size,
                    etag: Some(dir_etag_of(&stat, dev)),
                    version: None,
                    last_modified: stat.mtime_secs(),
                    storage_class: None,
                }),
                Item::Unreadable { key, error, .. } => Err(anyhow!(
                    "listing {id} failed: {}: {error}",
                    paths::fs_path(&dir, &key).display()
                )),
                _ => continue,
            };
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() {
                return; // the reader went away
            }
            if stop {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }).boxed()
}

/// Hashes one file of a directory remote, pinned to `etag` like an S3
/// read: a file replaced or rewritten before or while it is read is
/// `Changed`, never a hash of something else.
fn read_dir_file(
    path: &FsPath,
    etag: Option<&str>,
    meter: &Meter,
) -> Result<([u8; 32], u64), ReadError> {
    use std::io::Read;
    let file =
        crate::engine::longpath::open(path, libc::O_NOFOLLOW | libc::O_NONBLOCK).map_err(|e| {
            match e.kind() {
                std::io::ErrorKind::NotFound => ReadError::NotFound,
                _ if e.raw_os_error() == Some(libc::ELOOP) => ReadError::Changed,
                _ => ReadError::Other(e.to_string()),
            }
        })?;
    let before = file
        .metadata()
        .map_err(|e| ReadError::Other(e.to_string()))?;
    if !before.is_file() {
        return Err(ReadError::Changed);
    }
    if etag.is_some_and(|t| t != dir_etag(&before)) {
        return Err(ReadError::Changed);
    }
    let mut bounded = (&file).take(before.len().saturating_add(1));
    let (digests, n) =
        crate::engine::hash::hash_reader(&mut bounded, before.len(), Default::default(), meter)
            .map_err(|e| ReadError::Other(e.to_string()))?;
    let after = file
        .metadata()
        .map_err(|e| ReadError::Other(e.to_string()))?;
    if dir_etag(&after) != dir_etag(&before) {
        return Err(ReadError::Changed);
    }
    Ok((digests.blake3, n))
}

impl Remote {
    /// The bucket (or container) of an object store; `None` for a
    /// directory.
    pub fn bucket(&self) -> Option<&str> {
        if self.dir.is_some() {
            return None;
        }
        let rest = self.id.split_once("://")?.1;
        rest.split(['/', ' ']).next()
    }

    /// Lists every object under the prefix (in no particular order).
    pub fn list(&self) -> BoxStream<'static, Result<Listed>> {
        if let Some(dir) = &self.dir {
            return list_dir(dir.clone(), self.id.clone());
        }
        if let Some(s3) = &self.s3 {
            return s3.list(self.id.clone());
        }
        let prefix = self.prefix.clone();
        let strip = if prefix.as_ref().is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.as_ref())
        };
        let whole = prefix.as_ref().to_string();
        let said = self.said.clone();
        self.store
            .list((!prefix.as_ref().is_empty()).then_some(&prefix))
            .map(move |item| {
                let meta = item.map_err(|e| {
                    fatal(&e, &said, Doing::Listing)
                        .unwrap_or_else(|| anyhow!("listing {} failed: {}", said.url, short(&e)))
                })?;
                let full = meta.location.as_ref();
                // object_store drops a trailing `/`: the marker `prefix/`
                // arrives as the prefix itself, which is key "" here.
                let rel = if !strip.is_empty() && full == whole {
                    ""
                } else {
                    full.strip_prefix(strip.as_str()).unwrap_or(full)
                };
                Ok(Listed {
                    key: paths::key_from_slash(rel.as_bytes()),
                    size: meta.size,
                    etag: meta.e_tag,
                    version: meta.version,
                    last_modified: meta.last_modified.timestamp(),
                    storage_class: None,
                })
            })
            .boxed()
    }

    /// The object path of an index key.
    pub fn location(&self, key: &[u8]) -> Result<Path, ReadError> {
        let rel = std::str::from_utf8(&paths::slash_bytes(key))
            .map_err(|_| ReadError::Other("name is not UTF-8".into()))?
            .to_string();
        let full = if self.prefix.as_ref().is_empty() {
            rel
        } else {
            format!("{}/{rel}", self.prefix.as_ref())
        };
        Path::parse(&full).map_err(|e| ReadError::Other(e.to_string()))
    }

    /// Streams one object through BLAKE3. `etag`, when known, pins the
    /// read to the listed version. Returns the hash and the bytes read;
    /// each chunk is added to `meter` as it arrives.
    pub async fn read_hash(
        &self,
        key: &[u8],
        etag: Option<&str>,
        meter: &Meter,
    ) -> Result<([u8; 32], u64), ReadError> {
        if let Some(dir) = &self.dir {
            let path = paths::fs_path(dir, key);
            let etag = etag.map(str::to_string);
            let meter = meter.clone();
            return tokio::task::spawn_blocking(move || {
                read_dir_file(&path, etag.as_deref(), &meter)
            })
            .await
            .map_err(|e| ReadError::Other(e.to_string()))?;
        }
        let location = match self.location(key) {
            Ok(l) => l,
            // A key `object_store` cannot name (a control character) is
            // still an S3 object: read by its exact key.
            Err(e) => match &self.s3 {
                Some(s3) if s3.is_s3() => {
                    let full = paths::object_key(s3.prefix().as_bytes(), key);
                    let full = String::from_utf8(full)
                        .map_err(|_| ReadError::Other("name is not UTF-8".into()))?;
                    return s3.read_raw(&full, etag).await;
                }
                _ => return Err(e),
            },
        };
        let options = GetOptions {
            if_match: etag.map(str::to_string),
            ..Default::default()
        };
        let key = location.as_ref();
        let result = self
            .store
            .get_opts(&location, options)
            .await
            .map_err(|e| self.read_error(e, key))?;
        let mut stream = result.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.read_error(e, key))?;
            hasher.update(&chunk);
            total += chunk.len() as u64;
            meter.add(chunk.len() as u64);
        }
        Ok((*hasher.finalize().as_bytes(), total))
    }

    /// A failed GET: the object's own trouble, or the remote's as a
    /// whole (credentials, permissions, no answer), which ends the audit.
    fn read_error(&self, e: object_store::Error, key: &str) -> ReadError {
        match e {
            object_store::Error::NotFound { .. } => ReadError::NotFound,
            object_store::Error::Precondition { .. } => ReadError::Changed,
            other => match fatal(&other, &self.said, Doing::Reading(key)) {
                Some(f) => {
                    let line = f.to_string();
                    // Denials and silence can be this object's alone (a
                    // policy on a prefix, an SSE-KMS key, one stalled
                    // read); no credentials or no bucket cannot.
                    if line.contains(": access denied ")
                        || line.contains(": timed out ")
                        || line.contains(": cannot connect ")
                    {
                        ReadError::Refused(line)
                    } else {
                        ReadError::Fatal(line)
                    }
                }
                None => ReadError::Other(short(&other)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_and_missing_directories_are_refused() {
        let e = open("ftp://host/x", &RemoteOptions::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown scheme"), "{e}");
        let e = open("/no/such/dir/anywhere", &RemoteOptions::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}

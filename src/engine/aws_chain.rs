//! The AWS SDK's own credential and config chain for `s3://` remotes.
//!
//! `object_store` reads the environment, web identity, the container
//! endpoint and the instance metadata service, but not `~/.aws/credentials`
//! or `~/.aws/config`: a user whose `aws s3 ls` works through a profile got
//! "403 Forbidden" from the metadata service. Here the SDK's `aws-config`
//! crate (its parser, its providers: profiles with `role_arn` /
//! `source_profile`, `credential_process`, SSO caches, web identity, ECS,
//! IMDS) supplies credentials through `object_store`'s
//! [`CredentialProvider`], refreshed before they expire, and a profile's
//! `region` and `endpoint_url` (also from its `services` section) when
//! nothing vouch reads already set them.
//!
//! Precedence, as the AWS CLI has it: flags, then the environment
//! (`AWS_ACCESS_KEY_ID`…, `AWS_REGION`, `AWS_ENDPOINT_URL[_S3]`), then the
//! profile (`--profile`, else `AWS_PROFILE`, else `default`). An explicit
//! `--profile` takes the profile's credentials even when the environment
//! holds keys (as `aws --profile` does); `AWS_PROFILE` does not.
//!
//! Every request the SDK makes (STS, SSO, IMDS, ECS) runs on one runtime of
//! this module that lives as long as the process, so a refresh an hour
//! later never uses a connection of a runtime that has ended.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow, bail};
use aws_config::BehaviorVersion;
use aws_config::profile::ProfileSet;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::os_shim_internal::{Env, Fs};
use aws_types::region::Region;
use aws_types::service_config::ServiceConfigKey;
use object_store::CredentialProvider;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential};

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// The one runtime every SDK request runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vouch-aws")
            .enable_all()
            .build()
            .expect("cannot start the runtime of the AWS credential chain")
    })
}

/// Runs `fut` on [`runtime`] and waits for it, from any thread (also one
/// inside another runtime).
fn block_on<F>(fut: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = runtime().spawn(fut);
    futures::executor::block_on(handle).map_err(|e| anyhow!("the AWS config chain failed: {e}"))
}

/// Where the profile in effect was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Flag,
    Env,
    Default,
}

/// What the shared config files give for one profile.
#[derive(Debug)]
struct Shared {
    /// The profile in effect and where it was named.
    name: String,
    named: Named,
    /// The files could be read and parsed (else why not).
    parsed: std::result::Result<ProfileSet, String>,
    region: Option<String>,
    endpoint: Option<String>,
}

impl Shared {
    fn label(&self) -> String {
        match self.named {
            Named::Flag => format!("AWS profile {:?} (--profile)", self.name),
            Named::Env => format!("AWS profile {:?} (AWS_PROFILE)", self.name),
            Named::Default => format!("AWS profile {:?}", self.name),
        }
    }

    /// Refuses a profile that was named but is in neither file.
    fn check_exists(&self) -> Result<()> {
        match &self.parsed {
            Err(e) => bail!("the AWS config files cannot be read: {e}"),
            Ok(set) if self.named != Named::Default && set.get_profile(&self.name).is_none() => {
                let mut names: Vec<&str> = set.profiles().collect();
                names.sort_unstable();
                let there = if names.is_empty() {
                    "they hold no profile".to_string()
                } else {
                    format!("profiles there: {}", names.join(", "))
                };
                bail!(
                    "{} is in neither {} nor {} ({there})",
                    self.label(),
                    files().0,
                    files().1
                )
            }
            Ok(_) => Ok(()),
        }
    }
}

/// The credentials and config files, as the SDK finds them.
fn files() -> (String, String) {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    (
        var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| "~/.aws/credentials".into()),
        var("AWS_CONFIG_FILE").unwrap_or_else(|| "~/.aws/config".into()),
    )
}

/// The profile in effect: `--profile`, else `AWS_PROFILE`, else `default`.
fn profile_name(flag: Option<&str>) -> (String, Named) {
    if let Some(p) = flag {
        return (p.to_string(), Named::Flag);
    }
    match std::env::var("AWS_PROFILE") {
        Ok(p) if !p.is_empty() => (p, Named::Env),
        _ => ("default".to_string(), Named::Default),
    }
}

/// Reads the shared config files once per profile.
fn shared(flag: Option<&str>) -> Result<Arc<Shared>> {
    static CACHE: OnceLock<Mutex<HashMap<Option<String>, Arc<Shared>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = flag.map(str::to_string);
    if let Some(s) = cache.lock().unwrap().get(&key) {
        return Ok(Arc::clone(s));
    }
    let (name, named) = profile_name(flag);
    let flag_owned = key.clone();
    let loaded = block_on(async move {
        #[allow(deprecated)]
        let files = aws_config::profile::profile_file::ProfileFiles::default();
        let parsed = aws_config::profile::load(
            &Fs::real(),
            &Env::real(),
            &files,
            flag_owned.clone().map(Cow::Owned),
        )
        .await
        .map_err(|e| one_line(&e));
        // The SDK's own resolution of `endpoint_url` (the profile's
        // `services` section for S3 first, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
        // respected); no credentials and no region lookup here.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .no_credentials()
            .region(None::<Region>);
        if let Some(p) = &flag_owned {
            loader = loader.profile_name(p);
        }
        let sdk = loader.load().await;
        let endpoint = ServiceConfigKey::builder()
            .service_id("s3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()
            .and_then(|k| sdk.service_config()?.load_config(k))
            .filter(|e| !e.is_empty());
        (parsed, endpoint)
    })?;
    let (parsed, endpoint) = loaded;
    let region = parsed
        .as_ref()
        .ok()
        .and_then(|set| set.get_profile(&name))
        .and_then(|p| p.get("region"))
        .map(str::to_string);
    let s = Arc::new(Shared {
        name,
        named,
        parsed,
        region,
        endpoint,
    });
    cache.lock().unwrap().insert(key, Arc::clone(&s));
    Ok(s)
}

/// The S3 endpoint the shared config names for this profile (environment
/// or `endpoint_url`), if any: part of a remote's identity.
pub fn endpoint(flag: Option<&str>) -> Option<String> {
    shared(flag).ok()?.endpoint.clone()
}

/// Where an endpoint taken from the shared config came from, for messages.
pub fn endpoint_source(flag: Option<&str>) -> String {
    match shared(flag) {
        Ok(s) => format!("endpoint_url of {}", s.label()),
        Err(_) => "endpoint_url".into(),
    }
}

/// Fills in what the builder (flags and environment) left open: the
/// credentials, and the profile's region and endpoint. Returns the
/// endpoint it set, if any, so the caller can check it like any other.
pub fn configure(
    mut b: AmazonS3Builder,
    flag: Option<&str>,
    endpoint_flag: bool,
) -> Result<(AmazonS3Builder, Option<String>)> {
    let anonymous = b
        .get_config_value(&AmazonS3ConfigKey::SkipSignature)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let env_keys = b
        .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
        .is_some();
    let s = shared(flag)?;
    let uses_profile = !anonymous && (flag.is_some() || !env_keys);
    if uses_profile {
        s.check_exists()?;
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none()
        && let Some(r) = &s.region
    {
        b = b.with_region(r);
    }
    let mut set_endpoint = None;
    let has_endpoint = [AmazonS3ConfigKey::Endpoint, AmazonS3ConfigKey::S3Endpoint]
        .iter()
        .any(|k| b.get_config_value(k).is_some_and(|v| !v.is_empty()));
    if !endpoint_flag
        && !has_endpoint
        && let Some(ep) = &s.endpoint
    {
        b = b.with_endpoint(ep);
        set_endpoint = Some(ep.clone());
    }
    if uses_profile {
        let region = b
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let creds = provider(&s, flag, region)?;
        b = b.with_credentials(creds);
    }
    Ok((b, set_endpoint))
}

/// One provider per profile and region, shared by every remote that uses
/// it (so `vouch run --all` fetches credentials once).
fn provider(s: &Arc<Shared>, flag: Option<&str>, region: String) -> Result<Arc<SdkCredentials>> {
    type ByProfileAndRegion = HashMap<(Option<String>, String), Arc<SdkCredentials>>;
    static CACHE: OnceLock<Mutex<ByProfileAndRegion>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (flag.map(str::to_string), region.clone());
    if let Some(p) = cache.lock().unwrap().get(&key) {
        return Ok(Arc::clone(p));
    }
    let flag_owned = key.0.clone();
    let chain = block_on(async move {
        let region = Some(Region::new(region));
        match flag_owned {
            // `--profile`: that profile's chain alone (`role_arn`,
            // `source_profile`, SSO, `credential_process`, its keys).
            Some(p) => {
                let conf = aws_config::provider_config::ProviderConfig::without_region()
                    .with_region(region);
                SharedCredentialsProvider::new(
                    aws_config::profile::ProfileFileCredentialsProvider::builder()
                        .configure(&conf)
                        .profile_name(p)
                        .build(),
                )
            }
            // The SDK's default chain: environment, profile, web
            // identity, ECS, IMDS (its region given, so none is looked up).
            None => SharedCredentialsProvider::new(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(region)
                    .build()
                    .await,
            ),
        }
    })?;
    let p = Arc::new(SdkCredentials {
        chain,
        label: s.label(),
        named: s.named,
        cached: tokio::sync::Mutex::new(None),
    });
    cache.lock().unwrap().insert(key, Arc::clone(&p));
    Ok(p)
}

/// An error's chain of causes on one line.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The credentials could not be had: a sentence that says where the
/// chain looked and what to do, for the error message as it is.
#[derive(Debug)]
pub struct CredentialsFailed(pub String);

impl std::fmt::Display for CredentialsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CredentialsFailed {}

/// `aws-config`'s chain as `object_store`'s credential provider, cached
/// until `REFRESH_BEFORE` their expiry.
#[derive(Debug)]
pub struct SdkCredentials {
    chain: SharedCredentialsProvider,
    label: String,
    named: Named,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl SdkCredentials {
    fn failure(&self, e: &CredentialsError) -> CredentialsFailed {
        let (creds, config) = files();
        CredentialsFailed(match e {
            CredentialsError::CredentialsNotLoaded(_) if self.named == Named::Flag => format!(
                "{} gives no AWS credentials ({}); add aws_access_key_id/aws_secret_access_key, role_arn with source_profile, sso_session or credential_process to it in {creds} or {config}",
                self.label,
                one_line(e)
            ),
            CredentialsError::CredentialsNotLoaded(_) => format!(
                "no AWS credentials found (looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, {} in {creds} and {config}, AWS_WEB_IDENTITY_TOKEN_FILE, the container credentials endpoint and the instance metadata service); set AWS_PROFILE (or --profile) to a profile with credentials, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                self.label
            ),
            other => format!(
                "AWS credentials for {} could not be loaded: {}",
                self.label,
                one_line(other)
            ),
        })
    }
}

#[async_trait::async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        let fresh = |exp: &Option<SystemTime>| exp.is_none_or(|t| t > now + REFRESH_BEFORE);
        if let Some((c, exp)) = &*cached
            && fresh(exp)
        {
            return Ok(Arc::clone(c));
        }
        let chain = self.chain.clone();
        let got = runtime()
            .spawn(async move { chain.provide_credentials().await })
            .await;
        match got {
            Ok(Ok(c)) => {
                let cred = Arc::new(AwsCredential {
                    key_id: c.access_key_id().to_string(),
                    secret_key: c.secret_access_key().to_string(),
                    token: c.session_token().map(str::to_string),
                });
                *cached = Some((Arc::clone(&cred), c.expiry()));
                Ok(cred)
            }
            // A refresh that fails while the old credentials still hold
            // keeps them.
            _ if cached
                .as_ref()
                .is_some_and(|(_, exp)| exp.is_none_or(|t| t > now)) =>
            {
                Ok(Arc::clone(&cached.as_ref().unwrap().0))
            }
            Ok(Err(e)) => Err(object_store::Error::Generic {
                store: "S3",
                source: Box::new(self.failure(&e)),
            }),
            Err(e) => Err(object_store::Error::Generic {
                store: "S3",
                source: Box::new(CredentialsFailed(format!(
                    "the AWS credential chain failed: {e}"
                ))),
            }),
        }
    }
}

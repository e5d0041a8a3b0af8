//! The S3-compatible object storage backend (through the `object_store` crate: signing,
//! retries with backoff on timeouts, 5xx and throttling, multipart uploads).
//!
//! Keys map to `<prefix>/<key>` in the bucket. Put-if-absent uses a conditional PUT
//! (`If-None-Match: *`). The backend is synchronous like the trait: each call runs on a small
//! private tokio runtime; callers parallelise with threads.

use std::ops::Range;
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart};

use crate::backend::{Backend, ObjectInfo, PutMode, PutOutcome};
use crate::error::{redact_urls, Error, Result};

/// Objects larger than this are uploaded in parts.
const MULTIPART_THRESHOLD_BYTES: usize = 64 << 20;
const PART_BYTES: usize = 16 << 20;

/// Connection settings; unset fields come from the standard `AWS_*` environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

pub struct S3Backend {
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
    prefix: String,
    url: String,
}

fn s3_err(op: &str, key: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found(format!("object {key}")),
        other => {
            // The client's messages name the request URL, endpoint credentials included.
            let detail = redact_urls(&format!("{op} {key}: {other}"));
            Error::service("S3", detail, other)
        }
    }
}

/// Bucket, prefix and the options with the URL's credentials filled in.
fn parse_url<'a>(url: &'a str, opts: &S3Options) -> Result<(&'a str, &'a str, S3Options)> {
    let shown = redact_urls(url);
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| Error::InvalidArgument(format!("{shown:?} is not an s3://BUCKET/PREFIX URL")))?;
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let mut opts = opts.clone();
    let bucket = match authority.rsplit_once('@') {
        Some((userinfo, bucket)) => {
            let (key, secret) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            if opts.access_key_id.is_none() && !key.is_empty() {
                opts.access_key_id = Some(key.to_string());
                opts.secret_access_key =
                    opts.secret_access_key.take().or((!secret.is_empty()).then(|| secret.to_string()));
            }
            bucket
        }
        None => authority,
    };
    if bucket.is_empty() {
        return Err(Error::InvalidArgument(format!("{shown:?} names no bucket")));
    }
    Ok((bucket, prefix, opts))
}

/// Fails, saying what to set, when no credentials are configured: the client would otherwise
/// fall back to the EC2 instance metadata endpoint, which off EC2 means retrying a
/// connection that never answers. Opting in (`AWS_EC2_METADATA_DISABLED=false`) allows it.
fn require_credentials(opts: &S3Options) -> Result<()> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let is =
        |k: &str, values: &[&str]| std::env::var(k).is_ok_and(|v| values.iter().any(|x| v.eq_ignore_ascii_case(x)));
    let configured = opts.access_key_id.is_some()
        || set("AWS_ACCESS_KEY_ID")
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || is("AWS_SKIP_SIGNATURE", &["true", "1"])
        || is("AWS_EC2_METADATA_DISABLED", &["false", "0"]);
    if configured {
        return Ok(());
    }
    Err(Error::InvalidArgument(
        "no S3 credentials configured: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --s3-access-key-id and \
         --s3-secret-access-key); to use an EC2 instance role, set AWS_EC2_METADATA_DISABLED=false"
            .into(),
    ))
}

impl S3Backend {
    /// Opens `s3://[KEY[:SECRET]@]BUCKET[/PREFIX]` (credentials in the URL count where the
    /// options give none; messages show the URL with the secret as `***`).
    pub fn open(url: &str, opts: &S3Options) -> Result<Self> {
        // reqwest's rustls needs a process-wide crypto provider; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shown = redact_urls(url);
        let (bucket, prefix, opts) = parse_url(url, opts)?;
        require_credentials(&opts)?;
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_virtual_hosted_style_request(false);
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e);
        }
        // Plain http only where the endpoint says so (a loopback or test server). Set on the
        // client options, which replace the builder's.
        let allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
        let region = opts
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(region);
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &opts.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 6,
            retry_timeout: Duration::from_secs(60),
        };
        let client = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout(Duration::from_secs(120))
            .with_connect_timeout(Duration::from_secs(5));
        let store = b
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| Error::InvalidArgument(redact_urls(&format!("cannot use {url}: {e}"))))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Io { context: "cannot start the S3 client".into(), source: e })?;
        Ok(S3Backend { store, runtime, prefix: prefix.trim_matches('/').to_string(), url: shown })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// The repository key of an object path.
    fn key_of(&self, p: &ObjectPath) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(s).to_string()
        }
    }

    fn get_range_inner(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(key);
        let bytes =
            self.runtime.block_on(self.store.get_range(&path, range.clone())).map_err(|e| s3_err("GET", key, e))?;
        if (bytes.len() as u64) < range.end - range.start {
            return Err(Error::corrupt(key, format!("shorter than {} bytes (truncated?)", range.end)));
        }
        Ok(bytes.to_vec())
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome> {
        let path = self.path(key);
        if data.len() > MULTIPART_THRESHOLD_BYTES && mode == PutMode::Overwrite {
            return self.runtime.block_on(async {
                let upload = self.store.put_multipart(&path).await.map_err(|e| s3_err("PUT", key, e))?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                w.write(data);
                w.finish().await.map_err(|e| s3_err("PUT", key, e))?;
                Ok(PutOutcome::Written)
            });
        }
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(data));
        let opts = match mode {
            PutMode::Overwrite => object_store::PutMode::Overwrite,
            PutMode::IfAbsent => object_store::PutMode::Create,
        };
        match self.runtime.block_on(self.store.put_opts(&path, payload, opts.into())) {
            Ok(_) => Ok(PutOutcome::Written),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(s3_err("PUT", key, e)),
        }
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key);
        self.runtime.block_on(async {
            let r = self.store.get(&path).await.map_err(|e| s3_err("GET", key, e))?;
            r.bytes().await.map(|b| b.to_vec()).map_err(|e| s3_err("GET", key, e))
        })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        match self.get_range_inner(key, offset..offset + len) {
            // A range past the end is refused by S3: report it like a short local read.
            Err(Error::Service { .. }) if self.size(key)?.is_some_and(|s| s < offset + len) => {
                Err(Error::corrupt(key, format!("shorter than {} bytes (truncated?)", offset + len)))
            }
            other => other,
        }
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        match self.runtime.block_on(self.store.head(&self.path(key))) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_err("HEAD", key, e)),
        }
    }

    fn list(&self, prefix: &str, f: &mut dyn FnMut(ObjectInfo) -> Result<()>) -> Result<()> {
        let path = self.path(prefix.trim_end_matches('/'));
        self.runtime.block_on(async {
            let mut stream = self.store.list(Some(&path));
            while let Some(item) = stream.next().await {
                let meta = item.map_err(|e| s3_err("LIST", prefix, e))?;
                f(ObjectInfo { key: self.key_of(&meta.location), size: meta.size })?;
            }
            Ok(())
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self.runtime.block_on(self.store.delete(&self.path(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_err("DELETE", key, e)),
        }
    }
}

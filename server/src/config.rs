//! Configuration: flags, then `PODSPACE_*` environment variables, then a
//! TOML file (`--config`), then defaults — the first that sets a value wins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flags, with '_' for '-').
    #[arg(long, env = "PODSPACE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database and the registry's blobs [default: ./.podspace]
    #[arg(long, env = "PODSPACE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the REST API and webhooks [default: 127.0.0.1:8080]
    #[arg(long, env = "PODSPACE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the OCI registry [default: 127.0.0.1:5000]
    #[arg(long, env = "PODSPACE_REGISTRY_LISTEN", value_name = "ADDR")]
    pub registry_listen: Option<SocketAddr>,
    /// Metadata store: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB [default: sqlite://DATA_DIR/podspace.db]
    #[arg(long, env = "PODSPACE_DB", value_name = "URL")]
    pub db: Option<String>,
    /// Password of the `admin` cluster-admin user: set on first start (instead of a
    /// generated one-time password) and reset to this value on every later start.
    #[arg(
        long,
        env = "PODSPACE_ADMIN_PASSWORD",
        value_name = "PW",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// Lifetime of tokens issued by `psc login`, in seconds [default: 86400]
    #[arg(long, env = "PODSPACE_TOKEN_TTL", value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Largest request body the API accepts, in bytes [default: 3145728]
    #[arg(long, env = "PODSPACE_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<usize>,
    /// Events kept in the durable event log before the oldest are compacted [default: 1000000]
    #[arg(long, env = "PODSPACE_EVENT_RETENTION", value_name = "COUNT")]
    pub event_retention: Option<i64>,
    /// URL at which clients reach the API (the registry's token realm) [default: http://LISTEN]
    #[arg(long, env = "PODSPACE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// host:port in the registry's image pull specs [default: the registry's address]
    #[arg(long, env = "PODSPACE_REGISTRY_PUBLIC_HOST", value_name = "HOST:PORT")]
    pub registry_public_host: Option<String>,
    /// Seconds an idle blob upload session is kept [default: 86400]
    #[arg(long, env = "PODSPACE_UPLOAD_TTL", value_name = "SECONDS")]
    pub upload_ttl: Option<u64>,
    /// Seconds between re-imports of scheduled image stream tags [default: 900]
    #[arg(long, env = "PODSPACE_IMPORT_INTERVAL", value_name = "SECONDS")]
    pub import_interval: Option<u64>,
    /// Seconds between registry garbage collections; 0 runs none on a schedule [default: 3600]
    #[arg(long, env = "PODSPACE_GC_INTERVAL", value_name = "SECONDS")]
    pub gc_interval: Option<u64>,
    /// Seconds a registry blob or manifest is kept after its last use even when nothing names it [default: 3600]
    #[arg(long, env = "PODSPACE_GC_GRACE", value_name = "SECONDS")]
    pub gc_grace: Option<u64>,
    /// Where the registry keeps blobs: `fs` (under DATA_DIR/registry) or `s3` [default: fs]
    #[arg(long, env = "PODSPACE_REGISTRY_STORAGE", value_name = "fs|s3")]
    pub registry_storage: Option<String>,
    /// S3 endpoint URL for S3-compatible servers (path-style addressing) [default: AWS]
    #[arg(long, env = "PODSPACE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket (it must exist)
    #[arg(long, env = "PODSPACE_S3_BUCKET", value_name = "NAME")]
    pub s3_bucket: Option<String>,
    /// S3 region [default: us-east-1]
    #[arg(long, env = "PODSPACE_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Key prefix inside the bucket [default: registry/]
    #[arg(long, env = "PODSPACE_S3_PREFIX", value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// S3 access key [default: $AWS_ACCESS_KEY_ID]
    #[arg(
        long,
        env = "PODSPACE_S3_ACCESS_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub s3_access_key: Option<String>,
    /// S3 secret key [default: $AWS_SECRET_ACCESS_KEY]
    #[arg(
        long,
        env = "PODSPACE_S3_SECRET_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub s3_secret_key: Option<String>,
    /// Build slots of the embedded build node; 0 runs no node here [default: 2]
    #[arg(long, env = "PODSPACE_NODE_SLOTS", value_name = "N")]
    pub node_slots: Option<usize>,
    /// Network of build containers: host or none (the engine may have no bridge) [default: host]
    #[arg(long, env = "PODSPACE_BUILD_NETWORK", value_name = "host|none")]
    pub build_network: Option<String>,
    /// Seconds a build node's lease lasts without a heartbeat; then its build ends as NodeLost [default: 10]
    #[arg(long, env = "PODSPACE_BUILD_LEASE", value_name = "SECONDS")]
    pub build_lease: Option<u64>,
    /// Seconds a replica holds a controller without renewing; another replica takes over after it [default: 15]
    #[arg(long, env = "PODSPACE_CONTROLLER_LEASE", value_name = "SECONDS")]
    pub controller_lease: Option<u64>,
    /// Largest binary build input accepted, in bytes [default: 1073741824]
    #[arg(long, env = "PODSPACE_MAX_BINARY_INPUT", value_name = "BYTES")]
    pub max_binary_input: Option<u64>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "PODSPACE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// File holding the registry token signing key (0600, made on first start; every
    /// replica of one store needs the same) [default: DATA_DIR/registry-token.key]
    #[arg(long, env = "PODSPACE_REGISTRY_TOKEN_KEY", value_name = "FILE")]
    pub registry_token_key: Option<PathBuf>,
    /// Let S2I builders run assemble as root (refused by default)
    #[arg(long, env = "PODSPACE_S2I_ALLOW_ROOT")]
    pub s2i_allow_root: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What one client can make the server hold (in a config file: a `[limits]`
/// table with these keys).
#[derive(Debug, Args, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct LimitArgs {
    /// Open blob upload sessions per user or service account [default: 256]
    #[arg(long, env = "PODSPACE_MAX_UPLOADS_PER_USER", value_name = "N")]
    pub max_uploads_per_user: Option<usize>,
    /// Open blob upload sessions in all [default: 4096]
    #[arg(long, env = "PODSPACE_MAX_UPLOADS", value_name = "N")]
    pub max_uploads: Option<usize>,
    /// Seconds a client has to send a request's headers [default: 10]
    #[arg(long, env = "PODSPACE_HEADER_TIMEOUT", value_name = "SECONDS")]
    pub header_timeout: Option<u64>,
    /// Seconds a request body may go without a byte [default: 60]
    #[arg(long, env = "PODSPACE_BODY_IDLE_TIMEOUT", value_name = "SECONDS")]
    pub body_idle_timeout: Option<u64>,
    /// Connections at once from one client address, per listener [default: 256]
    #[arg(long, env = "PODSPACE_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Connections at once, per listener [default: 8192]
    #[arg(long, env = "PODSPACE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest unpacked binary build input or build context, in bytes [default: 4294967296]
    #[arg(long, env = "PODSPACE_MAX_BINARY_CONTEXT", value_name = "BYTES")]
    pub max_binary_context: Option<u64>,
    /// Most files and directories in a binary build input or build context [default: 1000000]
    #[arg(long, env = "PODSPACE_MAX_BINARY_ENTRIES", value_name = "N")]
    pub max_binary_entries: Option<u64>,
    /// Largest webhook delivery body, in bytes [default: 10485760]
    #[arg(long, env = "PODSPACE_WEBHOOK_MAX_BODY", value_name = "BYTES")]
    pub webhook_max_body: Option<usize>,
    /// Seconds a webhook delivery's body may take to arrive [default: 30]
    #[arg(long, env = "PODSPACE_WEBHOOK_READ_TIMEOUT", value_name = "SECONDS")]
    pub webhook_read_timeout: Option<u64>,
    /// Verified webhook deliveries one BuildConfig takes per second [default: 1]
    #[arg(long, env = "PODSPACE_WEBHOOK_RATE", value_name = "PER_SECOND")]
    pub webhook_rate: Option<f64>,
    /// Verified webhook deliveries one BuildConfig takes at once [default: 10]
    #[arg(long, env = "PODSPACE_WEBHOOK_BURST", value_name = "N")]
    pub webhook_burst: Option<u32>,
}

/// The limits in force.
#[derive(Debug, Clone)]
pub struct Limits {
    pub uploads: podspace_registry::uploads::UploadLimits,
    pub header_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    pub max_binary_context: u64,
    pub max_binary_entries: u64,
    pub webhook_max_body: usize,
    pub webhook_read_timeout: Duration,
    pub webhook_rate: f64,
    pub webhook_burst: u32,
}

impl Limits {
    fn resolve(args: LimitArgs, file: LimitArgs) -> anyhow::Result<Limits> {
        let secs = |a: Option<u64>, f: Option<u64>, d: u64| {
            Duration::from_secs(a.or(f).unwrap_or(d).max(1))
        };
        let limits = Limits {
            uploads: podspace_registry::uploads::UploadLimits {
                per_principal: args
                    .max_uploads_per_user
                    .or(file.max_uploads_per_user)
                    .unwrap_or(256),
                total: args.max_uploads.or(file.max_uploads).unwrap_or(4096),
            },
            header_timeout: secs(args.header_timeout, file.header_timeout, 10),
            body_idle_timeout: secs(args.body_idle_timeout, file.body_idle_timeout, 60),
            max_connections_per_ip: args
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(256),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(8192),
            max_binary_context: args
                .max_binary_context
                .or(file.max_binary_context)
                .unwrap_or(4 << 30),
            max_binary_entries: args
                .max_binary_entries
                .or(file.max_binary_entries)
                .unwrap_or(1_000_000),
            webhook_max_body: args
                .webhook_max_body
                .or(file.webhook_max_body)
                .unwrap_or(10 << 20),
            webhook_read_timeout: secs(args.webhook_read_timeout, file.webhook_read_timeout, 30),
            webhook_rate: args.webhook_rate.or(file.webhook_rate).unwrap_or(1.0),
            webhook_burst: args.webhook_burst.or(file.webhook_burst).unwrap_or(10),
        };
        if limits.webhook_rate.is_nan() || limits.webhook_rate <= 0.0 || limits.webhook_burst == 0 {
            bail!("webhook-rate must be above 0 and webhook-burst at least 1");
        }
        if limits.uploads.per_principal == 0
            || limits.max_connections_per_ip == 0
            || limits.max_connections == 0
        {
            bail!("upload and connection limits must be at least 1");
        }
        Ok(limits)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    registry_listen: Option<SocketAddr>,
    db: Option<String>,
    admin_password: Option<String>,
    token_ttl: Option<u64>,
    max_body: Option<usize>,
    event_retention: Option<i64>,
    public_url: Option<String>,
    registry_public_host: Option<String>,
    upload_ttl: Option<u64>,
    import_interval: Option<u64>,
    gc_interval: Option<u64>,
    gc_grace: Option<u64>,
    registry_storage: Option<String>,
    s3_endpoint: Option<String>,
    s3_bucket: Option<String>,
    s3_region: Option<String>,
    s3_prefix: Option<String>,
    s3_access_key: Option<String>,
    s3_secret_key: Option<String>,
    node_slots: Option<usize>,
    build_network: Option<String>,
    build_lease: Option<u64>,
    controller_lease: Option<u64>,
    max_binary_input: Option<u64>,
    log_format: Option<String>,
    registry_token_key: Option<PathBuf>,
    s2i_allow_root: Option<bool>,
    #[serde(default)]
    limits: LimitArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub registry_listen: SocketAddr,
    pub db: String,
    pub admin_password: Option<String>,
    pub token_ttl: Duration,
    pub max_body: usize,
    pub event_retention: i64,
    pub public_url: Option<String>,
    pub registry_public_host: Option<String>,
    pub upload_ttl: Duration,
    pub import_interval: Duration,
    /// `None`: no scheduled collection.
    pub gc_interval: Option<Duration>,
    pub gc_grace: Duration,
    pub storage: Storage,
    pub node_slots: usize,
    pub build_network: String,
    pub build_lease: Duration,
    pub controller_lease: Duration,
    pub max_binary_input: u64,
    pub log_format: LogFormat,
    pub registry_token_key: PathBuf,
    pub s2i_allow_root: bool,
    pub limits: Limits,
}

#[derive(Clone)]
pub enum Storage {
    Fs,
    S3(podspace_registry::storage::s3::S3Config),
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("registry_listen", &self.registry_listen)
            .field("db", &podspace_api::store::redact_url(&self.db))
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "***"),
            )
            .field("token_ttl", &self.token_ttl)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let file: FileConfig = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(".podspace"));
        let db = args
            .db
            .or(file.db)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("podspace.db").display()));
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("unknown log format {other:?}: use text or json"),
        };
        let max_body = args.max_body.or(file.max_body).unwrap_or(3 * 1024 * 1024);
        if max_body < 1024 {
            bail!("max-body must be at least 1024 bytes");
        }
        let registry_token_key = args
            .registry_token_key
            .or(file.registry_token_key)
            .unwrap_or_else(|| data_dir.join("registry-token.key"));
        let limits = Limits::resolve(args.limits, file.limits)?;
        Ok(Config {
            s2i_allow_root: args.s2i_allow_root || file.s2i_allow_root.unwrap_or(false),
            limits,
            registry_token_key,
            data_dir,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| ([127, 0, 0, 1], 8080).into()),
            registry_listen: args
                .registry_listen
                .or(file.registry_listen)
                .unwrap_or_else(|| ([127, 0, 0, 1], 5000).into()),
            db,
            admin_password: args.admin_password.or(file.admin_password),
            token_ttl: Duration::from_secs(args.token_ttl.or(file.token_ttl).unwrap_or(86_400)),
            max_body,
            event_retention: args
                .event_retention
                .or(file.event_retention)
                .unwrap_or(1_000_000)
                .max(1000),
            public_url: args
                .public_url
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            registry_public_host: args.registry_public_host.or(file.registry_public_host),
            upload_ttl: Duration::from_secs(args.upload_ttl.or(file.upload_ttl).unwrap_or(86_400)),
            import_interval: Duration::from_secs(args.import_interval.or(file.import_interval).unwrap_or(900).max(1)),
            gc_interval: match args.gc_interval.or(file.gc_interval).unwrap_or(3600) {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            gc_grace: Duration::from_secs(args.gc_grace.or(file.gc_grace).unwrap_or(3600)),
            storage: match args.registry_storage.or(file.registry_storage).as_deref() {
                None | Some("fs") => Storage::Fs,
                Some("s3") => Storage::S3(podspace_registry::storage::s3::S3Config {
                    endpoint: args.s3_endpoint.or(file.s3_endpoint),
                    region: args.s3_region.or(file.s3_region).unwrap_or_else(|| "us-east-1".into()),
                    bucket: args.s3_bucket.or(file.s3_bucket).context("--s3-bucket is required with --registry-storage s3")?,
                    prefix: args.s3_prefix.or(file.s3_prefix).unwrap_or_else(|| "registry/".into()),
                    access_key: args
                        .s3_access_key
                        .or(file.s3_access_key)
                        .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
                        .context("an S3 access key is required (--s3-access-key or AWS_ACCESS_KEY_ID)")?,
                    secret_key: args
                        .s3_secret_key
                        .or(file.s3_secret_key)
                        .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok())
                        .context("an S3 secret key is required (--s3-secret-key or AWS_SECRET_ACCESS_KEY)")?,
                }),
                Some(other) => bail!("unknown registry storage {other:?}: use fs or s3"),
            },
            node_slots: args.node_slots.or(file.node_slots).unwrap_or(2),
            build_network: match args.build_network.or(file.build_network).as_deref() {
                None | Some("host") => "host".into(),
                Some("none") => "none".into(),
                Some(other) => bail!("unknown build network {other:?}: use host or none"),
            },
            build_lease: Duration::from_secs(args.build_lease.or(file.build_lease).unwrap_or(10).max(3)),
            controller_lease: Duration::from_secs(args.controller_lease.or(file.controller_lease).unwrap_or(15).max(2)),
            max_binary_input: args.max_binary_input.or(file.max_binary_input).unwrap_or(1 << 30),
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("podspace-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/x\"\n",
        )
        .unwrap();
        let cfg = Config::resolve(ServeArgs {
            config: Some(file.clone()),
            data_dir: Some("/tmp/y".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(cfg.db, "sqlite:///tmp/y/podspace.db");
        assert_eq!(cfg.registry_listen.port(), 5000);
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(Config::resolve(ServeArgs {
            config: Some(file),
            ..Default::default()
        })
        .is_err());
    }
}

//! `[server]` checked: where to listen, who may post, and the bounds of a request.
//!
//! It also reads the TLS certificate and key, so that a bad pair stops the start. How
//! requests are refused with these values is the `server` module's business.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use toml::Spanned;

use super::raw::{RawServer, RawTls, Text};
use super::validate::{duration, read_secret_file, text_or, Checker};

const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
const DEFAULT_PATH: &str = "/redbrick";
const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
const DEFAULT_MAX_EVENTS: u64 = 1000;
const DEFAULT_MAX_CONCURRENT: u64 = 1024;
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The inbound token: compared in constant time, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// Whether `candidate` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// `[server]`, checked.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Path RedBrick posts to, starting with `/`, without a trailing slash.
    pub path: String,
    /// The token requests must carry, if any.
    pub token: Option<Token>,
    /// Client networks allowed to post; empty allows everyone.
    pub allow_from: Vec<IpNet>,
    /// Proxies whose `X-Forwarded-For` header names the real client.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest body, after decompression.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_events: usize,
    /// Most requests handled at once.
    pub max_concurrent_requests: usize,
    /// How long a client may take to send its headers.
    pub header_timeout: Duration,
    /// How long a client may take to send its body.
    pub body_timeout: Duration,
    /// Built-in TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("path", &self.path)
            .field("token", &self.token)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// `[server]` with its defaults, or `None` when a value in it is refused.
pub(super) fn check(
    checker: &mut Checker<'_>,
    raw: &RawServer,
    base: &Path,
) -> Option<ServerConfig> {
    let listen = listen(checker, raw);
    let path = path(checker, raw);
    let token = token(checker, raw);
    warn_if_open(checker, raw, listen, token.is_some());
    let allow_from = networks(checker, raw.allow_from.as_deref(), "server.allow_from");
    let trusted_proxies = networks(
        checker,
        raw.trusted_proxies.as_deref(),
        "server.trusted_proxies",
    );
    let tls = raw
        .tls
        .as_ref()
        .and_then(|tls| load_tls(checker, tls.get_ref(), base));

    let header_timeout = optional_duration(
        checker,
        &raw.header_timeout,
        "server.header_timeout",
        DEFAULT_HEADER_TIMEOUT,
    );
    let body_timeout = optional_duration(
        checker,
        &raw.body_timeout,
        "server.body_timeout",
        DEFAULT_BODY_TIMEOUT,
    );
    Some(ServerConfig {
        listen: listen?,
        path: path?,
        token,
        allow_from,
        trusted_proxies,
        max_body_bytes: bound(
            checker,
            &raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            "server.max_body_bytes",
        ),
        max_events: bound(
            checker,
            &raw.max_events,
            DEFAULT_MAX_EVENTS,
            "server.max_events",
        ),
        max_concurrent_requests: bound(
            checker,
            &raw.max_concurrent_requests,
            DEFAULT_MAX_CONCURRENT,
            "server.max_concurrent_requests",
        ),
        header_timeout,
        body_timeout,
        tls,
    })
}

/// A warning when the relay listens beyond this machine with no token: anyone who finds
/// the address can post.
fn warn_if_open(
    checker: &mut Checker<'_>,
    raw: &RawServer,
    listen: Option<SocketAddr>,
    has_token: bool,
) {
    let Some(addr) = listen else {
        return;
    };
    if has_token || addr.ip().is_loopback() {
        return;
    }
    let span = raw.listen.as_ref().map_or(0..0, Spanned::span);
    let message = "listening beyond this machine with no `server.token`: anyone who \
                   finds the address can post; set `token = \"${RELAY_TOKEN}\"`";
    checker.warn(span, "server.token", message.to_owned());
}

/// A request bound, or `default` when absent. Zero would refuse every request (413 or
/// 503): a mistake, not a setting.
fn bound(
    checker: &mut Checker<'_>,
    value: &Option<Spanned<u64>>,
    default: u64,
    key: &str,
) -> usize {
    match value {
        Some(v) if *v.get_ref() == 0 => {
            let message = "must be at least 1: 0 would refuse every request".to_owned();
            checker.problem(v.span(), key, message);
            default as usize
        }
        Some(v) => *v.get_ref() as usize,
        None => default as usize,
    }
}

/// `token`, or `token_file` (a systemd credential, say), not both.
fn token(checker: &mut Checker<'_>, raw: &RawServer) -> Option<Token> {
    let secret = match (&raw.token, &raw.token_file) {
        (Some(token), None) => {
            let secret = checker.expand(token, "server.token")?;
            if secret.trim().is_empty() {
                // An empty token would let `?token=` in: no secret at all.
                let message = "is empty: a token must not be".to_owned();
                checker.problem(token.span(), "server.token", message);
                return None;
            }
            Some(secret)
        }
        (None, Some(file)) => {
            let secret = read_secret_file(checker, file, "server.token_file")?;
            if secret.trim().is_empty() {
                let message = "the file is empty: a token must not be".to_owned();
                checker.problem(file.span(), "server.token_file", message);
                return None;
            }
            Some(secret)
        }
        (Some(token), Some(_)) => {
            let message = "set `token` or `token_file`, not both".to_owned();
            checker.problem(token.span(), "server.token", message);
            None
        }
        (None, None) => None,
    };
    secret.map(Token::new)
}

fn listen(checker: &mut Checker<'_>, raw: &RawServer) -> Option<SocketAddr> {
    let Some(value) = &raw.listen else {
        return Some(
            DEFAULT_LISTEN
                .parse()
                .expect("the default listen address parses"),
        );
    };
    match value.get_ref().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            let message = format!(
                "`{}` is not an address and port such as `127.0.0.1:8787`",
                value.get_ref()
            );
            checker.problem(value.span(), "server.listen", message);
            None
        }
    }
}

fn path(checker: &mut Checker<'_>, raw: &RawServer) -> Option<String> {
    let path = text_or(&raw.path, DEFAULT_PATH);
    if path.starts_with('/') {
        return Some(path.trim_end_matches('/').to_owned());
    }
    let span = raw.path.as_ref().map_or(0..0, Spanned::span);
    checker.problem(span, "server.path", format!("`{path}` must start with `/`"));
    None
}

fn optional_duration(
    checker: &mut Checker<'_>,
    value: &Option<Text>,
    key: &str,
    default: Duration,
) -> Duration {
    value
        .as_ref()
        .and_then(|v| duration(checker, v, key))
        .unwrap_or(default)
}

fn networks(checker: &mut Checker<'_>, list: Option<&[Text]>, key: &str) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for (index, value) in list.unwrap_or_default().iter().enumerate() {
        let text = value.get_ref().trim();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => nets.push(net),
            Err(_) => {
                let message = format!("`{text}` is not an address or network such as `10.0.0.0/8`");
                checker.problem(value.span(), format!("{key}[{index}]"), message);
            }
        }
    }
    nets
}

fn load_tls(
    checker: &mut Checker<'_>,
    raw: &RawTls,
    base: &Path,
) -> Option<Arc<rustls::ServerConfig>> {
    let cert_path = file_path(checker, &raw.cert_file, base, "server.tls.cert_file")?;
    let key_path = file_path(checker, &raw.key_file, base, "server.tls.key_file")?;
    let certs = read_certs(checker, raw, &cert_path)?;
    let key = read_key(checker, raw, &key_path)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let built = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key));
    match built {
        Ok(mut config) => {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(Arc::new(config))
        }
        Err(err) => {
            let message = format!("the certificate and key do not make a TLS setup: {err}");
            checker.problem(raw.key_file.span(), "server.tls.key_file", message);
            None
        }
    }
}

/// The certificate chain; an empty file is refused like an unreadable one.
fn read_certs(
    checker: &mut Checker<'_>,
    raw: &RawTls,
    path: &Path,
) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_file_iter(path).and_then(|iter| iter.collect());
    match certs {
        Ok(certs) if !certs.is_empty() => Some(certs),
        Ok(_) | Err(_) => {
            let message = format!("no PEM certificate could be read from `{}`", path.display());
            checker.problem(raw.cert_file.span(), "server.tls.cert_file", message);
            None
        }
    }
}

fn read_key(
    checker: &mut Checker<'_>,
    raw: &RawTls,
    path: &Path,
) -> Option<PrivateKeyDer<'static>> {
    let Ok(key) = PrivateKeyDer::from_pem_file(path) else {
        let message = format!("no PEM private key could be read from `{}`", path.display());
        checker.problem(raw.key_file.span(), "server.tls.key_file", message);
        return None;
    };
    Some(key)
}

fn file_path(checker: &mut Checker<'_>, value: &Text, base: &Path, key: &str) -> Option<PathBuf> {
    let text = checker.expand(value, key)?;
    Some(base.join(text))
}

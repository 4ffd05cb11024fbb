//! The OCI Distribution v1.1 HTTP API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures_util::StreamExt;
use podspace_api::auth::{Authenticator, Authorizer};
use podspace_api::store::{Store, StoreError};

use crate::meta::{ManifestRecord, ManifestRefs, RegistryStore};
use serde_json::{json, Value};

use crate::error::{Code, RegistryError, Result};
use crate::names::RepoName;
use crate::ranges;
use crate::storage::BlobStorage;
use crate::token::{Action, Caller, TokenService};
use crate::uploads::Uploads;
use podspace_oci::digest::Digest;
use podspace_oci::manifest::{self, Kind};

pub struct RegistryConfig {
    /// `host:port` that clients use to reach the registry (pull specs).
    pub public_host: String,
    pub max_manifest_bytes: usize,
    pub upload_ttl: Duration,
    pub upload_limits: crate::uploads::UploadLimits,
    /// The garbage collection's grace period (reads touch blobs within it).
    pub gc_grace: Duration,
}

#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    meta: RegistryStore,
    authn: Authenticator,
    authz: Authorizer,
    uploads: Uploads,
    tokens: Arc<TokenService>,
    config: RegistryConfig,
}

impl Registry {
    pub fn new(
        store: Store,
        meta: RegistryStore,
        authn: Authenticator,
        authz: Authorizer,
        storage: Arc<dyn BlobStorage>,
        tokens: Arc<TokenService>,
        config: RegistryConfig,
    ) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                uploads: Uploads::new(meta.clone(), storage, config.upload_limits),
                store,
                meta,
                authn,
                authz,
                tokens,
                config,
            }),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v2", any(handle))
            .route("/v2/", any(handle))
            .route("/v2/{*path}", any(handle))
            .layer(axum::middleware::map_response(api_version_header))
            .with_state(self.clone())
    }

    pub fn upload_ttl(&self) -> Duration {
        self.inner.config.upload_ttl
    }

    /// Aborts upload sessions idle for longer than the configured TTL.
    pub async fn expire_uploads(&self) -> Result<usize> {
        self.inner
            .uploads
            .expire(self.inner.config.upload_ttl.as_secs() as i64)
            .await
    }
}

async fn api_version_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

#[derive(Debug)]
pub enum Endpoint {
    Base,
    Catalog,
    Tags,
    Manifest(String),
    Blob(String),
    UploadStart,
    Upload(String),
    Referrers(String),
}

/// `/v2/<name>/<endpoint>` → the name and the endpoint (public for the fuzzer).
pub fn parse_path(path: &str) -> Option<(String, Endpoint)> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some((String::new(), Endpoint::Base));
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some((String::new(), Endpoint::Catalog));
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some((name.into(), Endpoint::Tags));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some((name.into(), Endpoint::UploadStart));
    }
    if let Some(i) = rest.rfind("/blobs/uploads/") {
        return Some((rest[..i].into(), Endpoint::Upload(rest[i + 15..].into())));
    }
    for (marker, make) in [
        ("/manifests/", Endpoint::Manifest as fn(String) -> Endpoint),
        ("/blobs/", Endpoint::Blob),
        ("/referrers/", Endpoint::Referrers),
    ] {
        if let Some(i) = rest.rfind(marker) {
            return Some((rest[..i].into(), make(rest[i + marker.len()..].to_string())));
        }
    }
    None
}

fn query(req: &Request) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn handle(State(reg): State<Registry>, req: Request) -> Response {
    match route(&reg, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

fn unsupported() -> RegistryError {
    RegistryError::new(Code::Unsupported, "the operation is unsupported")
}

async fn route(reg: &Registry, req: Request) -> Result<Response> {
    let r = &reg.inner;
    let caller = r.tokens.caller(&r.authn, req.headers()).await?;
    let (name, endpoint) = parse_path(req.uri().path())
        .ok_or_else(|| RegistryError::new(Code::NameInvalid, "invalid repository name"))?;
    let method = req.method().clone();
    match endpoint {
        Endpoint::Base => {
            if caller.is_none() {
                return Err(challenge(r, None, false));
            }
            return Ok((StatusCode::OK, axum::Json(json!({}))).into_response());
        }
        Endpoint::Catalog => {
            let caller =
                caller.ok_or_else(|| challenge(r, Some("registry:catalog:*".into()), false))?;
            if method != Method::GET {
                return Err(unsupported());
            }
            return catalog(reg, &caller, &query(&req)).await;
        }
        _ => {}
    }
    let repo = RepoName::parse(&name)?;
    let name = repo.full();
    let action = match (&method, &endpoint) {
        (
            &Method::GET | &Method::HEAD,
            Endpoint::Manifest(_) | Endpoint::Blob(_) | Endpoint::Tags | Endpoint::Referrers(_),
        ) => Action::Pull,
        (&Method::PUT, Endpoint::Manifest(_)) => Action::Push,
        (&Method::DELETE, Endpoint::Manifest(_) | Endpoint::Blob(_)) => Action::Delete,
        (&Method::POST, Endpoint::UploadStart) => Action::Push,
        (&Method::GET | &Method::PATCH | &Method::PUT | &Method::DELETE, Endpoint::Upload(_)) => {
            Action::Push
        }
        _ => return Err(unsupported()),
    };
    let scope = match action {
        Action::Pull => format!("repository:{name}:pull"),
        Action::Push => format!("repository:{name}:pull,push"),
        Action::Delete => format!("repository:{name}:delete"),
    };
    let Some(caller) = caller else {
        return Err(challenge(r, Some(scope), false));
    };
    // The same answer whether or not the repository exists.
    if !caller.may(&r.authz, &name, action).await? {
        return Err(match caller {
            Caller::Token { .. } => challenge(r, Some(scope), true),
            Caller::Principal(_) => {
                RegistryError::new(Code::Denied, "requested access to the resource is denied")
            }
        });
    }
    match endpoint {
        Endpoint::Blob(d) => blob(reg, &method, &name, &d, req.headers()).await,
        Endpoint::UploadStart => upload_start(reg, &caller, &repo, req).await,
        Endpoint::Upload(id) => upload(reg, &method, &name, &id, req).await,
        Endpoint::Manifest(reference) => manifest(reg, &method, &repo, &reference, req).await,
        Endpoint::Tags => tags(reg, &name, &query(&req)).await,
        Endpoint::Referrers(d) => referrers(reg, &name, &d, &query(&req)).await,
        Endpoint::Base | Endpoint::Catalog => Err(unsupported()),
    }
}

fn challenge(r: &Inner, scope: Option<String>, insufficient: bool) -> RegistryError {
    let mut e = RegistryError::new(Code::Unauthorized, "authentication required");
    e.challenge = Some(r.tokens.challenge(scope.as_deref(), insufficient));
    e
}

fn parse_digest(d: &str, code: Code) -> Result<Digest> {
    Digest::parse(d).map_err(|e| RegistryError::new(code, e.to_string()))
}

fn header_value(v: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(v.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn empty(status: StatusCode, headers: &[(&'static str, String)]) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    for (k, v) in headers {
        resp.headers_mut().insert(*k, header_value(v));
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

async fn blob(
    reg: &Registry,
    method: &Method,
    repo: &str,
    d: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let r = &reg.inner;
    let digest = parse_digest(d, Code::DigestInvalid)?;
    let unknown = || {
        RegistryError::new(
            Code::BlobUnknown,
            format!("blob {digest} is unknown to the repository"),
        )
    };
    if method == Method::DELETE {
        return if r.meta.unlink_blob(repo, &digest.to_string()).await? {
            Ok(empty(
                StatusCode::ACCEPTED,
                &[("Docker-Content-Digest", digest.to_string())],
            ))
        } else {
            Err(unknown())
        };
    }
    let (rec, touched) = r
        .meta
        .repo_blob_for_read(repo, &digest.to_string())
        .await?
        .ok_or_else(unknown)?;
    // A client that finds a blob may name it in a manifest next: a blob
    // not touched for half the collection's grace is touched now (so reads
    // stay reads nearly always), and a sweep then spares it.
    let touch_every = (r.config.gc_grace / 2).as_secs() as i64;
    if touched < crate::meta::now() - touch_every {
        r.meta.touch_blob(&rec.digest).await?;
    }
    let size = rec.size as u64;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => match ranges::blob_range(v, size) {
            Some(range) => Some(range),
            None => {
                let mut e = RegistryError::new(
                    Code::RangeInvalid,
                    format!("range {v:?} is not satisfiable for {size} bytes"),
                )
                .into_response();
                e.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(format!("bytes */{size}")),
                );
                return Ok(e);
            }
        },
        None => None,
    };
    let (status, len) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start),
        None => (StatusCode::OK, size),
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let stream = r
            .uploads
            .storage()
            .read(&rec.location, range.clone())
            .await?;
        Body::from_stream(stream)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, header_value(len.to_string()));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("Docker-Content-Digest", header_value(&rec.digest));
    h.insert(header::ETAG, header_value(format!("\"{}\"", rec.digest)));
    if let Some(r) = range {
        h.insert(
            header::CONTENT_RANGE,
            header_value(format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        );
    }
    Ok(resp)
}

fn upload_headers(repo: &str, id: &str, size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("Location", format!("/v2/{repo}/blobs/uploads/{id}")),
        ("Range", format!("0-{}", size.saturating_sub(1))),
        ("Docker-Upload-UUID", id.to_string()),
    ]
}

fn blob_created(repo: &str, digest: &str) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            ("Location", format!("/v2/{repo}/blobs/{digest}")),
            ("Docker-Content-Digest", digest.to_string()),
        ],
    )
}

async fn project_exists(r: &Inner, project: &str) -> Result<()> {
    let kind = &podspace_api::kinds::PROJECT;
    match r.store.get_raw(kind, "", project).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound { .. }) => Err(RegistryError::new(
            Code::NameUnknown,
            format!("project {project:?} does not exist"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Repositories a mount without `from` considers: enough to find one the
/// caller may read in practice, bounded so a popular blob costs little.
const AUTO_MOUNT_CANDIDATES: i64 = 32;

async fn upload_start(
    reg: &Registry,
    caller: &Caller,
    repo: &RepoName,
    req: Request,
) -> Result<Response> {
    let r = &reg.inner;
    let name = repo.full();
    project_exists(r, &repo.project).await?;
    let q = query(&req);
    if let Some(mount) = param(&q, "mount") {
        let digest = parse_digest(mount, Code::DigestInvalid)?.to_string();
        // With `from`, that repository; without, any repository holding the
        // blob (the spec's optional automatic mount), the first few only.
        let sources = match param(&q, "from") {
            Some(from) => RepoName::parse(from)
                .map(|f| vec![f.full()])
                .unwrap_or_default(),
            None => {
                r.meta
                    .repos_with_blob(&digest, AUTO_MOUNT_CANDIDATES)
                    .await?
            }
        };
        // Mount only from where the caller may read; otherwise fall back to
        // an ordinary upload, as the spec says.
        for from in sources {
            if caller.may(&r.authz, &from, Action::Pull).await?
                && r.meta.mount_blob(&name, &from, &digest).await?
            {
                return Ok(blob_created(&name, &digest));
            }
        }
    }
    let digest = param(&q, "digest")
        .map(|d| parse_digest(d, Code::DigestInvalid))
        .transpose()?;
    let mut session = r.uploads.start(&name, &caller.subject().name).await?;
    let id = session.id().to_string();
    if let Some(digest) = digest {
        let body = req.into_body().into_data_stream();
        if let Err(e) = r.uploads.append(&mut session, None, body).await {
            let _ = r.uploads.discard(session).await;
            return Err(e);
        }
        let blob = r.uploads.finish(session, &digest).await?;
        return Ok(blob_created(&name, &blob.digest));
    }
    r.uploads.save(session).await?;
    Ok(empty(StatusCode::ACCEPTED, &upload_headers(&name, &id, 0)))
}

/// `Content-Range: <start>-<end>` of a chunk; checked against Content-Length.
fn content_range(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.parse::<u64>().ok());
    let v = v.to_str().map_err(|_| {
        RegistryError::new(Code::RangeInvalid, "Content-Range must be <start>-<end>")
    })?;
    ranges::content_range(v, length)
        .map(Some)
        .map_err(|why| RegistryError::new(Code::RangeInvalid, why))
}

async fn upload(
    reg: &Registry,
    method: &Method,
    repo: &str,
    id: &str,
    req: Request,
) -> Result<Response> {
    let r = &reg.inner;
    match *method {
        Method::GET => {
            let size = r.uploads.size(repo, id).await?;
            Ok(empty(
                StatusCode::NO_CONTENT,
                &upload_headers(repo, id, size),
            ))
        }
        Method::DELETE => {
            r.uploads.cancel(repo, id).await?;
            Ok(empty(StatusCode::NO_CONTENT, &[]))
        }
        Method::PATCH => {
            let start = content_range(req.headers())?;
            let mut session = r.uploads.open(repo, id).await?;
            let appended = r
                .uploads
                .append(&mut session, start, req.into_body().into_data_stream())
                .await;
            // What arrived before a failure is kept: the client may resume
            // from the size a GET reports.
            let size = r.uploads.save(session).await?;
            appended?;
            Ok(empty(StatusCode::ACCEPTED, &upload_headers(repo, id, size)))
        }
        Method::PUT => {
            let q = query(&req);
            let d = param(&q, "digest")
                .ok_or_else(|| RegistryError::new(Code::DigestInvalid, "PUT needs ?digest="))?;
            let digest = parse_digest(d, Code::DigestInvalid)?;
            let start = content_range(req.headers())?;
            let mut session = r.uploads.open(repo, id).await?;
            if let Err(e) = r
                .uploads
                .append(&mut session, start, req.into_body().into_data_stream())
                .await
            {
                // The session stays as it was before this request.
                r.uploads.release(session).await;
                return Err(e);
            }
            let blob = r.uploads.finish(session, &digest).await?;
            Ok(blob_created(repo, &blob.digest))
        }
        _ => Err(unsupported()),
    }
}

async fn manifest(
    reg: &Registry,
    method: &Method,
    repo: &RepoName,
    reference: &str,
    req: Request,
) -> Result<Response> {
    let r = &reg.inner;
    let name = repo.full();
    let by_digest = reference.contains(':');
    if !by_digest && !podspace_api::validation::tag_name(reference) {
        return Err(RegistryError::new(
            if *method == Method::PUT {
                Code::ManifestInvalid
            } else {
                Code::ManifestUnknown
            },
            format!(
                "invalid tag {:?}",
                reference.chars().take(200).collect::<String>()
            ),
        ));
    }
    match *method {
        Method::GET | Method::HEAD => {
            let found = if by_digest {
                let d = parse_digest(reference, Code::DigestInvalid)?;
                r.meta.manifest(&name, &d.to_string()).await?
            } else {
                r.meta.tagged_manifest(&name, reference).await?
            };
            let m = found.ok_or_else(|| {
                RegistryError::new(
                    Code::ManifestUnknown,
                    format!("manifest {reference} is unknown to the repository"),
                )
            })?;
            if !accepts(req_headers(&req), &m.media_type) {
                return Err(RegistryError::new(
                    Code::ManifestUnknown,
                    format!(
                        "manifest {reference} is a {}, which the Accept header does not allow",
                        m.media_type
                    ),
                ));
            }
            let len = m.body.len();
            let body = if *method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(m.body)
            };
            let mut resp = Response::new(body);
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, header_value(&m.media_type));
            h.insert(header::CONTENT_LENGTH, header_value(len.to_string()));
            h.insert("Docker-Content-Digest", header_value(&m.digest));
            h.insert(header::ETAG, header_value(format!("\"{}\"", m.digest)));
            Ok(resp)
        }
        Method::PUT => put_manifest(reg, repo, reference, by_digest, req).await,
        Method::DELETE => {
            let deleted = if by_digest {
                let d = parse_digest(reference, Code::DigestInvalid)?;
                r.meta.delete_manifest(&name, &d.to_string()).await?
            } else {
                r.meta.delete_tag(&name, reference).await?
            };
            if !deleted {
                return Err(RegistryError::new(
                    Code::ManifestUnknown,
                    format!("manifest {reference} is unknown to the repository"),
                ));
            }
            Ok(empty(StatusCode::ACCEPTED, &[]))
        }
        _ => Err(unsupported()),
    }
}

async fn put_manifest(
    reg: &Registry,
    repo: &RepoName,
    reference: &str,
    by_digest: bool,
    req: Request,
) -> Result<Response> {
    let r = &reg.inner;
    let name = repo.full();
    project_exists(r, &repo.project).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = r.config.max_manifest_bytes;
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            RegistryError::new(
                Code::TooLarge,
                format!("the manifest is larger than {limit} bytes"),
            )
        })?;
    let m = manifest::parse(content_type.as_deref(), &body)?;
    let digest = if by_digest {
        let want = parse_digest(reference, Code::DigestInvalid)?;
        let got = Digest::of(want.algorithm, &body);
        if got != want {
            return Err(RegistryError::new(
                Code::DigestInvalid,
                format!("the manifest has digest {got}, not {want}"),
            ));
        }
        want
    } else {
        Digest::sha256_of(&body)
    };
    for b in m.required_blobs() {
        if r.meta
            .repo_blob(&name, &b.digest.to_string())
            .await?
            .is_none()
        {
            return Err(RegistryError::new(
                Code::ManifestBlobUnknown,
                format!("blob {} is not in {name}", b.digest),
            ));
        }
    }
    let record = ManifestRecord {
        repo: name.clone(),
        digest: digest.to_string(),
        media_type: m.media_type.clone(),
        body: body.to_vec(),
        subject: m.subject.as_ref().map(|s| s.digest.to_string()),
        artifact_type: m.artifact_type.clone(),
    };
    // Child manifests, and that every blob is still live, are checked in
    // the write's transaction (a collection may be sweeping them).
    let refs = ManifestRefs::of(&m);
    let stored = if by_digest {
        r.meta.put_manifest(&record, &refs, None).await
    } else {
        // The manifest, the registry tag, the Image and the stream's tag in
        // one transaction: a crash never leaves a tag the stream missed.
        record_image(reg, repo, reference, &m, &record, &refs).await
    };
    match stored {
        Ok(()) => {}
        Err(StoreError::Rejected(why)) if why.reason == podspace_api::Reason::NotFound => {
            return Err(RegistryError::new(Code::ManifestBlobUnknown, why.message))
        }
        Err(e) => return Err(e.into()),
    }
    let mut headers = vec![
        ("Location", format!("/v2/{name}/manifests/{digest}")),
        ("Docker-Content-Digest", digest.to_string()),
    ];
    if let Some(s) = &m.subject {
        headers.push(("OCI-Subject", s.digest.to_string()));
    }
    Ok(empty(StatusCode::CREATED, &headers))
}

/// The manifest under its tag with the ImageStreamMapping step (the Image
/// object and the stream's tag), all at once.
async fn record_image(
    reg: &Registry,
    repo: &RepoName,
    tag: &str,
    m: &manifest::Manifest,
    record: &ManifestRecord,
    refs: &ManifestRefs,
) -> std::result::Result<(), StoreError> {
    let r = &reg.inner;
    let repository = format!("{}/{}", r.config.public_host, repo.full());
    let reference = format!("{repository}@{}", record.digest);
    let mut image = podspace_api::Object::new("Image", "", &record.digest);
    let mut size = record.body.len() as i64;
    if let Kind::Image { config, layers } = &m.kind {
        size += config.size + layers.iter().map(|l| l.size).sum::<i64>();
        let config_json = read_small_blob(reg, &repo.full(), &config.digest.to_string())
            .await
            .unwrap_or(Value::Null);
        image.body.insert(
            "dockerImageMetadata".into(),
            manifest::image_metadata(&record.digest, &config_json, size),
        );
        image.body.insert(
            "dockerImageLayers".into(),
            Value::Array(
                layers
                    .iter()
                    .map(|l| json!({"name": l.digest.to_string(), "size": l.size, "mediaType": l.media_type}))
                    .collect(),
            ),
        );
        image.body.insert(
            "dockerImageConfig".into(),
            Value::String(config_json.to_string()),
        );
    }
    image.body.insert(
        "dockerImageReference".into(),
        Value::String(reference.clone()),
    );
    image.body.insert(
        "dockerImageManifestMediaType".into(),
        Value::String(record.media_type.clone()),
    );
    image.body.insert(
        "dockerImageMetadataVersion".into(),
        Value::String("1.0".into()),
    );
    let digest = image.metadata.name.clone();
    let event = podspace_api::imagestreams::push_event(tag, &digest, &reference, &repository);
    r.meta
        .put_tagged_manifest(record, refs, tag, image, &repo.project, &repo.stream, event)
        .await
}

/// An image config is small; larger "configs" are not parsed.
async fn read_small_blob(reg: &Registry, repo: &str, digest: &str) -> Option<Value> {
    let r = &reg.inner;
    let rec = r.meta.repo_blob(repo, digest).await.ok()??;
    if rec.size > 4 << 20 {
        return None;
    }
    let mut stream = r.uploads.storage().read(&rec.location, None).await.ok()?;
    let mut buf = Vec::with_capacity(rec.size as usize);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.ok()?);
    }
    serde_json::from_slice(&buf).ok()
}

fn req_headers(req: &Request) -> &HeaderMap {
    req.headers()
}

/// Content negotiation: without an Accept header anything goes; with one,
/// the manifest's type (or a wildcard) must be listed.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mime = item.split(';').next().unwrap_or(item).trim();
            if mime.is_empty() {
                continue;
            }
            any = true;
            if mime == media_type || mime == "*/*" || mime == "application/*" {
                return true;
            }
        }
    }
    !any
}

fn page_size(q: &[(String, String)]) -> Result<i64> {
    match param(q, "n") {
        // No `n`: everything, as distribution answers.
        None => Ok(100_000),
        Some(n) => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(100_000))
            .ok_or_else(|| {
                RegistryError::new(Code::PaginationInvalid, "n must be a non-negative integer")
            }),
    }
}

fn link(path: &str, n: i64, last: &str) -> String {
    format!("<{path}?n={n}&last={last}>; rel=\"next\"")
}

async fn tags(reg: &Registry, repo: &str, q: &[(String, String)]) -> Result<Response> {
    let r = &reg.inner;
    let n = page_size(q)?;
    let last = param(q, "last").unwrap_or_default();
    let tags = if n == 0 {
        vec![]
    } else {
        r.meta.tags(repo, last, n).await?
    };
    if tags.is_empty() && last.is_empty() && !r.meta.has_repository(repo).await? {
        return Err(RegistryError::new(
            Code::NameUnknown,
            format!("repository {repo} is not known to the registry"),
        ));
    }
    let mut resp = axum::Json(json!({"name": repo, "tags": tags})).into_response();
    if n > 0 && tags.len() as i64 == n {
        if let Some(lt) = tags.last() {
            resp.headers_mut().insert(
                header::LINK,
                header_value(link(&format!("/v2/{repo}/tags/list"), n, lt)),
            );
        }
    }
    Ok(resp)
}

async fn catalog(reg: &Registry, caller: &Caller, q: &[(String, String)]) -> Result<Response> {
    let r = &reg.inner;
    if !caller.may_list_catalog() {
        return Err(challenge(r, Some("registry:catalog:*".into()), true));
    }
    let n = page_size(q)?;
    let mut last = param(q, "last").unwrap_or_default().to_string();
    let subject = caller.subject();
    let mut visible = Vec::new();
    // Filtered to what the caller may pull, page by page.
    while (visible.len() as i64) < n {
        let batch = r.meta.repositories(&last, 500).await?;
        if batch.is_empty() {
            break;
        }
        for repo in &batch {
            if (visible.len() as i64) < n
                && crate::token::allowed(&r.authz, &subject, repo, Action::Pull).await?
            {
                visible.push(repo.clone());
            }
        }
        last = batch.last().cloned().unwrap_or_default();
    }
    let mut resp = axum::Json(json!({"repositories": visible})).into_response();
    if n > 0 && visible.len() as i64 == n {
        if let Some(lr) = visible.last() {
            resp.headers_mut()
                .insert(header::LINK, header_value(link("/v2/_catalog", n, lr)));
        }
    }
    Ok(resp)
}

async fn referrers(
    reg: &Registry,
    repo: &str,
    d: &str,
    q: &[(String, String)],
) -> Result<Response> {
    let r = &reg.inner;
    let digest = parse_digest(d, Code::DigestInvalid)?;
    let filter = param(q, "artifactType");
    let mut manifests = Vec::new();
    for m in r.meta.referrers(repo, &digest.to_string()).await? {
        if filter.is_some_and(|f| m.artifact_type.as_deref() != Some(f)) {
            continue;
        }
        let annotations = serde_json::from_slice::<Value>(&m.body)
            .ok()
            .and_then(|v| v.get("annotations").cloned())
            .unwrap_or(Value::Null);
        let mut desc = json!({"mediaType": m.media_type, "digest": m.digest, "size": m.body.len()});
        if let Some(t) = &m.artifact_type {
            desc["artifactType"] = json!(t);
        }
        if !annotations.is_null() {
            desc["annotations"] = annotations;
        }
        manifests.push(desc);
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests});
    let mut resp = Response::new(Body::from(
        serde_json::to_vec(&index).map_err(RegistryError::internal)?,
    ));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(manifest::OCI_INDEX),
    );
    if filter.is_some() {
        resp.headers_mut().insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = |s: &str| format!("{:?}", parse_path(s));
        assert!(p("/v2/").contains("Base"));
        assert!(p("/v2/_catalog").contains("Catalog"));
        assert!(p("/v2/a/b/tags/list").contains("\"a/b\", Tags"));
        assert!(p("/v2/a/b/manifests/latest").contains("\"a/b\", Manifest(\"latest\")"));
        assert!(p("/v2/a/blobs/blobs/sha256:x").contains("\"a/blobs\", Blob(\"sha256:x\")"));
        assert!(p("/v2/a/b/blobs/uploads/").contains("UploadStart"));
        assert!(p("/v2/a/b/blobs/uploads/123").contains("Upload(\"123\")"));
        assert!(p("/v2/a/b/referrers/sha256:x").contains("Referrers"));
    }
}

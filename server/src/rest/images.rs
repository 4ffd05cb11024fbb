//! The image views: ImageStreamTag (`is:tag`), ImageStreamImage
//! (`is@id`) and ImageStreamMapping (what a push records). They read and
//! write ImageStream objects; none is stored itself.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use podspace_api::auth::{Principal, Verb};
use podspace_api::imagestreams::{self as is, split_isimage, split_istag};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{StoreError, UpdateScope};
use podspace_api::{Object, Reason, Status};
use serde_json::{json, Value};

use super::{authorize, render, Target};
use crate::app::AppState;
use crate::http::{json_response, read_request_object, ApiError, ApiResult};

fn not_found(target: &Target, name: &str) -> ApiError {
    ApiError(Status::new(
        Reason::NotFound,
        format!("{} {name:?} not found", target.kind.qualified_plural()),
    ))
}

fn ok_json(code: StatusCode, value: &Value) -> Response {
    json_response(code, serde_json::to_vec(value).unwrap_or_default())
}

pub async fn handle(
    state: &AppState,
    p: &Principal,
    target: Target,
    req: Request,
) -> ApiResult<Response> {
    let method = req.method().clone();
    let name = target.name.clone();
    let (verb, kind) = (
        match (&method, name.is_some()) {
            (&Method::GET, true) => Verb::Get,
            (&Method::GET, false) => Verb::List,
            (&Method::POST, false) => Verb::Create,
            (&Method::PUT, true) => Verb::Update,
            (&Method::DELETE, true) => Verb::Delete,
            _ => {
                return Err(ApiError(Status::new(
                    Reason::MethodNotAllowed,
                    format!(
                    "the server does not allow this method on the requested resource ({method})"
                ),
                )))
            }
        },
        target.kind.kind,
    );
    if target.ns.is_none() || target.sub.is_some() {
        return Err(ApiError(Status::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )));
    }
    let allowed = match kind {
        "ImageStreamTag" => true,
        "ImageStreamImage" => matches!(verb, Verb::Get),
        "ImageStreamMapping" | "ImageStreamImport" => matches!(verb, Verb::Create),
        _ => false,
    };
    if !allowed {
        return Err(ApiError(Status::new(
            Reason::MethodNotAllowed,
            format!(
                "{} does not support {}",
                target.kind.qualified_plural(),
                verb.as_str()
            ),
        )));
    }
    authorize(state, p, verb, &target).await?;
    match (kind, verb) {
        ("ImageStreamTag", Verb::Get) => get_istag(state, &target).await,
        ("ImageStreamTag", Verb::List) => list_istags(state, &target).await,
        ("ImageStreamTag", Verb::Create | Verb::Update) => {
            put_istag(state, p, &target, verb == Verb::Create, req).await
        }
        ("ImageStreamTag", Verb::Delete) => delete_istag(state, &target).await,
        ("ImageStreamImage", _) => get_isimage(state, &target).await,
        ("ImageStreamImport", _) => import(state, &target, req).await,
        _ => mapping(state, &target, req).await,
    }
}

/// The Image record of an event, or one made from the event itself.
async fn image_of(state: &AppState, event: &Value) -> ApiResult<Value> {
    let digest = event
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match state
        .store
        .get(&podspace_api::kinds::IMAGE, "", digest)
        .await
    {
        Ok(img) => Ok(img.to_value()),
        Err(StoreError::NotFound { .. }) => Ok(json!({
            "metadata": {"name": digest},
            "dockerImageReference": event.get("dockerImageReference"),
        })),
        Err(e) => Err(e.into()),
    }
}

async fn istag_view(
    state: &AppState,
    target: &Target,
    stream: &Object,
    tag: &str,
) -> ApiResult<Option<Value>> {
    let Some(event) = is::current_event(stream, tag).filter(|e| {
        e.get("image")
            .and_then(Value::as_str)
            .is_some_and(|i| !i.is_empty())
    }) else {
        return Ok(None);
    };
    let mut image = image_of(state, event).await?;
    image["dockerImageReference"] = json!(is::resolved_reference(stream, tag, event));
    let view = json!({
        "kind": "ImageStreamTag",
        "apiVersion": target.api_version(),
        "metadata": {
            "name": format!("{}:{tag}", stream.metadata.name),
            "namespace": stream.metadata.namespace,
            "creationTimestamp": event.get("created"),
            "resourceVersion": stream.metadata.resource_version,
            "uid": stream.metadata.uid,
        },
        "tag": is::spec_tag(stream, tag),
        "generation": event.get("generation"),
        "lookupPolicy": stream.body.get("spec").and_then(|s| s.get("lookupPolicy")).cloned().unwrap_or(json!({"local": false})),
        "image": image,
    });
    Ok(Some(view))
}

fn parse_istag<'a>(target: &Target, name: &'a str) -> ApiResult<(&'a str, &'a str)> {
    split_istag(name).ok_or_else(|| {
        ApiError(Status::bad_request(format!(
            "{} {name:?} is invalid: names are <image stream>:<tag>",
            target.kind.qualified_plural()
        )))
    })
}

async fn stream(state: &AppState, ns: &str, name: &str) -> ApiResult<Option<Object>> {
    match state
        .store
        .get(&podspace_api::kinds::IMAGE_STREAM, ns, name)
        .await
    {
        Ok(s) => Ok(Some(s)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn get_istag(state: &AppState, target: &Target) -> ApiResult<Response> {
    let name = target.name.as_deref().unwrap_or_default();
    let (is_name, tag) = parse_istag(target, name)?;
    let s = stream(state, target.ns_or_empty(), is_name)
        .await?
        .ok_or_else(|| not_found(target, name))?;
    let view = istag_view(state, target, &s, tag)
        .await?
        .ok_or_else(|| not_found(target, name))?;
    Ok(ok_json(StatusCode::OK, &view))
}

async fn list_istags(state: &AppState, target: &Target) -> ApiResult<Response> {
    let (streams, rv) = state
        .store
        .list(
            &podspace_api::kinds::IMAGE_STREAM,
            target.ns_or_empty(),
            &LabelSelector::everything(),
        )
        .await?;
    let mut items = Vec::new();
    for s in &streams {
        let tags: Vec<String> = s
            .body
            .get("status")
            .and_then(|st| st.get("tags"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("tag").and_then(Value::as_str).map(str::to_string))
            .collect();
        for tag in tags {
            if let Some(v) = istag_view(state, target, s, &tag).await? {
                items.push(v);
            }
        }
    }
    Ok(ok_json(
        StatusCode::OK,
        &json!({"kind": "ImageStreamTagList", "apiVersion": target.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}

/// The event a new spec tag starts with: a copy of the image it names, now.
async fn first_event(
    state: &AppState,
    p: &Principal,
    target: &Target,
    is_name: &str,
    spec: &Value,
) -> ApiResult<Option<Value>> {
    let from = spec.get("from").cloned().unwrap_or(Value::Null);
    let from_kind = from.get("kind").and_then(Value::as_str).unwrap_or_default();
    let from_name = from.get("name").and_then(Value::as_str).unwrap_or_default();
    let ns = from
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(target.ns_or_empty());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if spec.get("reference").and_then(Value::as_bool) == Some(true) {
        return Ok(Some(
            json!({"created": now, "dockerImageReference": from_name, "image": "", "generation": 0}),
        ));
    }
    let (source_is, source) = match from_kind {
        "ImageStreamImage" => {
            let (s, id) = split_isimage(from_name).ok_or_else(|| {
                ApiError(Status::new(
                    Reason::Invalid,
                    format!("tag.from.name: {from_name:?} is not <image stream>@<id>"),
                ))
            })?;
            (s.to_string(), Err(id.to_string()))
        }
        "ImageStreamTag" => {
            let (s, t) = match split_istag(from_name) {
                Some((s, t)) => (s, t),
                None => (is_name, from_name),
            };
            // Tracking a tag of the same stream happens when it moves; the
            // tag starts from where its source stands.
            (s.to_string(), Ok(t.to_string()))
        }
        _ => return Ok(None),
    };
    if ns != target.ns_or_empty()
        && !state
            .authz
            .allowed(p, Verb::Get, "imagestreams/layers", Some(ns))
            .await?
    {
        return Err(ApiError(Status::new(
            Reason::Forbidden,
            format!(
                "tag.from: User {:?} cannot read images in project {ns:?}",
                p.name
            ),
        )));
    }
    let Some(src) = stream(state, ns, &source_is).await? else {
        return Err(ApiError(Status::new(
            Reason::NotFound,
            format!("imagestreams.image.openshift.io {source_is:?} not found"),
        )));
    };
    let event = match source {
        Ok(tag) => is::current_event(&src, &tag).cloned().ok_or_else(|| {
            ApiError(Status::new(Reason::Invalid, format!("\"{source_is}:{tag}\" is not currently pointing to an image, cannot use it as the source of a tag")))
        })?,
        Err(id) => is::find_image(&src, &id)
            .map_err(|e| ApiError(Status::new(Reason::Invalid, e)))?
            .ok_or_else(|| ApiError(Status::new(Reason::NotFound, format!("imagestreamimages.image.openshift.io \"{source_is}@{id}\" not found"))))?,
    };
    Ok(Some(json!({
        "created": now,
        "dockerImageReference": event.get("dockerImageReference"),
        "image": event.get("image"),
    })))
}

async fn put_istag(
    state: &AppState,
    p: &Principal,
    target: &Target,
    create: bool,
    req: Request,
) -> ApiResult<Response> {
    let body = read_request_object(req, state.config.max_body).await?;
    let name = match (
        &target.name,
        body.pointer("/metadata/name").and_then(Value::as_str),
    ) {
        (Some(n), Some(b)) if n != b => {
            return Err(ApiError(Status::bad_request(format!(
                "the name of the object ({b}) does not match the name on the URL ({n})"
            ))))
        }
        (Some(n), _) => n.clone(),
        (None, Some(b)) => b.to_string(),
        (None, None) => {
            return Err(ApiError(Status::new(
                Reason::Invalid,
                "metadata.name: Required value: <image stream>:<tag>",
            )))
        }
    };
    let (is_name, tag) = parse_istag(target, &name)?;
    let mut spec = body
        .get("tag")
        .cloned()
        .filter(|t| !t.is_null())
        .ok_or_else(|| {
            ApiError(Status::new(
                Reason::Invalid,
                "tag: Required value: the spec tag to set",
            ))
        })?;
    if let Some(from) = spec.get("from") {
        let k = from.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !["DockerImage", "ImageStreamTag", "ImageStreamImage"].contains(&k) {
            return Err(ApiError(Status::new(
                Reason::Invalid,
                format!("tag.from.kind: Unsupported value: {k:?}"),
            )));
        }
        if k != "DockerImage"
            && spec
                .pointer("/importPolicy/scheduled")
                .and_then(Value::as_bool)
                == Some(true)
        {
            return Err(ApiError(Status::new(Reason::Invalid, "tag.importPolicy.scheduled: only container images (DockerImage) can be imported on a schedule")));
        }
    }
    let alias_in_stream = spec.pointer("/from/kind").and_then(Value::as_str)
        == Some("ImageStreamTag")
        && split_istag(
            spec.pointer("/from/name")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
        .is_none_or(|(s, _)| s == is_name)
        && spec
            .pointer("/from/namespace")
            .and_then(Value::as_str)
            .is_none_or(|n| n.is_empty() || n == target.ns_or_empty());
    if alias_in_stream {
        // A tracking tag names its source the short way.
        let short = spec
            .pointer("/from/name")
            .and_then(Value::as_str)
            .map(|n| n.rsplit(':').next().unwrap_or(n).to_string())
            .unwrap_or_default();
        if short == tag {
            return Err(ApiError(Status::new(
                Reason::Invalid,
                "tag.from: a tag cannot track itself",
            )));
        }
        spec["from"]["name"] = json!(short);
    }
    let event = first_event(state, p, target, is_name, &spec).await?;
    let kind_is = &podspace_api::kinds::IMAGE_STREAM;
    let ns = target.ns_or_empty().to_string();
    let apply = |s: &mut Object| -> Result<(), Status> {
        if create && is::spec_tag(s, tag).is_some() {
            return Err(Status::new(
                Reason::AlreadyExists,
                format!("imagestreamtags.image.openshift.io \"{is_name}:{tag}\" already exists"),
            ));
        }
        is::set_spec_tag(s, tag, spec.clone());
        if let Some(mut e) = event.clone() {
            e["generation"] = json!(s.metadata.generation + 1);
            is::add_event(s, tag, e);
        }
        Ok(())
    };
    let updated = match state
        .store
        .mutate(kind_is, &ns, is_name, None, UpdateScope::All, apply)
        .await
    {
        Err(StoreError::NotFound { .. }) => {
            let mut fresh = Object::new("ImageStream", &ns, is_name).with("spec", json!({}));
            fresh.metadata.generation = 0;
            apply(&mut fresh).map_err(ApiError)?;
            state.store.create(kind_is, fresh).await?
        }
        other => other?,
    };
    let view = istag_view(state, target, &updated, tag).await?.unwrap_or_else(|| {
        json!({"kind": "ImageStreamTag", "apiVersion": target.api_version(), "metadata": {"name": name, "namespace": ns}, "tag": is::spec_tag(&updated, tag)})
    });
    Ok(ok_json(
        if create {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &view,
    ))
}

async fn delete_istag(state: &AppState, target: &Target) -> ApiResult<Response> {
    let name = target.name.as_deref().unwrap_or_default();
    let (is_name, tag) = parse_istag(target, name)?;
    let result = state
        .store
        .mutate(
            &podspace_api::kinds::IMAGE_STREAM,
            target.ns_or_empty(),
            is_name,
            None,
            UpdateScope::All,
            |s| {
                if is::remove_tag(s, tag) {
                    Ok(())
                } else {
                    Err(Status::new(
                        Reason::NotFound,
                        format!("imagestreamtags.image.openshift.io {name:?} not found"),
                    ))
                }
            },
        )
        .await;
    match result {
        Ok(_) => Ok(ok_json(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "group": "image.openshift.io", "kind": "imagestreamtags"}}),
        )),
        Err(StoreError::NotFound { .. }) => Err(not_found(target, name)),
        Err(e) => Err(e.into()),
    }
}

async fn get_isimage(state: &AppState, target: &Target) -> ApiResult<Response> {
    let name = target.name.as_deref().unwrap_or_default();
    let (is_name, id) = split_isimage(name).ok_or_else(|| ApiError(Status::bad_request(format!("imagestreamimages.image.openshift.io {name:?} is invalid: names are <image stream>@<id>"))))?;
    let s = stream(state, target.ns_or_empty(), is_name)
        .await?
        .ok_or_else(|| not_found(target, name))?;
    let event = is::find_image(&s, id)
        .map_err(|e| ApiError(Status::new(Reason::Conflict, e)))?
        .ok_or_else(|| not_found(target, name))?;
    let image = image_of(state, &event).await?;
    let digest = event
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let view = json!({
        "kind": "ImageStreamImage",
        "apiVersion": target.api_version(),
        "metadata": {"name": format!("{is_name}@{digest}"), "namespace": s.metadata.namespace, "creationTimestamp": event.get("created"), "uid": s.metadata.uid},
        "image": image,
    });
    Ok(ok_json(StatusCode::OK, &render(target, view)))
}

/// `POST imagestreammappings`: what a push to another registry (or a build)
/// records: the Image, and an event on the stream's tag.
async fn mapping(state: &AppState, target: &Target, req: Request) -> ApiResult<Response> {
    let body = read_request_object(req, state.config.max_body).await?;
    let is_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let tag = body
        .get("tag")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or("latest")
        .to_string();
    if !podspace_api::validation::tag_name(&tag) {
        return Err(ApiError(Status::new(
            Reason::Invalid,
            format!("tag: Invalid value: {tag:?}"),
        )));
    }
    let mut image: Object =
        serde_json::from_value(body.get("image").cloned().unwrap_or(Value::Null))
            .map_err(|e| ApiError(Status::new(Reason::Invalid, format!("image: {e}"))))?;
    podspace_api::validation::validate(&podspace_api::kinds::IMAGE, &image).map_err(ApiError)?;
    let reference = image
        .body
        .get("dockerImageReference")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if reference.is_empty() {
        return Err(ApiError(Status::new(
            Reason::Invalid,
            "image.dockerImageReference: Required value",
        )));
    }
    let ns = target.ns_or_empty().to_string();
    let existing = stream(state, &ns, &is_name).await?.ok_or_else(|| {
        ApiError(Status::new(
            Reason::NotFound,
            format!("imagestreams.image.openshift.io {is_name:?} not found"),
        ))
    })?;
    let digest = image.metadata.name.clone();
    image.metadata.namespace.clear();
    match state.store.create(&podspace_api::kinds::IMAGE, image).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let repository = existing
        .body
        .get("status")
        .and_then(|s| s.get("dockerImageRepository"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    state
        .store
        .mutate(
            &podspace_api::kinds::IMAGE_STREAM,
            &ns,
            &is_name,
            None,
            UpdateScope::Status,
            |s| {
                let repo = if repository.is_empty() {
                    reference
                        .rsplit_once('@')
                        .map(|(r, _)| r.to_string())
                        .unwrap_or_default()
                } else {
                    repository.clone()
                };
                is::add_tag_event(s, &tag, &digest, &reference, &repo);
                Ok(())
            },
        )
        .await?;
    Ok(ok_json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// How many tags a repository import takes; the rest are listed as
/// `additionalTags` (OpenShift's bulk cap).
const REPOSITORY_CAP: usize = 50;

/// `POST imagestreamimports`: imports the listed external images now and,
/// unless `spec.import` is false (a dry run), tags them into the stream,
/// creating it if needed. Each image answers with its own status.
async fn import(state: &AppState, target: &Target, req: Request) -> ApiResult<Response> {
    let mut body = read_request_object(req, state.config.max_body).await?;
    let is_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    podspace_api::validation::dns1123_subdomain(&is_name).map_err(|e| {
        ApiError(Status::new(
            Reason::Invalid,
            format!("metadata.name: Invalid value: {is_name:?}: {e}"),
        ))
    })?;
    let do_import = body
        .pointer("/spec/import")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut wanted = body
        .pointer("/spec/images")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let client = podspace_imagestreams::remote::Client::new();
    // A whole repository: its tags (at most REPOSITORY_CAP of them) become images.
    let mut repository_status = None;
    if let Some(repo) = body
        .pointer("/spec/repository")
        .filter(|r| !r.is_null())
        .cloned()
    {
        let from = repo
            .pointer("/from/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let insecure = repo
            .pointer("/importPolicy/insecure")
            .and_then(Value::as_bool)
            == Some(true);
        let remote = podspace_imagestreams::remote::RemoteRef::parse(from).map_err(|e| {
            ApiError(Status::new(
                Reason::Invalid,
                format!("spec.repository.from: {e}"),
            ))
        })?;
        let creds = podspace_imagestreams::controller::pull_secret(
            &state.store,
            target.ns_or_empty(),
            &remote.registry,
        )
        .await?;
        let names = client
            .tags(&remote, insecure, creds.as_ref())
            .await
            .map_err(|e| {
                ApiError(Status::new(
                    Reason::Invalid,
                    format!("spec.repository.from: {e}"),
                ))
            })?;
        let (now, later) = names.split_at(names.len().min(REPOSITORY_CAP));
        for t in now {
            let mut image = json!({"from": {"kind": "DockerImage", "name": format!("{}/{}:{t}", remote.registry, remote.repository)}, "to": {"name": t}});
            for k in ["importPolicy", "referencePolicy"] {
                if let Some(v) = repo.get(k).filter(|v| !v.is_null()) {
                    image[k] = v.clone();
                }
            }
            wanted.push(image);
        }
        repository_status =
            Some(json!({"status": {"status": "Success", "code": 200}, "additionalTags": later}));
    }
    if wanted.is_empty() {
        return Err(ApiError(Status::new(
            Reason::Invalid,
            "spec.images: Required value: at least one image (or a repository) to import",
        )));
    }

    let mut results = Vec::new();
    let mut tags = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let from = w
            .pointer("/from/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let tag = w
            .pointer("/to/name")
            .and_then(Value::as_str)
            .unwrap_or("latest")
            .to_string();
        if w.pointer("/from/kind").and_then(Value::as_str) != Some("DockerImage")
            || !podspace_api::validation::tag_name(&tag)
        {
            return Err(ApiError(Status::new(
                Reason::Invalid,
                format!("spec.images[{i}]: from must be a DockerImage and to.name a tag"),
            )));
        }
        let insecure = w.pointer("/importPolicy/insecure").and_then(Value::as_bool) == Some(true);
        let outcome = match podspace_imagestreams::remote::RemoteRef::parse(from) {
            Err(e) => Err(e.to_string()),
            Ok(r) => {
                let creds = podspace_imagestreams::controller::pull_secret(
                    &state.store,
                    target.ns_or_empty(),
                    &r.registry,
                )
                .await?;
                client
                    .import(&r, insecure, creds.as_ref())
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        match outcome {
            Ok(imported) => {
                let image = podspace_imagestreams::controller::image_object(&imported);
                results.push(json!({"tag": tag, "status": {"status": "Success", "code": 200}, "image": image.to_value()}));
                tags.push((
                    tag,
                    w.clone(),
                    Some((image, imported.reference.clone(), imported.digest.clone())),
                ));
            }
            Err(message) => {
                results.push(json!({"tag": tag, "status": {"status": "Failure", "reason": "InternalError", "message": message, "code": 500}}));
                tags.push((tag, w.clone(), None));
            }
        }
    }
    if do_import {
        for (_, _, found) in &tags {
            if let Some((image, _, _)) = found {
                match state
                    .store
                    .create(&podspace_api::kinds::IMAGE, image.clone())
                    .await
                {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let ns = target.ns_or_empty().to_string();
        let is_kind = &podspace_api::kinds::IMAGE_STREAM;
        let repository = format!("{}/{ns}/{is_name}", state.registry_host);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let apply = |s: &mut Object| -> Result<(), Status> {
            for (tag, w, found) in &tags {
                let mut spec = json!({"from": w["from"].clone()});
                for k in ["importPolicy", "referencePolicy"] {
                    if let Some(v) = w.get(k).filter(|v| !v.is_null()) {
                        spec[k] = v.clone();
                    }
                }
                is::set_spec_tag(s, tag, spec);
                if let Some((_, reference, digest)) = found {
                    let generation = s.metadata.generation + 1;
                    is::add_event(
                        s,
                        tag,
                        json!({"created": now, "dockerImageReference": reference, "image": digest, "generation": generation}),
                    );
                }
            }
            let status = s.body.entry("status").or_insert_with(|| json!({}));
            status["dockerImageRepository"] = json!(repository);
            Ok(())
        };
        let stream = match state
            .store
            .mutate(is_kind, &ns, &is_name, None, UpdateScope::All, apply)
            .await
        {
            Err(StoreError::NotFound { .. }) => {
                let mut fresh = Object::new("ImageStream", &ns, &is_name).with("spec", json!({}));
                fresh.metadata.generation = 0;
                apply(&mut fresh).map_err(ApiError)?;
                state.store.create(is_kind, fresh).await?
            }
            other => other?,
        };
        body["status"] = json!({"images": results, "import": stream.to_value()});
    } else {
        body["status"] = json!({"images": results});
    }
    if let Some(r) = repository_status {
        body["status"]["repository"] = r;
    }
    body["kind"] = json!("ImageStreamImport");
    body["apiVersion"] = json!(target.api_version());
    Ok(ok_json(StatusCode::CREATED, &body))
}

//! The image views: ImageStreamTag (`is:tag`), ImageStreamImage
//! (`is@id`) and ImageStreamMapping (what a push records). They read and
//! write ImageStream objects; none is stored itself.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use podspace_api::auth::{Principal, Verb};
use podspace_api::imagestreams::{self as is, split_isimage, split_istag};
use podspace_api::model::imageviews::{
    ImageImportSpec, ImageStreamImage, ImageStreamImport, ImageStreamMapping, ImageStreamTag,
    LocalName,
};
use podspace_api::model::{Image, ImageStream, ObjectReference, Resource, TagEvent, TagReference};
use podspace_api::selector::LabelSelector;
use podspace_api::store::{StoreError, UpdateScope};
use podspace_api::{Reason, Status};
use serde_json::json;

use super::{authorize, render, Target};
use crate::app::AppState;
use crate::http::{json_response, read_request_object, ApiError, ApiResult};

fn not_found(target: &Target, name: &str) -> ApiError {
    ApiError(Status::new(
        Reason::NotFound,
        format!("{} {name:?} not found", target.kind.qualified_plural()),
    ))
}

fn ok_json<T: serde::Serialize>(code: StatusCode, value: &T) -> Response {
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
async fn image_of(state: &AppState, event: &TagEvent) -> ApiResult<Image> {
    Ok(
        match state.store.find_as::<Image>("", &event.image).await? {
            Some(image) => image,
            None => {
                let mut image = Image::default();
                image.metadata.name = event.image.clone();
                image.docker_image_reference = event.docker_image_reference.clone();
                image
            }
        },
    )
}

async fn istag_view(
    state: &AppState,
    target: &Target,
    stream: &ImageStream,
    tag: &str,
) -> ApiResult<Option<ImageStreamTag>> {
    let Some(event) = is::current_event(stream, tag).filter(|e| !e.image.is_empty()) else {
        return Ok(None);
    };
    let mut image = image_of(state, event).await?;
    image.docker_image_reference = is::resolved_reference(stream, tag, event);
    let mut view = ImageStreamTag {
        api_version: target.api_version(),
        kind: "ImageStreamTag".into(),
        tag: is::spec_tag(stream, tag).cloned(),
        generation: Some(event.generation),
        lookup_policy: Some(stream.spec.lookup_policy.clone().unwrap_or_default()),
        image: Some(image),
        ..Default::default()
    };
    let meta = &mut view.metadata;
    meta.name = format!("{}:{tag}", stream.metadata.name);
    meta.namespace = stream.metadata.namespace.clone();
    meta.creation_timestamp = event.created.clone();
    meta.resource_version = stream.metadata.resource_version.clone();
    meta.uid = stream.metadata.uid.clone();
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

async fn stream(state: &AppState, ns: &str, name: &str) -> ApiResult<Option<ImageStream>> {
    Ok(state.store.find_as::<ImageStream>(ns, name).await?)
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
        .list_as::<ImageStream>(target.ns_or_empty(), &LabelSelector::everything())
        .await?;
    let mut items = Vec::new();
    for s in &streams {
        for tag in s.status.tags.iter().flatten() {
            if let Some(v) = istag_view(state, target, s, &tag.tag).await? {
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
    spec: &TagReference,
) -> ApiResult<Option<TagEvent>> {
    let Some(from) = &spec.from else {
        return Ok(None);
    };
    let from_name = from.name.as_str();
    let ns = from
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(target.ns_or_empty());
    let now = is::now();
    if spec.reference == Some(true) {
        return Ok(Some(TagEvent {
            created: now,
            docker_image_reference: from_name.into(),
            ..Default::default()
        }));
    }
    let (source_is, source) = match from.kind.as_str() {
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
    Ok(Some(TagEvent {
        created: now,
        docker_image_reference: event.docker_image_reference,
        image: event.image,
        ..Default::default()
    }))
}

/// Applies `apply` to the stored stream, or to a new one it then creates.
async fn edit_or_create(
    state: &AppState,
    ns: &str,
    name: &str,
    apply: impl Fn(&mut ImageStream) -> Result<(), Status> + Send + Sync,
) -> ApiResult<ImageStream> {
    match state
        .store
        .mutate_as::<ImageStream, _>(ns, name, None, UpdateScope::All, &apply)
        .await
    {
        Err(StoreError::NotFound { .. }) => {
            let mut fresh = ImageStream::named(ns, name);
            apply(&mut fresh).map_err(ApiError)?;
            Ok(state.store.create_as(&fresh).await?)
        }
        other => Ok(other?),
    }
}

async fn put_istag(
    state: &AppState,
    p: &Principal,
    target: &Target,
    create: bool,
    req: Request,
) -> ApiResult<Response> {
    let body = read_request_object(req, state.config.max_body).await?;
    let view: ImageStreamTag = serde_json::from_value(body).map_err(|e| {
        ApiError(Status::new(
            Reason::Invalid,
            format!("the ImageStreamTag is invalid: {e}"),
        ))
    })?;
    let name = match (&target.name, view.metadata.name.as_str()) {
        (Some(n), b) if !b.is_empty() && n != b => {
            return Err(ApiError(Status::bad_request(format!(
                "the name of the object ({b}) does not match the name on the URL ({n})"
            ))))
        }
        (Some(n), _) => n.clone(),
        (None, b) if !b.is_empty() => b.to_string(),
        (None, _) => {
            return Err(ApiError(Status::new(
                Reason::Invalid,
                "metadata.name: Required value: <image stream>:<tag>",
            )))
        }
    };
    let (is_name, tag) = parse_istag(target, &name)?;
    let mut spec = view.tag.ok_or_else(|| {
        ApiError(Status::new(
            Reason::Invalid,
            "tag: Required value: the spec tag to set",
        ))
    })?;
    if let Some(from) = &spec.from {
        let k = from.kind.as_str();
        if !["DockerImage", "ImageStreamTag", "ImageStreamImage"].contains(&k) {
            return Err(ApiError(Status::new(
                Reason::Invalid,
                format!("tag.from.kind: Unsupported value: {k:?}"),
            )));
        }
        let scheduled = spec.import_policy.as_ref().is_some_and(|p| p.scheduled());
        if k != "DockerImage" && scheduled {
            return Err(ApiError(Status::new(Reason::Invalid, "tag.importPolicy.scheduled: only container images (DockerImage) can be imported on a schedule")));
        }
    }
    if let Some(from) = spec.from.as_mut() {
        let alias_in_stream = from.kind == "ImageStreamTag"
            && split_istag(&from.name).is_none_or(|(s, _)| s == is_name)
            && from
                .namespace
                .as_deref()
                .is_none_or(|n| n.is_empty() || n == target.ns_or_empty());
        if alias_in_stream {
            // A tracking tag names its source the short way.
            let short = from.name.rsplit(':').next().unwrap_or_default().to_string();
            if short == tag {
                return Err(ApiError(Status::new(
                    Reason::Invalid,
                    "tag.from: a tag cannot track itself",
                )));
            }
            from.name = short;
        }
    }
    let event = first_event(state, p, target, is_name, &spec).await?;
    let ns = target.ns_or_empty().to_string();
    let apply = |s: &mut ImageStream| -> Result<(), Status> {
        if create && is::spec_tag(s, tag).is_some() {
            return Err(Status::new(
                Reason::AlreadyExists,
                format!("imagestreamtags.image.openshift.io \"{is_name}:{tag}\" already exists"),
            ));
        }
        is::set_spec_tag(s, tag, spec.clone());
        if let Some(mut e) = event.clone() {
            e.generation = s.metadata.generation + 1;
            is::add_event(s, tag, e);
        }
        Ok(())
    };
    let updated = edit_or_create(state, &ns, is_name, apply).await?;
    let view = match istag_view(state, target, &updated, tag).await? {
        Some(v) => serde_json::to_value(v).unwrap_or_default(),
        None => {
            json!({"kind": "ImageStreamTag", "apiVersion": target.api_version(), "metadata": {"name": name, "namespace": ns}, "tag": is::spec_tag(&updated, tag)})
        }
    };
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
        .mutate_as::<ImageStream, _>(target.ns_or_empty(), is_name, None, UpdateScope::All, |s| {
            if is::remove_tag(s, tag) {
                Ok(())
            } else {
                Err(Status::new(
                    Reason::NotFound,
                    format!("imagestreamtags.image.openshift.io {name:?} not found"),
                ))
            }
        })
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
    let mut view = ImageStreamImage {
        api_version: target.api_version(),
        kind: "ImageStreamImage".into(),
        image: image_of(state, &event).await?,
        ..Default::default()
    };
    view.metadata.name = format!("{is_name}@{}", event.image);
    view.metadata.namespace = s.metadata.namespace.clone();
    view.metadata.creation_timestamp = event.created.clone();
    view.metadata.uid = s.metadata.uid.clone();
    let view = serde_json::to_value(view).unwrap_or_default();
    Ok(ok_json(StatusCode::OK, &render(target, view)))
}

/// `POST imagestreammappings`: what a push to another registry (or a build)
/// records: the Image, and an event on the stream's tag.
async fn mapping(state: &AppState, target: &Target, req: Request) -> ApiResult<Response> {
    let body = read_request_object(req, state.config.max_body).await?;
    let m: ImageStreamMapping = serde_json::from_value(body).map_err(|e| {
        ApiError(Status::new(
            Reason::Invalid,
            format!("the ImageStreamMapping is invalid: {e}"),
        ))
    })?;
    let is_name = m.metadata.name.clone();
    let tag = if m.tag.is_empty() {
        "latest".to_string()
    } else {
        m.tag.clone()
    };
    if !podspace_api::validation::tag_name(&tag) {
        return Err(ApiError(Status::new(
            Reason::Invalid,
            format!("tag: Invalid value: {tag:?}"),
        )));
    }
    let mut image = m.image.unwrap_or_default();
    image.set_type_meta();
    let image_obj = image
        .to_object()
        .map_err(|e| ApiError(Status::new(Reason::Invalid, format!("image: {e}"))))?;
    podspace_api::validation::validate(&podspace_api::kinds::IMAGE, &image_obj)
        .map_err(ApiError)?;
    let reference = image.docker_image_reference.clone();
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
    match state.store.create_as(&image).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let repository = existing.status.docker_image_repository.clone();
    state
        .store
        .mutate_as::<ImageStream, _>(&ns, &is_name, None, UpdateScope::Status, |s| {
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
        })
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
    let body = read_request_object(req, state.config.max_body).await?;
    let mut body: ImageStreamImport = serde_json::from_value(body).map_err(|e| {
        ApiError(Status::new(
            Reason::Invalid,
            format!("the ImageStreamImport is invalid: {e}"),
        ))
    })?;
    let is_name = body.metadata.name.clone();
    podspace_api::validation::dns1123_subdomain(&is_name).map_err(|e| {
        ApiError(Status::new(
            Reason::Invalid,
            format!("metadata.name: Invalid value: {is_name:?}: {e}"),
        ))
    })?;
    let do_import = body.spec.import;
    let mut wanted = body.spec.images.clone();
    let client = podspace_imagestreams::remote::Client::new();
    // A whole repository: its tags (at most REPOSITORY_CAP of them) become images.
    let mut repository_status = None;
    if let Some(repo) = body.spec.repository.clone() {
        let insecure = repo.import_policy.as_ref().and_then(|p| p.insecure) == Some(true);
        let remote =
            podspace_imagestreams::remote::RemoteRef::parse(&repo.from.name).map_err(|e| {
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
            wanted.push(ImageImportSpec {
                from: ObjectReference {
                    kind: "DockerImage".into(),
                    name: format!("{}/{}:{t}", remote.registry, remote.repository),
                    ..Default::default()
                },
                to: Some(LocalName { name: t.clone() }),
                import_policy: repo.import_policy.clone(),
                reference_policy: repo.reference_policy.clone(),
                ..Default::default()
            });
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
        let tag =
            w.to.as_ref()
                .map(|t| t.name.clone())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "latest".into());
        if w.from.kind != "DockerImage" || !podspace_api::validation::tag_name(&tag) {
            return Err(ApiError(Status::new(
                Reason::Invalid,
                format!("spec.images[{i}]: from must be a DockerImage and to.name a tag"),
            )));
        }
        let outcome = match podspace_imagestreams::remote::RemoteRef::parse(&w.from.name) {
            Err(e) => Err(e.to_string()),
            Ok(r) => {
                let creds = podspace_imagestreams::controller::pull_secret(
                    &state.store,
                    target.ns_or_empty(),
                    &r.registry,
                )
                .await?;
                client
                    .import(&r, w.insecure(), creds.as_ref())
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        match outcome {
            Ok(imported) => {
                let image = podspace_imagestreams::controller::image_object(&imported);
                results.push(json!({"tag": tag, "status": {"status": "Success", "code": 200}, "image": image}));
                tags.push((
                    tag,
                    w.tag_reference(),
                    Some((image, imported.reference.clone(), imported.digest.clone())),
                ));
            }
            Err(message) => {
                results.push(json!({"tag": tag, "status": {"status": "Failure", "reason": "InternalError", "message": message, "code": 500}}));
                tags.push((tag, w.tag_reference(), None));
            }
        }
    }
    let mut status = json!({"images": results});
    if do_import {
        for (_, _, found) in &tags {
            if let Some((image, _, _)) = found {
                match state.store.create_as(image).await {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let ns = target.ns_or_empty().to_string();
        let repository = format!("{}/{ns}/{is_name}", state.registry_host);
        let now = is::now();
        let apply = |s: &mut ImageStream| -> Result<(), Status> {
            for (tag, spec, found) in &tags {
                is::set_spec_tag(s, tag, spec.clone());
                if let Some((_, reference, digest)) = found {
                    let event = TagEvent {
                        created: now.clone(),
                        docker_image_reference: reference.clone(),
                        image: digest.clone(),
                        generation: s.metadata.generation + 1,
                        ..Default::default()
                    };
                    is::add_event(s, tag, event);
                }
            }
            s.status.docker_image_repository = repository.clone();
            Ok(())
        };
        let stream = edit_or_create(state, &ns, &is_name, apply).await?;
        status["import"] = serde_json::to_value(stream).unwrap_or_default();
    }
    if let Some(r) = repository_status {
        status["repository"] = r;
    }
    body.status = Some(status);
    body.kind = "ImageStreamImport".into();
    body.api_version = target.api_version();
    Ok(ok_json(StatusCode::CREATED, &body))
}

//! Field validation. Every failure names the field, the way Kubernetes'
//! `Invalid` Status does, so a user sees all problems of an object at once.

use serde_json::Value;

use crate::kinds::KindInfo;
use crate::meta::Object;
use crate::model::{self, ObjectReference, Resource};
use crate::status::{Reason, Status, StatusCause, StatusDetails};

pub const MAX_NAME_LEN: usize = 63;

/// DNS-1123 label: lower-case alphanumerics and '-', starting and ending
/// alphanumeric, at most 63 characters.
pub fn dns1123_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("must be no more than {MAX_NAME_LEN} characters"));
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if !ok_chars || !ok_ends {
        return Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')".into());
    }
    Ok(())
}

/// DNS-1123 subdomain (dots allowed between labels), capped at 63
/// characters so every name also fits a registry path component.
pub fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("must be no more than {MAX_NAME_LEN} characters"));
    }
    for part in name.split('.') {
        if part.is_empty() || dns1123_label(part).is_err() {
            return Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".into());
        }
    }
    Ok(())
}

/// User names may carry '@' and upper case (e-mail style logins) but never
/// ':' or '/', which would make them ambiguous with service account names.
pub fn user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NAME_LEN} characters"));
    }
    if name == "~" || name.starts_with("system:") {
        return Err("is reserved".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err("may contain only letters, digits, '-', '_', '.' and '@'".into());
    }
    Ok(())
}

pub fn name_for(kind: &KindInfo, name: &str) -> Result<(), String> {
    match kind.kind {
        "Project" | "ServiceAccount" => dns1123_label(name),
        "User" => user_name(name),
        "Image" => image_name(name),
        // OpenShift names system bindings `system:image-builders`.
        "RoleBinding" | "ClusterRoleBinding" => {
            dns1123_subdomain(name.strip_prefix("system:").unwrap_or(name))
        }
        _ => dns1123_subdomain(name),
    }
}

/// Images are named by their digest (`sha256:<hex>`).
fn image_name(name: &str) -> Result<(), String> {
    let ok = name.split_once(':').is_some_and(|(alg, hex)| {
        matches!(alg, "sha256" | "sha512")
            && !hex.is_empty()
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if ok {
        Ok(())
    } else {
        Err("must be a digest such as sha256:<64 lower-case hex digits>".into())
    }
}

#[derive(Default)]
struct Errors(Vec<StatusCause>);

impl Errors {
    fn field(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(StatusCause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        });
    }

    fn one_of(&mut self, field: &str, value: Option<&Value>, allowed: &[&str], required: bool) {
        match value.and_then(Value::as_str) {
            Some(v) if allowed.contains(&v) => {}
            None if !required && value.is_none_or(Value::is_null) => {}
            Some(v) => self.field(
                field,
                format!(
                    "Unsupported value: {v:?}: supported values: {}",
                    quoted(allowed)
                ),
            ),
            None => self.field(field, format!("Required value: one of {}", quoted(allowed))),
        }
    }
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Kubernetes' limit on all of an object's annotations together.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Validates an object about to be stored. `name` is already filled in
/// (from `generateName` if needed).
pub fn validate(kind: &KindInfo, obj: &Object) -> Result<(), Status> {
    let mut errs = Errors::default();
    if let Err(e) = name_for(kind, &obj.metadata.name) {
        errs.field(
            "metadata.name",
            format!("Invalid value: {:?}: {e}", obj.metadata.name),
        );
    }
    for (k, v) in &obj.metadata.labels {
        if let Err(e) = crate::selector::LabelSelector::parse(&format!("{k}={v}")) {
            errs.field("metadata.labels", e.to_string());
        }
    }
    let annotation_bytes: usize = obj
        .metadata
        .annotations
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if annotation_bytes > MAX_ANNOTATION_BYTES {
        errs.field(
            "metadata.annotations",
            format!("Too long: must have at most {MAX_ANNOTATION_BYTES} bytes"),
        );
    }
    typed_shape(&mut errs, kind, obj);
    let body = &obj.body;
    match kind.kind {
        "ImageStream" => {
            if let Ok(is) = model::ImageStream::from_object(obj) {
                image_stream(&mut errs, &is.spec);
            }
        }
        "BuildConfig" | "Build" | "DeploymentConfig" if !body.contains_key("spec") => {
            errs.field("spec", "Required value");
        }
        "BuildConfig" => {
            if let Ok(bc) = model::BuildConfig::from_object(obj) {
                build_config(&mut errs, &bc.spec);
            }
        }
        "Build" => {
            if let Ok(b) = model::Build::from_object(obj) {
                build_spec(&mut errs, &b.spec);
            }
        }
        "DeploymentConfig" => {
            if let Ok(dc) = model::DeploymentConfig::from_object(obj) {
                deployment_config(&mut errs, &dc.spec);
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => role_binding(&mut errs, kind, obj),
        "Secret" => secret(&mut errs, obj),
        "ConfigMap" => config_map(&mut errs, obj),
        "Template" => template(&mut errs, obj),
        _ => {}
    }
    if errs.0.is_empty() {
        return Ok(());
    }
    let summary = errs
        .0
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Status::new(
        Reason::Invalid,
        format!(
            "{} {:?} is invalid: {summary}",
            kind.qualified_plural(),
            obj.metadata.name
        ),
    )
    .with_details(StatusDetails {
        name: obj.metadata.name.clone(),
        group: kind.group.into(),
        kind: kind.kind.into(),
        causes: errs.0,
    }))
}

/// Objects of the kinds the controllers read typed must decode as their
/// type, so that what is stored can always be read back.
fn typed_shape(errs: &mut Errors, kind: &KindInfo, obj: &Object) {
    fn check<T: Resource>(errs: &mut Errors, obj: &Object) {
        let Ok(value) = serde_json::to_value(obj) else {
            return;
        };
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Err(e) => {
                let path = e.path().to_string();
                let field = if path == "." {
                    T::KIND.kind.to_string()
                } else {
                    path
                };
                errs.field(&field, format!("Invalid value: {}", e.inner()));
            }
            Ok(typed) => {
                // Our own types keep what they do not name; Kubernetes'
                // (pod templates, env) do not, so a field they lack would be
                // lost: refused, as `kubectl --validate=strict` does.
                let back = serde_json::to_value(&typed).unwrap_or_default();
                let mut lost = Vec::new();
                lost_fields(&value, &back, "", &mut lost);
                for path in lost {
                    errs.field(&path, "Invalid value: unknown field");
                }
            }
        }
    }
    match kind.kind {
        "Build" => check::<model::Build>(errs, obj),
        "BuildConfig" => check::<model::BuildConfig>(errs, obj),
        "Secret" => check::<model::Secret>(errs, obj),
        "ImageStream" => check::<model::ImageStream>(errs, obj),
        "DeploymentConfig" => check::<model::DeploymentConfig>(errs, obj),
        "ReplicationController" => check::<model::ReplicationController>(errs, obj),
        "RoleBinding" => check::<model::RoleBinding>(errs, obj),
        "ClusterRoleBinding" => check::<model::ClusterRoleBinding>(errs, obj),
        "Project" => check::<model::Project>(errs, obj),
        _ => {}
    }
}

/// The paths of `input` that `output` (its typed round trip) lacks. A
/// zero value (null, "", false, 0, {}, []) counts as absent, and scalars are not compared (`cpu: 1` comes back as
/// `"1"`).
fn lost_fields(input: &Value, output: &Value, path: &str, lost: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let empty = match v {
                    Value::Null => true,
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    Value::String(s) => s.is_empty(),
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                };
                match o.get(k) {
                    _ if empty => {}
                    Some(ov) => lost_fields(v, ov, &p, lost),
                    None => lost.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                lost_fields(iv, ov, &format!("{path}[{n}]"), lost);
            }
        }
        _ => {}
    }
}

impl KindInfo {
    /// `imagestreams.image.openshift.io`, as Kubernetes names a resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// A string for [`Errors::one_of`]: empty is absent.
fn text(v: &str) -> Option<Value> {
    (!v.is_empty()).then(|| Value::String(v.to_string()))
}

fn object_ref(
    errs: &mut Errors,
    field: &str,
    from: Option<&ObjectReference>,
    kinds: &[&str],
    required: bool,
) {
    let Some(from) = from else {
        if required {
            errs.field(field, "Required value");
        }
        return;
    };
    errs.one_of(
        &format!("{field}.kind"),
        text(&from.kind).as_ref(),
        kinds,
        true,
    );
    if from.name.is_empty() {
        errs.field(&format!("{field}.name"), "Required value");
    }
}

/// A tag name as the registry accepts it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn tag_name(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn image_stream(errs: &mut Errors, spec: &model::ImageStreamSpec) {
    for (i, tag) in spec.tags.iter().flatten().enumerate() {
        let f = format!("spec.tags[{i}]");
        if !tag_name(&tag.name) {
            errs.field(
                &format!("{f}.name"),
                "Invalid value: a tag name must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            );
        }
        object_ref(
            errs,
            &format!("{f}.from"),
            tag.from.as_ref(),
            &["DockerImage", "ImageStreamTag", "ImageStreamImage"],
            false,
        );
        if let Some(p) = &tag.reference_policy {
            errs.one_of(
                &format!("{f}.referencePolicy.type"),
                text(&p.kind).as_ref(),
                &["Source", "Local"],
                false,
            );
        }
    }
}

/// A template's own fields as `podspace_templates` reads them, and its
/// parameter names (`[A-Za-z0-9_]+`, each once).
fn template(errs: &mut Errors, obj: &Object) {
    let body = serde_json::Value::Object(obj.body.clone());
    let t: podspace_templates::Template = match serde_json::from_value(body) {
        Ok(t) => t,
        Err(e) => {
            errs.field("template", format!("Invalid value: {e}"));
            return;
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in t.parameters.iter().enumerate() {
        let ok = !p.name.is_empty()
            && p.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            errs.field(
                &format!("parameters[{i}].name"),
                format!("Invalid value: {:?}: must match [a-zA-Z0-9_]+", p.name),
            );
        } else if !seen.insert(p.name.as_str()) {
            errs.field(
                &format!("parameters[{i}].name"),
                format!("Duplicate value: {:?}", p.name),
            );
        }
    }
    for (i, o) in t.objects.iter().enumerate() {
        if !o.is_object() {
            errs.field(&format!("objects[{i}]"), "Invalid value: not an object");
        }
    }
}

const STRATEGIES: &[&str] = &["Docker", "Source", "Custom", "JenkinsPipeline"];

fn build_spec(errs: &mut Errors, spec: &model::BuildSpec) {
    let strategy = &spec.strategy;
    errs.one_of(
        "spec.strategy.type",
        text(&strategy.kind).as_ref(),
        STRATEGIES,
        true,
    );
    let from = match strategy.kind.as_str() {
        "Docker" => Some((
            "dockerStrategy",
            strategy
                .docker_strategy
                .as_ref()
                .and_then(|s| s.from.as_ref()),
            false,
        )),
        "Source" => Some((
            "sourceStrategy",
            strategy
                .source_strategy
                .as_ref()
                .and_then(|s| s.from.as_ref()),
            true,
        )),
        "Custom" => Some((
            "customStrategy",
            strategy
                .custom_strategy
                .as_ref()
                .and_then(|s| s.from.as_ref()),
            true,
        )),
        _ => None,
    };
    if let Some((sub, from, required)) = from {
        object_ref(
            errs,
            &format!("spec.strategy.{sub}.from"),
            from,
            &["DockerImage", "ImageStreamTag", "ImageStreamImage"],
            required,
        );
    }
    if let Some(hook) = &spec.post_commit {
        let script = hook.script.as_deref().is_some_and(|s| !s.is_empty());
        let command = hook.command.as_ref().is_some_and(|c| !c.is_empty());
        if script && command {
            errs.field(
                "spec.postCommit",
                "Invalid value: script and command cannot both be set",
            );
        }
    }
    if let Some(source) = &spec.source {
        if source.git.is_some() && source.binary.is_some() {
            errs.field(
                "spec.source",
                "git and binary sources are mutually exclusive",
            );
        }
        if source.git.as_ref().is_some_and(|g| g.uri.is_empty()) {
            errs.field("spec.source.git.uri", "Required value");
        }
        let dir = source.context_dir.as_deref().unwrap_or_default();
        if dir.split('/').any(|p| p == "..") {
            errs.field("spec.source.contextDir", "must not contain '..'");
        }
        build_inputs(errs, spec, source);
    }
    object_ref(
        errs,
        "spec.output.to",
        spec.output_to(),
        &["ImageStreamTag", "DockerImage"],
        false,
    );
    if spec.completion_deadline_seconds.is_some_and(|d| d <= 0) {
        errs.field(
            "spec.completionDeadlineSeconds",
            "must be a positive integer",
        );
    }
}

/// `source.secrets` and `source.configMaps`: a name each; a destination
/// without `..`, relative for a Docker build (the files go into its
/// context).
fn build_inputs(errs: &mut Errors, spec: &model::BuildSpec, source: &model::BuildSource) {
    let docker = spec.strategy.kind == "Docker" || spec.strategy.docker_strategy.is_some();
    let secrets = source.secrets.iter().flatten();
    let maps = source.config_maps.iter().flatten();
    let items = secrets
        .map(|s| ("secrets", "secret", &s.secret.name, &s.destination_dir))
        .chain(maps.map(|m| {
            (
                "configMaps",
                "configMap",
                &m.config_map.name,
                &m.destination_dir,
            )
        }));
    let mut counts = std::collections::HashMap::new();
    for (list, field, name, dest) in items {
        let i = counts.entry(list).or_insert(0usize);
        let at = format!("spec.source.{list}[{i}]");
        *i += 1;
        if dns1123_subdomain(name).is_err() {
            errs.field(
                &format!("{at}.{field}.name"),
                "Required value: a DNS-1123 subdomain",
            );
        }
        let dest = dest.as_deref().unwrap_or_default();
        if dest.split('/').any(|p| p == "..") {
            errs.field(&format!("{at}.destinationDir"), "must not contain '..'");
        }
        if dest.chars().any(char::is_control) {
            errs.field(
                &format!("{at}.destinationDir"),
                "must not contain control characters",
            );
        }
        if docker && dest.starts_with('/') {
            errs.field(
                &format!("{at}.destinationDir"),
                "for the Docker strategy, destinationDir must be a relative path",
            );
        }
    }
}

fn build_config(errs: &mut Errors, spec: &model::BuildConfigSpec) {
    if let Ok(template) = spec.build_spec() {
        build_spec(errs, &template);
    }
    errs.one_of(
        "spec.runPolicy",
        spec.run_policy.as_deref().and_then(text).as_ref(),
        &["Serial", "SerialLatestOnly", "Parallel"],
        false,
    );
    for (f, limit) in [
        (
            "successfulBuildsHistoryLimit",
            spec.successful_builds_history_limit,
        ),
        ("failedBuildsHistoryLimit", spec.failed_builds_history_limit),
    ] {
        if limit.is_some_and(|n| n < 0) {
            errs.field(&format!("spec.{f}"), "must be greater than or equal to 0");
        }
    }
    for (i, t) in spec.triggers().iter().enumerate() {
        if t.kind.is_empty() {
            errs.field(&format!("spec.triggers[{i}].type"), "Required value");
        }
    }
}

fn deployment_config(errs: &mut Errors, spec: &model::DeploymentConfigSpec) {
    if spec.replicas.is_some_and(|n| n < 0) {
        errs.field("spec.replicas", "must be greater than or equal to 0");
    }
    if let Some(s) = &spec.strategy {
        errs.one_of(
            "spec.strategy.type",
            text(&s.kind).as_ref(),
            &["Rolling", "Recreate", "Custom"],
            false,
        );
    }
    let containers: &[k8s_openapi::api::core::v1::Container] = spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    if spec.template.is_some() && containers.is_empty() {
        errs.field("spec.template.spec.containers", "Required value");
    }
    for (i, c) in containers.iter().enumerate() {
        if dns1123_label(&c.name).is_err() {
            errs.field(
                &format!("spec.template.spec.containers[{i}].name"),
                "Required value: a DNS-1123 label",
            );
        }
    }
    for (i, t) in spec.triggers().iter().enumerate() {
        let f = format!("spec.triggers[{i}]");
        errs.one_of(
            &format!("{f}.type"),
            text(&t.kind).as_ref(),
            &["ConfigChange", "ImageChange"],
            true,
        );
        if t.kind != "ImageChange" {
            continue;
        }
        let p = t.image_change_params.as_ref();
        if p.is_none() {
            errs.field(&format!("{f}.imageChangeParams"), "Required value");
        }
        object_ref(
            errs,
            &format!("{f}.imageChangeParams.from"),
            p.and_then(|p| p.from.as_ref()),
            &["ImageStreamTag"],
            p.is_some(),
        );
        let names = p
            .and_then(|p| p.container_names.as_deref())
            .unwrap_or_default();
        for (j, name) in names.iter().enumerate() {
            if !containers.is_empty() && !containers.iter().any(|c| &c.name == name) {
                errs.field(
                    &format!("{f}.imageChangeParams.containerNames[{j}]"),
                    format!("Invalid value: {name:?}: there is no container with that name"),
                );
            }
        }
    }
}

fn role_binding(errs: &mut Errors, kind: &KindInfo, obj: &Object) {
    let allowed: &[&str] = if kind.kind == "ClusterRoleBinding" {
        &["cluster-admin", crate::auth::BUILD_NODE_ROLE]
    } else {
        crate::auth::Role::NAMES
    };
    // Both binding kinds have this shape; typed_shape reported a bad one.
    let Ok(binding) = model::RoleBinding::from_object(obj) else {
        return;
    };
    errs.one_of(
        "roleRef.name",
        text(&binding.role_ref.name).as_ref(),
        allowed,
        true,
    );
    for (i, s) in binding.subjects.iter().enumerate() {
        errs.one_of(
            &format!("subjects[{i}].kind"),
            text(&s.kind).as_ref(),
            &["User", "ServiceAccount", "Group", "SystemUser"],
            true,
        );
        if s.name.is_empty() {
            errs.field(&format!("subjects[{i}].name"), "Required value");
        }
    }
}

/// A Secret or ConfigMap key, which a build writes as a file name:
/// Kubernetes' rule (alphanumerics, `-`, `_`, `.`; not `.` or `..`).
pub fn config_key(key: &str) -> Result<(), String> {
    let chars = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if key.is_empty() || key.len() > 253 || !chars || key == "." || key == ".." {
        return Err(format!(
            "Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
        ));
    }
    Ok(())
}

fn keys(errs: &mut Errors, obj: &Object, fields: &[&str]) {
    for field in fields {
        let Some(map) = obj.body.get(*field).and_then(Value::as_object) else {
            continue;
        };
        for k in map.keys() {
            if let Err(e) = config_key(k) {
                errs.field(&format!("{field}[{k}]"), e);
            }
        }
    }
}

fn config_map(errs: &mut Errors, obj: &Object) {
    use base64::Engine;
    keys(errs, obj, &["data", "binaryData"]);
    if let Some(data) = obj.body.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            if !v.is_string() {
                errs.field(&format!("data[{k}]"), "Invalid value: must be a string");
            }
        }
    }
    if let Some(data) = obj.body.get("binaryData").and_then(Value::as_object) {
        for (k, v) in data {
            let ok = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                errs.field(&format!("binaryData[{k}]"), "must be base64 encoded");
            }
        }
    }
}

fn secret(errs: &mut Errors, obj: &Object) {
    use base64::Engine;
    keys(errs, obj, &["data", "stringData"]);
    if let Some(plain) = obj.body.get("stringData") {
        let strings = plain
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string));
        if !strings {
            errs.field("stringData", "Invalid value: must map keys to strings");
        }
    }
    if let Some(data) = obj.body.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let ok = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                errs.field(&format!("data[{k}]"), "must be base64 encoded");
            }
        }
    }
}

/// Rules for changing a stored object through the API (the controllers and
/// build nodes write through the store and are not bound by them). A
/// Build's spec is fixed once created, except `output.pushSecret`; of its
/// status a client may only ask for cancellation — phases, outputs and
/// timestamps belong to the build system.
pub fn validate_update(old: &Object, new: &Object) -> Result<(), Status> {
    // An object's identity never changes (Kubernetes answers 422 too).
    for (field, was, now) in [
        ("metadata.name", &old.metadata.name, &new.metadata.name),
        (
            "metadata.namespace",
            &old.metadata.namespace,
            &new.metadata.namespace,
        ),
        ("metadata.uid", &old.metadata.uid, &new.metadata.uid),
    ] {
        if !now.is_empty() && now != was {
            return Err(Status::new(
                Reason::Invalid,
                format!(
                    "{} {:?} is invalid: {field}: Invalid value: {now:?}: field is immutable",
                    old.kind, old.metadata.name
                ),
            ));
        }
    }
    if old.kind != "Build" {
        return Ok(());
    }
    let without_push_secret = |o: &Object| {
        let mut spec = o.body.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(out) = spec.get_mut("output").and_then(Value::as_object_mut) {
            out.remove("pushSecret");
        }
        spec
    };
    if without_push_secret(old) != without_push_secret(new) {
        return Err(Status::new(
            Reason::Invalid,
            format!(
                "Build.build.openshift.io {:?} is invalid: spec: Invalid value: the build spec is immutable except spec.output.pushSecret",
                old.metadata.name
            ),
        ));
    }
    let without_cancel = |o: &Object| {
        let mut status = o.body.get("status").cloned().unwrap_or(Value::Null);
        if let Some(s) = status.as_object_mut() {
            s.remove("cancelled");
        }
        status
    };
    if without_cancel(old) != without_cancel(new) {
        return Err(Status::new(
            Reason::Invalid,
            format!(
                "Build.build.openshift.io {:?} is invalid: status: Invalid value: only status.cancelled may be set; the build system owns the rest of the status",
                old.metadata.name
            ),
        ));
    }
    let cancelled = |o: &Object| {
        o.body.get("status").and_then(|s| s.get("cancelled")) == Some(&Value::Bool(true))
    };
    if cancelled(old) && !cancelled(new) {
        return Err(Status::new(
            Reason::Invalid,
            format!(
                "Build.build.openshift.io {:?} is invalid: status.cancelled: a cancellation cannot be taken back",
                old.metadata.name
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("my-project").is_ok());
        assert!(dns1123_label("My-Project").is_err());
        assert!(dns1123_label("-a").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_label(&"a".repeat(63)).is_ok());
        assert!(dns1123_subdomain("a.b-c").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("a_b").is_err());
        assert!(user_name("alice@example.com").is_ok());
        assert!(user_name("system:admin").is_err());
        assert!(user_name("a/b").is_err());
    }

    #[test]
    fn deployment_config_trigger_kinds() {
        let kind = &crate::kinds::DEPLOYMENT_CONFIG;
        let mut dc = Object::new("DeploymentConfig", "p", "web");
        dc.body.insert(
            "spec".into(),
            serde_json::json!({
                "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}},
                "triggers": [{"type": "ImageChange", "imageChangeParams": {"from": {"kind": "DockerImage", "name": "x"}, "containerNames": ["nope"]}}]
            }),
        );
        let err = validate(kind, &dc).unwrap_err();
        assert_eq!(err.reason, Reason::Invalid);
        let causes = err.details.unwrap().causes;
        assert!(causes
            .iter()
            .any(|c| c.field == "spec.triggers[0].imageChangeParams.from.kind"));
        assert!(causes
            .iter()
            .any(|c| c.field == "spec.triggers[0].imageChangeParams.containerNames[0]"));
    }

    #[test]
    fn shapes_the_controllers_read_are_checked_with_their_path() {
        let kind = &crate::kinds::BUILD_CONFIG;
        let mut bc = Object::new("BuildConfig", "p", "app");
        bc.body.insert(
            "spec".into(),
            serde_json::json!({"strategy": {"type": "Docker", "dockerStrategy": {"env": [{"name": "A", "value": 1}]}}}),
        );
        let err = validate(kind, &bc).unwrap_err();
        let causes = err.details.unwrap().causes;
        assert!(
            causes
                .iter()
                .any(|c| c.field == "spec.strategy.dockerStrategy.env[0].value"
                    && c.message.contains("string")),
            "{causes:?}"
        );
    }

    #[test]
    fn fields_kubernetes_does_not_define_are_refused_not_dropped() {
        let kind = &crate::kinds::DEPLOYMENT_CONFIG;
        let mut dc = Object::new("DeploymentConfig", "p", "web");
        dc.body.insert(
            "spec".into(),
            serde_json::json!({
                "futureField": {"kept": true},
                "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "x", "imagePullPolice": "Always",
                                                      "resources": {"limits": {"cpu": 1}}}]}}
            }),
        );
        let err = validate(kind, &dc).unwrap_err();
        let causes = err.details.unwrap().causes;
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.template.spec.containers[0].imagePullPolice"]);
    }

    #[test]
    fn build_inputs_and_their_keys() {
        let causes = |kind: &KindInfo, obj: &Object| -> Vec<String> {
            validate(kind, obj)
                .err()
                .and_then(|e| e.details)
                .map(|d| d.causes.into_iter().map(|c| c.field).collect())
                .unwrap_or_default()
        };
        let mut bc = Object::new("BuildConfig", "p", "app");
        bc.body.insert(
            "spec".into(),
            serde_json::json!({
                "source": {"git": {"uri": "https://example.invalid/a.git"},
                           "secrets": [{"secret": {"name": "ok"}, "destinationDir": "keys"},
                                       {"secret": {"name": "Bad_Name"}},
                                       {"secret": {"name": "abs"}, "destinationDir": "/etc/x"}],
                           "configMaps": [{"configMap": {"name": "c"}, "destinationDir": "a/../../b"}]},
                "strategy": {"type": "Docker", "dockerStrategy": {}}
            }),
        );
        assert_eq!(
            causes(&crate::kinds::BUILD_CONFIG, &bc),
            [
                "spec.source.secrets[1].secret.name",
                "spec.source.secrets[2].destinationDir",
                "spec.source.configMaps[0].destinationDir"
            ]
        );
        // A Source build may name an absolute directory of its image.
        bc.body["spec"]["strategy"] = serde_json::json!({"type": "Source", "sourceStrategy": {"from": {"kind": "DockerImage", "name": "b"}}});
        bc.body["spec"]["source"]["configMaps"] = serde_json::json!([]);
        assert_eq!(
            causes(&crate::kinds::BUILD_CONFIG, &bc),
            ["spec.source.secrets[1].secret.name"]
        );

        let mut secret = Object::new("Secret", "p", "s");
        secret.body.insert(
            "stringData".into(),
            serde_json::json!({"token": "x", ".npmrc": "y", "../up": "z", "a/b": "w"}),
        );
        assert_eq!(
            causes(&crate::kinds::SECRET, &secret),
            ["stringData[../up]", "stringData[a/b]"]
        );
        let mut map = Object::new("ConfigMap", "p", "c");
        map.body
            .insert("data".into(), serde_json::json!({"app.ini": "x", "n": 1}));
        map.body.insert(
            "binaryData".into(),
            serde_json::json!({"blob": "not base64!"}),
        );
        assert_eq!(
            causes(&crate::kinds::CONFIG_MAP, &map),
            ["data[n]", "binaryData[blob]"]
        );
    }
}

//! Processing: parameter values, then substitution into every string of
//! every object, then the template's labels on every object.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::expression::{generate, ExpressionError};
use crate::model::{Parameter, Template};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown parameter name {0:?}")]
    UnknownParameter(String),
    #[error("parameter {0} is required and must be specified")]
    Required(String),
    #[error("parameter {name}: unsupported generator {generator:?} (only \"expression\")")]
    UnsupportedGenerator { name: String, generator: String },
    #[error("parameter {name}: {source}")]
    Generate {
        name: String,
        source: ExpressionError,
    },
    #[error("parameter {0} has generate: expression but no from")]
    NoExpression(String),
}

/// What processing gave: the objects to create, the parameters with the
/// values used, and the template's message with them filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub objects: Vec<Value>,
    pub parameters: Vec<Parameter>,
    pub message: Option<String>,
}

fn resolve(
    template: &Template,
    given: &[(String, String)],
) -> Result<Vec<Parameter>, TemplateError> {
    for (name, _) in given {
        if !template.parameters.iter().any(|p| &p.name == name) {
            return Err(TemplateError::UnknownParameter(name.clone()));
        }
    }
    let mut out = Vec::with_capacity(template.parameters.len());
    for p in &template.parameters {
        // The last of several `-p NAME=…` wins, as in oc.
        let mut value = given
            .iter()
            .rev()
            .find(|(n, _)| n == &p.name)
            .map(|(_, v)| v.clone())
            .or_else(|| p.value.clone().filter(|v| !v.is_empty()));
        if value.is_none() {
            match p.generate.as_deref() {
                None | Some("") => {}
                Some("expression") => {
                    let from = p
                        .from
                        .as_deref()
                        .ok_or_else(|| TemplateError::NoExpression(p.name.clone()))?;
                    value = Some(generate(from).map_err(|source| TemplateError::Generate {
                        name: p.name.clone(),
                        source,
                    })?);
                }
                Some(other) => {
                    return Err(TemplateError::UnsupportedGenerator {
                        name: p.name.clone(),
                        generator: other.to_string(),
                    })
                }
            }
        }
        let value = value.unwrap_or_default();
        if value.is_empty() && p.required == Some(true) {
            return Err(TemplateError::Required(p.name.clone()));
        }
        out.push(Parameter {
            value: Some(value),
            ..p.clone()
        });
    }
    Ok(out)
}

/// `${NAME}` → the value, anywhere in a string; a string that is exactly
/// `${{NAME}}` becomes the value read as JSON (a number, a boolean…), or
/// the value as a string when it is not JSON. Unknown names stay as they
/// are.
fn substitute_str(s: &str, values: &BTreeMap<&str, &str>) -> Value {
    if let Some(name) = s.strip_prefix("${{").and_then(|r| r.strip_suffix("}}")) {
        if let Some(v) = values.get(name) {
            return serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (open, close) = if after.starts_with("${{") {
            ("${{", "}}")
        } else {
            ("${", "}")
        };
        let name_and_rest = &after[open.len()..];
        match name_and_rest.find(close) {
            Some(end) if values.contains_key(&name_and_rest[..end]) => {
                out.push_str(values[&name_and_rest[..end]]);
                rest = &name_and_rest[end + close.len()..];
            }
            _ => {
                out.push_str(open);
                rest = name_and_rest;
            }
        }
    }
    out.push_str(rest);
    Value::String(out)
}

fn substitute(v: &mut Value, values: &BTreeMap<&str, &str>) {
    match v {
        Value::String(s) if s.contains("${") => *v = substitute_str(s, values),
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, values)),
        Value::Object(map) => map.values_mut().for_each(|i| substitute(i, values)),
        _ => {}
    }
}

fn text(s: &str, values: &BTreeMap<&str, &str>) -> String {
    match substitute_str(s, values) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Processes `template` with the caller's `NAME=value` pairs.
pub fn process(
    template: &Template,
    given: &[(String, String)],
) -> Result<Processed, TemplateError> {
    let parameters = resolve(template, given)?;
    let values: BTreeMap<&str, &str> = parameters
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_deref().unwrap_or_default()))
        .collect();
    let labels: BTreeMap<String, String> = template
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (text(k, &values), text(v, &values)))
        .collect();
    let mut objects = template.objects.clone();
    for obj in &mut objects {
        substitute(obj, &values);
        if labels.is_empty() {
            continue;
        }
        if let Some(o) = obj.as_object_mut() {
            let meta = o
                .entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()));
            if !meta.is_object() {
                *meta = Value::Object(Default::default());
            }
            let own = &mut meta["labels"];
            if !own.is_object() {
                *own = Value::Object(Default::default());
            }
            if let Some(own) = own.as_object_mut() {
                for (k, v) in &labels {
                    own.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
    }
    Ok(Processed {
        objects,
        message: template.message.as_deref().map(|m| text(m, &values)),
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Template {
        serde_json::from_value(json!({
            "message": "user ${USER} made",
            "labels": {"template": "demo", "app": "${NAME}"},
            "parameters": [
                {"name": "NAME", "value": "web", "required": true},
                {"name": "REPLICAS", "value": "2"},
                {"name": "PASSWORD", "generate": "expression", "from": "[a-zA-Z0-9]{16}"},
                {"name": "USER", "generate": "expression", "from": "user[A-Z0-9]{3}"},
                {"name": "SOURCE", "required": true},
            ],
            "objects": [
                {"kind": "DeploymentConfig", "metadata": {"name": "${NAME}", "labels": {"app": "mine", "tier": "front"}},
                 "spec": {"replicas": "${{REPLICAS}}", "note": "${{NAME}}", "uri": "${SOURCE}/x?${UNKNOWN}",
                          "env": [{"name": "PW", "value": "${PASSWORD}"}]}},
                {"kind": "Service", "spec": {}},
            ],
        }))
        .unwrap()
    }

    #[test]
    fn values_substitution_labels() {
        let p = process(
            &template(),
            &[
                ("SOURCE".into(), "https://git.example/x.git".into()),
                ("NAME".into(), "shop".into()),
            ],
        )
        .unwrap();
        let dc = &p.objects[0];
        assert_eq!(dc["metadata"]["name"], "shop");
        assert_eq!(dc["spec"]["replicas"], 2, "${{…}} is read as JSON");
        assert_eq!(dc["spec"]["note"], "shop", "not JSON: stays a string");
        assert_eq!(dc["spec"]["uri"], "https://git.example/x.git/x?${UNKNOWN}");
        let pw = dc["spec"]["env"][0]["value"].as_str().unwrap();
        assert_eq!(pw.len(), 16);
        assert_eq!(
            dc["metadata"]["labels"],
            json!({"app": "shop", "template": "demo", "tier": "front"}),
            "the template's labels win"
        );
        assert_eq!(p.objects[1]["metadata"]["labels"]["app"], "shop");
        let user = p.parameters.iter().find(|x| x.name == "USER").unwrap();
        assert_eq!(
            p.message,
            Some(format!("user {} made", user.value.as_deref().unwrap()))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            process(&template(), &[]).unwrap_err(),
            TemplateError::Required("SOURCE".into())
        );
        assert_eq!(
            process(&template(), &[("NOPE".into(), "1".into())]).unwrap_err(),
            TemplateError::UnknownParameter("NOPE".into())
        );
        let mut t = template();
        t.parameters[2].from = Some("[a-z".into());
        assert!(matches!(
            process(&t, &[("SOURCE".into(), "s".into())]),
            Err(TemplateError::Generate { .. })
        ));
        t.parameters[2].generate = Some("uuid".into());
        assert!(matches!(
            process(&t, &[("SOURCE".into(), "s".into())]),
            Err(TemplateError::UnsupportedGenerator { .. })
        ));
    }
}

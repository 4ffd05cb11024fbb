//! Defaulting, applied before validation on create and update, as
//! OpenShift does: fields the user may leave out get their documented value.

use serde_json::{json, Value};

use crate::kinds::KindInfo;
use crate::meta::Object;

const STRATEGY_FIELDS: &[(&str, &str)] = &[
    ("dockerStrategy", "Docker"),
    ("sourceStrategy", "Source"),
    ("customStrategy", "Custom"),
    ("jenkinsPipelineStrategy", "JenkinsPipeline"),
];

/// `legacy`: the object came through `/oapi/v1` (no build history limits by
/// default there, see spec/README.md).
pub fn apply(kind: &KindInfo, obj: &mut Object, legacy: bool) {
    match kind.kind {
        "BuildConfig" => {
            if let Some(spec) = obj.body.get_mut("spec").and_then(Value::as_object_mut) {
                if let Some(strategy) = spec.get_mut("strategy") {
                    infer_strategy_type(strategy);
                }
                spec.entry("runPolicy").or_insert_with(|| json!("Serial"));
                if !legacy {
                    spec.entry("successfulBuildsHistoryLimit")
                        .or_insert_with(|| json!(5));
                    spec.entry("failedBuildsHistoryLimit")
                        .or_insert_with(|| json!(5));
                }
            }
        }
        "Build" => {
            if let Some(strategy) = obj.body.get_mut("spec").and_then(|s| s.get_mut("strategy")) {
                infer_strategy_type(strategy);
            }
        }
        "DeploymentConfig" => {
            if let Some(spec) = obj.body.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert_with(|| json!(1));
                // Absent triggers mean a ConfigChange trigger; `[]` means none.
                if spec.get("triggers").is_none_or(Value::is_null) {
                    spec.insert("triggers".into(), json!([{"type": "ConfigChange"}]));
                }
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    s.entry("type").or_insert_with(|| json!("Rolling"));
                }
            }
        }
        "ImageStream" => crate::model::imagestream::default_tags(obj),
        "Secret" => fold_string_data(obj),
        _ => {}
    }
}

/// `stringData` is write-only, as in Kubernetes: its values are stored
/// base64-encoded in `data` (winning over a `data` key of the same name)
/// and the field is dropped. A `stringData` with a value that is not a
/// string is left for validation to refuse.
fn fold_string_data(obj: &mut Object) {
    use base64::Engine;
    let Some(Value::Object(plain)) = obj.body.get("stringData") else {
        return;
    };
    if !plain.values().all(Value::is_string) {
        return;
    }
    let plain = plain.clone();
    obj.body.remove("stringData");
    let data = obj.body.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in plain {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
        data[k.as_str()] = json!(encoded);
    }
}

/// A strategy written as `{sourceStrategy: {...}}` gets `type: Source`.
fn infer_strategy_type(strategy: &mut Value) {
    let Some(s) = strategy.as_object_mut() else {
        return;
    };
    if s.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        return;
    }
    let set: Vec<&str> = STRATEGY_FIELDS
        .iter()
        .filter(|(field, _)| s.get(*field).is_some_and(|v| !v.is_null()))
        .map(|(_, ty)| *ty)
        .collect();
    if let [only] = set.as_slice() {
        s.insert("type".into(), json!(only));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_keep_string_data_as_data() {
        let kind = &crate::kinds::SECRET;
        let mut s = Object::new("Secret", "p", "s")
            .with("data", json!({"a": "b2xk", "keep": "eA=="}))
            .with(
                "stringData",
                json!({"a": "new", "WebHookSecretKey": "s3cret"}),
            );
        apply(kind, &mut s, false);
        assert!(s.body.get("stringData").is_none());
        assert_eq!(
            s.body["data"],
            json!({"a": "bmV3", "keep": "eA==", "WebHookSecretKey": "czNjcmV0"})
        );
        let mut bad = Object::new("Secret", "p", "s").with("stringData", json!({"a": 1}));
        apply(kind, &mut bad, false);
        assert!(bad.body.get("stringData").is_some(), "left for validation");
    }

    #[test]
    fn deployment_configs_get_a_config_change_trigger_unless_told_otherwise() {
        let dc = &crate::kinds::DEPLOYMENT_CONFIG;
        let mut a = Object::new("DeploymentConfig", "p", "a").with("spec", json!({}));
        apply(dc, &mut a, false);
        assert_eq!(
            a.body["spec"]["triggers"],
            json!([{"type": "ConfigChange"}])
        );
        let mut b = Object::new("DeploymentConfig", "p", "b").with("spec", json!({"triggers": []}));
        apply(dc, &mut b, false);
        assert_eq!(b.body["spec"]["triggers"], json!([]));
    }

    #[test]
    fn strategy_type_and_history_limits() {
        let bc = &crate::kinds::BUILD_CONFIG;
        let mut obj = Object::new("BuildConfig", "p", "b").with("spec", json!({"strategy": {"sourceStrategy": {"from": {"kind": "ImageStreamTag", "name": "x:1"}}}}));
        apply(bc, &mut obj, false);
        assert_eq!(obj.body["spec"]["strategy"]["type"], "Source");
        assert_eq!(obj.body["spec"]["successfulBuildsHistoryLimit"], 5);
        let mut legacy = Object::new("BuildConfig", "p", "b")
            .with("spec", json!({"strategy": {"type": "Docker"}}));
        apply(bc, &mut legacy, true);
        assert!(legacy.body["spec"]
            .get("successfulBuildsHistoryLimit")
            .is_none());
        assert_eq!(legacy.body["spec"]["runPolicy"], "Serial");
    }
}

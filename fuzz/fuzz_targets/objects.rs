//! Object bodies as the API decodes them: the nesting pre-scan, then YAML
//! or JSON into an object, then validation of its kind.
#![no_main]
use libfuzzer_sys::fuzz_target;
use podspace_api::nesting;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    if nesting::check(body, nesting::MAX_DEPTH).is_err() {
        return;
    }
    let value: Option<serde_json::Value> = if pick % 2 == 0 {
        serde_json::from_slice(body).ok()
    } else {
        serde_yaml::from_slice(body).ok()
    };
    let Some(value) = value.filter(|v| v.is_object()) else {
        return;
    };
    let Ok(obj) = serde_json::from_value::<podspace_api::Object>(value) else {
        return;
    };
    if let Some(kind) = podspace_api::kinds::by_kind(&obj.kind) {
        let mut obj = obj;
        podspace_api::defaults::apply(kind, &mut obj, false);
        let _ = podspace_api::validation::validate(kind, &obj);
    }
});

//! Errors in the OCI distribution spec's format:
//! `{"errors": [{"code": "...", "message": "...", "detail": ...}]}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    RangeInvalid,
    PaginationInvalid,
    TooLarge,
    TooManyRequests,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::PaginationInvalid => "PAGINATION_NUMBER_INVALID",
            Code::TooLarge => "SIZE_INVALID",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Internal => "UNKNOWN",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug)]
pub struct RegistryError {
    pub code: Code,
    pub message: String,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<String>,
}

pub type Result<T> = std::result::Result<T, RegistryError>;

impl RegistryError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            message: message.into(),
            challenge: None,
        }
    }

    /// `TOOMANYREQUESTS` (429) with a `Retry-After`.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(Code::TooManyRequests, message)
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "registry failure");
        Self::new(Code::Internal, "an internal error occurred")
    }
}

impl From<podspace_api::store::StoreError> for RegistryError {
    fn from(e: podspace_api::store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<podspace_oci::manifest::ManifestError> for RegistryError {
    fn from(e: podspace_oci::manifest::ManifestError) -> Self {
        Self::new(Code::ManifestInvalid, e.0)
    }
}

impl From<crate::storage::StorageError> for RegistryError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::UploadLost(why) => Self::new(
                Code::BlobUploadUnknown,
                format!("the upload cannot be resumed: {why}"),
            ),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code.as_str(), "message": self.message, "detail": null}]});
        let mut resp = (self.code.status(), axum::Json(body)).into_response();
        if let Some(ch) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, ch);
        }
        // The rest of an oversized body is not read: the connection cannot
        // carry another request.
        if self.code == Code::TooManyRequests {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        if self.code == Code::TooLarge {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

use crate::kinds::KindInfo;
use crate::status::{Reason, Status, StatusDetails};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{} {name:?} not found", kind.qualified_plural())]
    NotFound {
        kind: &'static KindInfo,
        name: String,
    },
    #[error("{} {name:?} already exists", kind.qualified_plural())]
    AlreadyExists {
        kind: &'static KindInfo,
        name: String,
    },
    #[error("Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again", kind.qualified_plural())]
    Conflict {
        kind: &'static KindInfo,
        name: String,
    },
    #[error("namespaces {0:?} not found")]
    NamespaceNotFound(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: i64, oldest: i64 },
    #[error("{0}")]
    Rejected(Status),
    #[error("store configuration: {0}")]
    Config(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl StoreError {
    /// The API's answer for this error.
    pub fn to_status(&self) -> Status {
        let details = |kind: &KindInfo, name: &str| StatusDetails {
            name: name.to_string(),
            group: kind.group.to_string(),
            kind: kind.plural.to_string(),
            causes: vec![],
        };
        match self {
            StoreError::NotFound { kind, name } => {
                Status::new(Reason::NotFound, self.to_string()).with_details(details(kind, name))
            }
            StoreError::AlreadyExists { kind, name } => {
                Status::new(Reason::AlreadyExists, self.to_string())
                    .with_details(details(kind, name))
            }
            StoreError::Conflict { kind, name } => {
                Status::new(Reason::Conflict, self.to_string()).with_details(details(kind, name))
            }
            StoreError::NamespaceNotFound(ns) => Status::new(Reason::NotFound, self.to_string())
                .with_details(StatusDetails {
                    name: ns.clone(),
                    kind: "namespaces".into(),
                    ..Default::default()
                }),
            StoreError::Gone { .. } => Status::new(Reason::Expired, self.to_string()),
            StoreError::Rejected(status) => status.clone(),
            // Internal details stay in the server log.
            StoreError::Config(_) | StoreError::Corrupt(_) | StoreError::Database(_) => {
                Status::internal("an internal error occurred while accessing the store")
            }
        }
    }
}

//! OpenShift Templates (template.openshift.io/v1): a list of objects with
//! `${NAME}` / `${{NAME}}` placeholders, parameters that fill them (given,
//! defaulted, or generated from an expression such as `[a-zA-Z0-9]{16}`),
//! and labels put on every object. [`process`] turns a template and the
//! caller's values into the objects to create, as `oc process` does. No
//! I/O: the API stores templates, `psc` processes and creates.

mod expression;
mod model;
mod process;

pub use expression::{generate, ExpressionError};
pub use model::{Parameter, Template};
pub use process::{process, Processed, TemplateError};

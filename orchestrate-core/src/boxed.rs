//! Type-erased errors from outside the family (user code, backends): the
//! leaf every layer may name, so that none of them imports the error
//! taxonomy that names them back.

use std::sync::Arc;

/// A type-erased error from user code.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A shared, type-erased error; cheap to clone so errors can reach every
/// handle of an execution.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync>;

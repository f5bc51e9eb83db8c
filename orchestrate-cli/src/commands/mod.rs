//! One module per group of commands; each returns how the process exits.

pub(crate) mod check;
pub(crate) mod control;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod logs;
pub(crate) mod run;
pub(crate) mod serve;

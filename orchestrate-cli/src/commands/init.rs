//! `init`: a new project, with one agent of its own, one workflow, a test,
//! and the command line over them.
//!
//! The files are the ones in `template/`, which this crate builds and
//! tests as they are (its example `scaffold` and test `scaffold`), so a
//! new project starts from code known to compile and pass.

use std::path::{Path, PathBuf};

use crate::error::{CliError, Exit};

/// The files of a new project, but its manifest, by path.
const FILES: [(&str, &str); 5] = [
    ("src/main.rs", include_str!("../../template/src/main.rs")),
    (
        "src/agents.rs",
        include_str!("../../template/src/agents.rs"),
    ),
    (
        "workflows/hello.json",
        include_str!("../../template/workflows/hello.json"),
    ),
    (
        "tests/workflow.rs",
        include_str!("../../template/tests/workflow.rs"),
    ),
    (".gitignore", "/target\n/.orchestrate\n"),
];

/// Writes a new project in `dir` (made if missing), named `name` or
/// after `dir`; its manifest takes the orchestrate crates from crates.io,
/// or from the checkout at `orchestrate_path`. Writes nothing when any of
/// its files exists already.
pub(crate) fn init(
    dir: &Path,
    name: Option<&str>,
    orchestrate_path: Option<&Path>,
) -> Result<Exit, CliError> {
    let name = match name {
        Some(name) => name.to_owned(),
        None => package_name(dir)?,
    };
    if !is_package_name(&name) {
        return Err(CliError::Usage(format!(
            "`{name}` is not a package name: letters, digits, `-` and `_`, starting with a letter (use --name)"
        )));
    }
    let manifest = manifest(&name, orchestrate_path)?;
    let files: Vec<(PathBuf, &str)> = std::iter::once(("Cargo.toml", manifest.as_str()))
        .chain(FILES)
        .map(|(path, text)| (dir.join(path), text))
        .collect();
    // Checked before anything is written: a project is made whole or not
    // at all, and nobody's file is overwritten.
    if let Some((path, _)) = files.iter().find(|(path, _)| path.exists()) {
        return Err(CliError::Usage(format!(
            "{} exists already: `init` writes only into a new or empty directory",
            path.display()
        )));
    }
    for (path, text) in &files {
        write(path, text)?;
    }
    println!("created project `{name}` in {}", dir.display());
    println!("  cargo test");
    println!("  cargo run -- run workflows/hello.json --input '{{\"who\": \"Ada\"}}'");
    Ok(Exit::Success)
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// `dir`'s last component, as a package name.
fn package_name(dir: &Path) -> Result<String, CliError> {
    let absolute = std::path::absolute(dir).map_err(|source| CliError::Io {
        path: dir.to_owned(),
        source,
    })?;
    Ok(absolute
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase().replace([' ', '.'], "-"))
        .unwrap_or_default())
}

fn is_package_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The new project's `Cargo.toml`.
fn manifest(name: &str, orchestrate_path: Option<&Path>) -> Result<String, CliError> {
    let dependency = |krate: &str| -> Result<String, CliError> {
        let Some(root) = orchestrate_path else {
            return Ok(format!("\"{}\"", env!("CARGO_PKG_VERSION")));
        };
        let path = std::path::absolute(root.join(krate)).map_err(|source| CliError::Io {
            path: root.to_owned(),
            source,
        })?;
        if !path.join("Cargo.toml").is_file() {
            return Err(CliError::Usage(format!(
                "--orchestrate-path: {} holds no crate `{krate}`",
                root.display()
            )));
        }
        // Debug formatting quotes and escapes the path as TOML reads it.
        Ok(format!("{{ path = {:?} }}", path.display().to_string()))
    };
    Ok(format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
orchestrate-core = {core}
orchestrate-cli = {cli}
serde_json = "1"

[dev-dependencies]
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}
"#,
        core = dependency("orchestrate-core")?,
        cli = dependency("orchestrate-cli")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_come_from_the_directory_and_are_checked() {
        assert_eq!(
            package_name(Path::new("/x/My Agents")).unwrap(),
            "my-agents"
        );
        assert!(is_package_name("my-agents_2"));
        assert!(!is_package_name("2agents"));
        assert!(!is_package_name(""));
        assert!(!is_package_name("a/b"));
    }

    #[test]
    fn the_manifest_takes_the_crates_by_version_or_by_path() {
        let by_version = manifest("p", None).unwrap();
        assert!(by_version.contains(&format!(
            "orchestrate-cli = \"{}\"",
            env!("CARGO_PKG_VERSION")
        )));
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let by_path = manifest("p", Some(root)).unwrap();
        assert!(
            by_path.contains("orchestrate-core = { path = \""),
            "{by_path}"
        );
        assert!(manifest("p", Some(Path::new("/nowhere"))).is_err());
    }
}

//! The layering of `orchestrate-core`: no module imports one that imports
//! it back, directly or through others (context reaches the executor only
//! through the trait it defines, the journal never names the error
//! taxonomy, ...). Read from the sources, at the granularity of the
//! crate's top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `module -> modules it names as crate::<module>` (comments left out).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let module = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap()
                .trim_end_matches(".rs")
                .to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for (i, _) in code.match_indices("crate::") {
                    let rest = &code[i + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        edges.entry(module.clone()).or_default().insert(name);
                    }
                }
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let edges = imports();
    assert!(edges.contains_key("context") && edges.contains_key("executor"));
    // Depth-first search for a cycle, reporting its path.
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                assert!(
                    next != start,
                    "import circle: {} -> {start}",
                    path.join(" -> ")
                );
                if !path.contains(next) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
}

#[test]
fn the_context_reaches_the_executor_only_through_its_host_trait() {
    let edges = imports();
    assert!(
        !edges["context"].contains("executor"),
        "{:?}",
        edges["context"]
    );
    assert!(!edges["context"].contains("orchestrator"));
    assert!(
        !edges["journal"].contains("error"),
        "{:?}",
        edges["journal"]
    );
}

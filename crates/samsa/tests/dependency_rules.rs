//! The crate dependency rules of ARCHITECTURE.md, checked against `cargo metadata`
//! so that a wrong edge fails CI instead of surviving review.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each workspace crate: the samsa crates it may depend on (normal deps).
const ALLOWED: &[(&str, &[&str])] = &[
    ("samsa-model", &[]),
    ("samsa-protocol", &["samsa-model"]),
    ("samsa-storage", &["samsa-model"]),
    ("samsa-metadata", &["samsa-model"]),
    ("samsa-coordinator", &["samsa-model"]),
    ("samsa-replica", &["samsa-model"]),
    ("samsa-client", &["samsa-model", "samsa-protocol"]),
    ("samsa-quorum", &["samsa-model", "samsa-metadata"]),
    ("samsa-security", &["samsa-metadata"]),
    ("samsa-metrics", &[]),
    (
        "samsa-broker",
        &[
            "samsa-model",
            "samsa-protocol",
            "samsa-storage",
            "samsa-metadata",
            "samsa-coordinator",
            "samsa-quorum",
            "samsa-client",
            "samsa-replica",
            "samsa-security",
            "samsa-metrics",
        ],
    ),
    (
        "samsa",
        &[
            "samsa-model",
            "samsa-protocol",
            "samsa-storage",
            "samsa-metadata",
            "samsa-coordinator",
            "samsa-broker",
            "samsa-client",
            "samsa-quorum",
            "samsa-security",
        ],
    ),
];

fn workspace_edges() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut edges = BTreeMap::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().expect("name").to_string();
        let deps = pkg["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null()) // normal dependencies only
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("samsa"))
            .map(str::to_string)
            .collect();
        edges.insert(name, deps);
    }
    edges
}

#[test]
fn crate_dependencies_follow_the_architecture() {
    let edges = workspace_edges();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    for (krate, deps) in &edges {
        let Some(ok) = allowed.get(krate.as_str()) else {
            panic!("crate {krate} is not in the dependency rules; add it to ARCHITECTURE.md and this test");
        };
        for dep in deps {
            assert!(
                ok.contains(&dep.as_str()),
                "{krate} must not depend on {dep} (see ARCHITECTURE.md)"
            );
        }
    }
    for krate in allowed.keys() {
        assert!(edges.contains_key(*krate), "rule for missing crate {krate}");
    }
}

//! The workspace's binaries for tests that run them as processes, from any package.
//!
//! Cargo gives a test `CARGO_BIN_EXE_<name>` only for its own package's binaries. A test
//! that runs `hookline-ingest`, `hookline-worker` and `hookline` together takes the other
//! packages' from the same target directory, and builds them first when they are missing
//! or older than the workspace's sources (`cargo nextest run -p <one crate>` builds only
//! that crate's). A workspace run has built them all already and builds nothing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The path of workspace binary `name` (e.g. `hookline-worker`), built for this test's
/// profile if it is missing or older than any source file.
///
/// # Panics
/// If the build fails (the message has cargo's exit status; its output is on stderr).
pub fn binary(name: &str) -> PathBuf {
    // One build at a time within a test process; cargo's own lock covers the rest.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("the test knows its own path");
    // <target>/<profile dir>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from <target>/<profile>/deps");
    let path = profile_dir.join(name);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built_after(&path, &newest_source(&root)) {
        return path;
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let target_dir = profile_dir.parent().expect("a target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--profile", &profile, "--bin", name])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --bin {name}: {status}");
    path
}

fn built_after(path: &Path, newest: &SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|built| built >= *newest)
}

/// The latest modification among what a binary is built from: Cargo.lock, the
/// migrations (embedded) and every crate's manifest and `src/` (not its tests).
fn newest_source(root: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending = vec![
        root.join("Cargo.lock"),
        root.join("Cargo.toml"),
        root.join("migrations"),
    ];
    if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
        for krate in crates.flatten() {
            pending.push(krate.path().join("Cargo.toml"));
            pending.push(krate.path().join("src"));
        }
    }
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(modified);
        }
    }
    newest
}

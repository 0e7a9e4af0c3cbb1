//! `clawfleet apply -f PATH`: manifests in, one line per agent out.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use spec::manifest::{self, ValidManifest};
use store::Store;

use crate::failure::{Exit, Failure};

/// The writer recorded in `managed_by` for CLI writes.
const WRITER: &str = "cli";

/// Reads every manifest under `paths` (files, directories, or `-`), validating all of them.
/// Nothing is returned unless every document is valid and no agent id appears twice.
pub fn load(paths: &[PathBuf]) -> Result<Vec<ValidManifest>, Failure> {
    let mut texts = Vec::new();
    for path in paths {
        read_texts(path, &mut texts)?;
    }
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in &texts {
        match manifest::load(name, text) {
            Ok(docs) => valid.extend(docs),
            Err(e) => errors.extend(e.into_iter().map(|e| e.to_string())),
        }
    }
    let mut seen: HashMap<&str, &manifest::Origin> = HashMap::new();
    for m in &valid {
        if let Some(first) = seen.insert(&m.spec.agent_id, &m.origin) {
            errors.push(format!(
                "{}: agent_id: \"{}\" is already defined at {first}",
                m.origin, m.spec.agent_id
            ));
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(Failure::Invalid(errors.join("\nerror: ")))
    }
}

fn read_texts(path: &Path, texts: &mut Vec<(String, String)>) -> Result<(), Failure> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Usage(format!("<stdin>: {e}")))?;
        texts.push(("<stdin>".to_owned(), text));
        return Ok(());
    }
    for file in manifest_files(path)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
        texts.push((file.display().to_string(), text));
    }
    Ok(())
}

fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, Failure> {
    let meta =
        std::fs::metadata(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        let file = entry.path();
        if file.is_dir() {
            files.extend(manifest_files(&file)?);
        } else if matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

pub async fn run(store: &Store, paths: &[PathBuf]) -> Result<Exit, Failure> {
    let manifests = load(paths)?;
    let mut exit = Exit::Success;
    for m in &manifests {
        match store.apply(&m.spec, WRITER).await {
            Ok(write) => println!("agent/{} {}", m.spec.agent_id, write.as_str()),
            Err(e) => {
                let failure = Failure::from(e);
                exit = exit.max(failure.exit_code());
                eprintln!("error: {}: {failure}", m.origin);
                if matches!(failure, Failure::Aws(_)) {
                    // AWS is failing: stop rather than repeat the same error per agent.
                    break;
                }
            }
        }
    }
    Ok(exit)
}

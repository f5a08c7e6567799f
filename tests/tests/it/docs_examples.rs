//! The GraphQL examples in `README.md` and `docs/*.md` are part of the product: every
//! fenced `graphql` block is split into its operations and each is validated against the
//! committed supergraph, and the README's examples also run against the demo portal, so
//! the docs cannot drift from the schema unnoticed.

use std::path::{Path, PathBuf};

use portal_gateway::gateway::{Limits, Supergraph};
use portal_tests::{Mode, TestPortal};
use serde_json::json;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The fenced `graphql` blocks of a Markdown text, with the line each starts on.
fn graphql_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```graphql") => current = Some((i + 2, String::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Splits a block into its top-level definitions (braces outside strings and comments),
/// so a block may show several anonymous operations one after the other.
fn definitions(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let (mut in_string, mut in_comment) = (false, false);
    let mut chars = block.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\n' => in_comment = false,
            _ if in_comment => {}
            '\\' if in_string => {
                chars.next();
            }
            '"' => in_string = !in_string,
            _ if in_string => {}
            '#' => in_comment = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.push(block[start..=i].trim().to_owned());
                    start = i + 1;
                }
            }
            _ => {}
        }
    }
    out.into_iter().filter(|d| !d.is_empty()).collect()
}

/// Every operation of every `graphql` block in the README and the docs.
fn documented_operations() -> anyhow::Result<Vec<(String, String)>> {
    let root = repository();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut operations = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, block) in graphql_blocks(&std::fs::read_to_string(&file)?) {
            let all = definitions(&block);
            let (fragments, ops): (Vec<String>, Vec<String>) =
                all.into_iter().partition(|d| d.starts_with("fragment "));
            for op in ops {
                let document = std::iter::once(op).chain(fragments.iter().cloned());
                operations.push((
                    format!("{name}:{line}"),
                    document.collect::<Vec<_>>().join("\n"),
                ));
            }
        }
    }
    Ok(operations)
}

#[test]
fn every_documented_operation_is_valid_against_the_supergraph() -> anyhow::Result<()> {
    let sdl = std::fs::read_to_string(repository().join("schema/supergraph.graphql"))?;
    let limits = Limits::default();
    let supergraph = Supergraph::load(&sdl, &limits)?;
    let operations = documented_operations()?;
    assert!(
        operations.len() >= 25,
        "found only {} examples",
        operations.len()
    );
    let mut failures = Vec::new();
    for (place, operation) in &operations {
        if let Err(errors) = supergraph.validate(operation, None, &limits) {
            let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
            failures.push(format!("{place}: {operation}\n  {}", messages.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "invalid examples:\n{}",
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_against_the_demo_portal() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let readme = std::fs::read_to_string(repository().join("README.md"))?;
    let mut ran = 0;
    for (line, block) in graphql_blocks(&readme) {
        for operation in definitions(&block) {
            // As the README says: acting as Carol, the IDE's starting identity.
            let response = portal.query_as_carol(&operation, json!({})).await?;
            assert!(
                response.get("errors").is_none() && !response["data"].is_null(),
                "README.md:{line}: {operation}\n{response}"
            );
            ran += 1;
        }
    }
    assert!(ran >= 2, "the README shows {ran} operations");
    portal.stop().await;
    Ok(())
}

#[test]
fn blocks_split_into_operations_outside_strings_and_comments() {
    let block = "mutation { a(x: \"{\") }  # one }\nquery { b { c } }\n";
    assert_eq!(
        definitions(block),
        ["mutation { a(x: \"{\") }", "# one }\nquery { b { c } }"]
    );
}

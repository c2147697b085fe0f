//! The crate's layers, checked: a module may use modules of its own layer or lower ones,
//! never a higher one, so the way a message travels is one-way (client → gateway → function
//! → protocol → chat → store / push). The test below reads every source file and fails the
//! build's tests when a `crate::` path points up. ARCHITECTURE.md describes the layers.

/// The layer of each module, lowest first. A module not listed is a test failure, so a new
/// module must be placed.
pub(crate) const LAYERS: &[(&str, &[&str])] = &[
    (
        "data",
        &["domain", "time", "error", "config", "api", "task"],
    ),
    ("protocol", &["socketio"]),
    (
        "infrastructure",
        &[
            "store",
            "push",
            "invoke",
            "sms",
            "secrets",
            "limits",
            "app",
            "telemetry",
            "experiments",
            "ws_event",
            "http",
            "lambda",
            "realtime",
            "realtime::connections",
            "realtime::events",
            "realtime::outbox",
            "realtime::polling",
            "realtime::recovery",
            "realtime::sio_env",
        ],
    ),
    (
        "chat",
        &[
            "auth",
            "users",
            "chat",
            "conversations",
            "realtime::fanout",
            "realtime::phantom",
            "realtime::service",
        ],
    ),
    (
        "adapters",
        &[
            "realtime::ws",
            "realtime::poll_routes",
            "scheduler",
            "layers",
        ],
    ),
];

/// The layer index of a module path (`realtime::ws`, `socketio`, ...).
pub(crate) fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, mods)| mods.contains(&module))
        .or_else(|| {
            // `socketio::codec` belongs to `socketio`.
            let top = module.split("::").next()?;
            (top != "realtime")
                .then(|| LAYERS.iter().position(|(_, mods)| mods.contains(&top)))
                .flatten()
        })
}

/// The module a `crate::` path names: its first segment, or the first two for `realtime`.
/// A braced group (`crate::realtime::{a, b}`) names each of its members.
pub(crate) fn modules_named(after_crate: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let top = ident(after_crate);
    // The crate root's re-exports (`crate::App`, `crate::Error`, `crate::Result`).
    match top.as_str() {
        "App" => return vec!["app".to_owned()],
        "Error" | "Result" => return vec!["error".to_owned()],
        _ => {}
    }
    if top != "realtime" {
        return vec![top];
    }
    let rest = after_crate[top.len()..].strip_prefix("::").unwrap_or("");
    if let Some(group) = rest.strip_prefix('{') {
        let inner = &group[..group.find('}').unwrap_or(group.len())];
        return inner
            .split(',')
            .map(|item| ident(item.trim()))
            .filter(|m| !m.is_empty())
            .map(|m| {
                if m == "self" {
                    "realtime".to_owned()
                } else {
                    format!("realtime::{m}")
                }
            })
            .collect();
    }
    let sub = ident(rest);
    if sub.is_empty() {
        vec!["realtime".to_owned()]
    } else {
        vec![format!("realtime::{sub}")]
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// `src/realtime/ws.rs` → `realtime::ws`; `src/socketio/mod.rs` → `socketio`.
    fn module_of(src: &Path, file: &Path) -> String {
        let rel = file.strip_prefix(src).expect("under src");
        let mut parts: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        parts.join("::")
    }

    #[test]
    fn paths_are_parsed() {
        assert_eq!(modules_named("app::App;"), vec!["app"]);
        assert_eq!(modules_named("realtime::ws::x"), vec!["realtime::ws"]);
        assert_eq!(
            modules_named("realtime::{self, connections, fanout::Due};"),
            vec!["realtime", "realtime::connections", "realtime::fanout"]
        );
        assert_eq!(layer_of("socketio::runtime"), layer_of("socketio"));
        assert!(layer_of("realtime::ws") > layer_of("realtime::service"));
    }

    #[test]
    fn no_module_uses_a_higher_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut violations = Vec::new();
        for file in files {
            let module = module_of(&src, &file);
            // The crate root re-exports; this file names paths in its own tests.
            if module == "lib" || module == "layers" {
                continue;
            }
            let Some(own) = layer_of(&module) else {
                violations.push(format!("{module} is in no layer (add it to LAYERS)"));
                continue;
            };
            let text = std::fs::read_to_string(&file).expect("readable");
            for (at, _) in text.match_indices("crate::") {
                for used in modules_named(&text[at + "crate::".len()..]) {
                    match layer_of(&used) {
                        Some(l) if l > own => violations.push(format!(
                            "{module} ({}) uses {used} ({})",
                            LAYERS[own].0, LAYERS[l].0
                        )),
                        Some(_) => {}
                        None => violations.push(format!("{module} uses unknown module {used}")),
                    }
                }
            }
        }
        assert!(
            violations.is_empty(),
            "layer violations:\n{}",
            violations.join("\n")
        );
    }
}

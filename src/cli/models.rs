//! `kimi-vault models`: the models the account can use, with their thinking mode, effort levels,
//! tool use and protocol. Every string from the server is made safe for a terminal.

use kimi_vault::api::Model;
use kimi_vault::sanitize::for_terminal;
use serde_json::json;

use crate::cli::failure::{CmdResult, exit};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

fn capabilities(m: &Model) -> Vec<&'static str> {
    [
        (m.supports_reasoning, "reasoning"),
        (m.supports_image_in, "image input"),
        (m.supports_video_in, "video input"),
        (m.supports_tool_use, "tool use"),
    ]
    .into_iter()
    .filter(|(on, _)| *on == Some(true))
    .map(|(_, name)| name)
    .collect()
}

/// `supports_thinking_type` in words: "always" (only), "off" (no), "optional" (both).
fn thinking_words(m: &Model) -> String {
    match m.thinking.as_deref() {
        Some("only") => "always".into(),
        Some("no") => "no".into(),
        Some("both") => "optional".into(),
        Some(other) => for_terminal(other).into_owned(),
        None => "-".into(),
    }
}

/// "low, medium*, high" (* the default), or "-".
fn efforts_words(m: &Model) -> String {
    let Some(e) = &m.efforts else {
        return "-".into();
    };
    if e.support == Some(false) {
        return "no".into();
    }
    let levels: Vec<String> = e
        .valid
        .iter()
        .map(|v| {
            let mark = if e.default.as_deref() == Some(v) {
                "*"
            } else {
                ""
            };
            format!("{}{mark}", for_terminal(v))
        })
        .collect();
    match (levels.is_empty(), &e.default) {
        (false, _) => levels.join(", "),
        (true, Some(d)) => format!("{}*", for_terminal(d)),
        (true, None) => "yes".into(),
    }
}

/// Prints the model list.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let models = ctx.session.models()?;
    if ctx.json {
        output::json_line(&json!(
            models
                .iter()
                .map(|m| json!({
                    "id": m.id,
                    "display_name": m.display_name,
                    "context_length": m.context_length,
                    "supports_reasoning": m.supports_reasoning,
                    "supports_image_in": m.supports_image_in,
                    "supports_video_in": m.supports_video_in,
                    "supports_tool_use": m.supports_tool_use,
                    "supports_thinking_type": m.thinking,
                    "think_efforts": m.efforts.as_ref().map(|e| json!({
                        "support": e.support,
                        "valid_efforts": e.valid,
                        "default_effort": e.default,
                    })),
                    "protocol": m.protocol,
                    "capabilities": capabilities(m),
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(exit::OK);
    }
    if models.is_empty() {
        outln!("Kimi listed no model for profile '{}'.", ctx.profile());
        return Ok(exit::OK);
    }
    let rows: Vec<[String; 7]> = models
        .iter()
        .map(|m| {
            let caps = capabilities(m);
            [
                for_terminal(&m.id).into_owned(),
                m.display_name
                    .as_deref()
                    .map(|n| for_terminal(n).into_owned())
                    .unwrap_or_else(|| "-".into()),
                m.context_length
                    .map(|c| format!("{c} tokens"))
                    .unwrap_or_else(|| "-".into()),
                thinking_words(m),
                efforts_words(m),
                m.protocol
                    .as_deref()
                    .map(|p| for_terminal(p).into_owned())
                    .unwrap_or_else(|| "-".into()),
                if caps.is_empty() {
                    "-".into()
                } else {
                    caps.join(", ")
                },
            ]
        })
        .collect();
    output::table(
        [
            "ID",
            "NAME",
            "CONTEXT",
            "THINKING",
            "EFFORT (* default)",
            "PROTOCOL",
            "CAPABILITIES",
        ],
        &rows,
    );
    Ok(exit::OK)
}

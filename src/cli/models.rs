//! `kimi-vault models`: the models the account can use.

use kimi_vault::api::Model;
use serde_json::json;

use crate::cli::failure::{CmdResult, exit};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

fn capabilities(m: &Model) -> Vec<&'static str> {
    [
        (m.supports_reasoning, "reasoning"),
        (m.supports_image_in, "image input"),
        (m.supports_video_in, "video input"),
    ]
    .into_iter()
    .filter(|(on, _)| *on == Some(true))
    .map(|(_, name)| name)
    .collect()
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
    let rows: Vec<[String; 4]> = models
        .iter()
        .map(|m| {
            let caps = capabilities(m);
            [
                m.id.clone(),
                m.display_name.clone().unwrap_or_else(|| "-".into()),
                m.context_length
                    .map(|c| format!("{c} tokens"))
                    .unwrap_or_else(|| "-".into()),
                if caps.is_empty() {
                    "-".into()
                } else {
                    caps.join(", ")
                },
            ]
        })
        .collect();
    output::table(["ID", "NAME", "CONTEXT", "CAPABILITIES"], &rows);
    Ok(exit::OK)
}

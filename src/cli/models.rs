//! `kimi-vault models`: the models the account can use, with their thinking mode, effort levels,
//! tool use and protocol. Every string from the server is made safe for a terminal.

use kimi_vault::api::Model;
use kimi_vault::sanitize::for_terminal;
use serde::Serialize;

use crate::cli::failure::{CmdResult, exit};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

/// `think_efforts` of a model.
#[derive(Serialize)]
struct EffortsJson<'a> {
    support: Option<bool>,
    valid_efforts: &'a [String],
    default_effort: Option<&'a str>,
}

/// One model: an entry of `models --json`, and a row of the table people get. Values are
/// exactly as Kimi sent them; the table escapes them.
#[derive(Serialize)]
struct ModelJson<'a> {
    id: &'a str,
    display_name: Option<&'a str>,
    context_length: Option<u64>,
    supports_reasoning: Option<bool>,
    supports_image_in: Option<bool>,
    supports_video_in: Option<bool>,
    supports_tool_use: Option<bool>,
    supports_thinking_type: Option<&'a str>,
    think_efforts: Option<EffortsJson<'a>>,
    protocol: Option<&'a str>,
    capabilities: Vec<&'static str>,
}

impl<'a> ModelJson<'a> {
    fn new(m: &'a Model) -> Self {
        ModelJson {
            id: &m.id,
            display_name: m.display_name.as_deref(),
            context_length: m.context_length,
            supports_reasoning: m.supports_reasoning,
            supports_image_in: m.supports_image_in,
            supports_video_in: m.supports_video_in,
            supports_tool_use: m.supports_tool_use,
            supports_thinking_type: m.thinking.as_deref(),
            think_efforts: m.efforts.as_ref().map(|e| EffortsJson {
                support: e.support,
                valid_efforts: &e.valid,
                default_effort: e.default.as_deref(),
            }),
            protocol: m.protocol.as_deref(),
            capabilities: capabilities(m),
        }
    }

    /// The table's row.
    fn row(&self) -> [String; 7] {
        let text = |v: Option<&str>| v.map_or_else(|| "-".into(), |v| for_terminal(v).into_owned());
        [
            for_terminal(self.id).into_owned(),
            text(self.display_name),
            self.context_length
                .map_or_else(|| "-".into(), |c| format!("{c} tokens")),
            self.thinking_words(),
            self.efforts_words(),
            text(self.protocol),
            if self.capabilities.is_empty() {
                "-".into()
            } else {
                self.capabilities.join(", ")
            },
        ]
    }

    /// `supports_thinking_type` in words: "always" (only), "no" (no), "optional" (both).
    fn thinking_words(&self) -> String {
        match self.supports_thinking_type {
            Some("only") => "always".into(),
            Some("no") => "no".into(),
            Some("both") => "optional".into(),
            Some(other) => for_terminal(other).into_owned(),
            None => "-".into(),
        }
    }

    /// "low, medium*, high" (* the default), or "-".
    fn efforts_words(&self) -> String {
        let Some(e) = &self.think_efforts else {
            return "-".into();
        };
        if e.support == Some(false) {
            return "no".into();
        }
        let levels: Vec<String> = e
            .valid_efforts
            .iter()
            .map(|v| {
                let mark = if e.default_effort == Some(v.as_str()) {
                    "*"
                } else {
                    ""
                };
                format!("{}{mark}", for_terminal(v))
            })
            .collect();
        match (levels.is_empty(), e.default_effort) {
            (false, _) => levels.join(", "),
            (true, Some(d)) => format!("{}*", for_terminal(d)),
            (true, None) => "yes".into(),
        }
    }
}

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

/// Prints the model list: `--json` an array of [`ModelJson`], people a table of the same.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let models = ctx.session.models()?;
    let list: Vec<ModelJson<'_>> = models.iter().map(ModelJson::new).collect();
    if ctx.json {
        output::json_line(&list);
        return Ok(exit::OK);
    }
    if list.is_empty() {
        outln!("Kimi listed no model for profile '{}'.", ctx.profile());
        return Ok(exit::OK);
    }
    let rows: Vec<[String; 7]> = list.iter().map(ModelJson::row).collect();
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

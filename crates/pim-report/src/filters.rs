//! The tera filters our templates use. Registered on every [`crate::Renderer`], so custom
//! templates (`--template`) have them too.

use std::collections::HashMap;

use tera::{Tera, Value};

use crate::escape::{self, CELL_MAX_CHARS, MD_MAX_CHARS, MERMAID_MAX_CHARS};
use crate::format;

type Args = HashMap<String, Value>;

/// Registers `md`, `md_cell`, `md_code`, `mermaid_label`, `utc`, `utc_compact` and `duration`.
pub(crate) fn register(tera: &mut Tera) {
    tera.register_filter("md", |v: &Value, args: &Args| {
        Ok(text_filter(v, |s| {
            escape::md(s, max_arg(args, MD_MAX_CHARS))
        }))
    });
    tera.register_filter("md_cell", |v: &Value, args: &Args| {
        Ok(text_filter(v, |s| {
            escape::md_cell(s, max_arg(args, CELL_MAX_CHARS))
        }))
    });
    tera.register_filter("md_code", |v: &Value, args: &Args| {
        let cell = matches!(args.get("cell"), Some(Value::Bool(true)));
        let default = if cell { CELL_MAX_CHARS } else { MD_MAX_CHARS };
        Ok(text_filter(v, |s| {
            escape::md_code(s, max_arg(args, default), cell)
        }))
    });
    tera.register_filter("mermaid_label", |v: &Value, args: &Args| {
        Ok(text_filter(v, |s| {
            escape::mermaid_label(s, max_arg(args, MERMAID_MAX_CHARS))
        }))
    });
    tera.register_filter("utc", |v: &Value, _: &Args| {
        Ok(time_filter(v, format::rfc3339))
    });
    tera.register_filter("utc_compact", |v: &Value, _: &Args| {
        Ok(time_filter(v, format::compact))
    });
    tera.register_filter("duration", |v: &Value, _: &Args| {
        Ok(match v.as_f64() {
            // Saturating float-to-int cast: any number is fine, including NaN (0).
            #[allow(clippy::cast_possible_truncation)]
            Some(secs) => Value::String(format::duration(time::Duration::seconds(secs as i64))),
            None => text_filter(v, |s| escape::md(s, MD_MAX_CHARS)),
        })
    });
}

/// Applies `f` to the text of any value: strings as they are, numbers and booleans as written,
/// arrays and objects as JSON; `null` (a missing optional field) becomes an em dash.
fn text_filter(v: &Value, f: impl Fn(&str) -> String) -> Value {
    match v {
        Value::Null => Value::String("—".to_owned()),
        Value::String(s) => Value::String(f(s)),
        other => Value::String(f(&other.to_string())),
    }
}

/// Formats an RFC 3339 string; anything else is escaped as text so a bad value stays visible.
fn time_filter(v: &Value, f: fn(time::OffsetDateTime) -> String) -> Value {
    match v {
        Value::String(s) => match pim_domain::timestamp::parse_timestamp(s) {
            Ok(t) => Value::String(f(t)),
            Err(_) => Value::String(escape::md(s, CELL_MAX_CHARS)),
        },
        other => text_filter(other, |s| escape::md(s, CELL_MAX_CHARS)),
    }
}

fn max_arg(args: &Args, default: usize) -> usize {
    args.get("max")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tera::Context;

    fn render(template: &str, value: Value) -> String {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        register(&mut tera);
        let mut ctx = Context::new();
        ctx.insert("v", &value);
        tera.render_str(template, &ctx).unwrap()
    }

    #[test]
    fn filters_escape_and_format() {
        assert_eq!(render("{{ v | md }}", "<b>".into()), r"\<b\>");
        assert_eq!(
            render("{{ v | md(max=2) }}", "abcd".into()),
            r"ab…\(2 more chars\)"
        );
        assert_eq!(render("{{ v | md_cell }}", Value::Null), "—");
        assert_eq!(
            render("{{ v | md_code(cell=true) }}", "a|b".into()),
            r"a\|b"
        );
        assert_eq!(render("{{ v | mermaid_label }}", "a:b".into()), "a b");
        assert_eq!(
            render("{{ v | utc_compact }}", "2026-11-20T09:13:58Z".into()),
            "2026-11-20 09:13 UTC"
        );
        assert_eq!(render("{{ v | utc }}", "<x>".into()), r"\<x\>");
        assert_eq!(render("{{ v | duration }}", 11_520.into()), "3h 12m");
        assert_eq!(render("{{ v | md }}", 42.into()), "42");
    }
}

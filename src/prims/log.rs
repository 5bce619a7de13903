//! `rewind.log`: structured log lines from Lua into tracing (human or JSON, redacted on the way out).

use mlua::{Lua, Table, Value};

fn fields_text(lua: &Lua, fields: Option<Table>) -> mlua::Result<String> {
    let Some(fields) = fields else {
        return Ok(String::new());
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in fields.pairs::<String, Value>() {
        let (k, v) = pair?;
        let text = match &v {
            // Values are redacted before quoting: quoting escapes a secret into a form the log writer
            // (which redacts again) would not recognise once more escaped as JSON.
            Value::String(s) => {
                let s = crate::base::redact::redact(&s.to_string_lossy());
                if s.contains(' ') || s.is_empty() {
                    format!("{s:?}")
                } else {
                    s
                }
            }
            Value::Table(_) => {
                let mut j = crate::base::values::from_lua(lua, &v)?;
                crate::base::redact::redact_json(&mut j);
                serde_json::to_string(&j).unwrap_or_default()
            }
            other => other.to_string()?,
        };
        pairs.push((k, text));
    }
    pairs.sort();
    Ok(pairs
        .into_iter()
        .map(|(k, v)| format!(" {k}={v}"))
        .collect())
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    macro_rules! level {
        ($name:literal, $mac:ident) => {
            t.set(
                $name,
                lua.create_function(|lua, (msg, fields): (String, Option<Table>)| {
                    let f = fields_text(lua, fields)?;
                    tracing::$mac!(target: "script", "{msg}{f}");
                    Ok(())
                })?,
            )?;
        };
    }
    level!("debug", debug);
    level!("info", info);
    level!("warn", warn);
    level!("error", error);
    Ok(t)
}

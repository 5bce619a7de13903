//! Declared params: parsing the declaration, merging the sources (command line, params file,
//! environment, defaults) and checking types before `run` starts.

use std::collections::BTreeSet;

use mlua::{Table, Value};
use serde_json::{Map, Value as Json};

use super::search::close_names;
use crate::base::duration::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    String,
    Number,
    Integer,
    Boolean,
    Duration,
    Date,
    List,
    Table,
}

impl ParamType {
    const ALL: [(&'static str, ParamType); 8] = [
        ("string", ParamType::String),
        ("number", ParamType::Number),
        ("integer", ParamType::Integer),
        ("boolean", ParamType::Boolean),
        ("duration", ParamType::Duration),
        ("date", ParamType::Date),
        ("list", ParamType::List),
        ("table", ParamType::Table),
    ];

    pub fn parse(s: &str) -> Option<ParamType> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub ty: ParamType,
    pub required: bool,
    pub default: Option<Json>,
    pub doc: String,
    pub secret: bool,
    /// Environment variable read when the param is not given (e.g. `PGPASSWORD`).
    pub env: Option<String>,
    /// Allowed values, for strings.
    pub choices: Vec<String>,
    /// Other accepted names (a source document's spelling, e.g. `startDate` for `start_date`).
    pub aliases: Vec<String>,
}

/// Reads `params = { name = { type=, required=, default=, doc=, secret=, env=, choices=, aliases= } }`.
pub fn parse_specs(lua: &mlua::Lua, params: Option<Table>) -> Result<Vec<ParamSpec>, String> {
    let mut out = Vec::new();
    let Some(params) = params else { return Ok(out) };
    for pair in params.pairs::<String, Value>() {
        let (name, decl) = pair.map_err(|e| format!("params: {e}"))?;
        let Value::Table(decl) = decl else {
            return Err(format!(
                "params.{name}: expected a table like {{type = \"string\", doc = \"...\"}}"
            ));
        };
        let ty_name: String = decl
            .get::<Option<String>>("type")
            .map_err(|e| format!("params.{name}.type: {e}"))?
            .unwrap_or_else(|| "string".into());
        let ty = ParamType::parse(&ty_name).ok_or_else(|| {
            format!("params.{name}: unknown type '{ty_name}' (one of string, number, integer, boolean, duration, date, list, table)")
        })?;
        let default: Value = decl
            .get("default")
            .map_err(|e| format!("params.{name}.default: {e}"))?;
        let default = match default {
            Value::Nil => None,
            v => Some(
                crate::base::values::from_lua(lua, &v)
                    .map_err(|e| format!("params.{name}.default: {e}"))?,
            ),
        };
        let get_bool = |k: &str| {
            decl.get::<Option<bool>>(k)
                .map(|b| b.unwrap_or(false))
                .map_err(|e| format!("params.{name}.{k}: {e}"))
        };
        let choices: Option<Vec<String>> = decl
            .get("choices")
            .map_err(|e| format!("params.{name}.choices: {e}"))?;
        let aliases: Option<Vec<String>> = decl
            .get("aliases")
            .map_err(|e| format!("params.{name}.aliases: {e}"))?;
        out.push(ParamSpec {
            aliases: aliases.unwrap_or_default(),
            ty,
            required: get_bool("required")?,
            secret: get_bool("secret")?,
            default,
            doc: decl
                .get::<Option<String>>("doc")
                .map_err(|e| format!("params.{name}.doc: {e}"))?
                .unwrap_or_default(),
            env: decl
                .get::<Option<String>>("env")
                .map_err(|e| format!("params.{name}.env: {e}"))?,
            choices: choices.unwrap_or_default(),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A raw value before type checking: text from the command line or environment, or a parsed file value.
#[derive(Clone, Debug)]
pub enum Raw {
    Text(String),
    Json(Json),
}

/// Merges the sources and checks every param. Precedence: command line, params file, environment,
/// default. Every problem is reported at once.
pub fn resolve(
    specs: &[ParamSpec],
    cli: &[(String, String)],
    file: Option<&Map<String, Json>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Map<String, Json>, Vec<String>> {
    let mut errors = Vec::new();
    let mut declared: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let mut given: Vec<(String, Raw, String)> = Vec::new();
    // An alias counts as its param's name; the same param given twice in one source is an error.
    let canonical = |k: &str| -> String {
        specs
            .iter()
            .find(|s| s.aliases.iter().any(|a| a == k))
            .map_or_else(|| k.to_string(), |s| s.name.clone())
    };
    // (name, spelling, source) of what was given: `a=1 a=2` keeps the last as always, but a param given
    // under two names in one source (start_date and startDate) is a mistake worth naming.
    let mut spelled: Vec<(String, String, String)> = Vec::new();
    let mut add = |given: &mut Vec<(String, Raw, String)>, k: &str, raw: Raw, source: &str| {
        let name = canonical(k);
        if let Some((_, other, _)) = spelled
            .iter()
            .find(|(n, sp, src)| *n == name && sp != k && src == source)
        {
            errors.push(format!(
                "param '{name}' is given twice in the {source}, as '{other}' and as '{k}'"
            ));
        }
        spelled.push((name.clone(), k.to_string(), source.to_string()));
        given.retain(|(g, _, _)| *g != name);
        given.push((name, raw, source.to_string()));
    };

    if let Some(file) = file {
        let mut flat = Vec::new();
        let with_aliases: BTreeSet<&str> = specs
            .iter()
            .flat_map(|s| s.aliases.iter().map(String::as_str))
            .chain(declared.iter().copied())
            .collect();
        flatten("", file, &with_aliases, &mut flat);
        for (k, v) in flat {
            add(&mut given, &k, Raw::Json(v), "params file");
        }
    }
    for (k, v) in cli {
        add(&mut given, k, Raw::Text(v.clone()), "command line");
    }
    for s in specs {
        declared.extend(s.aliases.iter().map(String::as_str));
    }
    for (k, _, source) in &given {
        if !declared.contains(k.as_str()) {
            let close = close_names(k, declared.iter().copied());
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(" (did you mean '{}'?)", close.join("', '"))
            };
            let known = if declared.is_empty() {
                "this script takes no params".to_string()
            } else {
                format!(
                    "known: {}",
                    declared.iter().copied().collect::<Vec<_>>().join(", ")
                )
            };
            errors.push(format!(
                "unknown param '{k}' from the {source}{hint}; {known}"
            ));
        }
    }

    let mut out = Map::new();
    for spec in specs {
        let raw = given
            .iter()
            .rev()
            .find(|(k, _, _)| *k == spec.name)
            .map(|(_, v, src)| (v.clone(), src.clone()))
            .or_else(|| {
                spec.env.as_ref().and_then(|var| {
                    env(var).map(|v| (Raw::Text(v), format!("environment variable {var}")))
                })
            });
        let value = match raw {
            Some((raw, source)) => match convert(spec, raw) {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(format!("param '{}' (from the {source}): {e}", spec.name));
                    continue;
                }
            },
            // Defaults go through the same conversion: `default = "10m"` reaches the script as 600.
            None => match spec.default.clone().map(|d| convert(spec, Raw::Json(d))) {
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    errors.push(format!(
                        "param '{}': bad default in the script: {e}",
                        spec.name
                    ));
                    continue;
                }
                None => None,
            },
        };
        match value {
            Some(v) => {
                if spec.secret {
                    match &v {
                        Json::String(s) => crate::base::redact::register(s),
                        Json::Number(n) => crate::base::redact::register(&n.to_string()),
                        _ => {}
                    }
                }
                out.insert(spec.name.clone(), v);
            }
            None if spec.required => {
                let env_hint = spec
                    .env
                    .as_ref()
                    .map(|v| format!(" or set {v}"))
                    .unwrap_or_default();
                errors.push(format!(
                    "missing required param '{}' ({}{}): pass {}=...{env_hint}",
                    spec.name,
                    spec.ty.name(),
                    if spec.doc.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", spec.doc)
                    },
                    spec.name
                ));
            }
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Nested mappings in a params file become dotted names (`s3: {bucket: x}` → `s3.bucket`) unless the
/// script declares the outer name itself.
fn flatten(
    prefix: &str,
    map: &Map<String, Json>,
    declared: &BTreeSet<&str>,
    out: &mut Vec<(String, Json)>,
) {
    for (k, v) in map {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Json::Object(inner)
                if !declared.contains(name.as_str())
                    && declared.iter().any(|d| d.starts_with(&format!("{name}."))) =>
            {
                flatten(&name, inner, declared, out)
            }
            // `key:` with no value (as settings files leave optional keys) means not given.
            Json::Null => {}
            _ => out.push((name, v.clone())),
        }
    }
}

fn convert(spec: &ParamSpec, raw: Raw) -> Result<Json, String> {
    let describe = |r: &Raw| match r {
        _ if spec.secret => "the given value".to_string(),
        Raw::Text(t) => format!("'{t}'"),
        Raw::Json(j) => format!("{j}"),
    };
    let bad = |r: &Raw, want: &str| format!("expected {want}, got {}", describe(r));
    let v = match spec.ty {
        ParamType::String => match &raw {
            Raw::Text(t) => Json::String(t.clone()),
            Raw::Json(Json::String(s)) => Json::String(s.clone()),
            Raw::Json(j @ (Json::Number(_) | Json::Bool(_))) => Json::String(j.to_string()),
            r => return Err(bad(r, "a string")),
        },
        ParamType::Number => match &raw {
            Raw::Text(t) => t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Json::from)
                .ok_or_else(|| bad(&raw, "a number"))?,
            Raw::Json(j @ Json::Number(_)) => j.clone(),
            r => return Err(bad(r, "a number")),
        },
        ParamType::Integer => match &raw {
            Raw::Text(t) => t
                .trim()
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| bad(&raw, "an integer"))?,
            Raw::Json(Json::Number(n)) if n.is_i64() => Json::Number(n.clone()),
            Raw::Json(Json::Number(n))
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15) =>
            {
                Json::from(n.as_f64().unwrap_or(0.0) as i64)
            }
            r => return Err(bad(r, "an integer")),
        },
        ParamType::Boolean => match &raw {
            Raw::Json(Json::Bool(b)) => Json::Bool(*b),
            Raw::Text(t) | Raw::Json(Json::String(t)) => {
                match t.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Json::Bool(true),
                    "false" | "no" | "off" | "0" => Json::Bool(false),
                    _ => return Err(bad(&raw, "true or false")),
                }
            }
            r => return Err(bad(r, "true or false")),
        },
        ParamType::Duration => match &raw {
            Raw::Json(Json::Number(n)) => Json::from(n.as_f64().unwrap_or(0.0)),
            Raw::Text(t) | Raw::Json(Json::String(t)) => {
                Json::from(parse_duration(t).map_err(|e| format!("{e}, got {}", describe(&raw)))?)
            }
            r => return Err(bad(r, "a duration like 10m, 2h or 60d")),
        },
        ParamType::Date => match &raw {
            Raw::Text(t) | Raw::Json(Json::String(t)) => {
                chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                    .map_err(|_| bad(&raw, "a date like 2019-12-01"))?;
                Json::String(t.trim().to_string())
            }
            r => return Err(bad(r, "a date like 2019-12-01")),
        },
        ParamType::List => match &raw {
            Raw::Text(t) | Raw::Json(Json::String(t)) => Json::Array(
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Json::String(s.to_string()))
                    .collect(),
            ),
            Raw::Json(Json::Array(a)) => Json::Array(a.clone()),
            r => return Err(bad(r, "a list (a,b,c)")),
        },
        ParamType::Table => match &raw {
            Raw::Json(j @ (Json::Object(_) | Json::Array(_))) => j.clone(),
            Raw::Text(t) => {
                let parsed: Json = serde_norway::from_str(t)
                    .map_err(|e| format!("expected a JSON or YAML table: {e}"))?;
                if !(parsed.is_object() || parsed.is_array()) {
                    return Err(bad(&raw, "a table"));
                }
                parsed
            }
            r => return Err(bad(r, "a table")),
        },
    };
    if !spec.choices.is_empty()
        && let Json::String(s) = &v
        && !spec.choices.iter().any(|c| c == s)
    {
        return Err(format!(
            "expected one of {}, got '{s}'",
            spec.choices.join(", ")
        ));
    }
    Ok(v)
}

/// The params with secrets removed: what manifests and results may record.
pub fn public(specs: &[ParamSpec], values: &Map<String, Json>) -> Map<String, Json> {
    values
        .iter()
        .filter(|(k, _)| !specs.iter().any(|s| s.secret && &s.name == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, ty: ParamType) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            ty,
            required: false,
            default: None,
            doc: String::new(),
            secret: false,
            env: None,
            choices: vec![],
            aliases: vec![],
        }
    }

    #[test]
    fn aliases_name_the_same_param() {
        let mut start = spec("start_date", ParamType::Date);
        start.aliases = vec!["startDate".into()];
        let specs = vec![start];
        let file: Map<String, Json> =
            serde_json::from_str(r#"{"startDate": "2019-12-01"}"#).unwrap();
        let got = resolve(&specs, &[], Some(&file), &|_| None).unwrap();
        assert_eq!(got["start_date"], "2019-12-01");
        // The command line still wins over the file, whichever name it uses.
        let cli = [("start_date".to_string(), "2019-12-03".to_string())];
        let got = resolve(&specs, &cli, Some(&file), &|_| None).unwrap();
        assert_eq!(got["start_date"], "2019-12-03");
        let twice = [
            ("start_date".to_string(), "2019-12-03".to_string()),
            ("startDate".to_string(), "2019-12-04".to_string()),
        ];
        let errs = resolve(&specs, &twice, None, &|_| None).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("given twice")), "{errs:?}");
        // The same spelling twice: the last one wins, as it always did.
        let again = [
            ("startDate".to_string(), "2019-12-03".to_string()),
            ("startDate".to_string(), "2019-12-05".to_string()),
        ];
        let got = resolve(&specs, &again, None, &|_| None).unwrap();
        assert_eq!(got["start_date"], "2019-12-05");
    }

    #[test]
    fn types_unknowns_and_missing() {
        let mut req = spec("from", ParamType::String);
        req.required = true;
        let specs = vec![
            req,
            spec("n", ParamType::Integer),
            spec("d", ParamType::Duration),
            spec("s3.bucket", ParamType::String),
        ];
        let errs = resolve(
            &specs,
            &[("frm".into(), "x".into()), ("n".into(), "1.5".into())],
            None,
            &|_| None,
        )
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("unknown param 'frm'") && e.contains("did you mean 'from'")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("param 'n'") && e.contains("integer")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("missing required param 'from'")),
            "{errs:?}"
        );
        let file: Map<String, Json> =
            serde_json::from_str(r#"{"s3":{"bucket":"b"},"d":"10m"}"#).unwrap();
        let ok = resolve(&specs, &[("from".into(), "x".into())], Some(&file), &|_| {
            None
        })
        .unwrap();
        assert_eq!(ok["s3.bucket"], "b");
        assert_eq!(ok["d"], 600.0);
    }
}

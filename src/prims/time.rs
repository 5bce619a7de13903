//! `rewind.time`: times are numbers of seconds since the Unix epoch (UTC), so they compare and subtract
//! like numbers; formatting and parsing go through chrono.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use mlua::{Lua, Table, Value};

fn to_dt(t: f64) -> mlua::Result<DateTime<Utc>> {
    let secs = t.floor() as i64;
    let nanos = ((t - t.floor()) * 1e9).round().min(999_999_999.0) as u32;
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| mlua::Error::runtime(format!("time {t} is out of range")))
}

fn from_dt<Tz: TimeZone>(dt: &DateTime<Tz>) -> f64 {
    dt.timestamp() as f64 + dt.timestamp_subsec_nanos() as f64 / 1e9
}

fn parse_tz(tz: Option<String>) -> mlua::Result<Option<chrono_tz::Tz>> {
    match tz.as_deref() {
        None | Some("UTC") | Some("utc") | Some("Z") => Ok(None),
        Some(name) => name.parse::<chrono_tz::Tz>().map(Some).map_err(|_| {
            mlua::Error::runtime(format!(
                "unknown timezone '{name}' (use an IANA name such as Europe/Berlin)"
            ))
        }),
    }
}

/// Parses RFC 3339, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS` (UTC), or a strftime format when given.
pub fn parse(text: &str, fmt: Option<&str>) -> Result<f64, String> {
    let s = text.trim();
    if let Some(fmt) = fmt {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(from_dt(&dt.and_utc()));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Ok(from_dt(
                &d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            ));
        }
        return Err(format!("cannot parse '{s}' with format '{fmt}'"));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(from_dt(&dt));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y%m%dT%H%M%S",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(from_dt(&dt.and_utc()));
        }
    }
    for f in ["%Y-%m-%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return Ok(from_dt(
                &d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            ));
        }
    }
    Err(format!(
        "cannot parse '{s}' as a time (expected RFC 3339 like 2019-12-01T10:00:00Z, or 2019-12-01)"
    ))
}

pub fn format(t: f64, fmt: Option<&str>, tz: Option<chrono_tz::Tz>) -> mlua::Result<String> {
    let dt = to_dt(t)?;
    // Whole seconds print as 2019-12-01T10:00:00Z; fractions to the millisecond.
    let precision = if t.fract() == 0.0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Millis
    };
    Ok(match (fmt, tz) {
        (None, None) => dt.to_rfc3339_opts(precision, true),
        (None, Some(tz)) => dt.with_timezone(&tz).to_rfc3339_opts(precision, true),
        (Some(f), None) => dt.format(f).to_string(),
        (Some(f), Some(tz)) => dt.with_timezone(&tz).format(f).to_string(),
    })
}

fn parts<T: Datelike + Timelike>(lua: &Lua, d: &T) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("year", d.year())?;
    t.set("month", d.month())?;
    t.set("day", d.day())?;
    t.set("hour", d.hour())?;
    t.set("minute", d.minute())?;
    t.set("second", d.second())?;
    t.set("weekday", d.weekday().number_from_monday())?;
    t.set("yday", d.ordinal())?;
    let w = d.iso_week();
    t.set("iso_year", w.year())?;
    t.set("iso_week", w.week())?;
    Ok(t)
}

pub fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "now",
        lua.create_function(|_, ()| Ok(from_dt(&Utc::now())))?,
    )?;
    t.set(
        "monotonic",
        lua.create_function(|_, ()| {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            Ok(START
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_secs_f64())
        })?,
    )?;
    // format(t, fmt?, tz?): RFC 3339 by default; strftime otherwise (e.g. "%Y%m%d", "%H%M%S").
    t.set(
        "format",
        lua.create_function(|_, (t, fmt, tz): (f64, Option<String>, Option<String>)| {
            format(t, fmt.as_deref(), parse_tz(tz)?)
        })?,
    )?;
    t.set(
        "parse",
        lua.create_function(|_, (s, fmt): (String, Option<String>)| {
            parse(&s, fmt.as_deref()).map_err(mlua::Error::runtime)
        })?,
    )?;
    // date(t): "YYYY-MM-DD" in UTC.
    t.set(
        "date",
        lua.create_function(|_, t: f64| Ok(to_dt(t)?.format("%Y-%m-%d").to_string()))?,
    )?;
    // parts(t, tz?): calendar fields, for bucketing (retention) and naming.
    t.set(
        "parts",
        lua.create_function(|lua, (t, tz): (f64, Option<String>)| {
            let dt = to_dt(t)?;
            match parse_tz(tz)? {
                None => parts(lua, &dt),
                Some(tz) => parts(lua, &dt.with_timezone(&tz)),
            }
        })?,
    )?;
    // duration("10m") → seconds; numbers pass through.
    t.set(
        "duration",
        lua.create_function(|_, v: Value| match v {
            Value::Integer(i) => Ok(i as f64),
            Value::Number(n) => Ok(n),
            Value::String(s) => {
                crate::base::duration::parse_duration(&s.to_str()?).map_err(mlua::Error::runtime)
            }
            other => Err(mlua::Error::runtime(format!(
                "duration: expected a string like 10m, got {}",
                other.type_name()
            ))),
        })?,
    )?;
    t.set(
        "format_duration",
        lua.create_function(|_, secs: f64| {
            let d = std::time::Duration::from_secs_f64(secs.max(0.0));
            let d = if d.as_secs() >= 1 {
                std::time::Duration::from_secs(d.as_secs())
            } else {
                std::time::Duration::from_millis(d.as_millis() as u64)
            };
            Ok(humantime::format_duration(d).to_string())
        })?,
    )?;
    // days(from, to): iterator over "YYYY-MM-DD" strings, both ends included.
    t.set(
        "days",
        lua.create_function(|lua, (from, to): (String, String)| {
            let parse_day = |s: &str| {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
                    mlua::Error::runtime(format!("days: '{s}' is not a date like 2019-12-01"))
                })
            };
            let (a, b) = (parse_day(&from)?, parse_day(&to)?);
            if b < a {
                return Err(mlua::Error::runtime(format!(
                    "days: end {to} is before start {from}"
                )));
            }
            let mut cur = Some(a);
            lua.create_function_mut(move |_, ()| {
                let Some(d) = cur else { return Ok(None) };
                cur = d.succ_opt().filter(|n| *n <= b);
                Ok(Some(d.format("%Y-%m-%d").to_string()))
            })
        })?,
    )?;
    Ok(t)
}

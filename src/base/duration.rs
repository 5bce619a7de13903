//! Durations as users write them (`90s`, `10m`, `1h30m`, `60d`, or plain seconds).

/// `10m`, `1h30m`, `60d`, `2w`, or plain seconds; returns seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>()
        && secs >= 0.0
        && secs.is_finite()
    {
        return Ok(secs);
    }
    humantime::parse_duration(t)
        .map(|d| d.as_secs_f64())
        .map_err(|_| "expected a duration like 90s, 10m, 2h, 60d or 1h30m".to_string())
}

//! Schedules: cron expressions (5 or 6 fields, croner) in a timezone (chrono-tz, default UTC), or simple
//! intervals (`every 10m`, on multiples of the period since the epoch), plus an optional random jitter added to each run time.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::CronParser;

#[derive(Clone, Debug)]
pub enum Schedule {
    Cron {
        cron: Box<Cron>,
        tz: Tz,
    },
    Every(Duration),
    /// `manual`: never due by itself; run from `rewind jobs run`, the API or the admin page (restore
    /// jobs).
    Manual,
}

impl Schedule {
    /// Parses `every 10m` / `every 1s` or a cron expression; `timezone` applies to cron only.
    pub fn parse(text: &str, timezone: Option<&str>) -> Result<Schedule, String> {
        let text = text.trim();
        let tz: Tz = match timezone {
            None => Tz::UTC,
            Some(name) => name.parse().map_err(|_| {
                format!("unknown timezone '{name}' (use an IANA name like Europe/Paris)")
            })?,
        };
        if text == "manual" {
            return Ok(Schedule::Manual);
        }
        if let Some(rest) = text.strip_prefix("every ") {
            let secs = crate::base::duration::parse_duration(rest.trim())
                .map_err(|e| format!("bad interval in schedule '{text}': {e}"))?;
            if secs < 1.0 {
                return Err(format!(
                    "schedule '{text}': the interval must be at least 1s"
                ));
            }
            return Ok(Schedule::Every(Duration::from_secs_f64(secs)));
        }
        let fields = text.split_whitespace().count();
        if !(5..=6).contains(&fields) && !text.starts_with('@') {
            return Err(format!(
                "bad schedule '{text}': a cron expression has 5 fields (minute hour day month weekday) or 6 \
                 (with seconds first), or use 'every 10m' or 'manual'"
            ));
        }
        let cron = CronParser::new()
            .parse(text)
            .map_err(|e| format!("bad cron schedule '{text}': {e}"))?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            tz,
        })
    }

    /// The first run time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            // On multiples of the period since the Unix epoch (every 10m: :00, :10, ...), so that daemons
            // started at different times agree on each occurrence (cluster claims name it).
            Schedule::Every(d) => {
                let period = (d.as_millis() as i64).max(1);
                let ms = t.timestamp_millis();
                let next = (ms.div_euclid(period) + 1) * period;
                DateTime::from_timestamp_millis(next)
            }
            Schedule::Manual => None,
            // Cron times are whole seconds: croner keeps the sub-second part of its start time.
            Schedule::Cron { cron, tz } => {
                let whole = t.with_nanosecond(0)?;
                cron.find_next_occurrence(&whole.with_timezone(tz), false)
                    .ok()
                    .and_then(|n| n.with_timezone(&Utc).with_nanosecond(0))
            }
        }
    }
}

/// A random delay in `[0, max)`.
pub fn jitter(max: Option<Duration>) -> chrono::Duration {
    match max {
        Some(m) if !m.is_zero() => {
            let ms = rand::random_range(0..m.as_millis().max(1) as u64);
            chrono::Duration::milliseconds(ms as i64)
        }
        _ => chrono::Duration::zero(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert!(Schedule::parse("every 10m", None).is_ok());
        assert!(Schedule::parse("0 3 * * *", Some("Europe/Paris")).is_ok());
        assert!(Schedule::parse("* * * * * *", None).is_ok());
        assert!(Schedule::parse("61 * * * *", None).is_err());
        assert!(Schedule::parse("every soon", None).is_err());
        let every = Schedule::parse("every 10m", None).unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-03T17:04:05.250Z")
            .unwrap()
            .to_utc();
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().to_utc());
        assert_eq!(every.next_after(t), at("2026-12-03T17:10:00Z"));
        assert_eq!(
            every.next_after(at("2026-12-03T17:10:00Z").unwrap()),
            at("2026-12-03T17:20:00Z")
        );
        let manual = Schedule::parse("manual", None).unwrap();
        assert!(
            manual.next_after(Utc::now()).is_none(),
            "a manual job is never due"
        );
        assert!(Schedule::parse("0 3 * * *", Some("Mars/Base")).is_err());
        let s = Schedule::parse("0 3 * * *", None).unwrap();
        let t: DateTime<Utc> = "2026-01-01T04:00:00.250Z".parse().unwrap();
        assert_eq!(
            s.next_after(t).unwrap().to_rfc3339(),
            "2026-01-02T03:00:00+00:00"
        );
    }
}

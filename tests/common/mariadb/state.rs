//! What `Maria::state` reads back from a database: everything a backup must keep, compared row by row.

use std::collections::BTreeMap;

use super::{Maria, ident, lit};

/// What a database holds, for comparing a database before a backup with it after a restore. Definitions
/// come from information_schema with the database's own name removed (`db`.`t` becomes `t`), so a
/// restore under another name compares equal too. Definers and creation times are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbState {
    /// Per table: its options, columns, indexes, foreign keys and checks, one line each.
    pub schema: BTreeMap<String, Vec<String>>,
    /// Per table: every row as a JSON array of its columns (binary columns as HEX()), in primary key
    /// order (sorted as text when the table has no primary key).
    pub rows: BTreeMap<String, Vec<String>>,
    /// Per table: `SELECT COUNT(*)`.
    pub row_counts: BTreeMap<String, u64>,
    /// View name → definition and options.
    pub views: BTreeMap<String, String>,
    /// `PROCEDURE name` / `FUNCTION name` → parameters, characteristics and body.
    pub routines: BTreeMap<String, String>,
    /// Trigger name → timing, event, table and statement.
    pub triggers: BTreeMap<String, String>,
    /// Event name → schedule, status and body.
    pub events: BTreeMap<String, String>,
}

impl DbState {
    /// True when the database has no tables, views, routines, triggers or events.
    pub fn is_empty(&self) -> bool {
        self.schema.is_empty()
            && self.views.is_empty()
            && self.routines.is_empty()
            && self.triggers.is_empty()
            && self.events.is_empty()
    }

    /// A short description of how `other` differs from `self` (the first few differences), or None
    /// when they are equal. For assertion messages: the Debug of a whole state is long.
    pub fn diff(&self, other: &DbState) -> Option<String> {
        fn maps<V: PartialEq + std::fmt::Debug>(
            what: &str,
            a: &BTreeMap<String, V>,
            b: &BTreeMap<String, V>,
            out: &mut Vec<String>,
        ) {
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(_), None) => out.push(format!("{what} {k}: only in the first")),
                    (None, Some(_)) => out.push(format!("{what} {k}: only in the second")),
                    (x, y) => out.push(format!("{what} {k}:\n  first:  {x:?}\n  second: {y:?}")),
                }
            }
        }
        fn lists(
            what: &str,
            a: &BTreeMap<String, Vec<String>>,
            b: &BTreeMap<String, Vec<String>>,
            out: &mut Vec<String>,
        ) {
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => {
                        let i = x
                            .iter()
                            .zip(y)
                            .position(|(p, q)| p != q)
                            .unwrap_or(x.len().min(y.len()));
                        out.push(format!(
                            "{what} {k}: {} vs {} entries, first difference at #{i}:\n  first:  {:?}\n  second: {:?}",
                            x.len(),
                            y.len(),
                            x.get(i),
                            y.get(i)
                        ));
                    }
                    (Some(_), None) => out.push(format!("{what} {k}: only in the first")),
                    (None, _) => out.push(format!("{what} {k}: only in the second")),
                }
            }
        }
        let mut out = Vec::new();
        lists("schema of", &self.schema, &other.schema, &mut out);
        maps(
            "row count of",
            &self.row_counts,
            &other.row_counts,
            &mut out,
        );
        lists("rows of", &self.rows, &other.rows, &mut out);
        maps("view", &self.views, &other.views, &mut out);
        maps("routine", &self.routines, &other.routines, &mut out);
        maps("trigger", &self.triggers, &other.triggers, &mut out);
        maps("event", &self.events, &other.events, &mut out);
        if out.is_empty() {
            return None;
        }
        let more = out.len().saturating_sub(8);
        out.truncate(8);
        if more > 0 {
            out.push(format!("... and {more} more"));
        }
        Some(out.join("\n"))
    }
}

/// Panics with the differences unless the two states are equal.
pub fn assert_same_state(expected: &DbState, actual: &DbState, what: &str) {
    if let Some(d) = expected.diff(actual) {
        panic!("{what}: the database differs (first = expected, second = actual):\n{d}");
    }
}

/// DATA_TYPEs whose values `state()` reads as HEX().
const BINARY_TYPES: [&str; 15] = [
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
    "bit",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

impl Maria {
    /// Everything in `db` a backup must keep: see `DbState`.
    pub fn state(&self, db: &str) -> DbState {
        let s = lit(db);
        let prefix = format!("{}.", ident(db));
        let norm = |v: &serde_json::Value| -> String {
            match v {
                serde_json::Value::Null => "NULL".into(),
                serde_json::Value::String(s) => s.replace(&prefix, "").trim().to_string(),
                v => v.to_string(),
            }
        };
        let mut st = DbState::default();
        let tables = self.tables(db);

        // Schema: table options, columns, indexes, foreign keys, checks.
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(TABLE_NAME, ENGINE, TABLE_COLLATION, ROW_FORMAT, CREATE_OPTIONS, TABLE_COMMENT) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = {s} AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
        )) {
            let line = format!(
                "table ENGINE={} COLLATE={} ROW_FORMAT={} OPTIONS={} COMMENT={}",
                norm(&r[1]),
                norm(&r[2]),
                norm(&r[3]),
                norm(&r[4]),
                norm(&r[5])
            );
            st.schema.entry(norm(&r[0])).or_default().push(line);
        }
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(c.TABLE_NAME, c.ORDINAL_POSITION, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, \
             c.COLUMN_DEFAULT, c.EXTRA, c.CHARACTER_SET_NAME, c.COLLATION_NAME, c.COLUMN_COMMENT) \
             FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
             ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
             WHERE c.TABLE_SCHEMA = {s} AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
        )) {
            let line = format!(
                "column {:>3} {} {} nullable={} default={} extra={} charset={} collate={} comment={}",
                norm(&r[1]),
                norm(&r[2]),
                norm(&r[3]),
                norm(&r[4]),
                norm(&r[5]),
                norm(&r[6]),
                norm(&r[7]),
                norm(&r[8]),
                norm(&r[9])
            );
            st.schema.entry(norm(&r[0])).or_default().push(line);
        }
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, \
             INDEX_TYPE, COLLATION) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {s}"
        )) {
            let line = format!(
                "index {} non_unique={} #{} {} sub_part={} type={} order={}",
                norm(&r[1]),
                norm(&r[2]),
                norm(&r[3]),
                norm(&r[4]),
                norm(&r[5]),
                norm(&r[6]),
                norm(&r[7])
            );
            st.schema.entry(norm(&r[0])).or_default().push(line);
        }
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION, k.COLUMN_NAME, \
             IF(k.REFERENCED_TABLE_SCHEMA = k.TABLE_SCHEMA, '', k.REFERENCED_TABLE_SCHEMA), \
             k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE) \
             FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
             ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
             AND r.TABLE_NAME = k.TABLE_NAME WHERE k.TABLE_SCHEMA = {s}"
        )) {
            let line = format!(
                "foreign key {} #{} {} -> {}.{}.{} on update {} on delete {}",
                norm(&r[1]),
                norm(&r[2]),
                norm(&r[3]),
                norm(&r[4]),
                norm(&r[5]),
                norm(&r[6]),
                norm(&r[7]),
                norm(&r[8])
            );
            st.schema.entry(norm(&r[0])).or_default().push(line);
        }
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(TABLE_NAME, CONSTRAINT_NAME, LEVEL, CHECK_CLAUSE) \
             FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {s}"
        )) {
            let line = format!("check {} {} {}", norm(&r[1]), norm(&r[2]), norm(&r[3]));
            st.schema.entry(norm(&r[0])).or_default().push(line);
        }
        for lines in st.schema.values_mut() {
            lines.sort();
        }

        // Rows.
        for t in &tables {
            let cols = self.json_rows(&format!(
                "SELECT JSON_ARRAY(COLUMN_NAME, DATA_TYPE) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {s} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                lit(t)
            ));
            let exprs: Vec<String> = cols
                .iter()
                .map(|c| {
                    let (name, ty) = (norm(&c[0]), norm(&c[1]).to_lowercase());
                    if BINARY_TYPES.contains(&ty.as_str()) {
                        format!("HEX({})", ident(&name))
                    } else {
                        ident(&name)
                    }
                })
                .collect();
            let pk = self.lines(
                None,
                &format!(
                    "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {s} \
                     AND TABLE_NAME = {} AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                    lit(t)
                ),
            );
            let order: Vec<String> = pk.iter().map(|c| ident(c)).collect();
            let mut q = format!(
                "SELECT JSON_ARRAY({}) FROM {}.{}",
                exprs.join(", "),
                ident(db),
                ident(t)
            );
            if !order.is_empty() {
                q.push_str(&format!(" ORDER BY {}", order.join(", ")));
            }
            let mut rows = self.lines(None, &q);
            if order.is_empty() {
                rows.sort();
            }
            st.rows.insert(t.clone(), rows);
        }
        st.row_counts = self.row_counts(db);

        // Views, routines, triggers, events.
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, SECURITY_TYPE, ALGORITHM) \
             FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {s}"
        )) {
            st.views.insert(
                norm(&r[0]),
                format!(
                    "{}\n[check {}, updatable {}, security {}, algorithm {}]",
                    norm(&r[1]),
                    norm(&r[2]),
                    norm(&r[3]),
                    norm(&r[4]),
                    norm(&r[5])
                ),
            );
        }
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(ROUTINE_TYPE, SPECIFIC_NAME, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER) \
             FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = {s} AND ORDINAL_POSITION > 0 \
             ORDER BY SPECIFIC_NAME, ORDINAL_POSITION"
        )) {
            let p = format!("{} {} {}", norm(&r[2]), norm(&r[3]), norm(&r[4]));
            params
                .entry(format!("{} {}", norm(&r[0]), norm(&r[1])))
                .or_default()
                .push(p);
        }
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(ROUTINE_TYPE, ROUTINE_NAME, DTD_IDENTIFIER, IS_DETERMINISTIC, SQL_DATA_ACCESS, \
             SECURITY_TYPE, ROUTINE_COMMENT, ROUTINE_DEFINITION) FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = {s}"
        )) {
            let key = format!("{} {}", norm(&r[0]), norm(&r[1]));
            let p = params.get(&key).map(|p| p.join(", ")).unwrap_or_default();
            st.routines.insert(
                key,
                format!(
                    "({p}) RETURNS {} DETERMINISTIC={} {} SQL SECURITY {} COMMENT {}\n{}",
                    norm(&r[2]),
                    norm(&r[3]),
                    norm(&r[4]),
                    norm(&r[5]),
                    norm(&r[6]),
                    norm(&r[7])
                ),
            );
        }
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, \
             ACTION_ORIENTATION, ACTION_STATEMENT) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {s}"
        )) {
            st.triggers.insert(
                norm(&r[0]),
                format!(
                    "{} {} ON {} ORDER {} FOR EACH {}\n{}",
                    norm(&r[1]),
                    norm(&r[2]),
                    norm(&r[3]),
                    norm(&r[4]),
                    norm(&r[5]),
                    norm(&r[6])
                ),
            );
        }
        for r in self.json_rows(&format!(
            "SELECT JSON_ARRAY(EVENT_NAME, EVENT_TYPE, EXECUTE_AT, INTERVAL_VALUE, INTERVAL_FIELD, STARTS, ENDS, \
             STATUS, ON_COMPLETION, EVENT_COMMENT, EVENT_DEFINITION) FROM information_schema.EVENTS \
             WHERE EVENT_SCHEMA = {s}"
        )) {
            st.events.insert(
                norm(&r[0]),
                format!(
                    "{} at={} every {} {} starts={} ends={} {} ON COMPLETION {} COMMENT {}\n{}",
                    norm(&r[1]),
                    norm(&r[2]),
                    norm(&r[3]),
                    norm(&r[4]),
                    norm(&r[5]),
                    norm(&r[6]),
                    norm(&r[7]),
                    norm(&r[8]),
                    norm(&r[9]),
                    norm(&r[10])
                ),
            );
        }
        st
    }
}

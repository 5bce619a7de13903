//! The throwaway-MariaDB helper (tests/common/mariadb/) against the real server: the fixture loads,
//! `state()` sees all of it, a `mariadb-dump | mariadb` round trip leaves `state()` equal, and a dropped
//! table, a changed byte, a changed routine or a missing event makes it differ.

mod common;

use common::mariadb::{self as maria, FIXTURE_DATABASES, Maria, assert_same_state, ident};
use std::time::Instant;

fn dump(m: &Maria, db: &str) -> Vec<u8> {
    let out = m
        .root_client("mariadb-dump")
        .args([
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--default-character-set=utf8mb4",
            "--databases",
            db,
        ])
        .output()
        .unwrap();
    m.must_succeed(out, "mariadb-dump").stdout
}

fn restore(m: &Maria, script: &[u8]) {
    let out = m.try_sql(None, script);
    m.must_succeed(out, "restoring a dump");
}

#[test]
fn fixture_state_survives_a_dump_round_trip() {
    let t = Instant::now();
    let mut m = Maria::start();
    let started = t.elapsed();
    m.fixture();
    eprintln!(
        "start: {started:?}, start+fixture: {:?} (port {}, socket {})",
        t.elapsed(),
        m.port(),
        m.socket().display()
    );
    assert_eq!(m.databases(), FIXTURE_DATABASES);

    // The rewind user logs in over TCP with the password, and over the socket.
    let out = m
        .client("mariadb")
        .args([
            "--batch",
            "--skip-column-names",
            "-e",
            "SELECT CURRENT_USER()",
        ])
        .output()
        .unwrap();
    let out = m.must_succeed(out, "mariadb as rewind over TCP");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rewind@%");
    let out = std::process::Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--user={}", maria::USER))
        .arg(format!("--socket={}", m.socket().display()))
        .args([
            "--batch",
            "--skip-column-names",
            "-e",
            "SELECT CURRENT_USER()",
        ])
        .envs(m.client_env())
        .output()
        .unwrap();
    let out = m.must_succeed(out, "mariadb as rewind over the socket");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "rewind@localhost"
    );

    for db in FIXTURE_DATABASES {
        let before = m.state(db);
        assert!(!before.is_empty(), "{db}: empty state");
        assert!(!before.rows.is_empty(), "{db}: no tables");
        for (table, rows) in &before.rows {
            assert!(rows.len() >= 200, "{db}.{table}: {} rows", rows.len());
            assert_eq!(before.row_counts[table], rows.len() as u64);
        }
        assert_eq!(m.row_counts(db), before.row_counts);
        assert_eq!(before.views.len(), 1, "{db}: {:?}", before.views);
        // Reading it twice gives the same.
        assert_same_state(&before, &m.state(db), "a second read");

        let script = dump(&m, db);
        m.drop_database(db);
        assert!(!m.databases().iter().any(|d| d == db));
        restore(&m, &script);
        let after = m.state(db);
        assert_eq!(before, after, "{db}: {:?}", before.diff(&after));
    }

    // What the fixture promises is there.
    let athena = m.state("athena-server");
    assert!(athena.routines.contains_key("PROCEDURE add_order"));
    assert!(athena.routines.contains_key("FUNCTION customer_total"));
    assert!(athena.triggers.contains_key("orders_audit"));
    assert!(athena.events["purge_audit"].contains("DISABLED"));
    assert_eq!(athena.row_counts["audit_log"], athena.row_counts["orders"]);
    let rows = athena.rows["customers"].join("\n");
    for needle in [
        "山田 太郎",
        "Größe",
        "🎉",
        "O'Brien",
        r"C:\\Users",
        r"tab\there",
        r"line\nbreak",
        "null",
        "000102030405060708090A0B0C0D0E0F",
        "F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF",
    ] {
        assert!(rows.contains(needle), "customers lack {needle:?}");
    }
    let users = m.state("oauth2-users");
    assert!(
        users.schema["user_roles"]
            .iter()
            .any(|l| l.contains("foreign key fk_user_roles_user"))
    );

    // Changes show.
    let before = m.state("oauth2-server");
    m.sql(Some("oauth2-server"), "DROP TABLE token_log");
    let after = m.state("oauth2-server");
    assert_ne!(before, after);
    assert!(before.diff(&after).unwrap().contains("token_log"));

    let before = m.state("oauth2-users");
    m.sql(
        Some("oauth2-users"),
        "UPDATE users SET avatar = CONCAT(LEFT(avatar, 100), X'00', SUBSTR(avatar, 102)) WHERE id = 10",
    );
    assert_ne!(before, m.state("oauth2-users"), "a changed blob byte");

    let before = m.state("athena-server");
    m.sql(
        Some("athena-server"),
        "DROP EVENT purge_audit; DROP TRIGGER orders_audit",
    );
    let after = m.state("athena-server");
    assert_ne!(before.events, after.events);
    assert_ne!(before.triggers, after.triggers);

    // fill_large: about the size asked for, appended on a second call.
    let t = Instant::now();
    m.fill_large("bench", 8 << 20);
    let n = m.row_counts("bench")[maria::LARGE_TABLE];
    let size: u64 = m
        .sql(
            Some("bench"),
            &format!(
                "SELECT SUM(LENGTH(payload) + LENGTH(body) + LENGTH(account) + LENGTH(kind) + 36 + 32 + 24) FROM {}",
                ident(maria::LARGE_TABLE)
            ),
        )
        .trim()
        .parse()
        .unwrap();
    eprintln!(
        "fill_large 8 MiB: {n} rows, {size} bytes in {:?}",
        t.elapsed()
    );
    assert!(
        (8 << 20..(8 << 20) + (8 << 20) / 100).contains(&size),
        "{size} bytes"
    );
    m.fill_large("bench", 1 << 20);
    assert!(m.row_counts("bench")[maria::LARGE_TABLE] > n);

    m.stop();
    assert!(m.try_sql(None, b"SELECT 1").status.code() != Some(0));
}

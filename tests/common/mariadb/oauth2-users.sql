CREATE TABLE users (
  id BIGINT UNSIGNED NOT NULL,
  username VARCHAR(64) NOT NULL,
  display_name VARCHAR(200) NULL,
  email VARCHAR(255) NOT NULL,
  password_hash BINARY(32) NOT NULL,
  totp_secret VARBINARY(64) NULL,
  created_at DATETIME(6) NOT NULL,
  last_login DATETIME(6) NULL,
  profile JSON NULL,
  quota DECIMAL(20,4) NULL,
  disabled TINYINT(1) NOT NULL DEFAULT 0,
  avatar MEDIUMBLOB NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_roles (
  user_id BIGINT UNSIGNED NOT NULL,
  role VARCHAR(32) NOT NULL,
  granted_at DATETIME(6) NOT NULL,
  PRIMARY KEY (user_id, role),
  CONSTRAINT fk_user_roles_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE VIEW active_users AS SELECT id, username, email FROM users WHERE disabled = 0;

INSERT INTO users (id, username, display_name, email, password_hash, totp_secret, created_at, last_login,
  profile, quota, disabled, avatar)
WITH RECURSIVE seq (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 250)
SELECT i,
  CONCAT('user', i),
  IF(i % 9 = 0, NULL, CONCAT(ELT(1 + i % 6, 'さくら', 'Björn Ångström', 'Frau Schröder', 'D''Artagnan',
    'back\\slash', 'multi\nline\tname'), ' ', i, IF(i % 10 = 1, ' 🎉', ''))),
  CONCAT('user', i, '@example.org'),
  UNHEX(SHA2(CONCAT('password', i), 256)),
  IF(i % 3 = 0, NULL, UNHEX(MD5(CONCAT('totp', i)))),
  TIMESTAMP('2022-03-04 05:06:07.080910') + INTERVAL i * 7777 SECOND,
  IF(i % 4 = 0, NULL, TIMESTAMP('2024-05-06 07:08:09') + INTERVAL i * 999999 MICROSECOND),
  IF(i % 5 = 0, NULL, JSON_OBJECT('lang', ELT(1 + i % 3, 'ja', 'de', 'en'), 'newsletter', i % 2 = 0,
    'bio', CONCAT('Grüße aus ', i, ' «', CHAR(9), '»'))),
  IF(i % 8 = 0, NULL, (i * 31337 % 100000000) / 10000),
  i % 11 = 0,
  CASE WHEN i % 10 = 0 THEN @all_bytes WHEN i % 10 = 5 THEN REPEAT(@all_bytes, 3) ELSE NULL END
FROM seq;

INSERT INTO user_roles (user_id, role, granted_at)
WITH RECURSIVE seq (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < 399)
SELECT 1 + i % 250, ELT(1 + i DIV 250, 'user', 'admin'), TIMESTAMP('2023-07-01 00:00:00.5') + INTERVAL i MINUTE
FROM seq;

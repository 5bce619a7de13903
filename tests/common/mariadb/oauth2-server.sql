CREATE TABLE clients (
  id INT NOT NULL,
  client_id VARCHAR(80) NOT NULL,
  name VARCHAR(200) NOT NULL,
  secret_hash BINARY(32) NOT NULL,
  redirect_uris JSON NOT NULL,
  scopes VARCHAR(255) NULL,
  rate_limit DECIMAL(8,4) NULL,
  created_at DATETIME(6) NOT NULL,
  logo BLOB NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_clients_client_id (client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE access_tokens (
  id BIGINT NOT NULL,
  client_pk INT NOT NULL,
  user_id BIGINT NULL,
  token VARBINARY(64) NOT NULL,
  scope VARCHAR(255) NULL,
  issued_at DATETIME(6) NOT NULL,
  expires_at DATETIME(6) NULL,
  revoked TINYINT(1) NOT NULL DEFAULT 0,
  claims JSON NULL,
  PRIMARY KEY (id),
  KEY idx_access_tokens_client (client_pk),
  CONSTRAINT fk_access_tokens_client FOREIGN KEY (client_pk) REFERENCES clients (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE token_log (
  token_id BIGINT NOT NULL,
  event VARCHAR(32) NOT NULL,
  at DATETIME(6) NOT NULL,
  info TEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE VIEW live_tokens AS
  SELECT t.id, c.client_id, t.scope, t.expires_at
  FROM access_tokens t JOIN clients c ON c.id = t.client_pk
  WHERE t.revoked = 0;

INSERT INTO clients (id, client_id, name, secret_hash, redirect_uris, scopes, rate_limit, created_at, logo)
WITH RECURSIVE seq (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 200)
SELECT i,
  CONCAT('client-', LPAD(i, 4, '0')),
  CONCAT(ELT(1 + i % 5, 'アプリ', 'Übersicht-Dienst', 'L''Oréal SSO', 'tab\tand\\back', 'party 🎉\nnext line'), ' ', i),
  UNHEX(SHA2(CONCAT('secret', i), 256)),
  JSON_ARRAY(CONCAT('https://app', i, '.example.com/callback'), CONCAT('https://app', i, '.example.com/ü?x=1&y="2"')),
  IF(i % 3 = 0, NULL, 'openid profile email'),
  IF(i % 4 = 0, NULL, (i * 4111 % 1000000) / 10000),
  TIMESTAMP('2021-12-31 23:59:59.999999') + INTERVAL i HOUR,
  IF(i % 2 = 0, @all_bytes, NULL)
FROM seq;

INSERT INTO access_tokens (id, client_pk, user_id, token, scope, issued_at, expires_at, revoked, claims)
WITH RECURSIVE seq (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 500)
SELECT 1000000000000 + i,
  1 + (i * 13) % 200,
  IF(i % 7 = 0, NULL, 1 + i % 250),
  UNHEX(SHA2(CONCAT('token', i), 512)),
  ELT(1 + i % 3, 'openid', 'openid profile', NULL),
  TIMESTAMP('2024-02-29 12:00:00') + INTERVAL i * 61 SECOND + INTERVAL i MICROSECOND,
  IF(i % 10 = 0, NULL, TIMESTAMP('2024-02-29 13:00:00') + INTERVAL i * 61 SECOND),
  i % 9 = 0,
  IF(i % 6 = 0, NULL, JSON_OBJECT('sub', CONCAT('user', i), 'aud', JSON_ARRAY('api', 'wëb'), 'n', i / 7))
FROM seq;

INSERT INTO token_log (token_id, event, at, info)
WITH RECURSIVE seq (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 300)
SELECT 1000000000000 + 1 + i % 100,
  ELT(1 + i % 3, 'issued', 'refreshed', 'revoked'),
  TIMESTAMP('2024-03-01 00:00:00') + INTERVAL (i % 50) SECOND,
  IF(i % 4 = 0, NULL, ELT(1 + i % 3, 'ok', 'Grund: abgelaufen — 期限切れ', 'dup'))
FROM seq;

CREATE TABLE IF NOT EXISTS large_events (
  id BIGINT NOT NULL,
  event_uuid CHAR(36) NOT NULL,
  account VARCHAR(100) NOT NULL,
  kind VARCHAR(32) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  payload JSON NOT NULL,
  body TEXT NOT NULL,
  digest BINARY(32) NOT NULL,
  PRIMARY KEY (id),
  KEY idx_large_events_account (account)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE customers (
  id INT NOT NULL,
  name VARCHAR(200) NOT NULL,
  city VARCHAR(100) NULL,
  balance DECIMAL(14,2) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  attrs JSON NULL,
  avatar BLOB NULL,
  note TEXT NULL,
  PRIMARY KEY (id),
  KEY idx_customers_city (city)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE orders (
  id INT NOT NULL,
  customer_id INT NOT NULL,
  amount DECIMAL(12,3) NOT NULL,
  placed_at DATETIME(6) NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
  label VARCHAR(255) NULL,
  receipt VARBINARY(300) NULL,
  PRIMARY KEY (id),
  KEY idx_orders_customer (customer_id),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE audit_log (
  id BIGINT NOT NULL AUTO_INCREMENT,
  table_name VARCHAR(64) NOT NULL,
  action VARCHAR(16) NOT NULL,
  row_id INT NOT NULL,
  detail VARCHAR(255) NULL,
  logged_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

DELIMITER //
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
  INSERT INTO audit_log (table_name, action, row_id, detail, logged_at)
  VALUES ('orders', 'insert', NEW.id, CONCAT('amount=', NEW.amount, ' status=', NEW.status), NEW.placed_at)//

CREATE PROCEDURE add_order(IN p_customer INT, IN p_amount DECIMAL(12,3), OUT p_id INT)
  MODIFIES SQL DATA
  COMMENT 'Adds an order — ümlaut comment'
BEGIN
  SELECT COALESCE(MAX(id), 0) + 1 INTO p_id FROM orders;
  INSERT INTO orders (id, customer_id, amount, placed_at, status, label)
  VALUES (p_id, p_customer, p_amount, '2024-06-01 12:00:00.000001', 'new', 'via procedure: größe');
END//

CREATE FUNCTION customer_total(p_customer INT) RETURNS DECIMAL(14,3)
  READS SQL DATA DETERMINISTIC
BEGIN
  DECLARE t DECIMAL(14,3);
  SELECT COALESCE(SUM(amount), 0) INTO t FROM orders WHERE customer_id = p_customer;
  RETURN t;
END//

CREATE EVENT purge_audit
  ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00'
  ON COMPLETION PRESERVE DISABLE
  COMMENT 'nightly purge, disabled'
  DO DELETE FROM audit_log WHERE logged_at < '2020-01-01 00:00:00'//
DELIMITER ;

CREATE VIEW customer_totals AS
  SELECT c.id, c.name, COUNT(o.id) AS order_count, COALESCE(SUM(o.amount), 0) AS total
  FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
  GROUP BY c.id, c.name;

INSERT INTO customers (id, name, city, balance, created_at, attrs, avatar, note)
WITH RECURSIVE seq (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 300)
SELECT i,
  CONCAT(ELT(1 + i % 8, '山田 太郎', 'Jürgen Größe-Übermaß', 'Zoë 🎉 Party', 'O''Brien',
    'C:\\Users\\back\\slash', 'tab\there', 'line\nbreak', 'plain ascii'), ' #', i),
  IF(i % 5 = 0, NULL, ELT(1 + i % 4, '東京', 'München', 'Zürich', 'São Paulo')),
  (i * 7919 % 200000) / 100 - 500,
  TIMESTAMP('2023-01-01 00:00:00') + INTERVAL i * 86399 SECOND + INTERVAL i * 123457 MICROSECOND,
  IF(i % 7 = 0, NULL, JSON_OBJECT('tier', ELT(1 + i % 3, 'gold', 'silver', 'bronze'), 'score', i * 3,
    'tags', JSON_ARRAY('ä', i, '🎉'), 'quote', 'say "hi"\\n')),
  CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN @all_bytes
    ELSE CONCAT(UNHEX(LPAD(HEX(i % 256), 2, '0')), @all_bytes) END,
  IF(i % 2 = 0, NULL, REPEAT(CONCAT('note ', i, ' – ünïcödé\t«quoted»; '), 1 + i % 5))
FROM seq;

INSERT INTO orders (id, customer_id, amount, placed_at, status, label, receipt)
WITH RECURSIVE seq (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 600)
SELECT i,
  1 + (i * 37) % 300,
  (i * 104729 % 10000000) / 1000,
  TIMESTAMP('2024-01-01 00:00:00') + INTERVAL i * 3607 SECOND + INTERVAL i * 7 MICROSECOND,
  ELT(1 + i % 4, 'new', 'paid', 'shipped', 'cancelled'),
  IF(i % 6 = 0, NULL, CONCAT('Bestellung Nr. ', i, ' für Müller — 注文 ', i)),
  IF(i % 4 = 0, NULL, UNHEX(SHA2(CONCAT('receipt', i), 256)))
FROM seq;

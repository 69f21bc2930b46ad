// Queries an archive written by the archiver with DuckDB, as an analyst
// would (the SQL of docs/archive.md), and prints the results as JSON.
// Usage: node query.js ARCHIVE_DIR
// Run by TestArchiveDuckDB (connectors/archive/duckdb_test.go).
'use strict';
const { DuckDBInstance } = require('@duckdb/node-api');

async function main() {
  const root = process.argv[2];
  if (!root) throw new Error('usage: node query.js ARCHIVE_DIR');
  const q = (s) => "'" + s.replace(/'/g, "''") + "'";
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  await conn.run(`CREATE VIEW messages AS
    SELECT * FROM read_parquet([${q(root + '/kind=inbound/*/*/*.parquet')}, ${q(root + '/kind=outbound/*/*/*.parquet')}],
                               hive_partitioning = true, union_by_name = true)`);
  await conn.run(`CREATE VIEW events AS
    SELECT * FROM read_parquet(${q(root + '/kind=event/*/*/*.parquet')}, hive_partitioning = true)`);
  const all = async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJson();
  const out = {};
  out.per_transport = await all(`
    SELECT transport, kind, count(DISTINCT message_id) AS messages
    FROM messages GROUP BY ALL ORDER BY ALL`);
  out.per_date = await all(`
    SELECT CAST(date AS VARCHAR) AS date, count(*) AS messages FROM messages GROUP BY ALL ORDER BY ALL`);
  out.final_status = await all(`
    WITH ev AS (SELECT DISTINCT ON (event_id) * FROM events),
    final AS (
      SELECT user_message_id,
             arg_max(delivery_status, timestamp) FILTER (WHERE event_type = 'delivery_report') AS delivery_status,
             bool_or(event_type = 'ack')  AS acked,
             bool_or(event_type = 'nack') AS nacked
      FROM ev GROUP BY user_message_id)
    SELECT m.message_id, m.transport,
           coalesce(f.delivery_status, CASE WHEN f.nacked THEN 'nacked' WHEN f.acked THEN 'acked' END, 'unknown') AS final_status
    FROM (SELECT DISTINCT ON (message_id) * FROM messages WHERE kind = 'outbound') m
    LEFT JOIN final f ON f.user_message_id = m.message_id
    ORDER BY m.message_id`);
  out.one_day = await all(`
    SELECT from_addr, content FROM messages
    WHERE kind = 'inbound' AND transport = 'sms' AND date = DATE '2026-11-21'
    ORDER BY message_id`);
  out.replies = await all(`
    SELECT i.from_addr, i.content AS asked, o.content AS answered
    FROM messages i JOIN messages o ON o.in_reply_to = i.message_id
    WHERE i.kind = 'inbound' AND o.kind = 'outbound'`);
  out.batches = await all(`
    SELECT json_extract_string(helper_metadata, '$.batch_id') AS batch, count(*) AS n
    FROM messages GROUP BY ALL ORDER BY ALL`);
  out.types = await all(`
    SELECT column_name, column_type FROM (DESCRIBE SELECT timestamp, kafka_offset, session_event FROM messages)
    ORDER BY column_name`);
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});

/*
 * schema.c - the schema, one migration per version, applied in order inside
 * a transaction each. Never edit a shipped migration: add the next one.
 */
#include "store_int.h"

/* version 0 -> 1 */
static const char v1[] =
    "CREATE TABLE documents(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  sha256 TEXT NOT NULL UNIQUE,\n"
    "  path TEXT,\n"
    "  kind TEXT NOT NULL,\n"
    "  bytes INTEGER NOT NULL,\n"
    "  pages INTEGER,\n"
    "  title TEXT,\n"
    "  error TEXT,\n"
    "  added_at TEXT NOT NULL);\n"
    "CREATE TABLE runs(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  started_at TEXT NOT NULL,\n"
    "  finished_at TEXT,\n"
    "  tool_version TEXT NOT NULL,\n"
    "  backend TEXT NOT NULL,\n"
    "  model_id TEXT NOT NULL,\n"
    "  mode TEXT NOT NULL,\n"
    "  options_json TEXT);\n"
    "CREATE TABLE pages(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  document_id INTEGER NOT NULL REFERENCES documents(id)\n"
    "    ON DELETE CASCADE,\n"
    "  page_no INTEGER NOT NULL,\n"
    "  run_id INTEGER REFERENCES runs(id),\n"
    "  source TEXT NOT NULL,\n"
    "  mode TEXT NOT NULL,\n"
    "  model_id TEXT NOT NULL,\n"
    "  prompt_id TEXT NOT NULL,\n"
    "  status TEXT NOT NULL\n"
    "    CHECK (status IN ('done','blank','needs-model','error')),\n"
    "  width REAL,\n"
    "  height REAL,\n"
    "  dpi REAL,\n"
    "  grid_h INTEGER,\n"
    "  grid_w INTEGER,\n"
    "  image_tokens INTEGER,\n"
    "  text TEXT,\n"
    "  markdown TEXT,\n"
    "  reasoning TEXT,\n"
    "  finish_reason TEXT,\n"
    "  tokens_in INTEGER,\n"
    "  tokens_out INTEGER,\n"
    "  ms_render REAL,\n"
    "  ms_encode REAL,\n"
    "  ms_prefill REAL,\n"
    "  ms_decode REAL,\n"
    "  error TEXT,\n"
    "  created_at TEXT NOT NULL);\n"
    /* the resume key: at most one stored result per key */
    "CREATE UNIQUE INDEX pages_key ON pages(document_id, page_no, mode,\n"
    "  model_id, prompt_id);\n"
    "CREATE TABLE blocks(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,\n"
    "  seq INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  text TEXT,\n"
    "  html TEXT,\n"
    "  bbox TEXT);\n"
    "CREATE INDEX blocks_page ON blocks(page_id, seq);\n"
    "CREATE TABLE fields(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL,\n"
    "  value TEXT,\n"
    "  rule TEXT,\n"
    "  span_start INTEGER,\n"
    "  span_end INTEGER);\n"
    "CREATE INDEX fields_page ON fields(page_id);\n"
    "CREATE INDEX fields_name ON fields(name, value);\n"
    "CREATE TABLE zooms(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,\n"
    "  step INTEGER NOT NULL,\n"
    "  x1 REAL, y1 REAL, x2 REAL, y2 REAL,\n"
    "  label TEXT,\n"
    "  width INTEGER,\n"
    "  height INTEGER);\n"
    "CREATE INDEX zooms_page ON zooms(page_id, step);\n"
    /* full-text index over page text, external content kept in sync */
    "CREATE VIRTUAL TABLE pages_fts USING fts5(text, content='pages',\n"
    "  content_rowid='id', tokenize='unicode61 remove_diacritics 2');\n"
    "CREATE TRIGGER pages_fts_ai AFTER INSERT ON pages BEGIN\n"
    "  INSERT INTO pages_fts(rowid, text) VALUES (new.id, new.text);\n"
    "END;\n"
    "CREATE TRIGGER pages_fts_ad AFTER DELETE ON pages BEGIN\n"
    "  INSERT INTO pages_fts(pages_fts, rowid, text)\n"
    "    VALUES ('delete', old.id, old.text);\n"
    "END;\n"
    "CREATE TRIGGER pages_fts_au AFTER UPDATE OF text ON pages BEGIN\n"
    "  INSERT INTO pages_fts(pages_fts, rowid, text)\n"
    "    VALUES ('delete', old.id, old.text);\n"
    "  INSERT INTO pages_fts(rowid, text) VALUES (new.id, new.text);\n"
    "END;\n";

/* version 1 -> 2: guard verdicts per page, heading levels, table cells */
static const char v2[] =
    "ALTER TABLE pages ADD COLUMN guard TEXT;\n"
    "ALTER TABLE pages ADD COLUMN attempts INTEGER;\n"
    "ALTER TABLE pages ADD COLUMN text_similarity REAL;\n"
    "ALTER TABLE blocks ADD COLUMN level INTEGER;\n"
    "CREATE TABLE cells(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  block_id INTEGER NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,\n"
    "  row INTEGER NOT NULL,\n"
    "  col INTEGER NOT NULL,\n"
    "  header INTEGER NOT NULL DEFAULT 0,\n"
    "  text TEXT);\n"
    "CREATE INDEX cells_block ON cells(block_id, row, col);\n";

/* version 2 -> 3: the zoom loop and escalation: tool errors per page,
 * which pass produced a result and whether it is the chosen one */
static const char v3[] = "ALTER TABLE pages ADD COLUMN tool_errors INTEGER;\n"
			 "ALTER TABLE pages ADD COLUMN pass TEXT;\n"
			 "ALTER TABLE pages ADD COLUMN chosen INTEGER;\n";

/* version 3 -> 4: extractions to a JSON Schema, per page or document
 * (page_no 0; a NULL page_id would make the unique key never match, as
 * NULLs are distinct in an index), their leaves as fields rows */
static const char v4[] =
    "CREATE TABLE extractions(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  document_id INTEGER NOT NULL REFERENCES documents(id)\n"
    "    ON DELETE CASCADE,\n"
    "  page_id INTEGER REFERENCES pages(id) ON DELETE CASCADE,\n"
    "  page_no INTEGER NOT NULL,\n"
    "  schema_sha256 TEXT NOT NULL,\n"
    "  schema_title TEXT,\n"
    "  model_id TEXT NOT NULL,\n"
    "  prompt_id TEXT NOT NULL,\n"
    "  status TEXT NOT NULL\n"
    "    CHECK (status IN ('done','incomplete','invalid','error')),\n"
    "  json TEXT,\n"
    "  error TEXT,\n"
    "  source TEXT,\n"
    "  attempts INTEGER,\n"
    "  tokens_in INTEGER,\n"
    "  tokens_out INTEGER,\n"
    "  ms REAL,\n"
    "  created TEXT NOT NULL);\n"
    "CREATE UNIQUE INDEX extractions_key ON extractions(document_id,\n"
    "  page_no, schema_sha256, model_id, prompt_id);\n"
    "ALTER TABLE fields ADD COLUMN extraction_id INTEGER\n"
    "  REFERENCES extractions(id) ON DELETE CASCADE;\n"
    "CREATE INDEX fields_extraction ON fields(extraction_id);\n";

/* version 4 -> 5: pages claimed by the process working on them, so that
 * several processes writing one database each take other pages; a claim
 * lapses at expires (seconds, julianday * 86400) unless renewed, so a
 * killed process's pages are taken up again */
static const char v5[] =
    "CREATE TABLE claims(\n"
    "  document_id INTEGER NOT NULL REFERENCES documents(id)\n"
    "    ON DELETE CASCADE,\n"
    "  page_no INTEGER NOT NULL,\n"
    "  mode TEXT NOT NULL,\n"
    "  model_id TEXT NOT NULL,\n"
    "  prompt_id TEXT NOT NULL,\n"
    "  owner TEXT NOT NULL,\n"
    "  expires REAL NOT NULL,\n"
    "  PRIMARY KEY (document_id, page_no, mode, model_id, prompt_id));\n"
    "CREATE INDEX claims_owner ON claims(owner);\n";

const char *const store_migrations[] = {v1, v2, v3, v4, v5};
const int store_nmigrations = 5;

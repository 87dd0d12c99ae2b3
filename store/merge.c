/*
 * merge.c - combine stores made on several machines (`batch --shard`):
 * the source is attached, and documents, runs and pages it holds that
 * this store lacks are copied in one transaction. Row ids are offset past
 * this store's largest, so blocks, cells, fields and zooms keep pointing
 * at their page (extractions, and the fields they made, at theirs). The resume
 * key decides what is new: nothing is stored twice, and merging the same file
 * again adds nothing.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int merge_err(struct ed_store *st, char *err, size_t errlen,
		     const char *path)
{
	int ec = sqlite3_errcode(st->db) & 0xFF;
	int code = ec == SQLITE_BUSY || ec == SQLITE_LOCKED ? ED_EAGAIN
		   : ec == SQLITE_NOTADB		    ? ED_EFORMAT
							    : ED_EIO;

	return ed_err(err, errlen, code, "merging '%s': %s", path,
		      ec == SQLITE_NOTADB ? "not an ernie-doc database"
					  : sqlite3_errmsg(st->db));
}

static int run_sql(struct ed_store *st, const char *sql, int64_t *changes)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (changes)
		*changes = sqlite3_changes64(st->db);
	return 0;
}

static int int_query(struct ed_store *st, const char *sql, int64_t *v)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	*v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* The same run in both stores: started at the same second with the same
 * tool, backend, model, mode and options. */
#define SAME_RUN                                                               \
	"m.started_at = r.started_at AND m.tool_version = r.tool_version "     \
	"AND m.backend = r.backend AND m.model_id = r.model_id AND "           \
	"m.mode = r.mode AND m.options_json IS r.options_json"

/* Statements in order, after the source is attached as "src". @: the
 * page columns schema 2 added, or NULLs for a schema 1 source. */
static const char *const steps[] = {
    "CREATE TEMP TABLE merge_run(old INTEGER PRIMARY KEY, new INTEGER);\n"
    "CREATE TEMP TABLE merge_page(old INTEGER PRIMARY KEY, doc INTEGER,\n"
    "  page_no INTEGER, mode TEXT, model_id TEXT, prompt_id TEXT,\n"
    "  finished INTEGER);\n"
    "CREATE TEMP TABLE merge_off(pages INTEGER, blocks INTEGER,\n"
    "  cells INTEGER, fields INTEGER, zooms INTEGER);",
    /* documents by content */
    "INSERT INTO main.documents(sha256, path, kind, bytes, pages, title,\n"
    "  error, added_at)\n"
    "SELECT sha256, path, kind, bytes, pages, title, error, added_at\n"
    "  FROM src.documents WHERE true\n"
    "ON CONFLICT(sha256) DO UPDATE SET\n"
    "  pages = coalesce(documents.pages, excluded.pages),\n"
    "  title = coalesce(documents.title, excluded.title),\n"
    "  error = CASE WHEN documents.pages IS NULL THEN excluded.error\n"
    "    ELSE documents.error END",
    /* runs, once each */
    "INSERT INTO main.runs(started_at, finished_at, tool_version, backend,\n"
    "  model_id, mode, options_json)\n"
    "SELECT started_at, finished_at, tool_version, backend, model_id,\n"
    "  mode, options_json FROM src.runs r\n"
    " WHERE NOT EXISTS (SELECT 1 FROM main.runs m WHERE " SAME_RUN ")",
    "INSERT INTO temp.merge_run\n"
    "SELECT r.id, (SELECT min(m.id) FROM main.runs m WHERE " SAME_RUN ")\n"
    "  FROM src.runs r",
    /* the source's pages, keyed in this store */
    "INSERT INTO temp.merge_page\n"
    "SELECT p.id, md.id, p.page_no, p.mode, p.model_id, p.prompt_id,\n"
    "  p.status IN ('done', 'blank')\n"
    "  FROM src.pages p JOIN src.documents sd ON sd.id = p.document_id\n"
    "  JOIN main.documents md ON md.sha256 = sd.sha256",
    /* what this store has already, or has better: not copied */
    "DELETE FROM temp.merge_page WHERE EXISTS (SELECT 1 FROM main.pages m\n"
    "  WHERE m.document_id = merge_page.doc\n"
    "    AND m.page_no = merge_page.page_no AND m.mode = merge_page.mode\n"
    "    AND ((m.model_id = merge_page.model_id\n"
    "          AND m.prompt_id = merge_page.prompt_id\n"
    "          AND (m.status IN ('done', 'blank')\n"
    "               OR NOT merge_page.finished))\n"
    "      OR (NOT merge_page.finished\n"
    "          AND m.status IN ('done', 'blank'))))",
    /* what the source has better: replaced (cascades to blocks...) */
    "DELETE FROM main.pages WHERE id IN (SELECT m.id FROM main.pages m\n"
    "  JOIN temp.merge_page t ON m.document_id = t.doc\n"
    "   AND m.page_no = t.page_no AND m.mode = t.mode\n"
    " WHERE (m.model_id = t.model_id AND m.prompt_id = t.prompt_id)\n"
    "    OR (t.finished AND m.status IN ('needs-model', 'error')))",
    "INSERT INTO temp.merge_off SELECT\n"
    "  (SELECT coalesce(max(id), 0) FROM main.pages),\n"
    "  (SELECT coalesce(max(id), 0) FROM main.blocks),\n"
    "  (SELECT coalesce(max(id), 0) FROM main.cells),\n"
    "  (SELECT coalesce(max(id), 0) FROM main.fields),\n"
    "  (SELECT coalesce(max(id), 0) FROM main.zooms)",
    "INSERT INTO main.pages(id, document_id, page_no, run_id, source, mode,\n"
    "  model_id, prompt_id, status, width, height, dpi, grid_h, grid_w,\n"
    "  image_tokens, text, markdown, reasoning, finish_reason, tokens_in,\n"
    "  tokens_out, ms_render, ms_encode, ms_prefill, ms_decode, error,\n"
    "  created_at, guard, attempts, text_similarity, tool_errors, pass,\n"
    "  chosen)\n"
    "SELECT p.id + o.pages, t.doc, p.page_no,\n"
    "  (SELECT new FROM temp.merge_run WHERE old = p.run_id), p.source,\n"
    "  p.mode, p.model_id, p.prompt_id, p.status, p.width, p.height,\n"
    "  p.dpi, p.grid_h, p.grid_w, p.image_tokens, p.text, p.markdown,\n"
    "  p.reasoning, p.finish_reason, p.tokens_in, p.tokens_out,\n"
    "  p.ms_render, p.ms_encode, p.ms_prefill, p.ms_decode, p.error,\n"
    "  p.created_at, @\n"
    "  FROM src.pages p JOIN temp.merge_page t ON t.old = p.id,\n"
    "  temp.merge_off o ORDER BY p.id",
    "INSERT INTO main.blocks(id, page_id, seq, kind, text, html, bbox,\n"
    "  level)\n"
    "SELECT b.id + o.blocks, b.page_id + o.pages, b.seq, b.kind, b.text,\n"
    "  b.html, b.bbox, @\n"
    "  FROM src.blocks b JOIN temp.merge_page t ON t.old = b.page_id,\n"
    "  temp.merge_off o ORDER BY b.id",
    "INSERT INTO main.cells(id, block_id, row, col, header, text)\n"
    "SELECT c.id + o.cells, c.block_id + o.blocks, c.row, c.col,\n"
    "  c.header, c.text FROM src.cells c\n"
    "  JOIN src.blocks b ON b.id = c.block_id\n"
    "  JOIN temp.merge_page t ON t.old = b.page_id, temp.merge_off o\n"
    " ORDER BY c.id",
    "INSERT INTO main.fields(id, page_id, name, value, rule, span_start,\n"
    "  span_end)\n"
    "SELECT f.id + o.fields, f.page_id + o.pages, f.name, f.value, f.rule,\n"
    "  f.span_start, f.span_end\n"
    "  FROM src.fields f JOIN temp.merge_page t ON t.old = f.page_id,\n"
    "  temp.merge_off o @ ORDER BY f.id",
    "INSERT INTO main.zooms(id, page_id, step, x1, y1, x2, y2, label,\n"
    "  width, height)\n"
    "SELECT z.id + o.zooms, z.page_id + o.pages, z.step, z.x1, z.y1, z.x2,\n"
    "  z.y2, z.label, z.width, z.height\n"
    "  FROM src.zooms z JOIN temp.merge_page t ON t.old = z.page_id,\n"
    "  temp.merge_off o ORDER BY z.id",
};

/* Schema 4's extractions, after the pages: each source page mapped to
 * the page this store now has for it (copied, or its own finished one),
 * extractions by their resume key (a result here stays; an error here
 * gives way to a result there), their fields pointing at both. */
static const char *const xsteps[] = {
    "CREATE TEMP TABLE merge_pmap(old INTEGER PRIMARY KEY, new INTEGER);\n"
    "CREATE TEMP TABLE merge_xoff(x INTEGER);",
    "INSERT INTO temp.merge_pmap SELECT p.id, coalesce(\n"
    "  (SELECT t.old + o.pages FROM temp.merge_page t, temp.merge_off o\n"
    "    WHERE t.old = p.id),\n"
    "  (SELECT m.id FROM main.pages m JOIN main.documents md\n"
    "    ON md.id = m.document_id WHERE md.sha256 = sd.sha256\n"
    "    AND m.page_no = p.page_no AND m.status IN ('done', 'blank')\n"
    "    ORDER BY m.id DESC LIMIT 1))\n"
    "  FROM src.pages p JOIN src.documents sd ON sd.id = p.document_id",
    "INSERT INTO temp.merge_xoff\n"
    "  SELECT coalesce(max(id), 0) FROM main.extractions",
    "DELETE FROM main.extractions WHERE status = 'error' AND EXISTS (\n"
    "  SELECT 1 FROM src.extractions x\n"
    "  JOIN src.documents sd ON sd.id = x.document_id\n"
    "  JOIN main.documents md ON md.sha256 = sd.sha256\n"
    " WHERE md.id = extractions.document_id\n"
    "   AND x.page_no = extractions.page_no\n"
    "   AND x.schema_sha256 = extractions.schema_sha256\n"
    "   AND x.model_id = extractions.model_id\n"
    "   AND x.prompt_id = extractions.prompt_id AND x.status != 'error')",
    "INSERT INTO main.extractions(id, document_id, page_id, page_no,\n"
    "  schema_sha256, schema_title, model_id, prompt_id, status, json,\n"
    "  error, source, attempts, tokens_in, tokens_out, ms, created)\n"
    "SELECT x.id + xo.x, md.id,\n"
    "  (SELECT new FROM temp.merge_pmap WHERE old = x.page_id),\n"
    "  x.page_no, x.schema_sha256, x.schema_title, x.model_id,\n"
    "  x.prompt_id, x.status, x.json, x.error, x.source, x.attempts,\n"
    "  x.tokens_in, x.tokens_out, x.ms, x.created\n"
    "  FROM src.extractions x JOIN src.documents sd ON sd.id = x.document_id\n"
    "  JOIN main.documents md ON md.sha256 = sd.sha256, temp.merge_xoff xo\n"
    " WHERE true ORDER BY x.id ON CONFLICT DO NOTHING",
    "INSERT INTO main.fields(page_id, name, value, rule, span_start,\n"
    "  span_end, extraction_id)\n"
    "SELECT pm.new, f.name, f.value, f.rule, f.span_start, f.span_end,\n"
    "  f.extraction_id + xo.x\n"
    "  FROM src.fields f JOIN temp.merge_pmap pm ON pm.old = f.page_id,\n"
    "  temp.merge_xoff xo\n"
    " WHERE f.extraction_id IS NOT NULL AND pm.new IS NOT NULL\n"
    "   AND EXISTS (SELECT 1 FROM main.extractions e\n"
    "               WHERE e.id = f.extraction_id + xo.x)\n"
    " ORDER BY f.id",
};

/* steps[] whose counts or columns matter */
enum {
	STEP_RUNS = 2,
	STEP_REPLACE = 6,
	STEP_PAGES = 8,
	STEP_BLOCKS = 9,
	STEP_CELLS = 10,
	STEP_FIELDS = 11,
};

int ed_store_merge(struct ed_store *st, const char *src_path,
		   struct ed_store_merge_stats *stats, char *err, size_t errlen)
{
	struct ed_store_merge_stats sm = {0};
	struct stat sb;
	sqlite3_stmt *s;
	int64_t version = 0, n = 0, docs0 = 0, docs1 = 0;
	int rc = 0;

	if (st->readonly)
		return ed_err(err, errlen, ED_EINVAL, "the store is read-only");
	/* ATTACH would create a missing file */
	if (stat(src_path, &sb) < 0 || !S_ISREG(sb.st_mode))
		return ed_err(err, errlen, ED_ENOENT,
			      "cannot open database '%s': no such file",
			      src_path);
	if (sqlite3_prepare_v2(st->db, "ATTACH ?1 AS src", -1, &s, NULL) !=
	    SQLITE_OK)
		return merge_err(st, err, errlen, src_path);
	sqlite3_bind_text(s, 1, src_path, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = merge_err(st, err, errlen, src_path);
		sqlite3_finalize(s);
		return rc;
	}
	sqlite3_finalize(s);
	/* the source is only ever read: every statement below writes main
	 * or temp */
	if (int_query(st, "PRAGMA src.user_version", &version)) {
		rc = merge_err(st, err, errlen, src_path);
		goto detach;
	}
	if (version < 1 || version > store_nmigrations) {
		rc = ed_err(err, errlen, ED_EFORMAT,
			    version < 1 ? "'%s' is not an ernie-doc database"
					: "'%s' was made by a newer ernie-doc",
			    src_path);
		goto detach;
	}
	if (run_sql(st, "BEGIN IMMEDIATE", NULL)) {
		rc = merge_err(st, err, errlen, src_path);
		goto detach;
	}
	if (int_query(st, "SELECT count(*) FROM src.pages", &n) ||
	    int_query(st, "SELECT count(*) FROM main.documents", &docs0))
		goto fail;
	for (size_t i = 0; i < ED_ARRAY_LEN(steps); i++) {
		char sql[4096];
		int64_t changes = 0;
		const char *cols = "NULL";
		if (i == STEP_PAGES)
			cols =
			    version >= 3   ? "p.guard, p.attempts, "
					     "p.text_similarity, p.tool_errors, "
					     "p.pass, p.chosen"
			    : version >= 2 ? "p.guard, p.attempts, "
					     "p.text_similarity, NULL, NULL, "
					     "NULL"
					   : "NULL, NULL, NULL, NULL, NULL, "
					     "NULL";
		else if (i == STEP_BLOCKS)
			cols = version >= 2 ? "b.level" : "NULL";
		else if (i == STEP_CELLS && version < 2)
			continue; /* schema 1 has no cells */
		else if (i == STEP_FIELDS)
			/* an extraction's fields come with it, below */
			cols =
			    version >= 4 ? "WHERE f.extraction_id IS NULL" : "";
		{
			const char *at = strchr(steps[i], '@');
			if (at)
				snprintf(sql, sizeof sql, "%.*s%s%s",
					 (int)(at - steps[i]), steps[i], cols,
					 at + 1);
			else
				snprintf(sql, sizeof sql, "%s", steps[i]);
		}
		if (run_sql(st, sql, &changes))
			goto fail;
		if (i == STEP_RUNS) {
			sm.runs_added = changes;
		} else if (i == STEP_REPLACE) {
			sm.pages_replaced = changes;
		} else if (i == STEP_PAGES) {
			sm.pages_added = changes;
		}
	}
	for (size_t i = 0; version >= 4 && i < ED_ARRAY_LEN(xsteps); i++)
		if (run_sql(st, xsteps[i], NULL))
			goto fail;
	sm.pages_skipped = n - sm.pages_added;
	if (int_query(st, "SELECT count(*) FROM main.documents", &docs1))
		goto fail;
	sm.docs_added = docs1 - docs0;
	if (run_sql(st, "COMMIT", NULL))
		goto fail;
	rc = 0;
	goto cleanup;
fail:
	rc = merge_err(st, err, errlen, src_path);
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
cleanup:
	sqlite3_exec(st->db,
		     "DROP TABLE IF EXISTS temp.merge_run;"
		     "DROP TABLE IF EXISTS temp.merge_page;"
		     "DROP TABLE IF EXISTS temp.merge_off;"
		     "DROP TABLE IF EXISTS temp.merge_pmap;"
		     "DROP TABLE IF EXISTS temp.merge_xoff;",
		     NULL, NULL, NULL);
detach:
	sqlite3_exec(st->db, "DETACH src", NULL, NULL, NULL);
	if (!rc && stats)
		*stats = sm;
	return rc;
}

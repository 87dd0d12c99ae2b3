/*
 * extract.c - the extractions table (schema v4): one row per resume key
 * (document, page or 0, schema hash, model id, prompt id), its leaves as
 * fields rows that point back at it, and the reads the extract command
 * needs (documents, the pages export would show, a document's
 * extractions). One transaction per extraction, like a page.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

static void bind_s(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void bind_key(sqlite3_stmt *s, const struct ed_store_extraction *k)
{
	sqlite3_bind_int64(s, 1, k->doc_id);
	sqlite3_bind_int(s, 2, k->page_no);
	bind_s(s, 3, k->schema_sha256);
	bind_s(s, 4, k->model_id);
	bind_s(s, 5, k->prompt_id);
}

int ed_store_extraction_lookup(struct ed_store *st,
			       const struct ed_store_extraction *key,
			       int64_t *id, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc;

	*id = 0;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT id FROM extractions WHERE document_id = "
			       "?1 AND page_no = ?2 AND schema_sha256 = ?3 AND "
			       "model_id = ?4 AND prompt_id = ?5 AND status != "
			       "'error'",
			       -1, &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen,
				    "looking up an extraction");
	bind_key(s, key);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_db_err(st, ED_EIO, err, errlen,
				    "looking up an extraction");
	return 0;
}

static int put(struct ed_store *st, const struct ed_store_extraction *e,
	       int64_t *id)
{
	sqlite3_stmt *s = NULL;
	int64_t xid;

	if (sqlite3_prepare_v2(st->db,
			       "DELETE FROM extractions WHERE document_id = ?1 "
			       "AND page_no = ?2 AND schema_sha256 = ?3 AND "
			       "model_id = ?4 AND prompt_id = ?5",
			       -1, &s, NULL) != SQLITE_OK)
		return -1;
	bind_key(s, e);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(
		st->db,
		"INSERT INTO extractions(document_id, page_no, schema_sha256, "
		"model_id, prompt_id, page_id, schema_title, status, json, "
		"error, source, attempts, tokens_in, tokens_out, ms, created) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
		"?13, ?14, ?15, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
		-1, &s, NULL) != SQLITE_OK)
		return -1;
	bind_key(s, e);
	if (e->page_id > 0)
		sqlite3_bind_int64(s, 6, e->page_id);
	else
		sqlite3_bind_null(s, 6);
	bind_s(s, 7, e->schema_title);
	bind_s(s, 8, e->status);
	bind_s(s, 9, e->json);
	bind_s(s, 10, e->error);
	bind_s(s, 11, e->source);
	sqlite3_bind_int(s, 12, e->attempts);
	sqlite3_bind_int64(s, 13, e->tokens_in);
	sqlite3_bind_int64(s, 14, e->tokens_out);
	sqlite3_bind_double(s, 15, e->ms);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	xid = sqlite3_last_insert_rowid(st->db);
	if (sqlite3_prepare_v2(st->db,
			       "INSERT INTO fields(page_id, name, value, rule, "
			       "span_start, span_end, extraction_id) VALUES "
			       "(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
			       -1, &s, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < e->nfields; i++) {
		const struct ed_store_xfield *f = &e->fields[i];
		char rule[300];
		snprintf(rule, sizeof rule, "schema:%s",
			 e->schema_title ? e->schema_title : "schema");
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, f->page_id);
		bind_s(s, 2, f->name);
		bind_s(s, 3, f->value);
		bind_s(s, 4, rule);
		if (f->start >= 0) {
			sqlite3_bind_int64(s, 5, f->start);
			sqlite3_bind_int64(s, 6, f->end);
		} else {
			sqlite3_bind_null(s, 5);
			sqlite3_bind_null(s, 6);
		}
		sqlite3_bind_int64(s, 7, xid);
		if (sqlite3_step(s) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_finalize(s);
	if (id)
		*id = xid;
	return 0;
fail:
	sqlite3_finalize(s);
	return -1;
}

int ed_store_extraction_put(struct ed_store *st,
			    const struct ed_store_extraction *e, int64_t *id,
			    char *err, size_t errlen)
{
	int rc;

	if ((rc = store_exec(st, "BEGIN IMMEDIATE", err, errlen)))
		return rc;
	if (put(st, e, id)) {
		rc = store_db_err(st, ED_EIO, err, errlen,
				  "storing an extraction");
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return store_commit(st, err, errlen);
}

static int rows(struct ed_store *st, const char *sql, int64_t id,
		ed_store_row_fn cb, void *ud, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	bool stopped = false;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen, "reading");
	sqlite3_bind_int64(s, 1, id);
	rc = store_emit_rows(s, cb, ud, &stopped);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_db_err(st, ED_EIO, err, errlen, "reading");
	return 0;
}

int ed_store_extraction_get(struct ed_store *st, int64_t id, ed_store_row_fn cb,
			    void *ud, char *err, size_t errlen)
{
	return rows(st,
		    "SELECT status, json, error, schema_title, page_no FROM "
		    "extractions WHERE id = ?1",
		    id, cb, ud, err, errlen);
}

int ed_store_docs(struct ed_store *st, int64_t id, ed_store_row_fn cb, void *ud,
		  char *err, size_t errlen)
{
	return rows(st,
		    "SELECT id, sha256, path, kind, pages FROM documents "
		    "WHERE (?1 = 0 OR id = ?1) AND error IS NULL ORDER BY id",
		    id, cb, ud, err, errlen);
}

int ed_store_doc_pages(struct ed_store *st, int64_t doc_id, ed_store_row_fn cb,
		       void *ud, char *err, size_t errlen)
{
	return rows(st,
		    "SELECT p.id, p.page_no, p.text FROM pages p WHERE "
		    "p.document_id = ?1 AND p.id = (SELECT q.id FROM pages q "
		    "WHERE q.document_id = p.document_id AND q.page_no = "
		    "p.page_no AND q.status IN ('done', 'blank') AND "
		    "coalesce(q.chosen, 1) ORDER BY q.id DESC LIMIT 1) "
		    "ORDER BY p.page_no",
		    doc_id, cb, ud, err, errlen);
}

int ed_store_doc_extractions(struct ed_store *st, int64_t doc_id,
			     ed_store_row_fn cb, void *ud, char *err,
			     size_t errlen)
{
	return rows(st,
		    "SELECT page_no, schema_title, schema_sha256, model_id, "
		    "prompt_id, status, json, created FROM extractions WHERE "
		    "document_id = ?1 ORDER BY page_no, id",
		    doc_id, cb, ud, err, errlen);
}

/*
 * store.c - the SQLite connection: open and migrate, documents, runs,
 * pages (one transaction each), read-only queries, full-text search and
 * document export. SQLite errors are converted once, here, into ED_E*
 * codes with sqlite3_errmsg().
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

const char *ed_store_sqlite_version(void)
{
	return sqlite3_libversion();
}

/* A locked database is a temporary failure: another writer holds it
 * past the busy timeout, and a later run will get through. */
static int code_of(struct ed_store *st, int fallback)
{
	int ec = sqlite3_errcode(st->db) & 0xFF;

	if (ec == SQLITE_BUSY || ec == SQLITE_LOCKED)
		return ED_EAGAIN;
	return fallback;
}

int store_db_err(struct ed_store *st, int code, char *err, size_t errlen,
		 const char *what)
{
	return ed_err(err, errlen, code_of(st, code), "%s: %s", what,
		      sqlite3_errmsg(st->db));
}

int store_exec(struct ed_store *st, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		rc = code_of(st, ED_EIO);
		ed_err(err, errlen, rc, "database: %s",
		       msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

/* COMMIT; when it fails (an I/O error can leave the transaction open),
 * roll back so the connection is usable and nothing half-done stays. */
int store_commit(struct ed_store *st, char *err, size_t errlen)
{
	int rc = store_exec(st, "COMMIT", err, errlen);

	if (rc && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

void ed_store_set_busy_timeout(struct ed_store *st, int ms)
{
	sqlite3_busy_timeout(st->db, ms);
}

static int user_version(struct ed_store *st, int *v)
{
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

/* Each step in its own write transaction, the version read again inside
 * it: processes opening one new database at once take turns (the busy
 * handler), and one that finds the step done by another goes on. */
static int migrate(struct ed_store *st, int from, char *err, size_t errlen)
{
	for (int v = from; v < store_nmigrations; v++) {
		char set[64];
		int rc, now = v;

		/* the count makes SQLite check its cached schema against the
		 * file's: tables another process just made become visible */
		if ((rc = store_exec(st, "BEGIN IMMEDIATE", err, errlen)))
			return rc;
		if ((rc = store_exec(st, "SELECT count(*) FROM sqlite_schema",
				     err, errlen))) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		if (user_version(st, &now) != SQLITE_OK) {
			rc = store_db_err(st, ED_ECREATE, err, errlen,
					  "database");
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		if (now > v) { /* another process migrated meanwhile */
			if ((rc = store_commit(st, err, errlen)))
				return rc;
			v = now - 1;
			continue;
		}
		snprintf(set, sizeof set, "PRAGMA user_version = %d", v + 1);
		if ((rc = store_exec(st, store_migrations[v], err, errlen)) ||
		    (rc = store_exec(st, set, err, errlen)) ||
		    (rc = store_exec(st, "COMMIT", err, errlen))) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			ed_err_prefix(err, errlen, "migrating to schema %d",
				      v + 1);
			return rc == ED_EAGAIN ? rc : ED_ECREATE;
		}
	}
	return 0;
}

static int prepare(struct ed_store *st, sqlite3_stmt **s, const char *sql,
		   char *err, size_t errlen)
{
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, s,
			       NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen, "database");
	return 0;
}

int ed_store_open(struct ed_store **out, const char *path, int flags, char *err,
		  size_t errlen)
{
	struct ed_store *st;
	bool ro = flags & ED_STORE_READONLY;
	struct stat sb;
	int v = 0, rc, code;

	*out = NULL;
	if (ro && stat(path, &sb) < 0)
		return ed_err(err, errlen, ED_ENOENT,
			      "cannot open database '%s': no such file", path);
	st = calloc(1, sizeof *st);
	if (!st)
		return ed_err(err, errlen, ED_ENOMEM, "out of memory");
	st->readonly = ro;
	code = ro ? ED_EFORMAT : ED_ECREATE;
	rc = sqlite3_open_v2(path, &st->db,
			     ro ? SQLITE_OPEN_READONLY
				: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = ed_err(err, errlen, ro ? ED_ENOENT : ED_ECREATE,
			    "cannot open database '%s': %s", path,
			    st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto out_close;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 5000);
	if (user_version(st, &v) != SQLITE_OK) {
		rc = ed_err(err, errlen, code, "cannot use database '%s': %s",
			    path, sqlite3_errmsg(st->db));
		goto out_close;
	}
	if (v > store_nmigrations) {
		rc = ed_err(err, errlen, code,
			    "database '%s' has schema %d, newer than this "
			    "ernie-doc (%d)",
			    path, v, store_nmigrations);
		goto out_close;
	}
	if (ro) {
		if (v == 0) {
			rc = ed_err(err, errlen, ED_EFORMAT,
				    "'%s' is not an ernie-doc database", path);
			goto out_close;
		}
		if ((rc = store_exec(st, "PRAGMA query_only = 1", err, errlen)))
			goto out_close;
		*out = st;
		return 0;
	}
	/* processes opening one new database at once: the switch to WAL
	 * can meet a lock the busy handler does not wait for (a would-be
	 * deadlock in rollback mode); such a start is tried again */
	for (int tries = 0;; tries++) {
		rc = store_exec(st, "PRAGMA journal_mode = WAL", err, errlen);
		if (rc != ED_EAGAIN || tries == 200)
			break;
		nanosleep(
		    &(struct timespec){0, 20000000 + (getpid() % 7) * 5000000},
		    NULL);
	}
	if (rc ||
	    (rc = store_exec(st, "PRAGMA synchronous = NORMAL", err, errlen)) ||
	    (rc = store_exec(st, "PRAGMA foreign_keys = ON", err, errlen))) {
		if (rc != ED_EAGAIN)
			rc = ED_ECREATE;
		ed_err_prefix(err, errlen, "database '%s'", path);
		goto out_close;
	}
	if ((rc = migrate(st, v, err, errlen))) {
		if (rc != ED_EAGAIN)
			rc = ED_ECREATE;
		ed_err_prefix(err, errlen, "database '%s'", path);
		goto out_close;
	}
	if (prepare(st, &st->lookup,
		    "SELECT id FROM pages WHERE document_id = ?1 AND "
		    "page_no = ?2 AND mode = ?3 AND "
		    "status IN ('done', 'blank') AND "
		    "((model_id = ?4 AND prompt_id = ?5) OR "
		    "(model_id = '' AND prompt_id = '')) AND "
		    "(status = 'blank' OR source != 'text-layer' OR ?6) "
		    "ORDER BY (model_id = ?4 AND prompt_id = ?5) DESC, "
		    "id DESC LIMIT 1",
		    err, errlen) ||
	    prepare(st, &st->del,
		    "DELETE FROM pages WHERE document_id = ?1 AND "
		    "page_no = ?2 AND mode = ?3 AND ((model_id = ?4 AND "
		    "prompt_id = ?5) OR status IN ('needs-model', 'error'))",
		    err, errlen) ||
	    prepare(st, &st->ins,
		    "INSERT INTO pages(document_id, page_no, mode, model_id, "
		    "prompt_id, run_id, source, status, width, height, dpi, "
		    "grid_h, grid_w, image_tokens, text, markdown, reasoning, "
		    "finish_reason, error, tokens_in, tokens_out, ms_render, "
		    "ms_encode, ms_prefill, ms_decode, guard, attempts, "
		    "text_similarity, tool_errors, pass, chosen, created_at) "
		    "VALUES "
		    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
		    "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, "
		    "?25, ?26, ?27, ?28, ?29, ?30, ?31, "
		    "strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
		    err, errlen) ||
	    prepare(st, &st->ins_block,
		    "INSERT INTO blocks(page_id, seq, kind, level, text, html, "
		    "bbox) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
		    err, errlen) ||
	    prepare(st, &st->ins_cell,
		    "INSERT INTO cells(block_id, row, col, header, text) "
		    "VALUES (?1, ?2, ?3, ?4, ?5)",
		    err, errlen) ||
	    prepare(
		st, &st->ins_field,
		"INSERT INTO fields(page_id, name, value, rule, span_start, "
		"span_end) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
		err, errlen) ||
	    prepare(
		st, &st->ins_zoom,
		"INSERT INTO zooms(page_id, step, x1, y1, x2, y2, label, "
		"width, height) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
		err, errlen)) {
		rc = ED_ECREATE;
		goto out_close;
	}
	*out = st;
	return 0;
out_close:
	ed_store_close(st);
	return rc;
}

void ed_store_close(struct ed_store *st)
{
	if (!st)
		return;
	sqlite3_finalize(st->lookup);
	sqlite3_finalize(st->del);
	sqlite3_finalize(st->ins);
	sqlite3_finalize(st->ins_block);
	sqlite3_finalize(st->ins_cell);
	sqlite3_finalize(st->ins_field);
	sqlite3_finalize(st->ins_zoom);
	sqlite3_close(st->db);
	free(st);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void bind_pos_int(sqlite3_stmt *s, int i, int64_t v)
{
	if (v > 0)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

static void bind_pos_real(sqlite3_stmt *s, int i, double v)
{
	if (v > 0)
		sqlite3_bind_double(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

int ed_store_doc_put(struct ed_store *st, const struct ed_store_doc *d,
		     int64_t *id, char *err, size_t errlen)
{
	static const char sql[] =
	    "INSERT INTO documents(sha256, path, kind, bytes, pages, title, "
	    "error, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
	    "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) "
	    "ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, "
	    "kind = excluded.kind, pages = coalesce(excluded.pages, pages), "
	    "title = coalesce(excluded.title, title), error = excluded.error "
	    "RETURNING id";
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen,
				    "storing document");
	bind_text(s, 1, d->sha256);
	bind_text(s, 2, d->path);
	bind_text(s, 3, d->kind);
	sqlite3_bind_int64(s, 4, d->bytes);
	bind_pos_int(s, 5, d->pages);
	bind_text(s, 6, d->title);
	bind_text(s, 7, d->error);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		/* with RETURNING the statement's own commit comes when it
		 * runs to its end: an I/O error there undoes the row */
		rc = sqlite3_step(s);
	}
	if (rc != SQLITE_DONE) {
		rc = store_db_err(st, ED_EIO, err, errlen, "storing document");
		sqlite3_finalize(s);
		return rc;
	}
	sqlite3_finalize(s);
	return 0;
}

int ed_store_run_begin(struct ed_store *st, const struct ed_store_run *r,
		       int64_t *id, char *err, size_t errlen)
{
	static const char sql[] =
	    "INSERT INTO runs(started_at, tool_version, backend, model_id, "
	    "mode, options_json) VALUES (strftime('%Y-%m-%dT%H:%M:%SZ', "
	    "'now'), ?1, ?2, ?3, ?4, ?5)";
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen, "starting run");
	bind_text(s, 1, r->tool_version);
	bind_text(s, 2, r->backend);
	bind_text(s, 3, r->model_id ? r->model_id : "");
	bind_text(s, 4, r->mode);
	bind_text(s, 5, r->options_json);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_db_err(st, ED_EIO, err, errlen, "starting run");
	*id = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int ed_store_run_end(struct ed_store *st, int64_t id, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db,
			       "UPDATE runs SET finished_at = strftime("
			       "'%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?1",
			       -1, &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen, "finishing run");
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_db_err(st, ED_EIO, err, errlen, "finishing run");
	return 0;
}

static void bind_key(sqlite3_stmt *s, const struct ed_store_key *k)
{
	sqlite3_bind_int64(s, 1, k->doc_id);
	sqlite3_bind_int(s, 2, k->page_no);
	bind_text(s, 3, k->mode);
	bind_text(s, 4, k->model_id ? k->model_id : "");
	bind_text(s, 5, k->prompt_id ? k->prompt_id : "");
}

int ed_store_page_lookup(struct ed_store *st, const struct ed_store_key *k,
			 bool text_layer_ok, int64_t *page_id, char *err,
			 size_t errlen)
{
	sqlite3_stmt *s = st->lookup;
	int rc;

	sqlite3_reset(s);
	bind_key(s, k);
	sqlite3_bind_int(s, 6, text_layer_ok);
	rc = sqlite3_step(s);
	*page_id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_db_err(st, ED_EIO, err, errlen, "looking up page");
	return 0;
}

/* One page's rows, inside the caller's transaction. 0, or -1 with the
 * statement that failed reset. */
static int put_one(struct ed_store *st, const struct ed_store_page *p,
		   int64_t *id)
{
	sqlite3_stmt *s;
	int64_t page_id;

	s = st->del;
	sqlite3_reset(s);
	bind_key(s, &p->key);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	s = st->ins;
	sqlite3_reset(s);
	bind_key(s, &p->key);
	bind_pos_int(s, 6, p->run_id);
	bind_text(s, 7, p->source);
	bind_text(s, 8, p->status);
	bind_pos_real(s, 9, p->width_pt);
	bind_pos_real(s, 10, p->height_pt);
	bind_pos_real(s, 11, p->dpi);
	bind_pos_int(s, 12, p->grid_h);
	bind_pos_int(s, 13, p->grid_w);
	bind_pos_int(s, 14, p->image_tokens);
	bind_text(s, 15, p->text);
	bind_text(s, 16, p->markdown);
	bind_text(s, 17, p->reasoning);
	bind_text(s, 18, p->finish_reason);
	bind_text(s, 19, p->error);
	bind_pos_int(s, 20, p->tokens_in);
	bind_pos_int(s, 21, p->tokens_out);
	bind_pos_real(s, 22, p->ms_render);
	bind_pos_real(s, 23, p->ms_encode);
	bind_pos_real(s, 24, p->ms_prefill);
	bind_pos_real(s, 25, p->ms_decode);
	bind_text(s, 26, p->guard);
	bind_pos_int(s, 27, p->attempts);
	if (p->has_similarity)
		sqlite3_bind_double(s, 28, p->similarity);
	else
		sqlite3_bind_null(s, 28);
	if (p->tools)
		sqlite3_bind_int(s, 29, p->tool_errors);
	else
		sqlite3_bind_null(s, 29);
	bind_text(s, 30, p->pass);
	if (p->chosen >= 0 && p->pass)
		sqlite3_bind_int(s, 31, p->chosen);
	else
		sqlite3_bind_null(s, 31);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	page_id = sqlite3_last_insert_rowid(st->db);
	if (id)
		*id = page_id;
	for (size_t b = 0; b < p->nblocks; b++) {
		const struct ed_store_block *bl = &p->blocks[b];
		int64_t block_id;
		s = st->ins_block;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, page_id);
		sqlite3_bind_int64(s, 2, (int64_t)b);
		bind_text(s, 3, bl->kind);
		bind_pos_int(s, 4, bl->level);
		bind_text(s, 5, bl->text);
		bind_text(s, 6, bl->html);
		bind_text(s, 7, bl->bbox);
		if (sqlite3_step(s) != SQLITE_DONE)
			goto fail;
		block_id = sqlite3_last_insert_rowid(st->db);
		for (size_t c = 0; c < bl->ncells; c++) {
			s = st->ins_cell;
			sqlite3_reset(s);
			sqlite3_bind_int64(s, 1, block_id);
			sqlite3_bind_int(s, 2, bl->cells[c].row);
			sqlite3_bind_int(s, 3, bl->cells[c].col);
			sqlite3_bind_int(s, 4, bl->cells[c].header);
			bind_text(s, 5, bl->cells[c].text);
			if (sqlite3_step(s) != SQLITE_DONE)
				goto fail;
		}
	}
	for (size_t f = 0; f < p->nfields; f++) {
		const struct ed_store_field *fd = &p->fields[f];
		s = st->ins_field;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, page_id);
		bind_text(s, 2, fd->name);
		bind_text(s, 3, fd->value);
		bind_text(s, 4, fd->rule);
		sqlite3_bind_int64(s, 5, fd->start);
		sqlite3_bind_int64(s, 6, fd->end);
		if (sqlite3_step(s) != SQLITE_DONE)
			goto fail;
	}
	for (size_t z = 0; z < p->nzooms; z++) {
		const struct ed_store_zoom *zm = &p->zooms[z];
		s = st->ins_zoom;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, page_id);
		sqlite3_bind_int(s, 2, zm->step);
		sqlite3_bind_double(s, 3, zm->x1);
		sqlite3_bind_double(s, 4, zm->y1);
		sqlite3_bind_double(s, 5, zm->x2);
		sqlite3_bind_double(s, 6, zm->y2);
		bind_text(s, 7, zm->label && *zm->label ? zm->label : NULL);
		sqlite3_bind_int(s, 8, zm->width);
		sqlite3_bind_int(s, 9, zm->height);
		if (sqlite3_step(s) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_reset(st->ins);
	sqlite3_reset(st->del);
	return 0;
fail:
	return -1;
}

int ed_store_page_put(struct ed_store *st, const struct ed_store_page *p,
		      int64_t *id, char *err, size_t errlen)
{
	int rc;

	if ((rc = store_exec(st, "BEGIN IMMEDIATE", err, errlen)))
		return rc;
	if (put_one(st, p, id) || (p->alt && put_one(st, p->alt, NULL))) {
		rc = store_db_err(st, ED_EIO, err, errlen, "storing page");
		sqlite3_reset(st->ins);
		sqlite3_reset(st->del);
		sqlite3_reset(st->ins_block);
		sqlite3_reset(st->ins_cell);
		sqlite3_reset(st->ins_field);
		sqlite3_reset(st->ins_zoom);
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return store_commit(st, err, errlen);
}

/* ---- reading ------------------------------------------------------ */

int store_emit_rows(sqlite3_stmt *s, ed_store_row_fn cb, void *ud,
		    bool *stopped)
{
	int ncol = sqlite3_column_count(s), rc;
	const char *names[256];
	struct ed_store_value vals[256];

	if (ncol > 256)
		ncol = 256;
	for (int i = 0; i < ncol; i++)
		names[i] = sqlite3_column_name(s, i);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		for (int i = 0; i < ncol; i++) {
			struct ed_store_value *v = &vals[i];
			memset(v, 0, sizeof *v);
			switch (sqlite3_column_type(s, i)) {
			case SQLITE_INTEGER:
				v->type = ED_STORE_INT;
				v->i = sqlite3_column_int64(s, i);
				break;
			case SQLITE_FLOAT:
				v->type = ED_STORE_REAL;
				v->r = sqlite3_column_double(s, i);
				break;
			case SQLITE_TEXT:
				v->type = ED_STORE_TEXT;
				v->s = (const char *)sqlite3_column_text(s, i);
				v->n = (size_t)sqlite3_column_bytes(s, i);
				break;
			case SQLITE_BLOB:
				v->type = ED_STORE_BLOB;
				v->s = sqlite3_column_blob(s, i);
				v->n = (size_t)sqlite3_column_bytes(s, i);
				break;
			default: v->type = ED_STORE_NULL;
			}
		}
		if (cb(ud, ncol, names, vals)) {
			*stopped = true;
			return SQLITE_DONE;
		}
	}
	return rc;
}

int ed_store_query(struct ed_store *st, const char *sql, ed_store_row_fn cb,
		   void *ud, char *err, size_t errlen)
{
	const char *tail = sql;
	bool stopped = false;

	while (tail && *tail && !stopped) {
		sqlite3_stmt *s = NULL;
		int rc = sqlite3_prepare_v2(st->db, tail, -1, &s, &tail);

		if (rc != SQLITE_OK)
			return ed_err(err, errlen, ED_EFORMAT, "sql error: %s",
				      sqlite3_errmsg(st->db));
		if (!s) /* whitespace or a comment */
			continue;
		if (!sqlite3_stmt_readonly(s)) {
			char head[64];
			snprintf(head, sizeof head, "%s", sqlite3_sql(s));
			sqlite3_finalize(s);
			return ed_err(err, errlen, ED_EFORMAT,
				      "refusing a statement that writes ('%s"
				      "...'): the database is opened read-only",
				      head);
		}
		rc = store_emit_rows(s, cb, ud, &stopped);
		if (rc != SQLITE_DONE) {
			int code = ED_EFORMAT;
			ed_err(err, errlen, code, "sql error: %s",
			       sqlite3_errmsg(st->db));
			sqlite3_finalize(s);
			return code;
		}
		if (sqlite3_column_count(s) > 0 && !stopped)
			cb(ud, -1, NULL, NULL);
		sqlite3_finalize(s);
	}
	return 0;
}

/* Each whitespace-separated term as an FTS5 string ("a""b" escapes). */
static char *quote_terms(const char *terms)
{
	struct ed_buf b;
	const char *p = terms;

	ed_buf_init(&b, 1 << 20);
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		if (b.len)
			ed_buf_putc(&b, ' ');
		ed_buf_putc(&b, '"');
		for (; *p && *p != ' ' && *p != '\t' && *p != '\n'; p++) {
			if (*p == '"')
				ed_buf_putc(&b, '"');
			ed_buf_putc(&b, *p);
		}
		ed_buf_putc(&b, '"');
	}
	return ed_buf_detach(&b, NULL);
}

int ed_store_search(struct ed_store *st, const char *terms, int limit,
		    const char *open, const char *close, ed_store_row_fn cb,
		    void *ud, char *err, size_t errlen)
{
	static const char sql[] =
	    "SELECT d.id AS document, d.path AS path, p.page_no AS page, "
	    "round(bm25(pages_fts), 3) AS score, "
	    "snippet(pages_fts, 0, ?2, ?3, '...', 16) AS snippet "
	    "FROM pages_fts JOIN pages p ON p.id = pages_fts.rowid "
	    "JOIN documents d ON d.id = p.document_id "
	    "WHERE pages_fts MATCH ?1 AND coalesce(p.chosen, 1) "
	    "ORDER BY bm25(pages_fts), p.id "
	    "LIMIT ?4";
	char *quoted = NULL;
	bool stopped = false;

	for (int attempt = 0; attempt < 2; attempt++) {
		sqlite3_stmt *s;
		int rc;

		if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) !=
		    SQLITE_OK) {
			free(quoted);
			return store_db_err(st, ED_EIO, err, errlen, "search");
		}
		if (attempt == 1 && !(quoted = quote_terms(terms))) {
			sqlite3_finalize(s);
			return ed_err(err, errlen, ED_ENOMEM, "out of memory");
		}
		bind_text(s, 1, attempt ? quoted : terms);
		bind_text(s, 2, open);
		bind_text(s, 3, close);
		sqlite3_bind_int(s, 4, limit > 0 ? limit : -1);
		rc = store_emit_rows(s, cb, ud, &stopped);
		if (rc == SQLITE_DONE) {
			sqlite3_finalize(s);
			free(quoted);
			return 0;
		}
		/* FTS5 syntax errors surface at step time; retry once with
		 * every term quoted, so "e-mail" or "C++" just work */
		if (attempt == 1 || stopped) {
			int code = ED_EFORMAT;
			ed_err(err, errlen, code, "bad search '%s': %s", terms,
			       sqlite3_errmsg(st->db));
			sqlite3_finalize(s);
			free(quoted);
			return code;
		}
		sqlite3_finalize(s);
	}
	free(quoted);
	return 0;
}

int ed_store_page_get(struct ed_store *st, int64_t id, ed_store_row_fn cb,
		      void *ud, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	bool stopped = false;
	int rc;

	if (sqlite3_prepare_v2(
		st->db,
		"SELECT id, page_no, status, source, text, "
		"markdown, error, width, height, dpi, ms_render, "
		"reasoning, finish_reason, tokens_in, "
		"tokens_out, guard, attempts, text_similarity "
		"FROM pages WHERE id = ?1",
		-1, &s, NULL) != SQLITE_OK)
		return store_db_err(st, ED_EIO, err, errlen, "reading page");
	sqlite3_bind_int64(s, 1, id);
	rc = store_emit_rows(s, cb, ud, &stopped);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_db_err(st, ED_EIO, err, errlen, "reading page");
	return 0;
}

static bool is_hex(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int ed_store_doc_find(struct ed_store *st, const char *sel, int64_t *id,
		      char *err, size_t errlen)
{
	static const char *const sqls[] = {
	    "SELECT id FROM documents WHERE id = ?1 AND ?2",
	    "SELECT id FROM documents WHERE sha256 LIKE ?1 || '%' AND ?2",
	    "SELECT id FROM documents WHERE path = ?1",
	    "SELECT id FROM documents WHERE path LIKE '%/' || ?1 OR "
	    "path = ?1",
	};
	bool numeric = *sel && strspn(sel, "0123456789") == strlen(sel);
	bool hex = strlen(sel) >= 6 && strlen(sel) <= 64 && is_hex(sel);

	for (size_t q = 0; q < ED_ARRAY_LEN(sqls); q++) {
		sqlite3_stmt *s;
		int n = 0;

		if (sqlite3_prepare_v2(st->db, sqls[q], -1, &s, NULL) !=
		    SQLITE_OK)
			return store_db_err(st, ED_EIO, err, errlen,
					    "finding document");
		bind_text(s, 1, sel);
		sqlite3_bind_int(s, 2, q == 0 ? numeric : hex);
		while (sqlite3_step(s) == SQLITE_ROW) {
			*id = sqlite3_column_int64(s, 0);
			n++;
		}
		sqlite3_finalize(s);
		if (n == 1)
			return 0;
		if (n > 1)
			return ed_err(
			    err, errlen, ED_EINVAL,
			    "'%s' matches %d documents; use its id or "
			    "sha256",
			    sel, n);
	}
	return ed_err(err, errlen, ED_ENOENT,
		      "no document '%s' in the database", sel);
}

int ed_store_doc_export(struct ed_store *st, int64_t id, ed_store_row_fn cb,
			void *ud, char *err, size_t errlen)
{
	static const char *const sqls[] = {
	    "SELECT id, sha256, path, kind, bytes, pages, title, error, "
	    "added_at FROM documents WHERE id = ?1",
	    "SELECT p.page_no, p.status, p.source, p.mode, p.model_id, "
	    "p.text, p.markdown, p.reasoning, p.width, p.height FROM pages p "
	    "WHERE p.document_id = ?1 AND p.id = (SELECT q.id FROM pages q "
	    "WHERE q.document_id = p.document_id AND q.page_no = p.page_no "
	    "AND q.status IN ('done', 'blank') AND coalesce(q.chosen, 1) "
	    "ORDER BY q.id DESC LIMIT 1) "
	    "ORDER BY p.page_no",
	};
	bool stopped = false;

	for (size_t q = 0; q < ED_ARRAY_LEN(sqls) && !stopped; q++) {
		sqlite3_stmt *s;
		int rc;

		if (sqlite3_prepare_v2(st->db, sqls[q], -1, &s, NULL) !=
		    SQLITE_OK)
			return store_db_err(st, ED_EIO, err, errlen, "export");
		sqlite3_bind_int64(s, 1, id);
		rc = store_emit_rows(s, cb, ud, &stopped);
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE)
			return store_db_err(st, ED_EIO, err, errlen, "export");
		if (!stopped && q == 0)
			cb(ud, -1, NULL, NULL);
	}
	return 0;
}

/*
 * test_store.c - store/: schema and migrations, WAL, documents, the resume
 * key (lookup, replace, unfinished rows dropped), the full-text index kept
 * in sync by triggers, search, export, a read-only connection that
 * refuses writes, and merging stores (schema 1 and 2) without duplicates.
 */
#include "tests/harness.h"

#include <sqlite3.h>
#include <unistd.h>

#include "store/store.h"

static char dbpath[512];

struct rows {
	int n, statements;
	char first[256];
	long long ival;
};

static int collect(void *ud, int ncol, const char *const *names,
		   const struct ed_store_value *v)
{
	struct rows *r = ud;

	(void)names;
	if (ncol < 0) {
		r->statements++;
		return 0;
	}
	if (r->n == 0 && ncol > 0) {
		if (v[0].type == ED_STORE_TEXT)
			snprintf(r->first, sizeof r->first, "%s", v[0].s);
		else if (v[0].type == ED_STORE_INT)
			r->ival = v[0].i;
	}
	r->n++;
	return 0;
}

static long long scalar(struct ed_store *st, const char *sql)
{
	struct rows r = {0};
	char err[256];
	int rc = ed_store_query(st, sql, collect, &r, err, sizeof err);
	CHECK(rc == 0, "%s: %s", sql, err);
	return r.ival;
}

static void put_page(struct ed_store *st, int64_t doc, int page,
		     const char *model, const char *status, const char *text)
{
	struct ed_store_page p = {
	    .key = {doc, page, "ocr", model, model[0] ? "ocr/v1" : ""},
	    .source = model[0] ? "model" : "text-layer",
	    .status = status,
	    .text = text,
	    .width_pt = 612,
	    .height_pt = 792,
	};
	char err[256];
	int64_t id;
	CHECK_INT(ed_store_page_put(st, &p, &id, err, sizeof err), 0);
}

static void test_schema_and_resume(void)
{
	struct ed_store *st;
	char err[256];
	int64_t doc, doc2, run, have;
	struct ed_store_doc d = {.sha256 = "aa",
				 .path = "a.pdf",
				 .kind = "pdf",
				 .bytes = 100,
				 .pages = 3,
				 .title = "A"};
	struct ed_store_key k = {0, 1, "ocr", "", ""};

	CHECK_INT(ed_store_open(&st, dbpath, 0, err, sizeof err), 0);
	CHECK_INT(scalar(st, "PRAGMA user_version"), ED_STORE_SCHEMA_VERSION);
	{
		sqlite3 *db;
		sqlite3_stmt *s;
		sqlite3_open(dbpath, &db);
		sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
		sqlite3_step(s);
		CHECK_STR((const char *)sqlite3_column_text(s, 0), "wal");
		sqlite3_finalize(s);
		sqlite3_close(db);
	}
	CHECK_INT(ed_store_doc_put(st, &d, &doc, err, sizeof err), 0);
	d.path = "renamed.pdf";
	d.title = NULL;
	CHECK_INT(ed_store_doc_put(st, &d, &doc2, err, sizeof err), 0);
	CHECK(doc == doc2, "same sha256, same document");
	CHECK_INT(scalar(st, "SELECT count(*) FROM documents"), 1);
	{
		struct rows r = {0};
		ed_store_query(st, "SELECT title || ':' || path FROM documents",
			       collect, &r, err, sizeof err);
		CHECK_STR(r.first, "A:renamed.pdf");
	}
	{
		struct ed_store_run ru = {"0.1.0", "none", "", "ocr", "{}"};
		CHECK_INT(ed_store_run_begin(st, &ru, &run, err, sizeof err),
			  0);
		CHECK_INT(ed_store_run_end(st, run, err, sizeof err), 0);
		CHECK_INT(scalar(st, "SELECT count(*) FROM runs WHERE "
				     "finished_at IS NOT NULL"),
			  1);
	}

	/* resume: nothing, then a needs-model row (unfinished), then done */
	k.doc_id = doc;
	CHECK_INT(ed_store_page_lookup(st, &k, true, &have, err, sizeof err),
		  0);
	CHECK_INT(have, 0);
	put_page(st, doc, 1, "", "needs-model", NULL);
	CHECK_INT(ed_store_page_lookup(st, &k, true, &have, err, sizeof err),
		  0);
	CHECK(have == 0, "needs-model is not finished");
	put_page(st, doc, 1, "", "done", "alpha bravo charlie");
	CHECK_INT(ed_store_page_lookup(st, &k, true, &have, err, sizeof err),
		  0);
	CHECK(have > 0, "done is finished");
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages"), 1);
	/* a model run finds the text-layer result, unless the text layer is
	 * not wanted */
	k.model_id = "ernie";
	k.prompt_id = "ocr/v1";
	CHECK_INT(ed_store_page_lookup(st, &k, true, &have, err, sizeof err),
		  0);
	CHECK(have > 0, "text-layer row serves a model run in auto mode");
	CHECK_INT(ed_store_page_lookup(st, &k, false, &have, err, sizeof err),
		  0);
	CHECK(have == 0, "but not with --text-layer never");
	/* blank rows count either way */
	put_page(st, doc, 2, "", "blank", "");
	k.page_no = 2;
	CHECK_INT(ed_store_page_lookup(st, &k, false, &have, err, sizeof err),
		  0);
	CHECK(have > 0, "blank is finished for every model");
	/* replacing the same key keeps one row; the index follows */
	put_page(st, doc, 1, "", "done", "delta echo");
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE page_no = 1"),
		  1);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages_fts WHERE pages_fts "
			     "MATCH 'alpha'"),
		  0);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages_fts WHERE pages_fts "
			     "MATCH 'echo'"),
		  1);
	/* a model result for the same page is a different key */
	put_page(st, doc, 1, "ernie", "done", "foxtrot golf");
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE page_no = 1"),
		  2);
	/* an error row is dropped when the page is later finished */
	put_page(st, doc, 3, "ernie", "error", NULL);
	put_page(st, doc, 3, "", "done", "hotel india");
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE page_no = 3"),
		  1);
	/* deleting a document cascades to pages and the index */
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages_fts WHERE pages_fts "
			     "MATCH 'hotel'"),
		  1);
	ed_store_close(st);
}

static void test_search_export(void)
{
	struct ed_store *st;
	struct rows r = {0};
	char err[256];
	int64_t id;

	CHECK_INT(ed_store_open(&st, dbpath, 0, err, sizeof err), 0);
	CHECK_INT(ed_store_search(st, "echo", 10, "[", "]", collect, &r, err,
				  sizeof err),
		  0);
	CHECK_INT(r.n, 1);
	memset(&r, 0, sizeof r);
	/* FTS5 syntax errors fall back to quoted terms */
	CHECK_INT(ed_store_search(st, "delta-echo", 10, "[", "]", collect, &r,
				  err, sizeof err),
		  0);
	CHECK_INT(r.n, 1);
	memset(&r, 0, sizeof r);
	CHECK_INT(ed_store_search(st, "\"unbalanced", 10, "[", "]", collect, &r,
				  err, sizeof err),
		  0);
	CHECK_INT(r.n, 0);
	memset(&r, 0, sizeof r);
	CHECK_INT(ed_store_search(st, "nothing-here-at-all", 10, "[", "]",
				  collect, &r, err, sizeof err),
		  0);
	CHECK_INT(r.n, 0);

	CHECK_INT(ed_store_doc_find(st, "renamed.pdf", &id, err, sizeof err),
		  0);
	CHECK_INT(ed_store_doc_find(st, "1", &id, err, sizeof err), 0);
	CHECK_INT(ed_store_doc_find(st, "nope.pdf", &id, err, sizeof err),
		  ED_ENOENT);
	memset(&r, 0, sizeof r);
	CHECK_INT(ed_store_doc_export(st, id, collect, &r, err, sizeof err), 0);
	/* one document row, then pages 1 (newest: the model row), 2, 3 */
	CHECK_INT(r.n, 4);
	CHECK_INT(r.statements, 1);
	ed_store_close(st);
}

static void test_readonly(void)
{
	struct ed_store *st;
	struct rows r = {0};
	char err[256];
	int rc;

	CHECK_INT(
	    ed_store_open(&st, dbpath, ED_STORE_READONLY, err, sizeof err), 0);
	rc = ed_store_query(st, "SELECT count(*) FROM pages", collect, &r, err,
			    sizeof err);
	CHECK(rc == 0 && r.n == 1, "read works");
	rc = ed_store_query(st, "DELETE FROM pages", collect, &r, err,
			    sizeof err);
	CHECK(rc == ED_EFORMAT && strstr(err, "read-only"),
	      "delete refused: %s", err);
	rc = ed_store_query(st, "SELECT 1; DROP TABLE pages", collect, &r, err,
			    sizeof err);
	CHECK(rc == ED_EFORMAT, "a second statement that writes is refused");
	rc = ed_store_query(st, "PRAGMA user_version = 7", collect, &r, err,
			    sizeof err);
	CHECK(rc == ED_EFORMAT, "pragma write refused");
	rc = ed_store_query(st, "SELEC nonsense", collect, &r, err, sizeof err);
	CHECK(rc == ED_EFORMAT && strstr(err, "syntax"), "sql error: %s", err);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages"), 4);
	ed_store_close(st);
	CHECK_INT(ed_store_open(&st, "/nonexistent/x.db", ED_STORE_READONLY,
				err, sizeof err),
		  ED_ENOENT);
}

static void test_bad_databases(void)
{
	char path[600], err[256];
	struct ed_store *st;
	FILE *f;
	sqlite3 *db;

	snprintf(path, sizeof path, "%s.notdb", dbpath);
	f = fopen(path, "w");
	fputs("this is not a database, just some text that is long enough "
	      "to look like a header of a file................................"
	      "...............................................................",
	      f);
	fclose(f);
	CHECK_INT(ed_store_open(&st, path, 0, err, sizeof err), ED_ECREATE);
	CHECK_INT(ed_store_open(&st, path, ED_STORE_READONLY, err, sizeof err),
		  ED_EFORMAT);
	CHECK_INT(
	    ed_store_open(&st, "/nonexistent-dir/x.db", 0, err, sizeof err),
	    ED_ECREATE);
	/* a database from a newer ernie-doc */
	snprintf(path, sizeof path, "%s.newer", dbpath);
	sqlite3_open(path, &db);
	sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	CHECK_INT(ed_store_open(&st, path, 0, err, sizeof err), ED_ECREATE);
	CHECK(strstr(err, "newer") != NULL, "message: %s", err);
	/* a plain SQLite file that is not ours */
	snprintf(path, sizeof path, "%s.other", dbpath);
	sqlite3_open(path, &db);
	sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
	sqlite3_close(db);
	CHECK_INT(ed_store_open(&st, path, ED_STORE_READONLY, err, sizeof err),
		  ED_EFORMAT);
}

static void test_busy(void)
{
	/* a writer holding the lock past the busy timeout is a temporary
	 * failure, reported as such */
	char path[600], err[256];
	struct ed_store *st;
	sqlite3 *db;
	int64_t doc = 0;
	struct ed_store_doc d = {
	    .sha256 = "bb", .path = "b", .kind = "pdf", .bytes = 1};

	snprintf(path, sizeof path, "%s.busy", dbpath);
	CHECK_INT(ed_store_open(&st, path, 0, err, sizeof err), 0);
	CHECK_INT(ed_store_doc_put(st, &d, &doc, err, sizeof err), 0);
	sqlite3_open(path, &db);
	sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL);
	ed_store_set_busy_timeout(st, 50);
	{
		struct ed_store_page p = {.key = {doc, 1, "ocr", "", ""},
					  .source = "text-layer",
					  .status = "done",
					  .text = "x"};
		CHECK_INT(ed_store_page_put(st, &p, NULL, err, sizeof err),
			  ED_EAGAIN);
	}
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	ed_store_close(st);
}

/* A finished model page with a table block (two cells) and a field. */
static int64_t put_full(struct ed_store *st, int64_t doc, int page,
			const char *text)
{
	static const struct ed_store_cell cells[] = {{0, 0, true, "Item"},
						     {1, 0, false, "Paper"}};
	const struct ed_store_block blocks[] = {
	    {.kind = "heading", .level = 2, .text = "Title"},
	    {.kind = "table",
	     .text = "Item Paper",
	     .html = "<table>...</table>",
	     .cells = cells,
	     .ncells = 2},
	};
	const struct ed_store_field field = {"email", "a@b.example", "email", 6,
					     17};
	struct ed_store_page p = {
	    .key = {doc, page, "ocr", "ernie", "ocr/v1"},
	    .source = "model",
	    .status = "done",
	    .text = text,
	    .guard = "retried",
	    .attempts = 2,
	    .has_similarity = true,
	    .similarity = 0.75,
	    .blocks = blocks,
	    .nblocks = 2,
	    .fields = &field,
	    .nfields = 1,
	};
	char err[256];
	int64_t id = 0;
	CHECK_INT(ed_store_page_put(st, &p, &id, err, sizeof err), 0);
	return id;
}

static int64_t add_doc(struct ed_store *st, const char *sha, int pages)
{
	struct ed_store_doc d = {.sha256 = sha,
				 .path = sha,
				 .kind = "pdf",
				 .bytes = 10,
				 .pages = pages};
	char err[256];
	int64_t id = 0;
	CHECK_INT(ed_store_doc_put(st, &d, &id, err, sizeof err), 0);
	return id;
}

static void test_merge(void)
{
	char a[600], b[600], c[600], v1[600], err[256];
	struct ed_store *st;
	struct ed_store_merge_stats sm;
	struct ed_store_run ru = {"0.1.0", "remote", "ernie", "ocr", "{}"};
	int64_t doc, run;

	snprintf(a, sizeof a, "%s.a", dbpath);
	snprintf(b, sizeof b, "%s.b", dbpath);
	snprintf(c, sizeof c, "%s.c", dbpath);
	snprintf(v1, sizeof v1, "%s.v1", dbpath);
	/* A: page 1 done, page 2 waiting for the model */
	CHECK_INT(ed_store_open(&st, a, 0, err, sizeof err), 0);
	CHECK_INT(ed_store_run_begin(st, &ru, &run, err, sizeof err), 0);
	doc = add_doc(st, "aa", 2);
	put_full(st, doc, 1, "alpha from a@b.example");
	put_page(st, doc, 2, "", "needs-model", NULL);
	ed_store_close(st);
	/* B: its own result for page 1 (the same key), page 2 done, and a
	 * second document; a zoom on page 2 */
	CHECK_INT(ed_store_open(&st, b, 0, err, sizeof err), 0);
	add_doc(st, "zz", 1); /* ids differ from A's */
	doc = add_doc(st, "aa", 2);
	put_full(st, doc, 1, "bravo from b");
	{
		int64_t p2 = put_full(st, doc, 2, "charlie on page two");
		char sql[200];
		sqlite3 *db;
		sqlite3_open(b, &db);
		snprintf(sql, sizeof sql,
			 "INSERT INTO zooms(page_id, step, x1, y1, x2, y2) "
			 "VALUES (%lld, 1, 0, 0, 0.5, 0.5)",
			 (long long)p2);
		CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	put_full(st, add_doc(st, "bb", 1), 1, "delta in bb");
	ed_store_close(st);

	CHECK_INT(ed_store_open(&st, c, 0, err, sizeof err), 0);
	CHECK_INT(ed_store_merge(st, a, &sm, err, sizeof err), 0);
	CHECK(sm.pages_added == 2 && sm.docs_added == 1 && sm.runs_added == 1,
	      "A: %lld pages, %lld docs, %lld runs", (long long)sm.pages_added,
	      (long long)sm.docs_added, (long long)sm.runs_added);
	CHECK_INT(ed_store_merge(st, b, &sm, err, sizeof err), 0);
	/* page 1 is here already; page 2 replaces needs-model */
	CHECK(sm.pages_added == 2 && sm.pages_skipped == 1 &&
		  sm.pages_replaced == 1 && sm.docs_added == 2,
	      "B: added %lld, skipped %lld, replaced %lld, docs %lld",
	      (long long)sm.pages_added, (long long)sm.pages_skipped,
	      (long long)sm.pages_replaced, (long long)sm.docs_added);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages"), 3);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE status = "
			     "'needs-model'"),
		  0);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE text LIKE "
			     "'alpha%'"),
		  1);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE text LIKE "
			     "'bravo%'"),
		  0);
	/* every block, cell, field and zoom points at its own page */
	CHECK_INT(scalar(st, "SELECT count(*) FROM blocks"), 6);
	CHECK_INT(scalar(st, "SELECT count(*) FROM cells c JOIN blocks b ON "
			     "b.id = c.block_id JOIN pages p ON p.id = "
			     "b.page_id WHERE b.kind = 'table'"),
		  6);
	CHECK_INT(scalar(st, "SELECT count(*) FROM fields f JOIN pages p ON "
			     "p.id = f.page_id"),
		  3);
	CHECK_INT(scalar(st, "SELECT count(*) FROM zooms z JOIN pages p ON "
			     "p.id = z.page_id WHERE p.text LIKE 'charlie%'"),
		  1);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE guard = "
			     "'retried' AND attempts = 2 AND "
			     "text_similarity = 0.75"),
		  3);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages_fts WHERE pages_fts "
			     "MATCH 'delta OR charlie OR alpha'"),
		  3);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages p JOIN runs r ON "
			     "r.id = p.run_id"),
		  0); /* put_page rows carry no run */
	CHECK_INT(scalar(st, "SELECT count(*) FROM runs"), 1);
	/* again: nothing new */
	CHECK_INT(ed_store_merge(st, b, &sm, err, sizeof err), 0);
	CHECK(sm.pages_added == 0 && sm.pages_skipped == 3 &&
		  sm.docs_added == 0,
	      "again: %lld added", (long long)sm.pages_added);
	CHECK_INT(ed_store_merge(st, a, &sm, err, sizeof err), 0);
	CHECK_INT(sm.pages_added, 0);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages"), 3);
	CHECK_INT(scalar(st, "SELECT count(*) FROM runs"), 1);

	/* a schema 1 source: no cells, no guard columns */
	{
		sqlite3 *db;
		struct ed_store *s1;
		CHECK_INT(ed_store_open(&s1, v1, 0, err, sizeof err), 0);
		put_full(s1, add_doc(s1, "cc", 1), 1, "echo in schema one");
		ed_store_close(s1);
		sqlite3_open(v1, &db);
		CHECK_INT(sqlite3_exec(db,
				       "DROP TABLE cells;"
				       "ALTER TABLE pages DROP COLUMN guard;"
				       "ALTER TABLE pages DROP COLUMN attempts;"
				       "ALTER TABLE pages DROP COLUMN "
				       "text_similarity;"
				       "ALTER TABLE blocks DROP COLUMN level;"
				       "PRAGMA user_version = 1;",
				       NULL, NULL, NULL),
			  SQLITE_OK);
		sqlite3_close(db);
	}
	CHECK_INT(ed_store_merge(st, v1, &sm, err, sizeof err), 0);
	CHECK_INT(sm.pages_added, 1);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE text LIKE "
			     "'echo%' AND guard IS NULL"),
		  1);
	CHECK_INT(scalar(st, "SELECT count(*) FROM blocks"), 8);

	/* what cannot be merged leaves the store as it was */
	CHECK_INT(ed_store_merge(st, "/no/such.db", &sm, err, sizeof err),
		  ED_ENOENT);
	{
		FILE *f = fopen(v1, "w");
		fputs("this is not a database, not even close to one......"
		      "..............................................",
		      f);
		fclose(f);
	}
	CHECK_INT(ed_store_merge(st, v1, &sm, err, sizeof err), ED_EFORMAT);
	{
		sqlite3 *db;
		sqlite3_open(a, &db);
		sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	CHECK_INT(ed_store_merge(st, a, &sm, err, sizeof err), ED_EFORMAT);
	CHECK(strstr(err, "newer") != NULL, "%s", err);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages"), 4);
	ed_store_close(st);
}

/* Zooms stored with their page, and --mode auto's two results in one
 * transaction: the chosen one is what export and search see. */
static void test_zooms_and_choice(void)
{
	char path[600], err[256];
	struct ed_store *st;
	const struct ed_store_zoom zooms[] = {
	    {1, 0, 0, 500, 500, "corner", 280, 420},
	    {2, 500, 500, 1000, 1000, NULL, 280, 420}};
	struct ed_store_page other = {
	    .key = {0, 1, "auto", "ernie", "ocr-v1+alt"},
	    .source = "model",
	    .status = "done",
	    .text = "first look kilo",
	    .pass = "ocr",
	    .chosen = 0,
	};
	struct ed_store_page chosen = {
	    .key = {0, 1, "auto", "ernie", "ocr-v1"},
	    .source = "model",
	    .status = "done",
	    .text = "second look lima",
	    .pass = "think-zoom",
	    .chosen = 1,
	    .tools = true,
	    .tool_errors = 2,
	    .zooms = zooms,
	    .nzooms = 2,
	    .alt = &other,
	};
	int64_t doc, id = 0;

	snprintf(path, sizeof path, "%s.zoom", dbpath);
	CHECK_INT(ed_store_open(&st, path, 0, err, sizeof err), 0);
	doc = add_doc(st, "zz", 1);
	chosen.key.doc_id = other.key.doc_id = doc;
	CHECK_INT(ed_store_page_put(st, &chosen, &id, err, sizeof err), 0);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages"), 2);
	CHECK_INT(scalar(st, "SELECT count(*) FROM zooms WHERE page_id = "
			     "(SELECT id FROM pages WHERE chosen = 1)"),
		  2);
	CHECK_INT(scalar(st, "SELECT count(*) FROM zooms WHERE label = "
			     "'corner' AND x2 = 500 AND width = 280"),
		  1);
	CHECK_INT(scalar(st, "SELECT tool_errors FROM pages WHERE chosen"), 2);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages WHERE tool_errors IS "
			     "NULL AND pass = 'ocr' AND chosen = 0"),
		  1);
	{
		struct rows r = {0};
		CHECK_INT(ed_store_search(st, "kilo OR lima", 10, "[", "]",
					  collect, &r, err, sizeof err),
			  0);
		CHECK_INT(r.n, 1); /* the chosen result only */
	}
	{
		struct rows r = {0};
		ed_store_doc_export(st, doc, collect, &r, err, sizeof err);
		CHECK_INT(r.n, 2); /* the document and one page */
	}
	/* both rows again, replaced, not added */
	CHECK_INT(ed_store_page_put(st, &chosen, &id, err, sizeof err), 0);
	CHECK_INT(scalar(st, "SELECT count(*) FROM pages"), 2);
	CHECK_INT(scalar(st, "SELECT count(*) FROM zooms"), 2);
	ed_store_close(st);
}

int main(void)
{
	const char *base = getenv("ED_TMP");

	t_name = "store";
	snprintf(dbpath, sizeof dbpath, "%s/store-%ld.db", base ? base : "/tmp",
		 (long)getpid());
	test_schema_and_resume();
	test_search_export();
	test_readonly();
	test_bad_databases();
	test_busy();
	test_merge();
	test_zooms_and_choice();
	return t_done();
}

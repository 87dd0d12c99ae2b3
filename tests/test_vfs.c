/*
 * test_vfs.c - I/O faults, as SQLite tests itself: a VFS over the
 * default one that fails the N-th write, sync or lock, made the default,
 * then a whole pipeline run (documents, runs, pages, blocks, fields) over
 * a small tree with the fault at every N in turn. After each: whatever
 * the run said, the database passes PRAGMA integrity_check, and a plain
 * re-run completes the tree with every page stored exactly once.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/pipeline.h"
#include "tests/harness.h"
#include "tests/util.h"

#include "tests/faultvfs.h"

/* ---- the run ------------------------------------------------------------- */

static char tree[512], db[600];

static int run_once(void)
{
	struct ed_pipeline_opts o;
	struct ed_pipeline *p;
	struct ed_run_result rr;
	struct ed_pathlist l = {0};
	const char *roots[1] = {tree};
	char err[512];
	int rc;

	ed_pipeline_opts_default(&o);
	o.db_path = db;
	o.text_layer = ED_TEXT_LAYER_ONLY;
	if ((rc = ed_pipeline_walk(roots, 1, &l, err, sizeof err)))
		return rc;
	if (!(rc = ed_pipeline_open(&p, &o, err, sizeof err))) {
		const char **paths = calloc(l.n + 1, sizeof *paths);
		for (size_t i = 0; paths && i < l.n; i++)
			paths[i] = ed_pipeline_path_at(&l, i);
		rc = paths ? ed_pipeline_run(p, paths, l.n, &rr) : ED_ENOMEM;
		if (!rc && rr.failed)
			rc = ED_EIO;
		free(paths);
		ed_pipeline_close(p);
	}
	ed_pipeline_pathlist_free(&l);
	return rc;
}

static long scalar(const char *sql, char *text, size_t cap)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	long v = -1;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, "unix") != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		v = sqlite3_column_int64(s, 0);
		if (text)
			snprintf(text, cap, "%s",
				 (const char *)sqlite3_column_text(s, 0));
	}
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

static void remove_db(void)
{
	char p[700];
	unlink(db);
	snprintf(p, sizeof p, "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", db);
	unlink(p);
}

/* A document's row is written by INSERT ... RETURNING, whose commit
 * comes when the statement runs to its end: a fault there undid the row
 * while doc_put still handed out its id, and the page stored next failed
 * with "FOREIGN KEY constraint failed" (found by tests/faults.sh). With
 * the fault at each operation of one doc_put: an id is only handed out
 * for a row that is there. */
static void test_doc_put_commit(void)
{
	struct ed_store *st;
	char err[256];
	long k, lied = 0, failed = 0;
	int64_t id;
	struct ed_store_doc d = {.sha256 = "0123456789abcdef0123456789abcdef"
					   "0123456789abcdef0123456789abcdef",
				 .path = "x.pdf",
				 .kind = "pdf",
				 .bytes = 10,
				 .pages = 1};

	remove_db();
	CHECK_INT(ed_store_open(&st, db, 0, err, sizeof err), 0);
	ops = 0;
	fail_at = -1;
	CHECK_INT(ed_store_doc_put(st, &d, &id, err, sizeof err), 0);
	k = ops;
	fail_at = 0;
	ed_store_close(st);
	CHECK(k >= 2, "%ld operations", k);
	for (long n = 1; n <= k; n++) {
		char have[32] = "";
		remove_db();
		CHECK_INT(ed_store_open(&st, db, 0, err, sizeof err), 0);
		ops = 0;
		fail_at = n;
		id = -1;
		if (ed_store_doc_put(st, &d, &id, err, sizeof err))
			failed++;
		else if (fail_at = 0, scalar("SELECT count(*) FROM documents",
					     have, sizeof have) != 1)
			lied++;
		fail_at = 0;
		ed_store_close(st);
	}
	CHECK_INT(lied, 0);
	CHECK(failed > 0, "no fault reported over %ld operations", k);
}

int main(void)
{
	const char *tmp = getenv("ED_TMP") ? getenv("ED_TMP") : "/tmp";
	const char *build = getenv("ED_BUILD") ? getenv("ED_BUILD") : "build";
	long k, bad_integrity = 0, bad_rerun = 0, errors = 0, kinds[4] = {0};
	int rc;

	t_name = "vfs";
	snprintf(tree, sizeof tree, "%s/vfs-tree", tmp);
	snprintf(db, sizeof db, "%s/vfs.db", tmp);
	rc = t_sh("mkdir -p '%s' && for i in 1 2 3; do '%s/tests/mkpdf' "
		  "'%s/d'$i.pdf 3 vdoc$i; done",
		  tree, build, tree);
	CHECK(rc == 0, "mkpdf");
	CHECK(faultvfs_install() == 0, "vfs");
	test_doc_put_commit();
	/* how many writes, syncs and locks one run makes */
	remove_db();
	ops = 0;
	fail_at = -1;
	rc = run_once();
	k = ops;
	fail_at = 0;
	CHECK(rc == 0 && k > 20, "a run without faults: %d, %ld operations", rc,
	      k);
	for (long n = 1; n <= k; n++) {
		char ok[64] = "";
		remove_db();
		ops = 0;
		fail_kind = 0;
		fail_at = n;
		rc = run_once();
		fail_at = 0;
		kinds[fail_kind]++;
		errors += rc != 0;
		/* whatever the run said, the file is a sound database */
		if (access(db, F_OK) == 0 &&
		    (scalar("PRAGMA integrity_check", ok, sizeof ok) < 0 ||
		     strcmp(ok, "ok")))
			bad_integrity++;
		/* and a plain run finishes the tree, every page once */
		rc = run_once();
		if (rc ||
		    scalar("SELECT count(*) FROM pages WHERE status IN "
			   "('done', 'blank')",
			   NULL, 0) != 9 ||
		    scalar(
			"SELECT count(*) - count(DISTINCT document_id || '-' "
			"|| page_no) FROM pages",
			NULL, 0) != 0) {
			bad_rerun++;
			fprintf(stderr,
				"vfs: fault at operation %ld: the re-run "
				"gave %d\n",
				n, rc);
		}
	}
	CHECK_INT(bad_integrity, 0);
	CHECK_INT(bad_rerun, 0);
	CHECK(errors > 0, "no injected fault was reported");
	printf("  (%ld operations a run; a fault at each: %ld writes, %ld "
	       "syncs, %ld locks failed; %ld runs reported an error; every "
	       "database sound, every re-run complete)\n",
	       k, kinds[1], kinds[2], kinds[3], errors);
	return t_done();
}

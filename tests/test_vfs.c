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

static sqlite3_vfs *real_vfs;
static long ops, fail_at; /* fail_at 0: never */
static int fail_kind;	  /* which op failed last: 1 write, 2 sync, 3 lock */

struct ffile {
	sqlite3_file base;
	sqlite3_file *real;
};

static int fault(int kind)
{
	if (fail_at && ++ops == fail_at) {
		fail_kind = kind;
		return 1;
	}
	return 0;
}

#define REAL(f) (((struct ffile *)(f))->real)

static int f_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), p, n, o);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 o)
{
	if (fault(1))
		return SQLITE_IOERR_WRITE;
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, o);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 n)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int f_sync(sqlite3_file *f, int flags)
{
	if (fault(2))
		return SQLITE_IOERR_FSYNC;
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *n)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int f_lock(sqlite3_file *f, int l)
{
	if (fault(3))
		return SQLITE_BUSY;
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags)
{
	if ((flags & SQLITE_SHM_LOCK) && fault(3))
		return SQLITE_BUSY;
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shmbarrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shmunmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p)
{
	return REAL(f)->pMethods->xFetch(REAL(f), o, n, p);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods methods = {
    3,	       f_close,	 f_read,    f_write,	  f_truncate, f_sync,
    f_size,    f_lock,	 f_unlock,  f_reserved,	  f_control,  f_sector,
    f_chars,   f_shmmap, f_shmlock, f_shmbarrier, f_shmunmap, f_fetch,
    f_unfetch,
};

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
		  int *out)
{
	struct ffile *ff = (struct ffile *)f;
	int rc;
	(void)v;
	ff->real = (sqlite3_file *)&ff[1];
	rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
	/* a file the real VFS did not open has no methods to call */
	ff->base.pMethods = rc == SQLITE_OK ? &methods : NULL;
	return rc;
}
static int v_delete(sqlite3_vfs *v, const char *n, int sync)
{
	(void)v;
	return real_vfs->xDelete(real_vfs, n, sync);
}
static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
	(void)v;
	return real_vfs->xAccess(real_vfs, n, flags, out);
}
static int v_full(sqlite3_vfs *v, const char *n, int len, char *out)
{
	(void)v;
	return real_vfs->xFullPathname(real_vfs, n, len, out);
}
static int v_random(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *v, double *t)
{
	(void)v;
	return real_vfs->xCurrentTime(real_vfs, t);
}
static int v_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xGetLastError(real_vfs, n, out);
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	(void)v;
	return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

static sqlite3_vfs faulty = {
    .iVersion = 2,
    .mxPathname = 512,
    .zName = "faulty",
    .xOpen = v_open,
    .xDelete = v_delete,
    .xAccess = v_access,
    .xFullPathname = v_full,
    .xRandomness = v_random,
    .xSleep = v_sleep,
    .xCurrentTime = v_time,
    .xGetLastError = v_error,
    .xCurrentTimeInt64 = v_time64,
};

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
	real_vfs = sqlite3_vfs_find(NULL);
	faulty.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile;
	faulty.mxPathname = real_vfs->mxPathname;
	CHECK(sqlite3_vfs_register(&faulty, 1) == SQLITE_OK, "vfs");
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
